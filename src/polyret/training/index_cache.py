"""The trainer's integer index on disk: built once per set of training views, memory-mapped by every rank.

A :class:`~polyret.training.pairs_dataset.PairIndex` over pair stores is integer arrays (about 40 bytes per
pair) and its :class:`~polyret.training.conflicts.Conflicts` another ~20; building them needs ~125 bytes
per pair of temporaries (sorts, identity renumbering). Done in every rank, that is private memory times
the number of ranks (8 x 280M pairs x 150 B: ~340 GB on one node). :func:`cached_pair_index` builds them
once (local rank 0; the other ranks wait for its completion marker) into::

    <cache>/pairindex/<first source>-<fingerprint>/
        <array>.npy         the PairIndex arrays (PairIndex.ARRAYS), per source its store rows and group codes
        conflicts-<a>.npy   the Conflicts arrays (Conflicts.ARRAYS)
        meta.json           the index's scalars and the key (checked before reuse: the provenance)
        .complete.json      written last, with every file's sha256 (checked before reuse; a folder that
                            fails is removed with a warning naming the file, and built again)

and every rank maps the files read-only: the pages are shared through the page cache (RssFile, not private
memory) and a later run of the same views opens them in milliseconds. The fingerprint hashes, per source,
its name, its store folder (itself a fingerprint of the source file and options) and a digest of its
selected rows (languages, ``max_groups``, the dev hold-out), plus the ``negatives`` setting: any other
view builds another folder. Every training source is such a view (XQuAD-R and MLQA-R too), so every
index is cached.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from polyret.data.pairstore import PairSource, as_pair_source, build_once
from polyret.paths import cache_dir as default_cache_dir
from polyret.training.conflicts import Conflicts
from polyret.training.pairs_dataset import PairIndex

INDEX_DIR = "pairindex"
# bump when what PairIndex or Conflicts arrays hold changes: old folders are then not read
# (2: ``languages`` are those of the views' pairs, not of their stores)
INDEX_VERSION = 2
META = "meta.json"

__all__ = ["cached_pair_index", "index_folder"]


def _digest(rows: np.ndarray) -> str:
    """blake2b of the rows' bytes, read in place (no copy of the array)."""
    rows = np.ascontiguousarray(rows, dtype=np.int64)
    return hashlib.blake2b(memoryview(rows).cast("B"), digest_size=16).hexdigest()


def index_folder(sources: Sequence[PairSource], negatives, cache_dir: str | os.PathLike | None = None) -> Path:
    """Where the index of ``sources`` with ``negatives`` is kept (see the module docstring).

    Args:
        sources: on-disk views, in the trainer's order.
        negatives: the ``PairIndex`` ``negatives`` argument.
        cache_dir: the cache root (default ``polyret.paths.cache_dir()``).
    """
    return _folder_and_key(sources, negatives, cache_dir)[0]


def _folder_and_key(sources: Sequence[PairSource], negatives, cache_dir) -> tuple[Path, dict]:
    key = {
        "version": INDEX_VERSION,
        "negatives": negatives if negatives is None else int(negatives),
        "sources": [
            {"name": s.name, "store": s.store.folder.name, "rows": _digest(s.rows), "pairs": len(s.rows)} for s in sources
        ],  # fmt: skip
    }
    fp = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:20]
    slug = "".join(c if c.isalnum() or c in "._-" else "_" for c in Path(sources[0].name).name)[:40] or "index"
    return default_cache_dir(cache_dir) / INDEX_DIR / f"{slug}-{fp}", key


def _write(index: PairIndex, folder: Path, key: dict) -> None:
    arrays, scalars = index.saved_state()
    for name, array in arrays.items():
        np.save(folder / f"{name}.npy", np.ascontiguousarray(array))
    for name, array in Conflicts.of(index).saved_state().items():
        np.save(folder / f"conflicts-{name}.npy", np.ascontiguousarray(array))
    (folder / META).write_text(json.dumps({"version": INDEX_VERSION, **scalars, "key": key}), encoding="utf-8")


def _read(folder: Path, sources: Sequence[PairSource]) -> PairIndex:
    meta = json.loads((folder / META).read_text(encoding="utf-8"))
    load = lambda name: np.asarray(np.load(folder / f"{name}.npy", mmap_mode="r"))  # noqa: E731
    names = [*PairIndex.ARRAYS, *(f"part{i}_{k}" for i in range(len(sources)) for k in ("rows", "groups"))]
    index = PairIndex.restore(sources, {name: load(name) for name in names}, meta)
    Conflicts.restore(index, {name: load(f"conflicts-{name}") for name in Conflicts.ARRAYS})
    return index


def cached_pair_index(
    sources: Sequence, *, negatives: bool | int | None = None, cache_dir: str | os.PathLike | None = None
) -> PairIndex:
    """``PairIndex(sources, negatives=negatives)``, its arrays (and its Conflicts) built once and memory-mapped.

    Errors of the build (e.g. too few hard negatives) are the same ``DataError`` / ``ValueError`` as
    ``PairIndex`` raises.

    Args:
        sources: the training sources (:class:`~polyret.data.pairstore.PairSource` views; a PairGroups is
            written to its store first, as for ``PairIndex``).
        negatives: hard-negative columns (as for :class:`PairIndex`).
        cache_dir: the cache root (default ``polyret.paths.cache_dir()``).
    """
    if not sources:
        raise ValueError("PairIndex needs at least one source")
    names = [s.name for s in sources]
    if len(set(names)) != len(names):
        raise ValueError(f"source names must be unique, got {names}")
    sources = [as_pair_source(s, cache_dir=cache_dir) for s in sources]
    folder, key = _folder_and_key(sources, negatives, cache_dir)
    names = ", ".join(s.name for s in sources)
    build_once(folder, lambda tmp: _build(sources, negatives, tmp, key), name=folder.name,
               source=f"the training index of {names}", key=key)  # fmt: skip
    return _read(folder, sources)


# From this many pairs the index is built in a child process: its ~125 bytes per pair of sort and
# renumbering temporaries (plus the arrays before they are written) then never count in the trainer's
# own peak, which is the same on the first run of a new store as on every later run (issue 22, item 4:
# 396 vs 162 bytes per pair before). Below it, a child's start-up (~0.5 s) is not worth it.
CHILD_BUILD_MIN_PAIRS = 200_000


def _build_from_specs(specs: list[tuple[str, str, np.ndarray]], negatives, tmp: str, key: dict) -> None:
    """The child's side: reopen the stores (memory-mapped) and write the index into ``tmp``."""
    from polyret.data.pairstore import PairStore

    sources = [PairSource(name, PairStore(folder), rows) for name, folder, rows in specs]
    _write(PairIndex(sources, negatives=negatives), Path(tmp), key)


def _build(sources: Sequence[PairSource], negatives, tmp: Path, key: dict) -> None:
    if sum(len(s.rows) for s in sources) < CHILD_BUILD_MIN_PAIRS:
        _write(PairIndex(sources, negatives=negatives), tmp, key)
        return
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    specs = [(s.name, str(s.store.folder), np.asarray(s.rows)) for s in sources]
    # spawn, not fork: a forked trainer would share (and copy on write) the parent's whole heap
    with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn")) as pool:
        pool.submit(_build_from_specs, specs, negatives, str(tmp), key).result()  # re-raises the child's DataError
