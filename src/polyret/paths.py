"""Where polyret reads data and keeps caches.

The data root comes from an explicit argument, else ``POLYRET_DATA_DIR``, else ``../shared/data`` beside
the current directory when that exists (the workplace layout), else the user data dir. Caches (converted
models, embeddings, downloads) live under ``POLYRET_CACHE_DIR`` or the user cache dir.
"""

from __future__ import annotations

import os
import tempfile
from contextlib import contextmanager
from pathlib import Path

import platformdirs


def data_dir(explicit: str | os.PathLike | None = None) -> Path:
    if explicit:
        return Path(explicit).expanduser()
    env = os.environ.get("POLYRET_DATA_DIR")
    if env:
        return Path(env).expanduser()
    repo_root = Path(__file__).resolve().parents[2]  # a source checkout: <repo>/src/polyret/paths.py
    for root in (Path.cwd(), repo_root):
        beside = root.parent / "shared" / "data"
        if beside.is_dir():
            return beside
    return Path(platformdirs.user_data_dir("polyret")) / "data"


def cache_dir(explicit: str | os.PathLike | None = None) -> Path:
    if explicit:
        path = Path(explicit).expanduser()
    elif os.environ.get("POLYRET_CACHE_DIR"):
        path = Path(os.environ["POLYRET_CACHE_DIR"]).expanduser()
    else:
        path = Path(platformdirs.user_cache_dir("polyret"))
    path.mkdir(parents=True, exist_ok=True)
    return path


@contextmanager
def atomic_path(target: str | os.PathLike):
    """Yield a temporary path beside ``target``; rename it onto ``target`` only if the block succeeds."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, target)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def atomic_write_text(target: str | os.PathLike, text: str) -> None:
    with atomic_path(target) as tmp:
        tmp.write_text(text, encoding="utf-8")
