"""Training-free remedies as systems of an experiment: validated with the key named, evaluated into
their own folders, compared in the report like a strategy."""

import json

import pytest

from polyret.experiment import PRESETS, run_experiment


def test_remedies_are_validated_before_any_work(tmp_path):
    cfg = PRESETS["smoke"].replace(output=str(tmp_path / "x"), strategies=("hybrid",), remedies=("shift", "hybrid+leace"))
    assert cfg.remedy_systems() == [("base+shift", "base", "shift"), ("hybrid+leace", "hybrid", "leace")]
    with pytest.raises(ValueError, match="remedies: 'mono\\+shift' names system 'mono'"):
        cfg.replace(remedies=("mono+shift",))
    with pytest.raises(ValueError, match="unknown remedy 'tilt'"):
        cfg.replace(remedies=("base+tilt",))
    with pytest.raises(ValueError, match="evaluated benchmark"):
        cfg.replace(remedies=("base+center",), remedy_fit="xquad-r:test")
    assert not (tmp_path / "x").exists()


@pytest.mark.slow
def test_smoke_experiment_with_remedies(tmp_path, tiny_model_dir, monkeypatch):
    monkeypatch.setenv("POLYRET_CACHE_DIR", str(tmp_path / "cache"))
    out = tmp_path / "exp"
    cfg = PRESETS["smoke"].replace(
        model=tiny_model_dir,
        output=str(out),
        strategies=("hybrid",),
        remedies=("base+center", "hybrid+shift"),
        remedy_fit_max_queries=8,
    )
    result = run_experiment(cfg, progress=False)
    assert "base+center xquad-r:test" in result["done"]["evaluated"]
    assert "hybrid+shift seed 0 xquad-r:test" in result["done"]["evaluated"]
    rec = json.loads((out / "evals" / "hybrid+shift" / "seed0" / "xquad-r_test" / "results.json").read_text())["debias"]
    assert rec["method"] == "shift" and rec["fit"] == "xquad-r:train"
    report = json.loads((out / "report" / "report.json").read_text())["benchmarks"]["xquad-r:test"]
    assert {"base", "base+center", "hybrid", "hybrid+shift"} <= set(report["systems"])
    again = run_experiment(cfg, progress=False)
    assert again["done"]["evaluated"] == [] and "eval hybrid+shift seed 0 xquad-r:test" in again["done"]["reused"]
