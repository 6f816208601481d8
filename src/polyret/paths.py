"""Where polyret reads data and keeps caches.

The data root comes from an explicit argument, else ``POLYRET_DATA_DIR``, else ``../shared/data`` beside
the current directory when that exists (the workplace layout), else the user data dir. Caches (converted
models, embeddings, downloads) live under ``POLYRET_CACHE_DIR`` or the user cache dir.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import shutil
import socket
import tempfile
import time
import zlib
from collections.abc import Iterable
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import platformdirs

from polyret.errors import ConfigError, PolyretError

logger = logging.getLogger(__name__)


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
        path, named = Path(explicit).expanduser(), "the cache folder"
    elif os.environ.get("POLYRET_CACHE_DIR"):
        path, named = Path(os.environ["POLYRET_CACHE_DIR"]).expanduser(), "POLYRET_CACHE_DIR"
    else:
        path, named = Path(platformdirs.user_cache_dir("polyret")), "the user cache folder"
    try:
        path.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):  # the path (or a parent) is a file
        raise ValueError(f"{named} {path} is not a folder (a file is in the way); point it at a folder") from None
    except OSError as exc:
        raise ValueError(f"{named} {path} cannot be created: {exc.strerror or exc}") from None
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
    # the writer's pid and host in the name: a later run can prove its writer dead (sweep_dead_temps)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.{_owner_tag()}.", suffix=".tmp", dir=target.parent)
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
    """Write ``text`` as UTF-8 to ``target`` atomically (:func:`atomic_path`).

    A path decoded under a non-UTF-8 locale (``LC_ALL=C``) holds its non-ASCII bytes as surrogate
    escapes; they are written back as those very bytes (``surrogateescape``), not refused.
    """
    with atomic_path(target) as tmp:
        tmp.write_text(text, encoding="utf-8", errors="surrogateescape")


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


def file_sha256(path: str | os.PathLike) -> str:
    """The sha256 hex digest of a file's bytes, read in 1 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _inside(folder: Path, path: str | os.PathLike) -> Path:
    """``path`` relative to ``folder``: an absolute path, or one relative to the working directory that lies
    inside ``folder`` (``runs/x/a.png`` for folder ``runs/x``), or a name relative to ``folder`` itself."""
    base = folder.resolve()
    p = Path(path)
    for candidate in [p] if p.is_absolute() else [Path.cwd() / p, base / p]:
        try:
            return candidate.resolve().relative_to(base)
        except ValueError:
            continue
    raise ValueError(f"{path}: not inside {folder}")


def mark_complete(folder: str | os.PathLike, *, files: Iterable[str | os.PathLike] | None = None, **info: Any) -> Path:
    """Write ``folder``'s completion marker LAST, after every file of the step is in place.

    The marker lists every file with its size and sha256, so :func:`is_complete` notices a file that
    went missing, was truncated or was edited afterwards (even to the same size). ``info`` (the
    provenance: what produced the folder) is stored beside the listing.

    Args:
        folder: the finished folder.
        files: the files this step wrote (paths inside ``folder``); None: every file under it. Hidden
            files (a lock, a temp file) are never listed.
        info: JSON fields stored in the marker (``producer``, ``model_fingerprint``, ``config``...).
    """
    folder = Path(folder)
    if files is None:
        paths = sorted(p for p in folder.rglob("*") if p.is_file())
    else:
        paths = sorted({folder / _inside(folder, f) for f in files})
    listing = {
        p.relative_to(folder).as_posix(): {"size": p.stat().st_size, "sha256": file_sha256(p)}
        for p in paths
        if p.name != COMPLETE_MARKER and not any(part.startswith(".") for part in p.relative_to(folder).parts)
    }
    marker = folder / COMPLETE_MARKER
    atomic_write_text(marker, json.dumps({"files": listing, **info}, indent=2, ensure_ascii=False))
    return marker


def read_marker(folder: str | os.PathLike) -> dict[str, Any] | None:
    """``folder``'s completion marker as a dict, or None when there is none or it is unreadable."""
    try:
        data = json.loads((Path(folder) / COMPLETE_MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and isinstance(data.get("files"), dict) else None


def incomplete_reason(folder: str | os.PathLike, *, content: bool = True) -> str | None:
    """Why ``folder`` is not a finished step (None: it is): no marker, or a listed file that is missing,
    of another size, or (``content``) of other bytes than its recorded sha256.

    A marker of an older polyret (sizes only, no checksums) is checked by size, so finished work of an
    earlier version is continued, not redone; everything written now carries checksums.

    Args:
        folder: the folder to check.
        content: also compare every file's sha256 (False: sizes only, for a cheap wait loop).
    """
    folder = Path(folder)
    marker = read_marker(folder)
    if marker is None:
        return f"{folder}: no valid completion marker ({COMPLETE_MARKER})"
    for name, entry in marker["files"].items():
        path = folder / name
        size = entry.get("size") if isinstance(entry, dict) else entry
        try:
            actual = path.stat().st_size
        except OSError:
            return f"{path}: listed in {COMPLETE_MARKER} but missing"
        if actual != size:
            return f"{path}: {actual} bytes, its completion marker says {size}"
        if content and isinstance(entry, dict):  # an older polyret's entry is a bare size: checked by size
            digest = entry.get("sha256")
            if not isinstance(digest, str):
                return f"{folder / COMPLETE_MARKER}: no checksum for {name}"
            try:
                if file_sha256(path) != digest:
                    return f"{path}: its content changed since it was written (sha256 differs from {COMPLETE_MARKER})"
            except OSError as exc:
                return f"{path}: unreadable ({exc.strerror or exc})"
    return None


def is_complete(folder: str | os.PathLike, *, content: bool = True) -> bool:
    """True iff ``folder`` has a completion marker and every file it lists is there with its recorded
    size and (``content``) sha256. See :func:`incomplete_reason`."""
    try:
        return incomplete_reason(folder, content=content) is None
    except (TypeError, AttributeError, ValueError):
        return False


def clear_complete(folder: str | os.PathLike) -> None:
    """Remove the marker first, before a step rewrites ``folder``: a crash mid-way then reads as unfinished."""
    try:  # noqa: SIM105
        (Path(folder) / COMPLETE_MARKER).unlink()
    except FileNotFoundError:
        pass


# ------------------------------------------------------------------------------ ownership
class OutputConflict(ConfigError):
    """An output folder holds another producer's finished work (or is a place no output may go)."""


def _describe(producer: dict[str, Any] | None) -> str:
    if not producer:
        return "an unknown producer"
    return ", ".join(f"{k} {v}" for k, v in producer.items())


def claim_output(folder: str | os.PathLike, producer: dict[str, Any], *, overwrite: bool = False) -> None:
    """Make ``folder`` this producer's before anything is written into it (call it holding its lock).

    A folder with the completion marker of another producer (another kind of step, another model or
    benchmark) is refused, naming both, unless ``overwrite``: then it is emptied first (its lock file
    kept). A folder of the same producer, an unfinished one or a new one is left as is.

    Args:
        folder: the output folder.
        producer: what writes it, e.g. ``{"kind": "evaluation", "model": ..., "benchmark": ...}``.
        overwrite: empty another producer's finished folder instead of refusing.

    Raises:
        OutputConflict: another producer's finished folder and no ``overwrite``.
    """
    folder = Path(folder)
    marker = read_marker(folder)
    if marker is None:
        return
    theirs = marker.get("producer")
    if theirs is None:  # an older polyret's marker: derive what it can say
        theirs = {k: marker[k] for k in ("kind", "model", "benchmark") if k in marker} or None
    if theirs == producer:
        return
    if not overwrite:
        raise OutputConflict(
            f"{folder} holds the finished output of {_describe(theirs)}; this run is {_describe(producer)}: "
            "use another output folder, or --overwrite to empty it first"
        )
    logger.warning("--overwrite: emptying %s (it held the output of %s)", folder, _describe(theirs))
    empty_folder(folder)


def empty_folder(folder: str | os.PathLike) -> None:
    """Remove everything inside ``folder`` except its lock file; the completion marker goes first."""
    folder = Path(folder)
    clear_complete(folder)
    for child in folder.iterdir():
        if child.name == LOCK_FILE:
            continue
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child)
        else:
            child.unlink()


def refuse_output_over_inputs(
    output: str | os.PathLike, inputs: Iterable[str | os.PathLike | None] = (), *, what: str = "output"
) -> None:
    """Refuse an output that is the filesystem root, the home folder, one of ``inputs`` or a folder above one.

    Paths are compared resolved (symlinks followed), so ``./a`` and ``/abs/a`` are the same place.

    Args:
        output: the file or folder a verb will write.
        inputs: files or folders it reads (None entries and specs that are not paths are skipped).
        what: how the message names the output (``--output``, ``output``, ``output_dir``).

    Raises:
        OutputConflict naming the output and the input.
    """
    out = Path(output).expanduser().resolve()
    if out == Path(out.anchor):
        raise OutputConflict(f"{what} {output}: the filesystem root cannot be an output folder")
    if out == Path.home().resolve():
        raise OutputConflict(f"{what} {output}: the home folder cannot be an output folder; name a folder inside it")
    for item in inputs:
        if item is None or str(item) == "":
            continue
        src = Path(item).expanduser()
        if not src.exists():
            continue
        src = src.resolve()
        if src == out:
            raise OutputConflict(f"{what} {output} is the input {item}: polyret never writes over its input; write elsewhere")
        if out in src.parents:
            raise OutputConflict(f"{what} {output} holds the input {item}: polyret writes into that folder; write elsewhere")


# ------------------------------------------------------------------------------ one writer per output
LOCK_FILE = ".polyret.lock"


class FolderBusy(PolyretError):
    """Another process holds the lock of the output this run would write."""


_held: dict[str, list[Any]] = {}  # lock path -> [fd, depth]: a process may nest the same lock


def _owner_tag() -> str:
    """``<pid>-<host hash>``: who writes a temp file, in its name."""
    return f"{os.getpid()}-{zlib.crc32(socket.gethostname().encode()):08x}"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    except OSError:
        return True
    return True


def lock_path(output: str | os.PathLike, *, file: bool = False) -> Path:
    """The lock file of an output: ``<folder>/.polyret.lock``, or ``.<name>.lock`` beside an output file."""
    output = Path(output).expanduser()
    return output.parent / f".{output.name}.lock" if file else output / LOCK_FILE


@contextmanager
def output_lock(output: str | os.PathLike, verb: str, *, file: bool = False):
    """Hold the one-writer lock of ``output`` (a folder, or with ``file`` a single output file).

    A POSIX lock (``fcntl.lockf``) on a lock file that records the holder's pid, host, verb and start
    time: the kernel releases it when the holder dies (also by SIGKILL), so the stale lock of a dead
    process is taken over by the next run. On entry, temp files that dead writers of this host left in
    the output are removed (:func:`sweep_dead_temps`). Re-entrant within one process.

    Args:
        output: the output folder (created) or file.
        verb: the command that writes it, for the message a second writer gets (``polyret evaluate``).
        file: ``output`` is a file: the lock file sits beside it.

    Raises:
        FolderBusy: another live process holds it; the message names the holder.
    """
    path = lock_path(output, file=file)
    path.parent.mkdir(parents=True, exist_ok=True)
    key = os.path.realpath(path)
    if key in _held:
        _held[key][1] += 1
        try:
            yield path
        finally:
            _held[key][1] -= 1
        return
    fd = _acquire(path, verb, output)
    _held[key] = [fd, 1]
    try:
        sweep_dead_temps(path.parent, recursive=not file)
        yield path
    finally:
        del _held[key]
        try:
            if os.fstat(fd).st_ino == os.stat(path).st_ino:
                os.unlink(path)  # while still holding it: the next writer makes a new one
        except OSError:
            pass
        os.close(fd)  # releases the lock


def _acquire(path: Path, verb: str, output) -> int:
    import fcntl

    for _ in range(50):
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            holder = _read_holder(path)
            raise FolderBusy(
                f"{output} is being written by {holder}; wait for it to finish or write elsewhere (lock: {path})"
            ) from None
        try:
            same = os.stat(path).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same = False
        if not same:  # the previous holder removed it between our open and our lock: try the new file
            os.close(fd)
            continue
        previous = _read_holder_data(fd)
        if previous and previous.get("pid") not in (None, os.getpid()):
            logger.info("%s: took over the stale lock of %s (no longer running)", output, _holder_text(previous))
        info = {"pid": os.getpid(), "host": socket.gethostname(), "verb": verb, "since": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(info).encode(), 0)
        return fd
    raise FolderBusy(f"{output}: could not take its lock {path} (it keeps being replaced)")


def _read_holder_data(fd: int) -> dict[str, Any] | None:
    try:
        data = json.loads(os.pread(fd, 4096, 0).decode("utf-8") or "null")
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _holder_text(data: dict[str, Any] | None) -> str:
    if not data:
        return "another process"
    return f"{data.get('verb', 'polyret')} (pid {data.get('pid')} on {data.get('host')}, since {data.get('since')})"


def _read_holder(path: Path) -> str:
    # read by path, never through an open descriptor of ours: closing it would drop a POSIX lock we hold
    try:
        data = json.loads(path.read_text(encoding="utf-8") or "null")
    except (OSError, ValueError):
        data = None
    return _holder_text(data if isinstance(data, dict) else None)


_TEMP = re.compile(r"^\..+\.(?P<pid>\d+)-(?P<host>[0-9a-f]{8})\.[A-Za-z0-9_]+\.tmp$")


def sweep_dead_temps(folder: str | os.PathLike, *, recursive: bool = True) -> int:
    """Remove the temp files (:func:`atomic_path`'s ``.<name>.<pid>-<host>.<random>.tmp``) that writers
    on this host left when they died: the pid in the name is no longer running. Returns how many.

    Args:
        folder: where to look.
        recursive: also in its subfolders.
    """
    me = f"{zlib.crc32(socket.gethostname().encode()):08x}"
    removed = 0
    folder = Path(folder)
    if not folder.is_dir():
        return 0
    walker = os.walk(folder) if recursive else [(str(folder), [], [p.name for p in folder.iterdir()])]
    for root, _dirs, names in walker:
        for name in names:
            m = _TEMP.match(name)
            if m and m["host"] == me and int(m["pid"]) != os.getpid() and not _pid_alive(int(m["pid"])):
                try:
                    os.unlink(os.path.join(root, name))
                    removed += 1
                except OSError:
                    pass
    if removed:
        logger.info("%s: removed %d temp file(s) of writers no longer running", folder, removed)
    return removed


def set_aside(path: str | os.PathLike, suffix: str = ".corrupt") -> str | None:
    """Rename ``path`` to ``<path><suffix>`` so no later run reads it again.

    Args:
        path: the file that failed its checks.
        suffix: appended to its name.

    A stamped suffix (``.corrupt-<time>``) keeps only the newest such copy of the file: older ones are
    removed, so repeated corruption never fills the disk with copies.

    Returns:
        None when it was moved, else why it could not be (the caller must then say so loudly).
    """
    path = Path(path)
    kept = path.with_name(path.name + suffix)
    try:
        os.replace(path, kept)
    except OSError as err:
        return f"could not be moved aside ({err})"
    if "-" in suffix:  # a stamped copy (``.corrupt-<time>``): keep only the newest one of this file
        family = path.name + suffix.rsplit("-", 1)[0] + "-"
        for old in path.parent.glob(glob_escape(family) + "*"):
            if old != kept:
                with contextlib.suppress(OSError):
                    shutil.rmtree(old) if old.is_dir() and not old.is_symlink() else old.unlink()
    return None


def glob_escape(text: str) -> str:
    """``text`` with glob's special characters escaped (``glob.escape``)."""
    import glob

    return glob.escape(text)
