"""Faults at the CLI boundary: every user error is one plain ``error: ...`` line on stderr and exit 2.

Real subprocesses (``python -m polyret.cli``) for the error path as users see it, and injected OS errors
(a full disk) in-process.
"""

import errno
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

import polyret
from polyret.cli import app

runner = CliRunner()
SRC = str(Path(polyret.__file__).resolve().parent.parent)


def _polyret(*args: str, cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    full_env = {k: v for k, v in os.environ.items() if k != "POLYRET_DEBUG"}
    full_env.update({"PYTHONPATH": SRC, "HF_HUB_OFFLINE": "1", "POLYRET_CACHE_DIR": str(cwd / "cache"), **(env or {})})
    return subprocess.run(
        [sys.executable, "-m", "polyret.cli", *args], cwd=cwd, env=full_env, capture_output=True, text=True, timeout=600
    )  # a hang guard, not a speed check


@pytest.mark.parametrize(
    "name, text, expected",
    [
        # a YAML error quoting a path with '[/' used to end in a rich MarkupError traceback
        ("odd[/dir].yaml", "preset: smoke\nseeds: [1, 2\n", "odd[/dir].yaml: cannot parse experiment config"),
        ("typo.yaml", "preset: smokee\n", "unknown preset 'smokee'"),  # was a KeyError traceback
        ("seeds.yaml", 'preset: smoke\nseeds: "two"\n', "seeds must be an integer, got 'two'"),  # was '<' not supported
        ("markup.yaml", "preset: smoke\nbenchmarks: ['[bold]xquad-r[/bold]']\n", "'[bold]xquad-r[/bold]'"),
    ],
)
def test_config_errors_are_one_plain_line_in_a_real_process(tmp_path, name, text, expected):
    (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
    (tmp_path / name).write_text(text)
    proc = _polyret("experiment", "--config", name, cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr and "Traceback" not in proc.stdout
    assert proc.stderr.startswith("error: ") and expected in proc.stderr
    assert not (tmp_path / "runs").exists()


def test_unusable_output_fails_before_any_work_in_a_real_process(tmp_path):
    (tmp_path / "blocker").write_text("a file, not a folder")
    proc = _polyret("evaluate", "--model", "builtin:me5-small", "--output", "blocker/out", cwd=tmp_path)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "blocker" in proc.stderr and "not a folder" in proc.stderr
    assert not (tmp_path / "cache").exists()  # nothing was built, loaded or encoded


def test_debug_flag_and_env_show_the_traceback_in_a_real_process(tmp_path):
    proc = _polyret("--debug", "evaluate", "--benchmark", "nope", cwd=tmp_path)
    assert proc.returncode == 2 and "Traceback" in proc.stderr and "error: unknown benchmark 'nope'" in proc.stderr
    proc = _polyret("evaluate", "--benchmark", "nope", cwd=tmp_path, env={"POLYRET_DEBUG": "1"})
    assert proc.returncode == 2 and "Traceback" in proc.stderr


def _disk_full_on(monkeypatch, name: str) -> None:
    """Every ``Path.write_text`` / ``write_bytes`` into a temp file for ``name`` fails with ENOSPC."""
    real_text, real_bytes = Path.write_text, Path.write_bytes

    def check(path):
        if path.name.startswith(f".{name}.") or path.name == name:
            raise OSError(errno.ENOSPC, "No space left on device")

    def write_text(self, *a, **k):
        check(self)
        return real_text(self, *a, **k)

    def write_bytes(self, *a, **k):
        check(self)
        return real_bytes(self, *a, **k)

    monkeypatch.setattr(Path, "write_text", write_text)
    monkeypatch.setattr(Path, "write_bytes", write_bytes)


def test_full_disk_writing_experiment_json_is_a_plain_error_naming_the_file(tmp_path, monkeypatch, tiny_model_dir):
    _disk_full_on(monkeypatch, "experiment.json")
    out = tmp_path / "exp"
    result = runner.invoke(app, ["experiment", "--preset", "smoke", "--model", tiny_model_dir, "--output", str(out)])
    assert result.exit_code == 2, result.output
    assert f"{out / 'experiment.json'}: No space left on device" in result.stderr
    assert "disk is full" in result.stderr and "Traceback" not in result.output
    assert list(out.iterdir()) == []  # neither experiment.json nor its temp file is left behind


def test_full_disk_writing_results_is_a_plain_error_and_leaves_no_results(tmp_path, monkeypatch, tiny_model_dir):
    import importlib

    evaluate_module = importlib.import_module("polyret.evaluation.pipeline")

    def random_embeddings(model, bench, **kwargs):  # the write is under test, not the encoder
        rng = np.random.default_rng(0)
        return (
            rng.standard_normal((len(bench.queries), 8)).astype(np.float32),
            rng.standard_normal((len(bench.candidates), 8)).astype(np.float32),
        )

    monkeypatch.setattr(evaluate_module, "encode_benchmark", random_embeddings)
    monkeypatch.setenv("POLYRET_CACHE_DIR", str(tmp_path / "cache"))
    _disk_full_on(monkeypatch, "results.json")
    out = tmp_path / "eval"
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
            "--families",
            "mono",
            "--output",
            str(out),
        ],
    )
    assert result.exit_code == 2, result.output
    assert f"{out / 'results.json'}: No space left on device" in result.stderr
    assert "Traceback" not in result.output
    assert not (out / "results.json").exists() and not list(out.glob(".results.json.*"))
