"""Issue 21, further cases: one writer per output, whatever the spelling of the output and the state of its lock.

A second writer that names a locked output through a symlink, a ``..`` spelling or a relative path exits 2
naming the holder (a real second process holds the lock); a lock file with garbage content is named when
live and taken over when dead; a dead file lock (``mine``) is taken over; a lock path that is a folder is a
one-line error naming it.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

import polyret
from polyret.cli import app
from polyret.paths import LOCK_FILE, lock_path, output_lock

SRC = str(Path(polyret.__file__).resolve().parent.parent)
runner = CliRunner()

HOLDER = r"""
import fcntl, os, sys, time
from polyret.paths import output_lock
path, mode = sys.argv[1], sys.argv[2]
if mode == "garbage":  # a live holder whose lock file says nothing readable
    os.makedirs(path, exist_ok=True)
    fd = os.open(os.path.join(path, ".polyret.lock"), os.O_RDWR | os.O_CREAT, 0o666)
    fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    os.write(fd, b"\x00garbage{")
    print("held", flush=True)
    time.sleep(120)
with output_lock(path, "polyret holder-test", file=mode == "file"):
    print("held", flush=True)
    time.sleep(120)
"""


def _hold(path: Path, mode: str = "folder") -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": SRC}
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(path), mode], stdout=subprocess.PIPE, text=True, env=env)
    assert proc.stdout.readline().strip() == "held"
    return proc


@pytest.fixture()
def w(tmp_path, tiny_model_dir, monkeypatch):
    import polyret.models

    monkeypatch.setattr(polyret.models, "load", lambda *a, **k: pytest.fail("work started on a locked output"))
    rows = [
        {"id": f"g{g}", "lang": lang, "query": f"q {g} {lang}", "positive": f"p {g} {lang}"}
        for g in range(6)
        for lang in "de en".split()
    ]
    (tmp_path / "p.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (tmp_path / "out").mkdir()
    os.symlink(tmp_path / "out", tmp_path / "out-link")
    monkeypatch.chdir(tmp_path)
    return {"root": tmp_path, "model": tiny_model_dir}


def _cli(w, *args: str):
    return runner.invoke(app, list(args), env={"POLYRET_CACHE_DIR": str(w["root"] / "cache")})


def _evaluate(w, output: str):
    return _cli(w, "evaluate", "--model", w["model"], "--languages", "de,en", "--output", output)


@pytest.mark.parametrize(
    "spelling", ["out-link", "out/../out", "./out/", "$ABS"], ids=["symlink", "dotdot", "relative", "absolute"]
)
def test_a_second_writer_naming_the_locked_folder_otherwise_exits_2(w, spelling):
    holder = _hold(w["root"] / "out-link")  # the holder names it through the symlink, the second writer otherwise
    try:
        res = _evaluate(w, spelling.replace("$ABS", str(w["root"] / "out")))
    finally:
        holder.kill()
        holder.wait()
    message = " ".join(res.output.split())
    assert res.exit_code == 2 and f"pid {holder.pid}" in message and "polyret holder-test" in message, message


def test_a_second_mine_naming_the_locked_file_through_a_symlinked_folder_exits_2(w):
    holder = _hold(w["root"] / "out" / "m.jsonl", "file")
    try:
        res = _cli(w, "mine", "--model", w["model"], "--train", "p.jsonl", "--output", "out-link/m.jsonl")
    finally:
        holder.kill()
        holder.wait()
    assert res.exit_code == 2 and f"pid {holder.pid}" in " ".join(res.output.split()), res.output[-2000:]


def test_a_live_lock_with_unreadable_content_is_named(w):
    holder = _hold(w["root"] / "out", "garbage")
    try:
        res = _evaluate(w, "out")
    finally:
        holder.kill()
        holder.wait()
    message = " ".join(res.output.split())
    assert res.exit_code == 2 and "another process" in message and LOCK_FILE in message, message


@pytest.mark.parametrize("mode", ["garbage", "file"], ids=["garbage lock file", "dead mine's file lock"])
def test_a_dead_writers_lock_is_taken_over(w, mode):
    target = w["root"] / "out" / ("m.jsonl" if mode == "file" else "")
    holder = _hold(target, mode)
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    path = lock_path(target, file=mode == "file")
    assert path.exists()  # left behind by the killed holder
    with output_lock(target, "polyret test", file=mode == "file") as lock:
        assert json.loads(lock.read_text())["pid"] == os.getpid()
    assert not path.exists()


def test_a_lock_path_that_is_a_folder_is_one_line_naming_it(w):
    (w["root"] / "out" / LOCK_FILE).mkdir()
    res = _evaluate(w, "out")
    assert res.exit_code == 2, res.output[-2000:]
    lines = [line for line in res.output.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and LOCK_FILE in lines[0], res.output[-2000:]
