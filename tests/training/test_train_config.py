"""TrainConfig's names from transformers / sentence-transformers (aliases) and ``trainer_args``, the
arguments passed through to ``SentenceTransformerTrainingArguments``."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from polyret.cli import app
from polyret.errors import ConfigError
from polyret.training import TrainConfig
from polyret.training.config import TRAINER_ARGS_SET_BY_POLYRET
from tests.helpers.training import small_config

runner = CliRunner()


def test_transformers_names_are_aliases_of_polyrets_keys(tmp_path):
    config = TrainConfig.from_dict(
        {"learning_rate": 1e-4, "num_train_epochs": 2, "gradient_accumulation_steps": 2, "per_device_train_batch_size": 8}
    )
    assert (config.lr, config.epochs, config.grad_accum_steps) == (1e-4, 2.0, 2)
    assert (config.batch_size, config.batch_scope) == (8, "per_device")  # what per_device_* counts
    assert TrainConfig().replace(learning_rate=2e-5).lr == 2e-5
    assert TrainConfig().with_overrides(["learning_rate=5e-5", "num-train-epochs=3"]).epochs == 3.0
    f = tmp_path / "c.yaml"
    f.write_text("recipe: cpu\nlearning_rate: 2.0e-5\n")
    assert TrainConfig.from_file(f).lr == 2e-5 and "learning_rate" not in TrainConfig.from_file(f).to_dict()


@pytest.mark.parametrize(
    "data, named",
    [
        ({"lr": 1e-4, "learning_rate": 2e-4}, "'lr' is given twice"),
        ({"batch_size": 8, "per_device_train_batch_size": 8}, "'batch_size' is given twice"),
        ({"per_device_train_batch_size": 8, "batch_scope": "global"}, "cannot go with batch_scope='global'"),
        ({"learning_rat": 1e-4}, "did you mean 'learning_rate'"),
    ],
)
def test_an_alias_beside_its_key_or_a_misspelt_one_is_refused(data, named):
    with pytest.raises(ConfigError, match=named):
        TrainConfig.from_dict(data)


def test_trainer_args_default_to_no_reporting_and_are_passed_through():
    assert TrainConfig().trainer_arguments() == {"report_to": "none"}
    config = TrainConfig(trainer_args={"report_to": "tensorboard", "max_grad_norm": 0.5, "adam_beta2": 0.98})
    assert config.trainer_arguments() == {"report_to": "tensorboard", "max_grad_norm": 0.5, "adam_beta2": 0.98}
    assert config.to_dict()["trainer_args"] == {"report_to": "tensorboard", "max_grad_norm": 0.5, "adam_beta2": 0.98}
    assert TrainConfig.from_dict(config.to_dict()) == config
    assert TrainConfig().with_overrides(["trainer_args={max_grad_norm: 0.5}"]).trainer_args == {"max_grad_norm": 0.5}


@pytest.mark.parametrize(
    "args, named",
    [
        ({"max_grad_nrm": 1.0}, "trainer_args: 'max_grad_nrm' is not an argument of .*did you mean 'max_grad_norm'"),
        ({"learning_rate": 1e-4}, "trainer_args: 'learning_rate' is set by polyret from its 'lr' key: set lr instead"),
        ({"per_device_train_batch_size": 4}, "from its 'batch_size' key"),
        ({"batch_sampler": "x"}, "from its 'strategy' key"),
        ({"use_cpu": True}, "set by polyret itself"),
    ],
)
def test_unknown_or_polyret_owned_trainer_args_fail_on_construction(args, named):
    with pytest.raises(ConfigError, match=named) as info:
        TrainConfig(trainer_args=args)
    assert info.value.key == "trainer_args"


def test_every_argument_the_trainer_sets_is_reserved():
    """The trainer's own keyword arguments (trainer.py) are all in TRAINER_ARGS_SET_BY_POLYRET, so a
    ``trainer_args`` entry can never collide with one at run time."""
    import ast
    import inspect

    from polyret.training import trainer

    tree = ast.parse(inspect.getsource(trainer))
    calls = [
        n
        for n in ast.walk(tree)
        if isinstance(n, ast.Call) and getattr(n.func, "id", "") == "SentenceTransformerTrainingArguments"
    ]
    assert len(calls) == 1
    named = {kw.arg for kw in calls[0].keywords if kw.arg is not None}
    assert named - set(TRAINER_ARGS_SET_BY_POLYRET) == set()


class _Stop(Exception):
    pass


def test_trainer_args_reach_the_training_arguments(tiny_model, pairs_file, tmp_path, monkeypatch):
    import sentence_transformers

    from polyret.training import train

    plain = small_config(tiny_model, pairs_file, tmp_path / "a")
    passed = small_config(
        tiny_model, pairs_file, tmp_path / "b", trainer_args={"report_to": "tensorboard", "max_grad_norm": 0.25}
    )
    seen = []

    def capture(**kwargs):
        seen.append(kwargs)
        raise _Stop

    monkeypatch.setattr(sentence_transformers, "SentenceTransformerTrainingArguments", capture)
    with pytest.raises(_Stop):
        train(plain)
    assert seen[-1]["report_to"] == "none" and "max_grad_norm" not in seen[-1]
    with pytest.raises(_Stop):
        train(passed)
    assert seen[-1]["report_to"] == "tensorboard" and seen[-1]["max_grad_norm"] == 0.25
    assert seen[-1]["learning_rate"] == 5e-4  # polyret's own keys as before


def test_command_line_set_takes_aliases_and_trainer_args(tiny_model, pairs_file, tmp_path):
    base = [
        "train",
        "--model",
        str(tiny_model),
        "--train",
        str(pairs_file),
        "--output",
        str(tmp_path / "run"),
        "--dry-run",
        "--batch-size",
        "8",
    ]
    result = runner.invoke(app, [*base, "--set", "learning_rate=1e-4", "--set", "trainer_args={max_grad_norm: 0.5}"])
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, [*base, "--set", "trainer_args={max_grad_nrm: 0.5}"])
    assert result.exit_code == 2 and "did you mean 'max_grad_norm'" in result.output
    result = runner.invoke(app, [*base, "--set", "learnin_rate=1e-4"])
    assert result.exit_code == 2 and "did you mean 'learning_rate'" in result.output


def test_a_run_records_its_trainer_args(tmp_path):
    """``polyret_train.json`` keeps trainer_args, and a record without them (an older polyret) reads as none."""
    config = TrainConfig(trainer_args={"max_grad_norm": 0.5})
    (tmp_path / "polyret_train.json").write_text(json.dumps({"config": config.to_dict()}))
    assert TrainConfig.from_file(tmp_path).trainer_args == {"max_grad_norm": 0.5}
    old = config.to_dict()
    del old["trainer_args"]
    (tmp_path / "polyret_train.json").write_text(json.dumps({"config": old}))
    assert TrainConfig.from_file(tmp_path).trainer_args == {}
