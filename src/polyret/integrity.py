"""Trust by content: sha256 checksums of cache files, and content digests of the sources they came from.

Every cache a later run reuses (pair stores, the trainer's pair index, the MIRACL corpus Arrow file,
trainer checkpoints) records the sha256 of each of its files when it is built, and is verified before
reuse; a file that fails is named in a warning and the cache is rebuilt, never read (the embedding store,
:mod:`polyret.encode.store`, checks its chunks the same way). Hashing streams the file in 4 MiB blocks:
bounded memory, one sequential read (~1.5 GB/s for sha256 on one core with SHA extensions; the
measured cost per cache kind is in bench/RESULTS.md, "Issue 21 (caches and inputs)").

A cache's key names its source by CONTENT, not by size and modification time (``cp -p``, ``rsync -t``
and ``tar`` keep both across an edit): :func:`source_digest` is the sha256 of the source file, remembered
per (device, inode, size, mtime, ctime) in the cache folder so an unchanged file is hashed once. ctime
cannot be set by any user tool (every write, copy, rename or ``touch`` gives a new one), so an edited
file is always hashed again.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Iterable, Mapping
from pathlib import Path

from polyret.paths import COMPLETE_MARKER, atomic_write_text, file_sha256  # file_sha256 re-exported: one definition

logger = logging.getLogger("polyret.integrity")

DIGESTS_DIR = "digests"  # <cache>/digests/: the remembered source digests

__all__ = ["file_sha256", "folder_checksums", "source_digest", "verify_checksums"]


def _listed(folder: Path) -> list[str]:
    """Every file under ``folder`` (relative posix paths), its completion marker and dot files left out."""
    return sorted(
        p.relative_to(folder).as_posix()
        for p in folder.rglob("*")
        if p.is_file() and p.name != COMPLETE_MARKER and not p.name.startswith(".")
    )


def folder_checksums(folder: str | os.PathLike, names: Iterable[str] | None = None) -> dict[str, str]:
    """``{relative path: sha256}`` of the files of ``folder`` (every file but the marker and dot files).

    Args:
        folder: the folder.
        names: only these files (relative paths).
    """
    folder = Path(folder)
    return {name: file_sha256(folder / name) for name in (_listed(folder) if names is None else names)}


def verify_checksums(folder: str | os.PathLike, recorded: Mapping[str, str] | None) -> str | None:
    """None when every file ``recorded`` lists is there with its sha256 and no other file appeared, else
    why not, naming the first file that fails (sizes are compared first, so a truncated file costs no read).

    Args:
        folder: the folder.
        recorded: ``{relative path: sha256}`` as :func:`folder_checksums` made it (None: not recorded).
    """
    folder = Path(folder)
    if not isinstance(recorded, Mapping) or not recorded:
        return f"{folder}: no content checksums recorded (built by an older polyret)"
    extra = sorted(set(_listed(folder)) - set(recorded))
    if extra:
        return f"{folder / extra[0]}: a file the build did not write"
    for name, checksum in recorded.items():
        path = folder / name
        try:
            actual = file_sha256(path)
        except OSError as exc:
            return f"{path}: unreadable ({exc.strerror or exc})"
        if actual != checksum:
            return f"{path}: content changed since it was written (sha256 {actual[:12]}…, recorded {str(checksum)[:12]}…)"
    return None


def _stat_token(path: Path) -> list[int]:
    st = path.stat()
    return [st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns]


def source_digest(path: str | os.PathLike, *, cache_dir: str | os.PathLike | None = None) -> str:
    """The sha256 of a source file's content, hashed once per version of the file (see the module doc).

    Args:
        path: the source file (a pair file, a corpus, an mMARCO file).
        cache_dir: the cache root where the digest is remembered (default ``polyret.paths.cache_dir()``).
    """
    from polyret.paths import cache_dir as default_cache_dir

    path = Path(path).resolve()
    token = _stat_token(path)
    memo = default_cache_dir(cache_dir) / DIGESTS_DIR / f"{hashlib.sha256(str(path).encode()).hexdigest()[:32]}.json"
    try:
        saved = json.loads(memo.read_text(encoding="utf-8"))
        if saved.get("path") == str(path) and saved.get("stat") == token and isinstance(saved.get("sha256"), str):
            return saved["sha256"]
    except (OSError, ValueError, AttributeError):
        pass
    digest = file_sha256(path)
    if _stat_token(path) == token:  # not written to while it was read: remember it
        try:
            atomic_write_text(memo, json.dumps({"path": str(path), "stat": token, "sha256": digest}))
        except OSError as exc:  # a read-only cache costs a re-hash next time, not correctness
            logger.debug("%s: cannot remember the digest (%s)", memo, exc)
    return digest
