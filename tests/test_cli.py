"""The CLI is a thin layer: check the commands run end to end and fail clearly."""

import json

from typer.testing import CliRunner

from polyret.cli import app

runner = CliRunner()


def test_evaluate_command_writes_results(tiny_model_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("POLYRET_CACHE_DIR", str(tmp_path / "cache"))
    out = tmp_path / "out"
    result = runner.invoke(app, ["evaluate", "--model", tiny_model_dir, "--benchmark", "xquad-r:test",
                                 "--languages", "de,en", "--output", str(out), "--trec-run"])
    assert result.exit_code == 0, result.output
    assert "multi" in result.output and "max rank distance" in result.output
    data = json.loads((out / "results.json").read_text())
    assert set(data["settings"]["cross"]["pairs"]) == {"de-en", "en-de"}
    assert (out / "run.npz").exists() and (out / "run.trec").stat().st_size > 0
    assert (out / "heatmap_map.png").exists()


def test_evaluate_command_reports_bad_input_without_traceback(tmp_path):
    result = runner.invoke(app, ["evaluate", "--benchmark", "nope", "--output", str(tmp_path)])
    assert result.exit_code == 2
    assert "nope" in result.output and "Traceback" not in result.output


def test_train_command_trains_and_resumes(tiny_model_dir, tmp_path):
    out = tmp_path / "run"
    args = ["train", "--model", tiny_model_dir, "--train", "xquad-r:train", "--strategy", "hybrid",
            "--recipe", "cpu", "--max-steps", "2", "--batch-size", "8", "--output", str(out),
            "--languages", "de,en", "--set", "max_groups=32", "--set", "save_steps=1", "--set", "save_total_limit=3", "--set", "dev_pairs=0"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    info = json.loads((out / "model" / "polyret_train.json").read_text())
    assert info["config"]["strategy"] == "hybrid" and info["global_step"] == 2
    assert "hybrid" in (out / "model" / "README.md").read_text()
    # the same command with --resume after a crash picks up the last checkpoint and ends at step 2
    import shutil

    shutil.rmtree(out / "model")
    shutil.rmtree(out / "checkpoints" / "checkpoint-2")
    result = runner.invoke(app, args + ["--resume"])
    assert result.exit_code == 0, result.output
    info = json.loads((out / "model" / "polyret_train.json").read_text())
    assert info["resumed_from"] == "checkpoint-1" and info["global_step"] == 2


def test_train_command_rejects_bad_config(tmp_path):
    result = runner.invoke(app, ["train", "--strategy", "sideways", "--output", str(tmp_path / "x")])
    assert result.exit_code == 2
    assert "strategy" in result.output


def test_benchmarks_command_lists_ids():
    result = runner.invoke(app, ["benchmarks"])
    assert result.exit_code == 0
    assert "xquad-r:test" in result.output and "miracl/de" in result.output


def test_experiment_command_applies_training_overrides(tiny_model_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("POLYRET_CACHE_DIR", str(tmp_path / "cache"))
    out = tmp_path / "exp"
    args = ["experiment", "--preset", "smoke", "--model", tiny_model_dir, "--output", str(out),
            "--strategies", "hybrid", "--set", "max_steps=3", "--set", "save_steps=3"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    info = json.loads((out / "models" / "hybrid" / "seed0" / "model" / "polyret_train.json").read_text())
    assert info["global_step"] == 3 and info["config"]["max_steps"] == 3
    assert info["config"]["batch_size"] == 8  # the rest of the preset's overrides stay
    assert (out / "report" / "report.md").exists()


def test_experiment_command_rejects_unknown_training_key(tmp_path):
    result = runner.invoke(app, ["experiment", "--preset", "smoke", "--output", str(tmp_path / "x"),
                                 "--set", "max_stepz=3"])
    assert result.exit_code == 2
    assert "max_stepz" in result.output and "Traceback" not in result.output
    assert not (tmp_path / "x").exists()
