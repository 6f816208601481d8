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

runner = CliRunner()


@pytest.fixture(scope="module")
def world(tmp_path_factory, tiny_model_dir):
    root = tmp_path_factory.mktemp("value-faults")
    write_tiny_xquad(root / "data")
    rows = [
        {"id": f"g{g}", "lang": lang, "query": f"{lang} stadt river {g}", "positive": f"{lang} passage city {g}"}
        for g in range(12)
        for lang in ("de", "en")
    ]
    (root / "p.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
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
    assert key in message, (key, message)
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
