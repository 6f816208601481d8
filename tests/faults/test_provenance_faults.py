"""Issue 21, further cases: reuse is decided by provenance (model, data, config), for every reusing verb.

* ``experiment`` reuses evaluations and trained models: a benchmark file edited in place (same size, same
  path), or base weights replaced in the same folder, are redone, not paired with the old numbers; another
  model or another training value in the same folder is refused before any work.
* ``train --resume`` continues checkpoints only on the data they were trained on, with the same options.
* ``evaluate`` reuses the embedding cache only for the same weights (the model's content, not its path).
* ``score --compare`` and ``card --results`` refuse an evaluation of another benchmark or model.

One real 2-step smoke experiment on the tiny model (``smoke_experiment``, tests/faults/conftest.py); each case
works on a copy of it (a case that edits its data or base model in place restores them).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from polyret.cli import app
from polyret.paths import read_marker
from tests.helpers.models import build_tiny_model
from tests.helpers.pairs import write_de_en_pairs

runner = CliRunner()
LANGS = "de,en"


def _cli(w, *args: str):
    return runner.invoke(app, list(args), env=w["env"])


def _exp(w, out: Path, *extra: str):
    return _cli(w, *w["args"], *extra, "--output", str(out))


def _said(res) -> str:
    return " ".join(res.output.split())


@pytest.fixture(scope="module")
def w(smoke_experiment, tmp_path_factory):
    other = build_tiny_model(tmp_path_factory.mktemp("provenance-faults") / "other", seed=1)
    return {**smoke_experiment, "other": other}


def test_a_benchmark_file_edited_in_place_is_trained_and_evaluated_again(w, tmp_path):
    out = shutil.copytree(w["exp"], tmp_path / "exp")
    de = w["data"] / "xquad-r" / "de.json"
    text = de.read_text(encoding="utf-8")
    edited = text.replace('"question": "stadt', '"question": "stadx')  # same size, same path
    assert edited != text and len(edited) == len(text)
    try:
        de.write_text(edited, encoding="utf-8")
        res = _exp(w, out)
    finally:
        de.write_text(text, encoding="utf-8")
    assert res.exit_code == 0, res.output[-2000:]
    assert "trained 1, evaluated 2, reused 0" in _said(res), _said(res)  # was: reused 3, the old data's numbers
    now, then = (read_marker(e / "evals" / "base" / "xquad-r_test")["data"] for e in (out, w["exp"]))
    assert now["xquad-r/de.json"] != then["xquad-r/de.json"] and now["xquad-r/en.json"] == then["xquad-r/en.json"]


def test_base_weights_replaced_in_the_same_folder_are_trained_and_evaluated_again(w, tmp_path):
    out = shutil.copytree(w["exp"], tmp_path / "exp")
    weights = w["base"] / "model.safetensors"
    saved = weights.read_bytes()
    try:
        shutil.copyfile(w["other"] / "model.safetensors", weights)  # another model at the same path
        res = _exp(w, out)
        assert res.exit_code == 0, res.output[-2000:]
        assert "trained 1, evaluated 2, reused 0" in _said(res), _said(res)  # was: reused 3
    finally:
        weights.write_bytes(saved)


@pytest.mark.parametrize(
    "extra, key",
    [(["--model", "OTHER"], "model"), (["--model", "builtin:me5-small"], "model"), (["--set", "lr=0.5"], "train_overrides")],
    ids=["other model folder", "the builtin model", "other training value"],
)
def test_another_model_or_config_in_the_same_experiment_folder_is_refused(w, tmp_path, extra, key):
    out = shutil.copytree(w["exp"], tmp_path / "exp")
    extra = [str(w["other"]) if e == "OTHER" else e for e in extra]
    res = _exp(w, out, *extra)
    assert res.exit_code == 2 and "different configuration" in _said(res) and key in _said(res), _said(res)
    assert sorted(p.name for p in out.iterdir()) == sorted(p.name for p in w["exp"].iterdir())


def test_resume_on_edited_training_data_or_with_another_value_is_refused(w, tmp_path):
    pairs = write_de_en_pairs(tmp_path / "p.jsonl")
    run = tmp_path / "run"
    args = ["train", "--model", str(w["base"]), "--train", str(pairs), "--languages", LANGS, "--max-steps", "3",
            "--batch-size", "4", "--set", "save_steps=1", "--keep-checkpoints", "--output", str(run)]  # fmt: skip
    assert _cli(w, *args).exit_code == 0
    shutil.rmtree(run / "model")
    shutil.rmtree(run / "checkpoints" / "checkpoint-3")  # as a kill after step 2 leaves it
    res = _cli(w, *args, "--resume", "--set", "lr=0.5")
    assert res.exit_code == 2 and "lr" in _said(res), _said(res)
    pairs.write_text(pairs.read_text().replace("passage city 3", "passage citx 3"), encoding="utf-8")  # same size
    res = _cli(w, *args, "--resume")
    assert res.exit_code == 2, res.output[-2000:]  # was: resumed the old data's checkpoint on the new data
    assert "training data changed" in _said(res) and "p.jsonl" in _said(res)
    assert not (run / "model").exists()


def test_an_embedding_cache_is_never_used_for_other_weights_at_the_same_path(w, tmp_path):
    model = Path(shutil.copytree(w["base"], tmp_path / "m"))
    assert _cli(w, "evaluate", "--model", str(model), "--languages", LANGS, "--output", str(tmp_path / "a")).exit_code == 0
    shutil.copyfile(w["other"] / "model.safetensors", model / "model.safetensors")  # retrained in place
    assert _cli(w, "evaluate", "--model", str(model), "--languages", LANGS, "--output", str(tmp_path / "b")).exit_code == 0
    fresh = _cli(w, "evaluate", "--model", str(w["other"]), "--languages", LANGS, "--no-cache", "--output", str(tmp_path / "c"))
    assert fresh.exit_code == 0
    b, c = (json.loads((tmp_path / x / "results.json").read_text())["settings"] for x in ("b", "c"))
    assert b == c


def test_card_and_compare_refuse_an_evaluation_of_another_model_or_benchmark(w, tmp_path):
    trained = w["exp"] / "models" / "hybrid" / "seed0" / "model"
    model = shutil.copytree(trained, tmp_path / "m")
    base_eval = w["exp"] / "evals" / "base" / "xquad-r_test"
    before = (model / "README.md").read_bytes()
    res = _cli(w, "card", "--model", str(model), "--results", str(base_eval))
    assert res.exit_code == 2 and "another model" in _said(res), _said(res)
    assert (model / "README.md").read_bytes() == before
    train_eval = tmp_path / "train-eval"
    res = _cli(w, "evaluate", "--model", str(w["base"]), "--benchmark", "xquad-r:train", "--languages", LANGS, "--trec-run",
               "--output", str(train_eval))  # fmt: skip
    assert res.exit_code == 0
    res = _cli(w, "score", "--run", str(train_eval / "run.trec"), "--benchmark", "xquad-r:train", "--languages", LANGS,
               "--compare", str(base_eval))  # fmt: skip
    assert res.exit_code == 2 and "not on 'xquad-r:train'" in _said(res), _said(res)
