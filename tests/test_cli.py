"""The CLI is a thin layer: check the commands run end to end and fail clearly."""

import json

import pytest
from typer.testing import CliRunner

from polyret.cli import app

runner = CliRunner()


def test_evaluate_command_writes_results(tiny_model_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("POLYRET_CACHE_DIR", str(tmp_path / "cache"))
    out = tmp_path / "out"
    result = runner.invoke(
        app,
        [
            "evaluate",
            "--model",
            tiny_model_dir,
            "--benchmark",
            "xquad-r:test",
            "--languages",
            "de,en",
            "--output",
            str(out),
            "--trec-run",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "multi" in result.output and "max rank dist" in result.output
    tables = [line for line in result.output.splitlines() if any(c in line for c in "│┃━─")]
    assert tables and all(len(line) <= 80 for line in tables), result.output  # tables fit 80 columns, stacked
    data = json.loads((out / "results.json").read_text())
    assert set(data["settings"]["cross"]["pairs"]) == {"de-en", "en-de"}
    assert (out / "run.npz").exists() and (out / "run.trec").stat().st_size > 0 and (out / "qrels.trec").stat().st_size > 0
    listed = json.loads((out / ".complete.json").read_text())["files"]
    assert {"run.trec", "qrels.trec"} <= set(listed)  # written before the completion marker
    assert (out / "heatmap_map.png").exists()


def test_evaluate_command_reports_bad_input_without_traceback(tmp_path):
    result = runner.invoke(app, ["evaluate", "--benchmark", "nope", "--output", str(tmp_path)])
    assert result.exit_code == 2
    assert "nope" in result.output and "Traceback" not in result.output


def test_train_command_trains_and_resumes(tiny_model_dir, tmp_path):
    out = tmp_path / "run"
    args = [
        "train",
        "--model",
        tiny_model_dir,
        "--train",
        "xquad-r:train",
        "--strategy",
        "hybrid",
        "--recipe",
        "cpu",
        "--max-steps",
        "2",
        "--batch-size",
        "8",
        "--output",
        str(out),
        "--languages",
        "de,en",
        "--set",
        "max_groups=32",
        "--set",
        "save_steps=1",
        "--set",
        "save_total_limit=3",
        "--set",
        "dev_groups=0",
    ]
    result = runner.invoke(app, args + ["--keep-checkpoints"])
    assert result.exit_code == 0, result.output
    info = json.loads((out / "model" / "polyret_train.json").read_text())
    assert info["config"]["strategy"] == "hybrid" and info["global_step"] == 2
    assert "hybrid" in (out / "model" / "README.md").read_text()
    # after a crash, --resume with only --output continues the saved run from its last checkpoint
    import shutil

    shutil.rmtree(out / "model")
    shutil.rmtree(out / "checkpoints" / "checkpoint-2")
    # (keep_checkpoints may change on resume: how the run keeps its files, not what it trains)
    result = runner.invoke(app, ["train", "--output", str(out), "--resume", "--set", "keep_checkpoints=false"])
    assert result.exit_code == 0, result.output
    info = json.loads((out / "model" / "polyret_train.json").read_text())
    assert info["resumed_from"] == "checkpoint-1" and info["global_step"] == 2
    assert info["config"]["languages"] == ["de", "en"] and info["config"]["model"] == tiny_model_dir
    # the checkpoints (optimizer states) are deleted once the final model is complete
    assert not (out / "checkpoints").exists()
    # resuming a finished run is a no-op; an option that differs from the saved one is refused, naming it
    result = runner.invoke(app, ["train", "--output", str(out), "--resume", "--recipe", "cpu", "--max-steps", "2"])
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["train", "--output", str(out), "--resume", "--batch-size", "4"])
    assert result.exit_code == 2 and "batch_size: 8 -> 4" in result.output, result.output
    result = runner.invoke(app, ["train", "--output", str(out), "--resume", "--max-steps", "3"])
    assert result.exit_code == 2 and "max_steps" in result.output, result.output


def test_train_command_rejects_bad_config(tmp_path):
    result = runner.invoke(app, ["train", "--strategy", "sideways", "--output", str(tmp_path / "x")])
    assert result.exit_code == 2
    assert "strategy" in result.output


def test_version_prints_the_package_version():
    import polyret

    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0, result.output
    assert result.output.strip() == f"polyret {polyret.__version__}"
    assert polyret.__version__.count(".") == 2


def test_benchmarks_command_lists_ids():
    result = runner.invoke(app, ["benchmarks"])
    assert result.exit_code == 0
    assert "xquad-r:test" in result.output and "miracl/de" in result.output


def test_experiment_command_applies_training_overrides(tiny_model_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("POLYRET_CACHE_DIR", str(tmp_path / "cache"))
    out = tmp_path / "exp"
    args = [
        "experiment",
        "--preset",
        "smoke",
        "--model",
        tiny_model_dir,
        "--output",
        str(out),
        "--strategies",
        "hybrid",
        "--set",
        "max_steps=3",
        "--set",
        "save_steps=3",
    ]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    info = json.loads((out / "models" / "hybrid" / "seed0" / "model" / "polyret_train.json").read_text())
    assert info["global_step"] == 3 and info["config"]["max_steps"] == 3
    assert info["config"]["batch_size"] == 8  # the rest of the preset's overrides stay
    assert (out / "report" / "report.md").exists()
    # the smoke preset keeps no trained weights, and says so
    assert "removed the weights of 1 trained model(s) once evaluated" in " ".join(result.output.split())
    assert not list((out / "models").rglob("*.safetensors"))


@pytest.mark.parametrize(
    "args, removed",
    [(["--preset", "smoke"], True), (["--preset", "smoke", "--keep-models"], False),
     (["--preset", "cpu"], False), (["--preset", "cpu", "--no-keep-models"], True)],
)  # fmt: skip
def test_experiment_keep_models_flag_and_preset_defaults(tmp_path, args, removed):
    result = runner.invoke(app, ["experiment", *args, "--output", str(tmp_path / "x"), "--dry-run"])
    assert result.exit_code == 0, result.output
    assert ("their weights are removed once each is evaluated" in result.output) is removed
    assert not (tmp_path / "x").exists()


def test_experiment_command_rejects_unknown_training_key(tmp_path):
    result = runner.invoke(app, ["experiment", "--preset", "smoke", "--output", str(tmp_path / "x"), "--set", "max_stepz=3"])
    assert result.exit_code == 2
    assert "max_stepz" in result.output and "Traceback" not in result.output
    assert not (tmp_path / "x").exists()


# ----------------------------------------------------------------------------- the one error path


def _err(result) -> str:
    return result.stderr if result.stderr_bytes is not None else result.output


@pytest.mark.parametrize(
    "key, hint",
    [
        ("alpha=0.9", "--alpha-sweep"),
        ("seed=7", "first_seed"),
        ("strategy=mono", "--strategies"),
        ("output_dir=/tmp/elsewhere", "--output"),
        ("resume=true", "resumes"),
        ("languages=de", "--languages"),
    ],
)
def test_experiment_refuses_train_overrides_it_sets_per_run(tmp_path, key, hint):
    out = tmp_path / "x"
    result = runner.invoke(
        app,
        ["experiment", "--preset", "smoke", "--strategies", "hybrid", "--output", str(out), "--set", key, "--set", "max_steps=3"],
    )
    assert result.exit_code == 2, result.output
    assert key.split("=")[0] in _err(result) and hint in _err(result)
    assert "Traceback" not in result.output and not out.exists()


def test_experiment_config_file_refuses_reserved_train_override(tmp_path):
    f = tmp_path / "exp.yaml"
    f.write_text(f"preset: smoke\noutput: {tmp_path / 'x'}\ntrain_overrides: {{seed: 7}}\n")
    result = runner.invoke(app, ["experiment", "--config", str(f)])
    assert result.exit_code == 2
    assert str(f) in _err(result) and "first_seed" in _err(result)
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize(
    "args, named",
    [
        (["--benchmark", "xquad-r:test", "--languages", "de,xx"], "xx"),
        (["--benchmark", "xquad-r:test", "--languages", "DE"], "write 'de'"),
        (["--benchmark", "xquad-r:test", "--languages", ","], "language list is empty"),
        (["--benchmark", "miracl/de", "--families", "cross"], "cross"),
        (["--benchmark", "xquad-r:test", "--families", "sideways"], "sideways"),
        (["--k", "0"], "--k"),
        (["--batch-size", "0"], "--batch-size"),
        (["--backend", "annoy"], "annoy"),
        (["--model", "./no/such/model"], "./no/such/model"),
        (["--model", "builtin:nope"], "builtin:nope"),
        (["--precision", "fp8"], "--precision: unknown 'fp8'"),
        (["--store-dtype", "int8"], "--store-dtype: unknown 'int8'"),
        (["--store-threshold", "-1"], "--store-threshold must be an integer >= 0"),
        (["--max-tokens", "0"], "--max-tokens must be an integer >= 1"),
        (["--devices", "cuda:0,gpu 1"], "--devices: 'gpu 1' is not a device name"),
        (["--benchmark", "miracl/sw", "--corpus", "no/such/corpus.jsonl"], "--corpus: no corpus file at no/such/corpus.jsonl"),
        (["--benchmark", "xquad-r:test", "--corpus", __file__], "--corpus is for MIRACL-format benchmarks"),
    ],
)
def test_evaluate_checks_every_option_before_loading_anything(tmp_path, monkeypatch, args, named):
    import polyret.data
    import polyret.models

    def forbidden(*a, **k):
        raise AssertionError("loaded before the options were checked")

    monkeypatch.setattr(polyret.models, "load", forbidden)
    monkeypatch.setattr(polyret.data, "load_benchmark", forbidden)
    result = runner.invoke(app, ["evaluate", *args, "--output", str(tmp_path / "out")])
    assert result.exit_code == 2, result.output
    assert _err(result).startswith("error: ") and named in _err(result)
    assert "Traceback" not in result.output and not (tmp_path / "out").exists()


def test_evaluate_refuses_an_unusable_output_before_loading(tmp_path, monkeypatch):
    import polyret.models

    monkeypatch.setattr(polyret.models, "load", lambda *a, **k: (_ for _ in ()).throw(AssertionError("loaded")))
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    result = runner.invoke(app, ["evaluate", "--output", str(blocker / "out")])
    assert result.exit_code == 2
    assert str(blocker) in _err(result) and "not a folder" in _err(result)


def test_a_bad_option_value_is_a_plain_exit_2(tmp_path):
    result = runner.invoke(app, ["evaluate", "--k", "abc"])
    assert result.exit_code == 2
    assert _err(result).startswith("error: ") and "--k" in _err(result) and "Traceback" not in result.output
    result = runner.invoke(app, ["nosuchcommand"])
    assert result.exit_code == 2 and "nosuchcommand" in _err(result)


def test_an_internal_error_exits_1_with_a_hint_and_debug_shows_the_traceback(monkeypatch):
    import polyret.data

    def boom():
        raise RuntimeError("boom [bold]x[/]")

    monkeypatch.setattr(polyret.data, "list_benchmarks", boom)
    result = runner.invoke(app, ["benchmarks"])
    assert result.exit_code == 1
    assert "RuntimeError: boom [bold]x[/]" in _err(result) and "--debug" in _err(result)
    assert "Traceback" not in result.output
    result = runner.invoke(app, ["--debug", "benchmarks"])
    assert result.exit_code == 1 and "Traceback" in _err(result)
    monkeypatch.setenv("POLYRET_DEBUG", "1")
    result = runner.invoke(app, ["benchmarks"])
    assert result.exit_code == 1 and "Traceback" in _err(result)


def test_debug_shows_the_traceback_of_a_user_error_too():
    result = runner.invoke(app, ["--debug", "evaluate", "--benchmark", "nope"])
    assert result.exit_code == 2
    assert "Traceback" in _err(result) and "error: unknown benchmark 'nope'" in _err(result)


def test_keyboard_interrupt_exits_130(monkeypatch):
    import polyret.data

    def interrupted():
        raise KeyboardInterrupt

    monkeypatch.setattr(polyret.data, "list_benchmarks", interrupted)
    result = runner.invoke(app, ["benchmarks"])
    assert result.exit_code == 130
    assert "interrupted" in _err(result) and "Traceback" not in result.output


def test_messages_and_data_are_printed_verbatim_not_as_markup(tmp_path):
    # a '[/' in a message used to raise MarkupError; '[bold]' used to vanish from the line shown
    f = tmp_path / "exp.yaml"
    f.write_text("preset: smoke\nbenchmarks: ['[bold]xquad-r[/bold]']\n")
    result = runner.invoke(app, ["experiment", "--config", str(f)])
    assert result.exit_code == 2, result.output
    assert "'[bold]xquad-r[/bold]'" in _err(result) and "MarkupError" not in result.output
    result = runner.invoke(app, ["evaluate", "--model", "./m[/x]", "--output", str(tmp_path / "o")])
    assert result.exit_code == 2 and "./m[/x]" in _err(result)


def test_results_table_shows_model_names_verbatim():
    from types import SimpleNamespace

    from rich.console import Console

    from polyret.cli import results_table

    res = SimpleNamespace(
        model="runs/[bold]odd[/] name",
        benchmark="xquad-r:test",
        measures=["map"],
        per_setting={"mono:de": {"map": 0.5}},
        macro={"mono": {"map": 0.5}},
        families=lambda: ["mono"],
    )
    console = Console(width=200, record=True)
    console.print(results_table(res))
    assert "runs/[bold]odd[/] name on xquad-r:test" in console.export_text()


def test_experiment_checks_the_model_and_sources_before_writing_anything(tmp_path):
    out = tmp_path / "x"
    result = runner.invoke(app, ["experiment", "--preset", "smoke", "--output", str(out), "--model", "./missing-model"])
    assert result.exit_code == 2 and "./missing-model" in _err(result)
    assert not out.exists()


def test_interrupted_train_says_resume(tmp_path, monkeypatch):
    import polyret.training

    def interrupted(config):
        raise KeyboardInterrupt

    monkeypatch.setattr(polyret.training, "train", interrupted)
    out = tmp_path / "run"
    result = runner.invoke(app, ["train", "--recipe", "cpu", "--output", str(out)])
    assert result.exit_code == 130
    assert f"polyret train --output {out} --resume" in result.output, result.output


def test_devices_this_machine_lacks_are_refused_before_the_model_loads(tmp_path, monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    for option in (["--devices", "cuda:0,cuda:1"], ["--device", "cuda"]):
        result = runner.invoke(app, ["evaluate", "--model", "./no-such-model", *option, "--output", str(tmp_path / "o")])
        assert result.exit_code == 2, result.output
        assert "no CUDA device" in result.output and option[0] in result.output
        assert len(result.output.strip().splitlines()) == 1


def test_evaluate_without_output_says_nothing_was_written(tiny_model_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("POLYRET_CACHE_DIR", str(tmp_path / "cache"))
    result = runner.invoke(app, ["evaluate", "--model", tiny_model_dir, "--languages", "de,en", "--families", "mono"])
    assert result.exit_code == 0, result.output
    assert "no --output: nothing was written" in result.output


def test_benchmarks_lists_languages_sizes_and_data_state(tmp_path):
    result = runner.invoke(app, ["benchmarks", "--data-dir", str(tmp_path)])  # an empty data root
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    row = next(line for line in lines if "xquad-r:test" in line)
    assert "6,171" in row and "6,330" in row and "download" in row
    assert "miracl/ar" in result.output and "2,061,414" in result.output
    assert all(len(line) <= 80 for line in lines)
