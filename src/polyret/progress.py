"""One progress system for every long step (encoding, training), on a terminal and in a log alike.

* On a terminal: rich progress bars (:func:`progress_display` returns a ``rich.progress.Progress``).
* Without one (a log file, CI, ``nohup``, SLURM): :class:`Heartbeat`, with the same ``add_task`` /
  ``advance`` / ``update`` calls, prints one plain line per task every ``POLYRET_HEARTBEAT`` seconds
  (default 30) and a last line when the task is done, so a ten-minute encoding is never silent.
* The trainer's own tqdm bars are replaced by :func:`train_progress_callback` (a ``transformers`` callback that
  drives the same display), and :func:`quiet_third_party` turns off the Hugging Face libraries' progress
  bars and notices (the "Loading weights" bar, the PAD/BOS/EOS alignment notice) and any other library's
  tqdm bar (sentence-transformers' "Computing widget examples") on a normal run (``polyret --debug`` keeps them).
"""

from __future__ import annotations

import os
import sys
import time
from contextlib import contextmanager
from typing import Any, TextIO

__all__ = ["Heartbeat", "heartbeat_seconds", "progress_display", "quiet_third_party", "train_progress_callback"]

HEARTBEAT_ENV = "POLYRET_HEARTBEAT"


def heartbeat_seconds() -> float:
    """Seconds between two heartbeat lines: ``POLYRET_HEARTBEAT`` (default 30; at least 0.1)."""
    try:
        return max(0.1, float(os.environ.get(HEARTBEAT_ENV, "30")))
    except ValueError:
        return 30.0


def quiet_third_party() -> None:
    """Turn off the Hugging Face libraries' progress bars and their warnings below ERROR (the "Loading
    weights" bar, the "Writing model shards" bar, the trainer's PAD/BOS/EOS notice) and every other
    library's tqdm bar (sentence-transformers' "Computing widget examples" while the trainer drafts the
    model card: ``TQDM_DISABLE``, read by tqdm >= 4.66 when it is imported): polyret reports progress
    itself, with rich or plain heartbeat lines, never tqdm. Environment defaults for libraries not yet
    imported (the command line calls this before any of them is), API calls for those that are."""
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("TQDM_DISABLE", "1")
    if "huggingface_hub" in sys.modules:
        from huggingface_hub.utils import disable_progress_bars

        disable_progress_bars()
    if "transformers" in sys.modules:
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()


def _clock(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


class Heartbeat:
    """Progress as plain lines, for output that is not a terminal: one line per task every ``every`` seconds
    while it advances, and one when it completes. The calls are those of ``rich.progress.Progress`` that
    polyret uses, so the callers do not know which one they drive.

    Args:
        every: seconds between two lines of one task (None: :func:`heartbeat_seconds`).
        stream: where the lines go (default: stderr, beside the log messages).
        unit: the unit named after the counts (``texts``, ``steps``).
    """

    def __init__(self, every: float | None = None, stream: TextIO | None = None, unit: str = "texts") -> None:
        self.every = heartbeat_seconds() if every is None else every
        self.stream = stream
        self.unit = unit
        self.tasks: dict[int, dict[str, Any]] = {}

    def __enter__(self) -> Heartbeat:
        return self

    def __exit__(self, *exc) -> None:
        for task_id, task in self.tasks.items():
            if not task["closed"] and exc[0] is None:
                self._line(task_id, final=True)

    def add_task(self, description: str, total: float | None = None, **_: Any) -> int:
        task_id = len(self.tasks)
        now = time.monotonic()
        self.tasks[task_id] = {"description": description, "total": total, "completed": 0, "started": now,
                               "last": now, "closed": False, "extra": ""}  # fmt: skip
        return task_id

    def update(self, task_id: int, *, total: float | None = None, completed: float | None = None,
               description: str | None = None, extra: str | None = None, **_: Any) -> None:  # fmt: skip
        task = self.tasks[task_id]
        if total is not None:
            task["total"] = total
        if completed is not None:
            task["completed"] = completed
        if description is not None:
            task["description"] = description
        if extra is not None:
            task["extra"] = extra
        self._maybe(task_id)

    def advance(self, task_id: int, advance: float = 1) -> None:
        self.tasks[task_id]["completed"] += advance
        self._maybe(task_id)

    def _maybe(self, task_id: int) -> None:
        task = self.tasks[task_id]
        if task["closed"]:
            return
        if task["total"] is not None and task["completed"] >= task["total"]:
            self._line(task_id, final=True)
        elif time.monotonic() - task["last"] >= self.every:
            self._line(task_id, final=False)

    def _line(self, task_id: int, *, final: bool) -> None:
        task = self.tasks[task_id]
        now = time.monotonic()
        task["last"] = now
        done, total = int(task["completed"]), task["total"]
        count = f"{done}/{int(total)}" if total else f"{done}"
        share = f" ({100 * done / total:.0f}%)" if total else ""
        elapsed = now - task["started"]
        tail = f"done in {_clock(elapsed)}" if final else f"{_clock(elapsed)} elapsed"
        if not final and total and done:
            tail += f", about {_clock(elapsed * (total - done) / done)} left"
        extra = f", {task['extra']}" if task["extra"] else ""
        print(f"{task['description']}: {count} {self.unit}{share}{extra}, {tail}", file=self.stream or sys.stderr, flush=True)
        if final:
            task["closed"] = True


def _on_terminal() -> bool:
    from rich.console import Console

    return Console(stderr=True).is_terminal


@contextmanager
def progress_display(label: str = "encoding", unit: str = "texts"):
    """A progress display for one step: rich bars on a terminal, :class:`Heartbeat` lines otherwise.

    Args:
        label: the verb shown before each task's description.
        unit: the unit of the counts.
    """
    if not _on_terminal():
        with Heartbeat(unit=unit) as beat:
            original = beat.add_task
            beat.add_task = lambda description, total=None, **kw: original(f"{label} {description}".strip(), total, **kw)
            yield beat
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    with Progress(
        TextColumn(f"[bold]{label} " + "{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn(unit + " {task.fields[extra]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        transient=False,
    ) as bar:
        original = bar.add_task
        bar.add_task = lambda description, total=None, **kw: original(description, total=total, extra=kw.pop("extra", ""), **kw)
        yield bar


def train_progress_callback():
    """A ``transformers.TrainerCallback`` showing the trainer's progress on polyret's display (instead of its
    tqdm bars and printed log dicts): optimizer steps done of the run's total and the last logged loss, on
    rank 0 only. (A factory: importing this module does not import transformers.)"""
    from transformers import TrainerCallback

    class TrainProgress(TrainerCallback):
        def __init__(self) -> None:
            self._display = None
            self._context = None
            self._task = None
            self._loss = ""

        def on_train_begin(self, args, state, control, **kwargs):
            if state.is_world_process_zero:
                self._context = progress_display("training", unit="steps")
                self._display = self._context.__enter__()
                self._task = self._display.add_task("", total=state.max_steps)
                if state.global_step:
                    self._display.update(self._task, completed=state.global_step)

        def on_step_end(self, args, state, control, **kwargs):
            if self._display is not None:
                self._display.update(self._task, completed=state.global_step, extra=self._loss)

        def on_log(self, args, state, control, logs=None, **kwargs):
            if self._display is not None and logs and "loss" in logs:
                self._loss = f"loss {float(logs['loss']):.4f}"

        def on_train_end(self, args, state, control, **kwargs):
            if self._context is not None:
                self._display.update(self._task, completed=state.global_step, extra=self._loss)
                self._context.__exit__(None, None, None)
                self._context = self._display = None

    return TrainProgress()
