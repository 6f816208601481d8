"""Issue 21, further cases: Ctrl-C (SIGINT) and SIGTERM at many points of short real runs.

A ``polyret`` command (run in this process with its own signal handlers, as the real command line installs
them; tests/faults/test_folder_faults.py sends real signals to real processes) gets the signal at a chosen
point: the n-th call of a function on its path signals the process itself, as a user's Ctrl-C landing at
that moment would. Each
must stop cleanly: exit 130 (SIGINT) / 143 (SIGTERM), one ``error:`` line, no temp file and no lock
left, no finished-looking output; and the rerun (``--resume`` for train) must end with what an
uninterrupted run gives.
"""

from __future__ import annotations

import importlib
import json
import os
import signal
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from polyret import interrupts
from polyret.cli import app
from polyret.evaluation.results import is_done
from polyret.paths import LOCK_FILE
from tests.helpers.lareqa import write_tiny_xquad
from tests.helpers.pairs import write_de_en_pairs

LANGS = "de,en"
runner = CliRunner()


def _polyret(root: Path, args: list[str], kill: tuple[str, int, str] | None = None, monkeypatch=None):
    """``polyret <args>`` in this process (the command's own signal handlers installed, as in a real run);
    with ``kill = (module:function, n, signal)`` the n-th call of that function signals this process first,
    as a Ctrl-C (SIGINT) or a scheduler's SIGTERM landing at that moment would."""
    if kill is not None:
        at, count, sig = kill
        module, attr = at.rsplit(":", 1)
        owner = importlib.import_module(module)
        original, calls = getattr(owner, attr), [0]

        def wrapped(*args, **kwargs):
            calls[0] += 1
            if calls[0] == count:
                os.kill(os.getpid(), getattr(signal, sig))  # the handler raises KeyboardInterrupt right here
                time.sleep(10)
                raise AssertionError("the signal was swallowed")
            return original(*args, **kwargs)

        monkeypatch.setattr(owner, attr, wrapped)
    try:
        return runner.invoke(app, args, env={"POLYRET_CACHE_DIR": str(root / "cache"), "POLYRET_DATA_DIR": str(root / "data")})
    finally:
        if kill is not None:
            monkeypatch.undo()
        signal.signal(signal.SIGTERM, signal.SIG_DFL)  # the command installed its handlers in this process
        signal.signal(signal.SIGINT, signal.default_int_handler)
        interrupts.reset()


@pytest.fixture(scope="module")
def w(tmp_path_factory, tiny_model_dir):
    root = tmp_path_factory.mktemp("interrupt-faults")
    write_tiny_xquad(root / "data")
    write_de_en_pairs(root / "p.jsonl", positive="{lang} passage city water {g}")
    return {"root": root, "model": tiny_model_dir}


def _args(w, verb: str, out: Path) -> list[str]:
    root, model = w["root"], w["model"]
    return {
        "evaluate": ["evaluate", "--model", model, "--languages", LANGS, "--trec-run", "--no-cache", "--output", str(out)],
        "train": ["train", "--model", model, "--train", str(root / "p.jsonl"), "--languages", LANGS, "--max-steps", "3",
                  "--batch-size", "4", "--set", "save_steps=1", "--output", str(out)],
        "mine": ["mine", "--model", model, "--train", str(root / "p.jsonl"), "--languages", LANGS, "--k", "1",
                 "--keep-short", "--no-cache", "--output", str(out / "mined.jsonl")],
    }[verb]  # fmt: skip


@pytest.fixture(scope="module")
def clean(w):
    """What an uninterrupted run of each verb writes (the reruns must end with the same)."""
    out = {}
    for verb in ("evaluate", "train", "mine"):
        folder = w["root"] / f"clean-{verb}"
        res = _polyret(w["root"], _args(w, verb, folder))
        assert res.exit_code == 0, res.output[-3000:]
        out[verb] = folder
    return out


def _result(verb: str, folder: Path):
    if verb == "evaluate":
        return json.loads((folder / "results.json").read_text())["settings"], (folder / "run.trec").read_bytes()
    if verb == "train":
        from safetensors.numpy import load_file

        return {k: v.tobytes() for k, v in load_file(str(folder / "model" / "model.safetensors")).items()}
    return (folder / "mined.jsonl").read_bytes()


POINTS = [
    ("evaluate", "polyret.encode.cache:encode_window", 1, "SIGINT", "while encoding"),
    ("evaluate", "polyret.evaluation.results:mark_complete", 1, "SIGTERM", "results written, marker not yet"),
    ("train", "polyret.training.checkpoints:_save_checkpoint_atomically", 2, "SIGINT", "at the second checkpoint"),
    ("train", "polyret.training.checkpoints:_rotate", 2, "SIGTERM", "checkpoint renamed, rotation not yet"),
    ("train", "polyret.training.trainer:write_final_model", 1, "SIGINT", "before the final model is written"),
    ("mine", "polyret.encode.cache:encode_window", 1, "SIGTERM", "while encoding"),
    ("mine", "polyret.training.mining:write_mined_jsonl", 1, "SIGINT", "before the mined file is written"),
]


@pytest.mark.parametrize("verb, at, count, sig, where", POINTS, ids=[f"{p[0]} {p[3]} {p[4]}" for p in POINTS])
def test_an_interrupt_stops_cleanly_and_the_rerun_recovers(w, clean, tmp_path, monkeypatch, verb, at, count, sig, where):
    out = tmp_path / "out"
    res = _polyret(w["root"], _args(w, verb, out), (at, count, sig), monkeypatch)
    assert res.exit_code == 128 + getattr(signal, sig), (res.exit_code, res.output[-3000:])
    last = res.output.strip().splitlines()[-1]
    assert last.startswith("error: ") and "Traceback" not in res.output and "swallowed" not in res.output, res.output[-2000:]
    assert ("terminated (SIGTERM)" if sig == "SIGTERM" else "interrupted") in last
    leftovers = [p for p in tmp_path.rglob("*") if p.name.endswith(".tmp") or p.name == LOCK_FILE or p.name.endswith(".lock")]
    assert not leftovers, leftovers
    if verb == "evaluate":
        assert not is_done(out)
    if verb == "train":
        assert not (out / "model").exists()
    if verb == "mine":
        assert not (out / "mined.jsonl").exists()
    args = _args(w, verb, out) + (["--resume"] if verb == "train" else [])
    again = _polyret(w["root"], args)
    assert again.exit_code == 0, again.output[-3000:]
    assert _result(verb, out) == _result(verb, clean[verb])


def test_an_interrupted_experiment_reruns_to_the_same_report(smoke_experiment, tmp_path, monkeypatch):
    """SIGTERM between a training and its evaluation (the second evaluate call), then a plain rerun: the
    report of the uninterrupted run (``smoke_experiment``)."""
    root, args, out = smoke_experiment["root"], smoke_experiment["args"], tmp_path / "exp"
    res = _polyret(root, [*args, "--output", str(out)], ("polyret.evaluation:evaluate", 2, "SIGTERM"), monkeypatch)
    assert res.exit_code == 143, res.output[-3000:]
    assert not (out / "report").exists() and not (out / LOCK_FILE).exists()
    again = _polyret(root, [*args, "--output", str(out)])
    assert again.exit_code == 0 and "trained 0, evaluated 1, reused 2" in " ".join(again.output.split()), again.output[-2000:]
    report = json.loads((out / "report" / "report.json").read_text())
    assert report == json.loads((smoke_experiment["exp"] / "report" / "report.json").read_text())
