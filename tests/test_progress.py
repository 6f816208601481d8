"""One progress system: plain heartbeat lines when the output is not a terminal, nothing from the HF libraries."""

from __future__ import annotations

import io
import os

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
    for key in ("HF_HUB_DISABLE_PROGRESS_BARS", "TRANSFORMERS_VERBOSITY", "HF_DATASETS_DISABLE_PROGRESS_BARS"):
        monkeypatch.delenv(key, raising=False)
    quiet_third_party()
    assert os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] == "1" and os.environ["TRANSFORMERS_VERBOSITY"] == "error"
    from transformers.utils import logging as hf_logging

    assert not hf_logging.is_progress_bar_enabled() and hf_logging.get_verbosity() == hf_logging.ERROR
    hf_logging.enable_progress_bar()
    hf_logging.set_verbosity_warning()
