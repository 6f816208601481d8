"""``ExperimentConfig.eval_overrides``: EvalConfig fields checked on construction, recorded in
experiment.json, shown by the dry run and given to every evaluation the experiment runs."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from polyret.cli import app
from polyret.errors import ConfigError
from polyret.experiment import PRESETS, ExperimentConfig, run_experiment
from polyret.experiment.config import RESERVED_EVAL_KEYS

runner = CliRunner()


def test_eval_overrides_are_checked_as_an_eval_config_and_kept_in_stable_names():
    config = PRESETS["smoke"].replace(eval_overrides={"backend": "faiss", "measures": ["nDCG@10", "AP"], "k": "50"})
    assert config.eval_overrides == {"backend": "faiss", "measures": ("ndcg@10", "map"), "k": 50}
    assert config.to_dict()["eval_overrides"] == {"backend": "faiss", "measures": ["ndcg@10", "map"], "k": 50}
    assert PRESETS["smoke"].replace(eval_overrides={"store-dtype": "float16"}).eval_overrides == {"store_dtype": "float16"}
    with pytest.raises(ConfigError, match=r"eval_overrides: .*did you mean 'backend'"):
        PRESETS["smoke"].replace(eval_overrides={"bakend": "faiss"})
    with pytest.raises(ConfigError, match="eval_overrides: measures: Judged@200 .* give it a cutoff <= k"):
        PRESETS["smoke"].replace(eval_overrides={"measures": ["ndcg@200", "Judged@200"], "k": 100})


@pytest.mark.parametrize("key", sorted(RESERVED_EVAL_KEYS))
def test_eval_overrides_the_experiment_sets_itself_are_refused(key):
    with pytest.raises(ConfigError, match=f"eval_overrides: '{key}' is not allowed: "):
        PRESETS["smoke"].replace(eval_overrides={key: "x"})


def test_a_config_file_adds_eval_overrides_on_top_of_its_presets(tmp_path):
    f = tmp_path / "exp.yaml"
    f.write_text(
        "preset: smoke\neval_overrides:\n  backend: faiss\n  store_dtype: float16\ntrain_overrides: {learning_rate: 2.0e-4}\n"
    )
    config = ExperimentConfig.from_file(f)
    assert config.eval_overrides == {"backend": "faiss", "store_dtype": "float16"}
    # a transformers name in train_overrides is kept under polyret's own key (what experiment.json records)
    assert config.train_overrides["lr"] == 2e-4 and "learning_rate" not in config.train_overrides
    assert config.train_overrides["max_steps"] == PRESETS["smoke"].train_overrides["max_steps"]


class _Stop(Exception):
    pass


def test_eval_overrides_reach_every_evaluation_and_experiment_json(tiny_model_dir, tmp_path, monkeypatch):
    import polyret.evaluation

    seen = []

    def evaluate(model, bench, **kwargs):
        seen.append(kwargs)
        raise _Stop

    monkeypatch.setattr(polyret.evaluation, "evaluate", evaluate)
    out = tmp_path / "exp"
    overrides = {"backend": "faiss", "store_dtype": "float16", "measures": ["ndcg@10"], "precision": "fp32"}
    config = PRESETS["smoke"].replace(model=tiny_model_dir, output=str(out), eval_overrides=overrides)
    with pytest.raises(_Stop):
        run_experiment(config, progress=False)
    assert seen[0]["backend"] == "faiss" and seen[0]["store_dtype"] == "float16" and seen[0]["measures"] == ["ndcg@10"]
    assert seen[0]["precision"] == "fp32"  # resolved, as the evaluation records it
    assert seen[0]["batch_size"] == config.eval_batch_size  # the experiment's own keys as before
    assert json.loads((out / "experiment.json").read_text())["eval_overrides"] == overrides


def test_the_dry_run_shows_the_eval_overrides_and_the_command_line_sets_them(tiny_model_dir, tmp_path):
    base = ["experiment", "--preset", "smoke", "--model", tiny_model_dir, "--output", str(tmp_path / "exp"), "--dry-run"]
    result = runner.invoke(app, [*base, "--eval-set", "backend=faiss", "--eval-set", "store-dtype=float16"])
    assert result.exit_code == 0, result.output
    assert "evaluation options: backend=faiss, store_dtype=float16" in result.output
    result = runner.invoke(app, [*base, "--eval-set", "batch_size=8"])
    assert result.exit_code == 2 and "eval_batch_size" in result.output
    result = runner.invoke(app, [*base, "--eval-set", "k=0"])
    assert result.exit_code == 2 and "eval_overrides" in result.output and "k must be >= 1" in result.output
    assert not (tmp_path / "exp").exists()


def test_the_reports_setup_names_the_eval_overrides(tmp_path):
    from polyret.report.setup import collect_setup

    overrides = {"backend": "faiss", "measures": ["map@20", "ndcg@10"]}
    config = PRESETS["smoke"].replace(output=str(tmp_path), eval_overrides=overrides)
    assert collect_setup(tmp_path, config)["evaluation options"] == "backend faiss, measures map@20,ndcg@10"
    assert "evaluation options" not in collect_setup(tmp_path, PRESETS["smoke"].replace(output=str(tmp_path)))
