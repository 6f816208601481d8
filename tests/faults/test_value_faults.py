"""Issue 21, further cases: a bad value of any key, on the command line or in a YAML/JSON config file, is
refused with exit 2 and one ``error:`` line naming the key, before any model loads or any output is written.

Every command runs in this process (typer's runner) on the tiny model and a tiny XQuAD-R-shaped data dir;
a refused command never gets as far as loading the model (``polyret.models.load`` fails the test).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from polyret.cli import app
from tests.helpers.lareqa import write_tiny_xquad
from tests.helpers.pairs import write_de_en_pairs

runner = CliRunner()


@pytest.fixture(scope="module")
def world(tmp_path_factory, tiny_model_dir):
    root = tmp_path_factory.mktemp("value-faults")
    write_tiny_xquad(root / "data")
    write_de_en_pairs(root / "p.jsonl")
    (root / "r.trec").write_text("a0q0@de Q0 de:x 1 1.0 t\n")
    return {"root": root, "model": tiny_model_dir}


@pytest.fixture()
def no_model_load(monkeypatch):
    import polyret.models

    def refuse(*args, **kwargs):
        raise AssertionError("a model was loaded before the bad value was refused")

    monkeypatch.setattr(polyret.models, "load", refuse)


def _sub(text: str, world, out: Path) -> str:
    return text.replace("$M", world["model"]).replace("$R", str(world["root"])).replace("$O", str(out))


def _run(world, args: list[str], out: Path):
    """``polyret <args>``: $M the tiny model, $R the inputs' folder, $O this test's output folder."""
    args = [_sub(a, world, out) for a in args]
    env = {"POLYRET_CACHE_DIR": str(world["root"] / "cache"), "POLYRET_DATA_DIR": str(world["root"] / "data")}
    return runner.invoke(app, args, env=env)


def _refused(res, key: str) -> str:
    """Exit 2 and a last line ``error: ...`` naming ``key`` (no traceback, no 'a bug in polyret')."""
    lines = [line for line in res.output.strip().splitlines() if line.strip()]
    assert res.exit_code == 2, (res.exit_code, res.output[-2000:])
    errors = [line for line in lines if line.startswith("error:")]
    assert len(errors) == 1, res.output[-2000:]
    message = " ".join(res.output[res.output.index("error:") :].split())
    option = "--" + key.replace("_", "-")  # the command line names a config key by its option
    assert key in message or option in message, (key, message)
    assert "Traceback" not in res.output and "a bug in polyret" not in message
    return message


TRAIN = ["train", "--model", "$M", "--train", "$R/p.jsonl", "--languages", "de,en", "--max-steps", "1", "--output", "$O/t"]


@pytest.mark.parametrize(
    "extra, key",
    [
        (["--set", "lr=-1"], "lr"),
        (["--set", "lr=abc"], "lr"),
        (["--set", "batch_size=0"], "batch_size"),
        (["--set", "batch_size=2.5"], "batch_size"),
        (["--set", "warmup_ratio=1.5"], "warmup_ratio"),
        (["--set", "temperature=0"], "temperature"),
        (["--set", "precision=fp8"], "precision"),
        (["--set", "lora_dropout=1.5"], "lora_dropout"),
        (["--set", "max_seq_length=0"], "max_seq_length"),
        (["--set", "seed=-1"], "seed must be an integer >= 0"),  # was: a batch-size advice about "seed"
        (["--set", "alpha_schedule=even"], "alpha_schedule"),
        (["--set", "nosuchkey=1"], "nosuchkey"),
        (["--alpha", "-0.5"], "alpha"),
        (["--batch-size", "-4"], "batch_size"),
    ],
    ids=lambda v: "_".join(v) if isinstance(v, list) else None,
)
def test_train_cli_bad_value_exits_2_naming_the_key(world, no_model_load, tmp_path, extra, key):
    _refused(_run(world, TRAIN + extra, tmp_path), key)
    assert not list(tmp_path.iterdir())


TRAIN_FILE = "model: $M\ntrain: [$R/p.jsonl]\noutput_dir: $O/t2\nmax_steps: 1\n"


@pytest.mark.parametrize(
    "name, text, key",
    [
        ("a.yaml", TRAIN_FILE + "batch_size: null\n", "batch_size"),  # was: internal error TypeError ('>=' on None)
        ("b.yaml", TRAIN_FILE + "lr:\n", "lr"),  # an empty value is null too
        ("c.json", None, "batch_size"),  # JSON null: was the same TypeError
        ("d.yaml", TRAIN_FILE.replace("max_steps: 1", "max_steps: true"), "max_steps"),
        ("e.yaml", TRAIN_FILE + "seed: 1.5\n", "seed"),
        ("f.yaml", TRAIN_FILE + "languages: 5\n", "languages"),
        ("g.yaml", TRAIN_FILE + "lr: .inf\n", "lr"),
        ("h.yaml", TRAIN_FILE + "languages: [de, EN]\n", "'en'"),
        ("i.yaml", TRAIN_FILE.replace("output_dir: $O/t2", "output_dir: 7"), "output_dir"),
        ("j.yaml", "- model\n- x\n", "mapping"),
    ],
)
def test_train_config_file_bad_value_exits_2_naming_key_and_file(world, no_model_load, tmp_path, name, text, key):
    path = tmp_path / name
    if text is None:
        text = json.dumps({"model": "$M", "train": ["$R/p.jsonl"], "output_dir": "$O/t2", "batch_size": None})
    path.write_text(_sub(text, world, tmp_path))
    message = _refused(_run(world, ["train", "--config", str(path)], tmp_path), key)
    assert name in message
    assert not (tmp_path / "t2").exists()


EXP = "preset: smoke\nmodel: $M\noutput: $O/x\n"


@pytest.mark.parametrize(
    "text, key",
    [
        ("seeds: 0\n", "seeds"),
        ("seeds: true\n", "seeds"),
        ("seeds: 2.5\n", "seeds"),
        ("first_seed: -1\n", "first_seed"),
        ("strategies: [tri]\n", "strategies"),
        ("strategies: [mono, mono]\n", "strategies"),  # was: mono trained twice into one folder, listed twice
        ("alpha_sweep: [0.3, 0.3]\n", "alpha_sweep"),  # was: two hybrid-a0.3 runs of one folder
        ("alpha_sweep: [1.5]\n", "alpha"),
        ("languages: [de, zz]\n", "zz"),
        ("train_overrides: 5\n", "train_overrides"),
        ("train_overrides: {lr: -1}\n", "lr"),
        ("train_overrides: {max_steps: three}\n", "max_steps"),
        ("remedies: [base+magic]\n", "magic"),
        ("benchmarks: [nosuch:test]\n", "nosuch:test"),
        ("benchmarks: [xquad-r:test, xquad-r:test]\n", "benchmarks"),
        ("nosuchkey: 1\n", "nosuchkey"),
    ],
)
def test_experiment_config_bad_value_exits_2_before_anything_is_written(world, no_model_load, tmp_path, text, key):
    path = tmp_path / "exp.yaml"
    path.write_text(_sub(EXP + text, world, tmp_path))
    message = _refused(_run(world, ["experiment", "--config", str(path)], tmp_path), key)
    assert "exp.yaml" in message
    assert not (tmp_path / "x").exists()


EVAL = ["evaluate", "--model", "$M", "--languages", "de,en", "--output", "$O/e"]
MINE = ["mine", "--train", "$R/p.jsonl", "--model", "$M", "--output", "$O/m.jsonl"]
SCORE = ["score", "--run", "$R/r.trec", "--benchmark", "xquad-r:test", "--output", "$O/s"]


@pytest.mark.parametrize(
    "args, key",
    [
        (EVAL + ["--batch-size", "0"], "--batch-size"),
        (EVAL + ["--k", "-3"], "--k"),
        (EVAL + ["--measures", "nosuch"], "--measures"),
        (EVAL + ["--backend", "nosuch"], "--backend"),
        (EVAL + ["--store-dtype", "int8"], "--store-dtype"),
        (EVAL + ["--max-tokens", "0"], "--max-tokens"),
        (EVAL + ["--families", "tri"], "--families"),
        (EVAL + ["--bias-measures", "nosuch"], "bias_measures"),
        (EVAL + ["--debias", "magic"], "magic"),
        (EVAL + ["--device", "gpu7"], "device"),  # was: "could not load the model folder" after loading it
        (EVAL + ["--device", "cuda:x"], "device"),
        (["evaluate", "--model", "$M", "--languages", "DE,en", "--output", "$O/e"], "'de'"),
        (MINE + ["--k", "0"], "k (negatives per pair)"),
        (MINE + ["--relative-margin", "-1"], "relative_margin"),
        (MINE + ["--range-min", "5", "--range-max", "2"], "range_min"),
        (MINE + ["--absolute-margin", "nan"], "absolute_margin"),
        (MINE + ["--seed", "-1", "--max-groups", "3"], "seed"),  # was: "expected non-negative integer"
        (MINE + ["--device", "gpu7"], "--device"),
        (MINE + ["--precision", "fp8"], "precision"),
        (SCORE + ["--fuse", "nosuch"], "fusion"),
        (SCORE + ["--measures", "nosuch"], "--measures"),
        (SCORE + ["--families", "tri"], "--families"),
    ],
    ids=lambda v: " ".join(v[0:1] + v[-2:]) if isinstance(v, list) else None,
)
def test_verb_option_bad_value_exits_2_naming_the_option(world, no_model_load, tmp_path, args, key):
    _refused(_run(world, args, tmp_path), key)
    assert not list(tmp_path.iterdir())


# ------------------------------------------------------------------------------------ every key, wrong types
WRONG = ({"a": 1}, [[1]], -5, "zz-not-valid")
TRAIN_FREE_STRINGS = {"model", "train", "output_dir", "data_dir", "dev", "metric_for_best_model", "lora_target_modules"}
EXPERIMENT_FREE_STRINGS = {"model", "train", "data_dir", "output", "remedy_fit"}


def _fields(cls) -> list[str]:
    import dataclasses

    return [f.name for f in dataclasses.fields(cls)]


def _train_fields() -> list[str]:
    from polyret.training.config import TrainConfig

    return _fields(TrainConfig)


def _experiment_fields() -> list[str]:
    from polyret.experiment.config import ExperimentConfig

    return _fields(ExperimentConfig)


@pytest.mark.parametrize("key", _train_fields())
def test_every_training_config_key_with_a_wrong_value_is_refused_naming_it(key):
    """A mapping, a nested list, a negative number, a word: a ConfigError naming the key (never a TypeError:
    ``languages: [[1]]`` and ``recipe: {a: 1}`` were unhashable-type crashes, ``lora_target_modules: [[1]]``
    was accepted); a word is a fine value only for keys that name paths, specs or modules (checked on disk
    or at load)."""
    from polyret.errors import ConfigError
    from polyret.training.config import TrainConfig

    for bad in WRONG:
        data = {"model": "m", "train": ["a.jsonl"], "output_dir": "o", key: bad}
        if bad == "zz-not-valid" and key in TRAIN_FREE_STRINGS:
            TrainConfig.from_dict(data, source="c.yaml")
            continue
        with pytest.raises(ConfigError) as err:
            TrainConfig.from_dict(data, source="c.yaml")
        assert key in str(err.value) and "c.yaml" in str(err.value), (bad, str(err.value))


@pytest.mark.parametrize("key", _experiment_fields())
def test_every_experiment_config_key_with_a_wrong_value_is_refused_naming_it(key):
    """The same for the experiment config (``eval_languages: {xquad-r:test: 1}`` was blamed on
    ``languages``); a benchmark id that is no benchmark is named by its value and the known ids."""
    from polyret.experiment.config import ExperimentConfig

    for bad in (*WRONG, None):
        data = {"preset": "smoke", "model": "m", key: bad}
        free = (bad == "zz-not-valid" and key in EXPERIMENT_FREE_STRINGS) or (bad is None and key in _NULLABLE)
        if free or (key == "remedy_fit_max_queries" and bad in (-5, None)):  # used only with remedies: checked then
            ExperimentConfig.from_dict(data, source="c.yaml")
            continue
        with pytest.raises(ValueError) as err:
            ExperimentConfig.from_dict(data, source="c.yaml")
        said = str(err.value)
        named = key in said or (key == "benchmarks" and "zz-not-valid" in said)  # an unknown id: named by its value
        named = named or (key == "train_overrides" and "unknown training config key(s) ['a']" in said)
        assert named and "c.yaml" in said, (bad, said)


_NULLABLE = {"languages", "eval_max_seq_length", "data_dir", "preset", "remedy_fit_max_queries"}


def test_remedy_fit_max_queries_is_checked_when_remedies_use_it():
    from polyret.experiment.config import ExperimentConfig

    with pytest.raises(ValueError, match="max_queries"):
        ExperimentConfig.from_dict({"preset": "smoke", "remedies": ["base+shift"], "remedy_fit_max_queries": -5})
