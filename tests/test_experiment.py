"""The smoke preset end to end (tiny model): train every strategy, evaluate, report, resume."""

import json
import shutil

import pytest

from polyret.experiment import PRESETS, ExperimentConfig, run_experiment


@pytest.fixture(scope="module")
def smoke(tmp_path_factory, tiny_model_dir):
    out = tmp_path_factory.mktemp("exp") / "smoke"
    cfg = PRESETS["smoke"].replace(model=tiny_model_dir, output=str(out))
    result = run_experiment(cfg, progress=False)
    return cfg, result


def test_smoke_preset_trains_evaluates_and_reports(smoke):
    cfg, result = smoke
    out = result["output"]
    assert sorted(result["done"]["trained"]) == ["cross seed 0", "hybrid seed 0", "mono seed 0"]
    assert len(result["done"]["evaluated"]) == 4  # base + 3 strategies on one benchmark
    for system in ("mono", "cross", "hybrid"):
        card = (out / "models" / system / "seed0" / "model" / "README.md").read_text()
        assert system in card
        res = json.loads((out / "evals" / system / "seed0" / "xquad-r_test" / "results.json").read_text())
        assert set(res["settings"]) == {"mono", "cross", "multi"}
        assert res["languages"] == ["de", "en"]
    report = (out / "report" / "report.md").read_text()
    for system in ("base", "mono", "cross", "hybrid"):
        assert system in report
    data = json.loads((out / "report" / "report.json").read_text())
    assert data
    assert list((out / "report").rglob("*.png"))


def test_rerun_reuses_everything(smoke):
    cfg, first = smoke
    again = run_experiment(cfg, progress=False)
    assert again["done"]["trained"] == [] and again["done"]["evaluated"] == []


def test_interrupted_training_resumes_from_checkpoint(smoke):
    cfg, first = smoke
    out = first["output"]
    run_dir = out / "models" / "hybrid" / "seed0"
    # as if the process died after the step-2 checkpoint: no final model, no evaluation yet
    shutil.rmtree(run_dir / "model")
    shutil.rmtree(out / "evals" / "hybrid")
    shutil.rmtree(run_dir / "checkpoints" / "checkpoint-4")
    assert [p.name for p in (run_dir / "checkpoints").glob("checkpoint-*")] == ["checkpoint-2"]
    again = run_experiment(cfg, progress=False)
    assert again["done"]["trained"] == ["hybrid seed 0"]
    assert again["done"]["evaluated"] == ["hybrid seed 0 xquad-r:test"]
    info = json.loads((run_dir / "model" / "polyret_train.json").read_text())
    assert info["resumed_from"] == "checkpoint-2"
    assert info["global_step"] == cfg.train_overrides["max_steps"]


def test_changed_config_in_same_folder_is_refused(smoke):
    cfg, first = smoke
    with pytest.raises(ValueError, match="different configuration.*train_overrides"):
        run_experiment(cfg.replace(train_overrides={**cfg.train_overrides, "lr": 1e-3}), progress=False)
    with pytest.raises(ValueError, match="different configuration.*alpha"):
        run_experiment(cfg.replace(alpha=0.3), progress=False)


def test_more_seeds_extend_the_experiment(smoke, tmp_path):
    cfg, first = smoke
    out = tmp_path / "copy"
    shutil.copytree(first["output"], out)
    wider = cfg.replace(output=str(out), seeds=2, strategies=("hybrid",))
    again = run_experiment(wider, progress=False)
    assert again["done"]["trained"] == ["hybrid seed 1"]  # seed 0 and the base are reused
    assert again["done"]["evaluated"] == ["hybrid seed 1 xquad-r:test"]
    systems = json.loads((out / "report" / "report.json").read_text())["benchmarks"]["xquad-r:test"]["systems"]
    assert set(systems) == {"base", "hybrid"}  # only what the config asks for; mono/cross stay on disk
    assert systems["hybrid"]["seeds"] == [0, 1]
    assert json.loads((out / "experiment.json").read_text())["seeds"] == 2


def test_config_file_and_validation(tmp_path):
    f = tmp_path / "exp.yaml"
    f.write_text("preset: smoke\nstrategies: mono,hybrid\nalpha_sweep: [0.3]\nseeds: 2\n")
    cfg = ExperimentConfig.from_file(f)
    assert [s.name for s in cfg.systems()] == ["mono", "hybrid", "hybrid-a0.3"]
    assert cfg.seed_values() == [0, 1]
    f.write_text("preset: cpu\ntrain_overrides: {max_steps: 100, lr: 3.0e-5}\n")
    cfg = ExperimentConfig.from_file(f)
    assert cfg.train_overrides == {**PRESETS["cpu"].train_overrides, "max_steps": 100, "lr": 3e-5}
    with pytest.raises(ValueError, match="unknown strategies"):
        PRESETS["smoke"].replace(strategies=("nope",))
    with pytest.raises(ValueError, match="unknown experiment config key"):
        PRESETS["smoke"].replace(steps=3)
