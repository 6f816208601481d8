"""Where polyret reads data and keeps caches.

The data root comes from an explicit argument, else ``POLYRET_DATA_DIR``, else ``../shared/data`` beside
the current directory when that exists (the workplace layout), else the user data dir. Caches (converted
models, embeddings, downloads) live under ``POLYRET_CACHE_DIR`` or the user cache dir.
"""

from __future__ import annotations

import json
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any

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


def check_writable(folder: str | os.PathLike, *, what: str = "output folder", error: type[Exception] = ValueError) -> None:
    """Make sure ``folder`` can be created (or is a folder) and written, before any work starts.

    Probes with a temporary file in the deepest existing ancestor, removed at once; creates nothing.

    Args:
        folder: an output folder, existing or not.
        what: how the message names it (e.g. ``"output_dir"``).
        error: the exception class raised (a ``ValueError`` subclass such as ``ConfigError``).

    Raises:
        ``error`` naming the folder and what is wrong with it.
    """
    folder = Path(folder).expanduser()
    probe = folder
    while not probe.exists() and probe.parent != probe:
        probe = probe.parent
    if not probe.is_dir():
        raise error(f"{what} {folder} cannot be used: {probe} exists and is not a folder")
    try:
        fd, tmp = tempfile.mkstemp(prefix=".polyret-write-check.", dir=probe)
        os.close(fd)
        os.unlink(tmp)
    except OSError as exc:
        raise error(f"{what} {folder} is not writable ({probe}: {exc.strerror or exc})") from None


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
        # mkstemp makes the file 0600; give it the mode a plain open() would (0666 minus the umask), so
        # other users of a shared results folder can read what polyret wrote
        os.chmod(tmp_path, 0o666 & ~_umask())
        os.replace(tmp_path, target)
    except OSError as exc:  # e.g. ENOSPC from a write: name the file being written, not the temp name
        if exc.errno is not None and (exc.filename is None or exc.filename in (tmp, str(tmp_path))):
            raise OSError(exc.errno, exc.strerror or str(exc), str(target)) from exc
        raise
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def atomic_write_text(target: str | os.PathLike, text: str) -> None:
    with atomic_path(target) as tmp:
        tmp.write_text(text, encoding="utf-8")


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def share_mode(folder: str | os.PathLike) -> None:
    """Give every file and folder under ``folder`` the mode a plain ``open``/``mkdir`` would (the umask's).

    Libraries that write through temp files (transformers' safetensors weights) leave them 0600; call this
    on a staging folder before renaming it into place so a shared results or model folder stays readable.
    """
    mask = _umask()
    root = Path(folder)
    for path in [root, *root.rglob("*")]:
        if path.is_symlink():
            continue
        os.chmod(path, (0o777 if path.is_dir() else 0o666) & ~mask)


# ------------------------------------------------------------------------------ completion markers
COMPLETE_MARKER = ".complete.json"


def mark_complete(folder: str | os.PathLike, **info: Any) -> Path:
    """Write ``folder``'s completion marker LAST, after every file of the step is in place.

    The marker lists every file under ``folder`` with its size, so :func:`is_complete` also notices a file
    that went missing or was truncated afterwards. ``info`` is stored beside the listing.
    """
    folder = Path(folder)
    files = {
        str(p.relative_to(folder)): p.stat().st_size
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.name != COMPLETE_MARKER and not p.name.startswith(".")
    }
    marker = folder / COMPLETE_MARKER
    atomic_write_text(marker, json.dumps({"files": files, **info}, indent=2, ensure_ascii=False))
    return marker


def is_complete(folder: str | os.PathLike) -> bool:
    """True iff ``folder`` has a completion marker and every file it lists is there with its recorded size."""
    marker = Path(folder) / COMPLETE_MARKER
    try:
        files = json.loads(marker.read_text(encoding="utf-8"))["files"]
        return all((Path(folder) / name).stat().st_size == size for name, size in files.items())
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return False


def clear_complete(folder: str | os.PathLike) -> None:
    """Remove the marker first, before a step rewrites ``folder``: a crash mid-way then reads as unfinished."""
    try:  # noqa: SIM105
        (Path(folder) / COMPLETE_MARKER).unlink()
    except FileNotFoundError:
        pass


def set_aside(path: str | os.PathLike, suffix: str = ".corrupt") -> str | None:
    """Rename ``path`` to ``<path><suffix>`` so no later run reads it again.

    Args:
        path: the file that failed its checks.
        suffix: appended to its name.

    Returns:
        None when it was moved, else why it could not be (the caller must then say so loudly).
    """
    path = Path(path)
    try:
        os.replace(path, path.with_name(path.name + suffix))
    except OSError as err:
        return f"could not be moved aside ({err})"
    return None
