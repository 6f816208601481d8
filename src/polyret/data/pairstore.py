"""Training pairs on disk: one memory-mapped Arrow table per source plus integer code arrays, shared by all ranks.

A *pair store* is a cache folder built once per training source (a JSONL or TSV pair file, an mMARCO
copy, one side of XQuAD-R / MLQA-R, a :class:`~polyret.data.records.PairGroups` handed to the API) and
then memory-mapped by every process that trains on it; it is the trainer's one kind of source::

    <cache>/pairs/<name>-<fingerprint>/
        texts-00000.arrow  one row per pair (datasets' Arrow stream format, opened with Dataset.from_file;
        texts-00001.arrow  one file per build worker, in row order): group, lang, query, positive,
        ...                negatives (list), positive_id, negative_ids (list), positive_hash,
                           negative_hashes (text fallbacks of missing ids), line
        groups.arrow       the group ids, in group-code order (first seen in the file; mMARCO: triples order)
        group.npy          int32/int64 group code per row
        lang.npy           int8 language code per row (``meta.json`` ``languages``, sorted)
        pos.npy            int64 passage-identity code of the positive per row
        neg_ptr.npy        int64 (rows + 1) offsets into neg.npy (CSR: row i's negatives are neg[ptr[i]:ptr[i+1]])
        neg.npy            int64 passage-identity code per hard negative
        line.npy           int64 source line per row (messages)
        meta.json          version, name, source, languages, counts, the fingerprint's key
        .complete.json     written last (``polyret.paths.mark_complete``): a folder without it is never read;
                           it records every file's sha256, checked before each reuse (a failing store is
                           removed with a warning naming the file, and built again)

The fingerprint hashes what the content depends on: a pair file's path, size and content (sha256,
:func:`file_key`), a LAReQA set's files (the same) and loader options, a PairGroups' pairs (:func:`groups_key`),
so an edited file or other options build a new store. The build streams (a chunk of rows at a time; no Python object per
pair survives a chunk; a big uncompressed file is parsed by several processes, one byte range each)
into a temporary sibling folder that is renamed into place once complete; on a
multi-process run the local rank 0 builds and every rank waits at :func:`polyret.distributed.barrier`,
then maps the same files (the OS page cache holds one copy per machine).

**Passage identity codes** encode :func:`polyret.data.records.passage_identity` (the one definition) as
integers: a positive or negative with an id gets the exact code of that id (ids are shared across
languages); one without an id gets a 64-bit BLAKE2 hash of its ``(language, text)`` (:func:`text_hash`),
in a range of its own. A hash collision can only make two passages look the same, which keeps them out
of one batch: conservative, never a false negative.

:class:`PairSource` is a view (language restriction, ``max_groups`` subsample, held-out dev groups) over a
store as integer row arrays; :class:`polyret.training.pairs_dataset.PairIndex` takes it and fetches texts
per batch from the Arrow table. :func:`as_pair_source` turns a PairGroups into one (its store keyed by
content). Specs are parsed and dispatched in :mod:`polyret.data.pairs`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import socket
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from polyret import distributed
from polyret.arrays import distinct
from polyret.data.pairrows import PairRow, jsonl_rows, pair_file_kind, parse_row, tsv_header, tsv_row, tsv_rows
from polyret.data.records import DataError, Pair, PairGroups, passage_identity
from polyret.integrity import folder_checksums, source_digest, verify_checksums
from polyret.paths import COMPLETE_MARKER, is_complete, mark_complete, share_mode
from polyret.paths import cache_dir as default_cache_dir
from polyret.vocabulary import check_languages as check_subset

__all__ = [
    "STORE_VERSION",
    "PairSource",
    "PairStore",
    "StoreWriter",
    "as_pair_source",
    "build_once",
    "file_key",
    "groups_store",
    "open_or_build",
    "pair_file_store",
    "take_rows",
    "text_hash",
]

logger = logging.getLogger(__name__)

STORE_VERSION = 1
STORE_DIR = "pairs"
TEXTS = "texts-{:05d}.arrow"  # one Arrow file per build worker, in row order
GROUPS = "groups.arrow"
META = "meta.json"
CHUNK = 50_000  # rows per written chunk: bounds the Python objects alive during a build

SCHEMA = pa.schema(
    [
        ("group", pa.string()),
        ("lang", pa.string()),
        ("query", pa.string()),
        ("positive", pa.string()),
        ("negatives", pa.list_(pa.string())),
        ("positive_id", pa.string()),
        ("negative_ids", pa.list_(pa.string())),
        ("positive_hash", pa.int64()),
        ("negative_hashes", pa.list_(pa.int64())),
        ("line", pa.int64()),
    ]
)


def text_hash(lang: str, text: str) -> int:
    """The store's integer code of a passage without an id, whose identity is ``("text", lang, text)``
    (:func:`polyret.data.records.passage_identity`): BLAKE2b of ``lang NUL text`` (signed int64).

    Args:
        lang: the passage's language.
        text: its text.
    """
    digest = hashlib.blake2b(f"{lang}\0{text}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little", signed=True)


def file_key(path: str | os.PathLike, *, cache_dir: str | os.PathLike | None = None) -> dict:
    """The part of a fingerprint that changes when ``path`` changes: resolved path, size and the sha256 of
    its content (:func:`polyret.integrity.source_digest`: an edit that keeps size and mtime, as ``cp -p``,
    ``rsync -t`` or ``tar`` leave it, is a new key; an unchanged file is hashed once).

    Args:
        path: an existing file.
        cache_dir: the cache root where the digest is remembered.
    """
    p = Path(path).resolve()
    return {"path": str(p), "size": p.stat().st_size, "sha256": source_digest(p, cache_dir=cache_dir)}


# ------------------------------------------------------------------------------------------ writing
class StoreWriter:
    """Streams rows into a store folder being built, then computes its integer arrays (:meth:`finish`).

    Args:
        folder: the (temporary) folder being built.
        name: the store's display name.
        source: where the rows came from (a file, an mMARCO folder), used in messages.
    """

    def __init__(self, folder: Path, name: str, source: str) -> None:
        self.folder, self.name, self.source = Path(folder), name, source
        self.files: list[str] = []  # text files in row order
        self._writer = None
        self.rows = 0

    def add_table(self, table: pa.Table) -> None:
        """Append rows already in :data:`SCHEMA` columns (e.g. an mMARCO join)."""
        if not table.num_rows:
            return
        if self._writer is None:
            from datasets.arrow_writer import ArrowWriter

            self.files.append(TEXTS.format(len(self.files)))
            self._writer = ArrowWriter(schema=SCHEMA, path=str(self.folder / self.files[-1]), writer_batch_size=CHUNK)
        self._writer.write_table(table.select(SCHEMA.names).cast(SCHEMA))
        self.rows += table.num_rows

    def add_file(self, name: str, rows: int) -> None:
        """Register a finished text file written by a build worker (:data:`SCHEMA`, in ``folder``), in order."""
        self._close()
        if rows:
            self.files.append(name)
            self.rows += rows

    def _close(self) -> None:
        if self._writer is not None:
            self._writer.finalize()
            self._writer = None

    def add_rows(self, rows: Iterable[tuple[int, PairRow]]) -> None:
        """Append validated rows ``(line, row)``, a chunk at a time."""
        chunk: list[tuple[int, PairRow]] = []
        for item in rows:
            chunk.append(item)
            if len(chunk) >= CHUNK:
                self.add_table(_rows_table(chunk))
                chunk = []
        if chunk:
            self.add_table(_rows_table(chunk))

    def finish(self, group_order: pa.Array | None = None, key: dict | None = None) -> None:
        """Close the Arrow file and write the integer arrays and ``meta.json``.

        Args:
            group_order: the group ids in the order their codes should follow (every row's group must
                be in it; None: first seen in the rows).
            key: the fingerprint's key, recorded in ``meta.json``.

        Raises:
            DataError: no rows, or a duplicate (group, language) naming both lines.
        """
        self._close()
        if self.rows == 0:
            raise DataError(f"{self.source}: no pairs (empty file)")
        table = _open_texts(self.folder, self.files)[1]
        groups_col = table.column("group")
        order = pc.unique(groups_col) if group_order is None else group_order
        if isinstance(order, pa.ChunkedArray):
            order = order.combine_chunks()
        gcode = pc.index_in(groups_col, value_set=order)
        if gcode.null_count:
            raise ValueError("StoreWriter.finish: a row's group is not in group_order")
        gcode = gcode.to_numpy().astype(np.int32 if len(order) < 2**31 - 1 else np.int64)
        languages = sorted(pc.unique(table.column("lang")).to_pylist())
        lcode = pc.index_in(table.column("lang"), value_set=pa.array(languages, pa.string())).to_numpy()
        lcode = lcode.astype(np.int8 if len(languages) < 127 else np.int16)
        line = table.column("line").to_numpy()
        _check_duplicates(gcode, lcode, line, order, languages, self.source)

        nneg = pc.fill_null(pc.list_value_length(table.column("negatives")), 0).to_numpy().astype(np.int64)
        neg_ptr = np.zeros(len(nneg) + 1, dtype=np.int64)
        np.cumsum(nneg, out=neg_ptr[1:])
        pos_id = table.column("positive_id")
        neg_id = pc.list_flatten(table.column("negative_ids"))
        values = pc.unique(pc.drop_null(pa.chunked_array(list(pos_id.chunks) + list(neg_id.chunks), pa.string())))
        if isinstance(values, pa.ChunkedArray):
            values = values.combine_chunks()
        m = len(values)
        pos = pc.fill_null(pc.index_in(pos_id, value_set=values), -1).to_numpy().astype(np.int64)
        neg = pc.fill_null(pc.index_in(neg_id, value_set=values), -1).to_numpy().astype(np.int64)
        if len(neg) != int(neg_ptr[-1]):
            raise ValueError("StoreWriter: negative_ids must align with negatives")
        pos_h = pc.fill_null(table.column("positive_hash"), 0).to_numpy()
        neg_h = pc.fill_null(pc.list_flatten(table.column("negative_hashes")), 0).to_numpy()
        if len(neg_h) != len(neg):
            raise ValueError("StoreWriter: negative_hashes must align with negatives")
        pmask, nmask = pos < 0, neg < 0
        hashes = np.unique(np.concatenate([pos_h[pmask], neg_h[nmask]]))
        pos[pmask] = m + np.searchsorted(hashes, pos_h[pmask])
        neg[nmask] = m + np.searchsorted(hashes, neg_h[nmask])
        del table, groups_col, pos_id, neg_id, values, pos_h, neg_h

        for fname, arr in (("group.npy", gcode), ("lang.npy", lcode), ("pos.npy", pos), ("neg_ptr.npy", neg_ptr),
                           ("neg.npy", neg), ("line.npy", line)):  # fmt: skip
            np.save(self.folder / fname, np.ascontiguousarray(arr))
        with pa.OSFile(str(self.folder / GROUPS), "wb") as sink, pa.ipc.new_file(sink, pa.schema([("id", pa.string())])) as w:
            w.write_table(pa.table({"id": order.cast(pa.string())}))
        meta = {
            "version": STORE_VERSION,
            "name": self.name,
            "source": self.source,
            "languages": languages,
            "num_rows": int(self.rows),
            "text_files": self.files,
            "num_groups": len(order),
            "num_identities": int(m + len(hashes)),
            "max_negatives": int(nneg.max(initial=0)),
            "key": key or {},
        }
        # surrogateescape: a source path decoded under a non-UTF-8 locale is written as its own bytes
        (self.folder / META).write_text(
            json.dumps(meta, indent=2, ensure_ascii=False), encoding="utf-8", errors="surrogateescape"
        )


def take_rows(column: pa.ChunkedArray | pa.Array, rows: np.ndarray, offsets: np.ndarray | None = None) -> pa.Array:
    """``column[rows]`` touching only the chunks that hold them (``ChunkedArray.take`` concatenates chunks).

    Args:
        column: a (memory-mapped) column.
        rows: row numbers, any order, repeats allowed.
        offsets: the first row of each chunk (:func:`chunk_offsets`), to reuse across calls.
    """
    rows = np.asarray(rows, dtype=np.int64)
    if isinstance(column, pa.Array):
        return column.take(pa.array(rows))
    if column.num_chunks == 1:
        return column.chunk(0).take(pa.array(rows))
    if not len(rows):
        return pa.array([], column.type)
    offsets = chunk_offsets(column) if offsets is None else offsets
    chunk = np.searchsorted(offsets, rows, side="right") - 1
    order = np.argsort(chunk, kind="stable")
    cuts = np.flatnonzero(np.diff(chunk[order])) + 1
    pieces = [column.chunk(int(chunk[g[0]])).take(pa.array(rows[g] - offsets[chunk[g[0]]])) for g in np.split(order, cuts)]
    back = np.empty(len(order), dtype=np.int64)
    back[order] = np.arange(len(order))
    return pa.concat_arrays(pieces).take(pa.array(back))


def chunk_offsets(column: pa.ChunkedArray) -> np.ndarray:
    """The first row of each chunk of ``column``."""
    lengths = np.asarray([len(c) for c in column.chunks], dtype=np.int64)
    return np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)


def _open_texts(folder: Path, files: Sequence[str]):
    """(``datasets.Dataset``, ``pyarrow.Table``) over the text files, memory-mapped, in row order."""
    from datasets import Dataset, concatenate_datasets

    parts = [Dataset.from_file(str(folder / name)) for name in files]
    dataset = parts[0] if len(parts) == 1 else concatenate_datasets(parts)
    return dataset, pa.concat_tables([p.data.table for p in parts])


def _rows_table(chunk: list[tuple[int, PairRow]]) -> pa.Table:
    """A chunk of validated rows as a :data:`SCHEMA` table (text hashes where ids are missing)."""
    cols: dict[str, list] = {name: [] for name in SCHEMA.names}
    for lineno, r in chunk:
        cols["group"].append(r.group)
        cols["lang"].append(r.lang)
        cols["query"].append(r.query)
        cols["positive"].append(r.positive)
        cols["negatives"].append(list(r.negatives))
        cols["positive_id"].append(r.positive_id)
        cols["negative_ids"].append(list(r.negative_ids))
        cols["positive_hash"].append(_identity_hash(r.lang, r.positive, r.positive_id))
        cols["negative_hashes"].append([_identity_hash(r.lang, t, i) for t, i in zip(r.negatives, r.negative_ids)])
        cols["line"].append(lineno)
    return pa.table(cols, schema=SCHEMA)


def _identity_hash(lang: str, text: str, passage_id: str | None) -> int | None:
    """The hash column of a passage: :func:`text_hash` when its identity is its text, None when an id."""
    identity = passage_identity(lang, text, passage_id)
    return text_hash(lang, text) if identity[0] == "text" else None


def _check_duplicates(gcode, lcode, line, order, languages, source) -> None:
    """DataError for the earliest line repeating a (group, language) of an earlier line."""
    srt = np.lexsort((line, lcode, gcode))
    g, lang = gcode[srt], lcode[srt]
    same = (g[1:] == g[:-1]) & (lang[1:] == lang[:-1])
    if not same.any():
        return
    new = np.concatenate([[True], ~same])
    run_start = np.maximum.accumulate(np.where(new, np.arange(len(srt)), 0))
    dups = np.flatnonzero(same) + 1
    later = line[srt[dups]]
    j = dups[int(np.argmin(later))]
    first = int(line[srt[run_start[j]]])
    key = (order[int(g[j])].as_py(), languages[int(lang[j])])
    raise DataError(f"{source}:{int(line[srt[j]])}: duplicate (id, lang) = {key!r} (first on line {first})")


# ------------------------------------------------------------------------------------------ reading
class PairStore:
    """An opened, complete store folder: the Arrow texts and the integer arrays, all memory-mapped.

    Args:
        folder: a folder written by :func:`open_or_build` (its completion marker must exist).
    """

    def __init__(self, folder: str | os.PathLike) -> None:
        self.folder = Path(folder)
        # sizes here: the content was checked against its sha256 by build_once, once, before this open
        if not is_complete(self.folder, content=False):
            raise DataError(f"{self.folder}: not a complete pair store (interrupted build?)")
        self.meta: dict = json.loads((self.folder / META).read_text(encoding="utf-8"))
        self.name: str = self.meta["name"]
        self.source: str = self.meta["source"]
        self.languages: tuple[str, ...] = tuple(self.meta["languages"])
        self.texts, self.table = _open_texts(self.folder, self.meta["text_files"])  # memory-mapped
        load = lambda name: np.load(self.folder / name, mmap_mode="r")  # noqa: E731
        self.group, self.lang, self.pos = load("group.npy"), load("lang.npy"), load("pos.npy")
        self.neg_ptr, self.neg, self.line = load("neg_ptr.npy"), load("neg.npy"), load("line.npy")
        self.group_ids: pa.Array = pa.ipc.open_file(pa.memory_map(str(self.folder / GROUPS))).read_all().column("id")
        self.num_rows: int = int(self.meta["num_rows"])
        self.num_groups: int = int(self.meta["num_groups"])

    def view(
        self,
        name: str | None = None,
        *,
        languages: Sequence[str] | None = None,
        max_groups: int | None = None,
        seed: int = 0,
    ) -> PairSource:
        """The store's pairs restricted to ``languages`` and a seeded subsample of ``max_groups`` groups.

        The language restriction keeps only ``languages`` (each must be present; groups left without a
        pair go); the subsample is a seeded permutation of the remaining groups, its first ``max_groups``
        kept in their order (``tests/helpers/pairs.reference_pairs`` is this rule in memory).

        Args:
            name: the source name (default: the store's).
            languages: keep only these (each must be present).
            max_groups: a seeded subsample of this many groups (groups left after the restriction).
            seed: seed of the subsample.
        """
        name = name or self.name
        rows = np.arange(self.num_rows, dtype=np.int64)
        if languages is not None:
            wanted = check_subset(list(languages), self.languages, where=f"{name} (training pairs)", error=DataError)
            keep = np.zeros(len(self.languages), dtype=bool)
            keep[[self.languages.index(lang) for lang in wanted]] = True
            rows = rows[keep[self.lang]]
        groups = distinct(self.group[rows])
        if max_groups is not None and max_groups < len(groups):
            if max_groups < 1:
                raise ValueError(f"max_groups must be >= 1, got {max_groups}")
            chosen = groups[np.sort(np.random.default_rng(seed).permutation(len(groups))[:max_groups])]
            rows = rows[_mask(self.num_groups, chosen)[self.group[rows]]]
        if not len(rows):
            raise DataError(f"{name}: no training pairs")
        return PairSource(name, self, rows)


def _mask(n: int, codes: np.ndarray) -> np.ndarray:
    out = np.zeros(n, dtype=bool)
    out[codes] = True
    return out


@dataclass
class PairSource:
    """One training source as a view over a :class:`PairStore`: the selected store rows, integers only.

    Args:
        name: the source's name (its spec).
        store: the store.
        rows: the selected store rows, ascending.
    """

    name: str
    store: PairStore
    rows: np.ndarray
    _groups: np.ndarray | None = field(default=None, repr=False)

    @property
    def group_codes(self) -> np.ndarray:
        """The store group codes of this view's groups, ascending (= the source's group order)."""
        if self._groups is None:
            self._groups = distinct(self.store.group[self.rows])
        return self._groups

    def __len__(self) -> int:
        """Number of groups."""
        return len(self.group_codes)

    @property
    def num_pairs(self) -> int:
        return len(self.rows)

    @property
    def languages(self) -> tuple[str, ...]:
        present = np.flatnonzero(np.bincount(self.store.lang[self.rows], minlength=len(self.store.languages)))
        return tuple(self.store.languages[int(i)] for i in present)

    def select_groups(self, keep: np.ndarray, name: str | None = None) -> PairSource:
        """The view limited to its groups where ``keep`` (a bool per group, in group order) is True."""
        keep = np.asarray(keep, dtype=bool)
        if keep.shape != (len(self),):
            raise ValueError(f"keep must have one flag per group ({len(self)}), got shape {keep.shape}")
        chosen = self.group_codes[keep]
        rows = self.rows[_mask(self.store.num_groups, chosen)[self.store.group[self.rows]]]
        return PairSource(name or self.name, self.store, rows, chosen)

    def to_pair_groups(self) -> PairGroups:
        """Materialise as :class:`PairGroups` (Pair objects: for small data, dev sets and tests)."""
        st = self.store
        table = st.table.take(pa.array(self.rows))
        ids = st.group_ids.take(pa.array(self.group_codes)).to_pylist()
        groups: dict[str, dict[str, Pair]] = {gid: {} for gid in ids}
        cols = {
            c: table.column(c).to_pylist()
            for c in ("group", "lang", "query", "positive", "negatives", "positive_id", "negative_ids")
        }
        for i in range(table.num_rows):
            negs, nids = cols["negatives"][i] or [], cols["negative_ids"][i] or []
            nid = tuple(nids) if any(x is not None for x in nids) else None
            groups[cols["group"][i]][cols["lang"][i]] = Pair(
                group=cols["group"][i], lang=cols["lang"][i], query=cols["query"][i], positive=cols["positive"][i],
                negative=tuple(negs) or None, source=self.name, positive_id=cols["positive_id"][i], negative_id=nid,
            )  # fmt: skip
        return PairGroups(name=self.name, groups=groups)


# ------------------------------------------------------------------------------------ build / open
def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text)[:60] or "pairs"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _local_rank() -> int:
    return int(os.environ.get("LOCAL_RANK", distributed.rank()))


def open_or_build(
    key: dict,
    name: str,
    build: Callable[[StoreWriter], pa.Array | None],
    *,
    source: str,
    cache_dir: str | os.PathLike | None = None,
) -> PairStore:
    """Open the store fingerprinted by ``key``, building it first (local rank 0 only) when it is missing.

    ``build(writer)`` streams rows into the writer and returns the group order (or None: first seen). The
    build goes to a temporary sibling folder, gets its completion marker last and is renamed into place;
    the other ranks of the node wait for that marker, then all meet at :func:`polyret.distributed.barrier`
    (a no-op without a process group) and map the same files. A concurrent
    build of the same key by another process simply loses the rename race and uses the winner's folder.

    Args:
        key: everything the store's content depends on (source files, options); hashed into the name.
        name: the display name (the folder's prefix).
        build: fills the writer (see above).
        source: where the rows come from, for messages.
        cache_dir: the cache root (default ``polyret.paths.cache_dir()``).
    """
    key = {"version": STORE_VERSION, **key}
    fp = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:20]
    folder = default_cache_dir(cache_dir) / STORE_DIR / f"{_slug(name)}-{fp}"

    def fill(tmp: Path) -> None:
        writer = StoreWriter(tmp, name, source)
        writer.finish(build(writer), key)
        scratch = tmp / "scratch"
        if scratch.exists():
            shutil.rmtree(scratch)

    build_once(folder, fill, name=name, source=source, key=key)
    return PairStore(folder)


def build_once(folder: Path, fill: Callable[[Path], None], *, name: str, source: str, key: dict | None = None) -> None:
    """Make sure the complete, verified cache folder ``folder`` exists: local rank 0 builds it if missing,
    the other ranks of the node wait for its completion marker, then all meet at
    :func:`polyret.distributed.barrier`.

    ``fill(tmp)`` writes the content into a temporary sibling folder, which gets its completion marker last
    (listing every file's sha256) and is renamed into place (a concurrent build of the same folder loses
    the rename race and uses the winner's; a folder without its marker is never read). Before reuse, local
    rank 0 checks every file against its recorded sha256 and ``meta.json``'s ``key`` against ``key`` (the
    provenance); a folder that fails is removed with a warning naming the file, and built again.

    Args:
        folder: the cache folder (its name is the content's fingerprint).
        fill: writes the content into the folder it is given (``meta.json`` with ``key`` among them).
        name: the display name (in the completion marker).
        source: where the content comes from, for messages.
        key: what the content was built from, as ``meta.json`` records it (None: not checked).
    """
    if _local_rank() == 0:
        # the marker by sizes, then every file's sha256 once (_check_cache), naming a file that fails
        problem = _check_cache(folder, key) if is_complete(folder, content=False) else None
        if problem is not None:
            logger.warning("cache of %s failed its check: %s; building it again", source, problem)
            _discard(folder)
        if not is_complete(folder, content=False):
            try:
                _build(folder, fill, name)
            except BaseException as err:  # the waiting ranks read why, instead of waiting for a marker
                _write_failure(folder, err)
                raise
    elif not is_complete(folder, content=False):
        _wait_for(folder, source)
    distributed.barrier()


def _check_cache(folder: Path, key: dict | None) -> str | None:
    """None when every file of the complete cache ``folder`` matches the sha256 its marker records and its
    ``meta.json`` records ``key``; else why not, naming the file."""
    try:
        marker = json.loads((folder / COMPLETE_MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        return f"{folder / COMPLETE_MARKER}: unreadable ({exc})"
    problem = verify_checksums(folder, marker.get("sha256") if isinstance(marker, dict) else None)
    if problem is None and key is not None:
        try:
            saved = json.loads((folder / META).read_text(encoding="utf-8")).get("key")
        except (OSError, ValueError, AttributeError) as exc:
            return f"{folder / META}: unreadable ({exc})"
        if json.loads(json.dumps(key)) != saved:
            return f"{folder / META}: built from another source or options ({saved!r}, expected {key!r})"
    return problem


def _discard(folder: Path) -> None:
    """Remove a cache folder that failed its check (renamed out of sight first, then deleted)."""
    doomed = folder.parent / f".discard-{folder.name}-{_host()}@{os.getpid()}"
    try:
        os.replace(folder, doomed)
    except OSError:
        return  # another process moved it first
    shutil.rmtree(doomed, ignore_errors=True)


def _run_id() -> str:
    """What identifies this launch on every rank of it: torchrun's (and accelerate's) run id, else the
    rendezvous address; "" without a launcher."""
    run = os.environ.get("TORCHELASTIC_RUN_ID")
    if run:
        return run
    addr, port = os.environ.get("MASTER_ADDR", ""), os.environ.get("MASTER_PORT", "")
    return f"{addr}:{port}" if addr or port else ""


def _failure_file(folder: Path) -> Path:
    return folder.parent / f".{folder.name}.failed.json"


def _write_failure(folder: Path, err: BaseException) -> None:
    """Tell this launch's waiting ranks that the build failed, and why (best effort; never hides ``err``)."""
    try:
        folder.parent.mkdir(parents=True, exist_ok=True)
        target = _failure_file(folder)
        tmp = target.with_name(f"{target.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps({"run": _run_id(), "error": f"{type(err).__name__}: {err}"}), encoding="utf-8")
        os.replace(tmp, target)
    except OSError:
        pass


def _read_failure(folder: Path) -> str | None:
    """The error message local rank 0 left for THIS launch (a marker of an earlier launch is ignored)."""
    try:
        info = json.loads(_failure_file(folder).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(info, dict) or not _run_id() or info.get("run") != _run_id():
        return None
    return str(info.get("error", "unknown error"))


def _wait_for(folder: Path, source: str) -> None:
    """Wait (polling the completion marker) for local rank 0 to finish building ``folder``.

    Polling rather than a collective: a build of hundreds of millions of pairs outlasts a process
    group's collective timeout, and the trainer's process group may not exist yet when sources load.
    """
    deadline = time.monotonic() + float(os.environ.get("POLYRET_STORE_WAIT_S", 24 * 3600))
    while not is_complete(folder, content=False):  # sizes while polling; local rank 0 checked the content (build_once)
        failure = _read_failure(folder)
        if failure is not None:
            raise DataError(f"{folder}: local rank 0 failed to build the cache folder of {source}: {failure}")
        if time.monotonic() > deadline:
            raise DataError(
                f"{folder}: the cache folder of {source} did not appear while local rank 0 was building it; every "
                "rank of a node must see the same cache folder (POLYRET_CACHE_DIR)"
            )
        time.sleep(0.5)


def _host() -> str:
    return re.sub(r"[^A-Za-z0-9_.]", "_", socket.gethostname()) or "host"


def _build(folder: Path, fill: Callable[[Path], None], name: str) -> None:
    folder.parent.mkdir(parents=True, exist_ok=True)
    _failure_file(folder).unlink(missing_ok=True)  # this launch's outcome replaces an earlier one's
    prefix = f".tmp-{folder.name}-"
    for stale in folder.parent.glob(f"{prefix}*"):  # left by a killed build ON THIS HOST
        host, _, pid = stale.name[len(prefix) :].rpartition("@")  # a cache shared by nodes: another
        if pid.isdigit() and host in ("", _host()) and not _pid_alive(int(pid)):  # host's pid says nothing here
            shutil.rmtree(stale, ignore_errors=True)
    # host and pid: two nodes' builders sharing one cache folder never write into the same temp folder
    tmp = folder.parent / f"{prefix}{_host()}@{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        fill(tmp)
        share_mode(tmp)
        mark_complete(tmp, name=name, sha256=folder_checksums(tmp))  # content checked before every reuse
        if folder.exists():
            if is_complete(folder, content=False):
                return  # another process finished first
            shutil.rmtree(folder)
        try:
            os.replace(tmp, folder)
        except OSError:
            if not is_complete(folder, content=False):
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


PARALLEL_MIN_BYTES = 32 * 2**20  # smaller files are parsed by one process (start-up would dominate)


def build_workers(workers: int | None = None) -> int:
    """Processes that parse a big pair file: ``workers``, else ``POLYRET_BUILD_WORKERS``, else min(CPUs, 16).

    Args:
        workers: an explicit count (>= 1).
    """
    if workers is None:
        env = os.environ.get("POLYRET_BUILD_WORKERS")
        workers = (
            int(env)
            if env
            else min(len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1, 16)
        )
    if workers < 1:
        raise DataError(f"build workers must be >= 1, got {workers}")
    return workers


def pair_file_store(
    path: str | os.PathLike, *, cache_dir: str | os.PathLike | None = None, workers: int | None = None
) -> PairStore:
    """The store of a JSONL (``.jsonl[.gz]``) or TSV (``.tsv[.gz]``, with a header) pair file, built once.

    An uncompressed file of :data:`PARALLEL_MIN_BYTES` or more is split at line boundaries into
    ``workers`` byte ranges parsed by as many processes, each writing its own Arrow file (row order and
    line numbers as in the file; the first bad line in file order is the error reported); a gzip file
    streams through one process.

    Args:
        path: the pair file (format: :mod:`polyret.data.pairrows`).
        cache_dir: the cache root.
        workers: parsing processes (:func:`build_workers`).
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file" + (" (it is a folder)" if path.is_dir() else ""))
    tsv = pair_file_kind(path.name) == "tsv"  # the one suffix rule (other names: JSONL)
    key = {"kind": "tsv" if tsv else "jsonl", **file_key(path, cache_dir=cache_dir)}
    n_workers = build_workers(workers)

    def build(writer: StoreWriter) -> None:
        if n_workers > 1 and not path.name.endswith(".gz") and path.stat().st_size >= PARALLEL_MIN_BYTES:
            _parallel_parse(path, tsv, n_workers, writer)
        else:
            writer.add_rows((tsv_rows if tsv else jsonl_rows)(path))

    return open_or_build(key, path.name, build, source=str(path), cache_dir=cache_dir)


def _parallel_parse(path: Path, tsv: bool, workers: int, writer: StoreWriter) -> None:
    """Parse byte ranges of ``path`` in ``workers`` processes, each into its own text file of ``writer``."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    size = path.stat().st_size
    header, start, first_line = None, 0, 0
    with path.open("rb") as f:
        if tsv:  # the header is the first non-blank line; ranges start after it
            for raw in iter(f.readline, b""):
                first_line += 1
                if raw.strip():
                    header = tsv_header(_decode(raw, path, first_line).split("\t"), f"{path}:{first_line}")
                    break
            if header is None:
                raise DataError(f"{path}: no pairs (empty file)")
            start = f.tell()
        bounds = [start]
        for i in range(1, workers):
            f.seek(max(start + (size - start) * i // workers, bounds[-1]))
            if f.tell() > start:
                f.readline()  # to the start of the next line
            bounds.append(max(f.tell(), bounds[-1]))
        bounds.append(size)
        lines = [first_line]  # line number before each range: count the newlines of the ranges before it
        for lo, hi in zip(bounds[:-2], bounds[1:-1]):
            f.seek(lo)
            count, left = 0, hi - lo
            while left:
                block = f.read(min(left, 1 << 24))
                count += block.count(b"\n")
                left -= len(block)
            lines.append(lines[-1] + count)
    jobs = [(str(path), header, lo, hi, line, str(writer.folder / TEXTS.format(i)))
            for i, (lo, hi, line) in enumerate(zip(bounds[:-1], bounds[1:], lines)) if hi > lo]  # fmt: skip
    methods = multiprocessing.get_all_start_methods()
    context = multiprocessing.get_context("fork" if "fork" in methods else "spawn")
    with ProcessPoolExecutor(max_workers=len(jobs), mp_context=context) as pool:
        results = list(pool.map(_parse_range, jobs))  # re-raises the first failed range's error, in file order
    for (*_, out), rows in zip(jobs, results):
        writer.add_file(Path(out).name, rows)


def _decode(raw: bytes, path: Path, lineno: int) -> str:
    try:
        return raw.decode("utf-8").rstrip("\r\n")
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}:{lineno}: not UTF-8 ({exc})") from exc


def _parse_range(job: tuple) -> int:
    """Build-worker body: parse the lines in ``[lo, hi)`` of a pair file into one Arrow text file."""
    from datasets.arrow_writer import ArrowWriter

    path, header, lo, hi, lineno, out = job
    path = Path(path)
    writer = ArrowWriter(schema=SCHEMA, path=out, writer_batch_size=CHUNK)
    rows = 0
    chunk: list[tuple[int, PairRow]] = []
    with path.open("rb") as f:
        f.seek(lo)
        pos = lo
        while pos < hi:
            raw = f.readline()
            if not raw:
                break
            pos += len(raw)
            lineno += 1
            line = _decode(raw, path, lineno)
            if not line.strip():
                continue
            where = f"{path}:{lineno}"
            if header is not None:
                row = tsv_row(line.split("\t"), header, where)
            else:
                try:
                    obj = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise DataError(f"{where}:{exc.colno}: malformed JSON: {exc.msg}") from exc
                if not isinstance(obj, dict):
                    raise DataError(f"{where}: expected a JSON object, got {type(obj).__name__}")
                row = parse_row(obj, where)
            chunk.append((lineno, row))
            if len(chunk) >= CHUNK:
                writer.write_table(_rows_table(chunk))
                rows += len(chunk)
                chunk = []
    if chunk:
        writer.write_table(_rows_table(chunk))
        rows += len(chunk)
    writer.finalize()
    return rows


# ------------------------------------------------------------------------------- Pair objects in
def pair_rows(groups: PairGroups) -> Iterable[tuple[int, PairRow]]:
    """``(row number, row)`` for every pair of ``groups``, in group order (row numbers from 1).

    Args:
        groups: parallel pairs; a group without pairs, or a pair stored under another language, is a DataError.
    """
    n = 0
    for gid, by_lang in groups.groups.items():
        if not by_lang:
            raise DataError(f"source {groups.name!r}: group {gid!r} has no pairs")
        for lang, pair in by_lang.items():
            if pair.lang != lang:
                raise DataError(f"source {groups.name!r}: group {gid!r} stores a {pair.lang!r} pair under key {lang!r}")
            n += 1
            yield n, PairRow(gid, lang, pair.query, pair.positive, pair.negatives, pair.positive_id, pair.negative_ids)


def groups_key(groups: PairGroups) -> str:
    """The sha256 of ``groups``' content (every pair's fields, in order): what its store is keyed by."""
    digest = hashlib.sha256()
    for _, row in pair_rows(groups):
        digest.update(json.dumps(row, ensure_ascii=False).encode("utf-8", "surrogatepass"))
        digest.update(b"\n")
    return digest.hexdigest()


def groups_store(
    groups: PairGroups | Callable[[], PairGroups],
    *,
    key: dict | None = None,
    name: str | None = None,
    cache_dir: str | os.PathLike | None = None,
) -> PairStore:
    """The pair store of ``groups`` (group codes in their order), built once into the cache.

    Args:
        groups: the pairs, or a function returning them, called only when the store must be built (then
            ``key`` and ``name`` are needed).
        key: what the pairs were made from (a LAReQA set's files and options); None: their content
            (:func:`groups_key`).
        name: the store's name, for messages (default: the pairs' name).
        cache_dir: the cache root.
    """
    if key is None or name is None:
        if callable(groups):
            raise ValueError("groups_store: pairs given by a function need a key and a name")
        key = {"kind": "pairs", "sha256": groups_key(groups)} if key is None else key
        name = name or groups.name

    def build(writer: StoreWriter) -> pa.Array:
        pairs = groups() if callable(groups) else groups
        if not pairs.groups:
            raise DataError(f"{name}: no training pairs")
        writer.add_rows(pair_rows(pairs))
        return pa.array(list(pairs.groups), pa.string())

    return open_or_build(key, name, build, source=name, cache_dir=cache_dir)


def as_pair_source(source: PairGroups | PairSource, *, cache_dir: str | os.PathLike | None = None) -> PairSource:
    """``source`` as the trainer's one kind of source: a PairSource as is, a PairGroups as the view of its
    whole store (:func:`groups_store`, keyed by content: the same pairs map the same folder).

    Args:
        source: a view or Pair objects.
        cache_dir: the cache root.
    """
    if isinstance(source, PairSource):
        return source
    if not isinstance(source, PairGroups):
        raise TypeError(f"a training source is a PairSource or a PairGroups, got {type(source).__name__}")
    return groups_store(source, cache_dir=cache_dir).view(source.name)
