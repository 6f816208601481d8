"""Kill ``polyret experiment`` (SIGKILL, a real process) at several points, run the same command again,
and check the final report equals that of an uninterrupted run and the rerun redid only what was left.

The experiment is the smoke preset with the tiny test model, one strategy (hybrid), 2 training steps
and a synthetic 2-language XQuAD-R-shaped benchmark (24 articles), so a whole run takes seconds. The
kill is injected by a child script that wraps a polyret (or transformers) function and SIGKILLs its
own process at the Nth call of the chosen point (env ``POLYRET_TEST_KILL=<point>:<n>``).
"""

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

import polyret
from tests.helpers.lareqa import write_tiny_xquad

SRC = str(Path(polyret.__file__).resolve().parent.parent)

CHILD = r'''
"""polyret experiment (argv) in this process, SIGKILLing itself at the point POLYRET_TEST_KILL names."""
import importlib
import os
import signal
import sys

where, _, nth = os.environ.get("POLYRET_TEST_KILL", "").partition(":")
calls = {"n": 0}


def after(owner, name, point):
    original = getattr(owner, name)

    def wrapper(*args, **kwargs):
        out = original(*args, **kwargs)
        if point == where:
            calls["n"] += 1
            if calls["n"] == int(nth or 1):
                sys.stdout.flush()
                os.kill(os.getpid(), signal.SIGKILL)
        return out

    setattr(owner, name, wrapper)


if where:
    import polyret.report.files
    import polyret.training.checkpoints
    import polyret.training.trainer

    # inside an evaluation: texts encoded, none of its files written yet
    after(importlib.import_module("polyret.evaluation.pipeline"), "encode_benchmark", "encoded")
    # inside a training: a checkpoint saved (polyret's atomic save, which replaces the trainer's own),
    # the final model not yet
    after(polyret.training.checkpoints, "_save_checkpoint_atomically", "checkpoint")
    # a training finished (final model written), its evaluation not begun
    after(polyret.training.trainer, "train", "trained")
    # the report half written (report.json, not yet report.md)
    after(polyret.report.files, "atomic_write_text", "report_file")

from polyret.cli import main

sys.argv = ["polyret", *sys.argv[1:]]
try:
    main()
except SystemExit as done:  # skip the interpreter's slow teardown (torch threads): seconds per run
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(done.code if isinstance(done.code, int) else 1)
'''


@pytest.fixture(scope="module")
def world(tmp_path_factory, tiny_model_dir):
    """The child script, the data and one uninterrupted reference run, shared by every kill test."""
    root = tmp_path_factory.mktemp("experiment-faults")
    write_tiny_xquad(root / "data")
    (root / "child.py").write_text(CHILD)
    w = {"root": root, "model": tiny_model_dir}
    # the uninterrupted run in this process (no interpreter start-up): the same command, the same numbers
    from typer.testing import CliRunner

    from polyret.cli import app

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("POLYRET_CACHE_DIR", str(root / "reference-cache"))
        ref = CliRunner().invoke(app, _args(w, root / "reference"))
    assert ref.exit_code == 0, ref.output[-3000:]
    w["steps"] = _steps(ref.stdout)
    w["report"] = _report(root / "reference")
    return w


def _args(w: dict, out: Path) -> list[str]:
    return [
        "experiment",
        "--preset",
        "smoke",
        "--model",
        w["model"],
        "--strategies",
        "hybrid",
        "--data-dir",
        str(w["root"] / "data"),
        "--set",
        "max_steps=2",
        "--set",
        "save_steps=1",
        "--output",
        str(out),
    ]


def _run(w: dict, out: Path, kill: str | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("POLYRET_TEST_KILL", "POLYRET_DEBUG")}
    env.update(
        {
            "PYTHONPATH": SRC,
            "HF_HUB_OFFLINE": "1",
            "TRANSFORMERS_OFFLINE": "1",
            "POLYRET_CACHE_DIR": str(out.parent / f"{out.name}-cache"),
            "TOKENIZERS_PARALLELISM": "false",
        }
    )
    if kill:
        env["POLYRET_TEST_KILL"] = kill
    return subprocess.run(
        [sys.executable, str(w["root"] / "child.py"), *_args(w, out)], env=env, capture_output=True, text=True, timeout=300
    )


def _steps(stdout: str) -> list[str]:
    """What a run did, from its progress lines (">> evaluating base on ...", ">> training ..."), after the
    first one, which says the precision the run uses (">> precision: fp32 (auto: ...)")."""
    lines = [line[3:].strip() for line in stdout.splitlines() if line.startswith(">> ")]
    assert lines and lines[0].startswith("precision: fp32 "), lines[:1]
    return lines[1:]


def _report(out: Path) -> dict:
    return json.loads((out / "report" / "report.json").read_text(encoding="utf-8"))


BASE = "evaluating base on xquad-r:test"
TRAIN = "training hybrid seed 0"
RESUME = "training hybrid seed 0 (resuming)"
EVAL = "evaluating hybrid seed 0 on xquad-r:test"
REPORT = "writing the report"

CHAINS = {
    # killed after a training checkpoint, then while writing the report: resume, then only the report
    "training-then-report": [("checkpoint:1", [BASE, TRAIN]), ("report_file:1", [RESUME, EVAL, REPORT]), (None, [REPORT])],
    # killed inside the base evaluation, then between the training and its evaluation
    "base-eval-then-after-training": [("encoded:1", [BASE]), ("trained:1", [BASE, TRAIN]), (None, [EVAL, REPORT])],
    # killed inside the trained model's evaluation (the 2nd evaluation of the run)
    "trained-model-eval": [("encoded:2", [BASE, TRAIN, EVAL]), (None, [EVAL, REPORT])],
}


@pytest.mark.parametrize(
    "chain",
    [
        "training-then-report",
        pytest.param("base-eval-then-after-training", marks=pytest.mark.slow),
        pytest.param("trained-model-eval", marks=pytest.mark.slow),
    ],
)
def test_killed_experiment_reruns_to_the_same_report_redoing_only_what_was_left(world, tmp_path, chain):
    assert world["steps"] == [BASE, TRAIN, EVAL, REPORT]
    out = tmp_path / "exp"
    for kill, expected in CHAINS[chain]:
        proc = _run(world, out, kill)
        where = f"run with kill={kill}:\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"
        if kill is None:
            assert proc.returncode == 0, where
        else:
            assert proc.returncode == -signal.SIGKILL, where
        assert _steps(proc.stdout) == expected, where
    assert _report(out) == world["report"]
