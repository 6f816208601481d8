"""One progress system: plain heartbeat lines when the output is not a terminal, nothing from the HF libraries."""

from __future__ import annotations

import io
import os
import re

from polyret.progress import Heartbeat, progress_display, quiet_third_party


def test_heartbeat_prints_plain_lines_while_a_task_runs_and_when_it_ends():
    out = io.StringIO()
    with Heartbeat(every=0.0, stream=out, unit="texts") as beat:
        task = beat.add_task("encoding candidates", total=4)
        beat.advance(task, 1)
        beat.advance(task, 3)
        beat.advance(task, 0)  # a finished task says nothing more
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("encoding candidates: 1/4 texts (25%)") and "elapsed" in lines[0]
    assert lines[-1].startswith("encoding candidates: 4/4 texts (100%)") and "done in" in lines[-1]
    assert len(lines) == 2 and all("\r" not in line and "\x1b" not in line for line in lines)


def test_heartbeat_waits_its_interval_between_lines():
    out = io.StringIO()
    with Heartbeat(every=3600.0, stream=out) as beat:
        task = beat.add_task("training", total=10)
        for _ in range(9):
            beat.advance(task)  # an hour between lines: none until the task ends
        assert out.getvalue() == ""
        beat.advance(task)
    assert out.getvalue().startswith("training: 10/10 texts (100%)")


def test_without_a_terminal_the_display_is_the_heartbeat(monkeypatch):
    monkeypatch.setenv("POLYRET_HEARTBEAT", "0.1")
    with progress_display("encoding") as display:
        assert isinstance(display, Heartbeat) and display.every == 0.1  # pytest captures: not a terminal


def test_quiet_third_party_turns_off_the_hf_bars_and_notices(monkeypatch):
    for key in ("HF_HUB_DISABLE_PROGRESS_BARS", "TRANSFORMERS_VERBOSITY", "HF_DATASETS_DISABLE_PROGRESS_BARS", "TQDM_DISABLE"):
        monkeypatch.delenv(key, raising=False)
    quiet_third_party()
    assert os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] == "1" and os.environ["TRANSFORMERS_VERBOSITY"] == "error"
    assert os.environ["TQDM_DISABLE"] == "1"  # any library's tqdm bar, read by tqdm at import
    from transformers.utils import logging as hf_logging

    assert not hf_logging.is_progress_bar_enabled() and hf_logging.get_verbosity() == hf_logging.ERROR
    hf_logging.enable_progress_bar()
    hf_logging.set_verbosity_warning()


# what a third-party progress bar or notice looks like in a log: tqdm's "|   | 0/1 [" and "it/s]", the named
# bars of transformers and sentence-transformers, transformers' load report
_THIRD_PARTY = re.compile(r"Computing widget examples|Loading weights|Writing model shards|LOAD REPORT|\d+it/s\]|\|\s*\d+/\d+ \[")


def test_a_training_run_prints_only_polyrets_own_progress(tmp_path, tiny_model_dir):
    """``polyret train`` as a user runs it (its own process, output to a file): no tqdm bar of
    sentence-transformers' card ("Computing widget examples"), no transformers bar or load report; polyret's
    heartbeat line for the training is there."""
    import subprocess
    import sys
    from pathlib import Path

    import polyret
    from tests.helpers.lareqa import write_tiny_xquad

    write_tiny_xquad(tmp_path / "data")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TQDM_", "HF_HUB_DISABLE", "HF_DATASETS_DISABLE"))}
    env.pop("TRANSFORMERS_VERBOSITY", None)  # what quiet_third_party set in this test process: not a user's shell
    env.update(PYTHONPATH=str(Path(polyret.__file__).resolve().parents[1]), POLYRET_DATA_DIR=str(tmp_path / "data"),
               POLYRET_CACHE_DIR=str(tmp_path / "cache"), TOKENIZERS_PARALLELISM="false")  # fmt: skip
    args = ["train", "--model", tiny_model_dir, "--train", "xquad-r:train", "--strategy", "hybrid", "--recipe", "cpu",
            "--max-steps", "2", "--batch-size", "8", "--languages", "de,en", "--output", str(tmp_path / "run"),
            "--set", "dev_groups=0"]  # fmt: skip
    done = subprocess.run([sys.executable, "-m", "polyret.cli", *args], env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert (tmp_path / "run" / "model" / "README.md").is_file()  # the card (the widget scan's reason) was written
    noise = [line for line in re.split(r"[\r\n]", done.stderr + done.stdout) if _THIRD_PARTY.search(line)]
    assert noise == [], noise
    assert re.search(r"^training: 2/2 steps \(100%\)", done.stderr, re.M), done.stderr[-2000:]
