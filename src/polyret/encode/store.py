"""The embedding store of one (model, corpus): one memory-mapped matrix, written in checksummed chunks.

Layout of a store folder (``<model cache>/stores/<corpus fingerprint>-<dtype>/``):

- ``embeddings.bin``: the (N, dim) rows, row-major, little-endian float32 or float16, no header. It is
  created at its full size (sparse) under a temp name and renamed, then each chunk's region is written
  in place. Its bytes are never trusted on their own: a region counts only when its chunk record
  verifies.
- ``chunk-000123.json``: one record per finished chunk (rows ``[start, stop)``), written atomically
  after its region is flushed to disk: the store's identity, the chunk's place and shape, and the
  sha256 of (identity, chunk index, the region's bytes).
- ``manifest.json``: written atomically, last, when every chunk is recorded: the identity and every
  chunk's sha256. A store without it is incomplete; an interrupted encode resumes at the chunks
  without a valid record.

A chunk whose record is unreadable, of another store, of the wrong shape, or whose bytes no longer
match its sha256 is set aside (its record renamed ``*.corrupt``, with a warning naming the file and
the reason) and encoded again; it is never used. A data file of the wrong size, or a folder of another
store format, is set aside whole. The format is versioned (:data:`STORE_FORMAT`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import uuid
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from polyret.errors import StoreError

from .. import paths
from .stream import check_store_dtype, text_slice, windows

STORE_FORMAT = "polyret-store/1"
DEFAULT_CHUNK_ROWS = 16384
DATA_FILE = "embeddings.bin"
MANIFEST = "manifest.json"

logger = logging.getLogger("polyret.encode")


def corpus_fingerprint(texts: Sequence[str], prompt: str = "", *, kind: str = "passage", window: int = 65536) -> str:
    """A 24-hex-digit id of the ordered texts and their prompt: the store's corpus identity.

    Streams the texts window by window (sha256 over each text's UTF-8 length and bytes), so it costs
    one pass and one window of memory.

    Args:
        texts: the corpus texts in order (a list or a columnar text column).
        prompt: the prompt prepended when encoding.
        kind: "query" or "passage".
        window: texts read at a time.
    """
    h = hashlib.sha256(f"{STORE_FORMAT}\x00corpus\x00{kind}\x00{len(texts)}\x00{prompt}\x00".encode())
    for start, stop in windows(len(texts), window):
        enc = [t.encode("utf-8") for t in text_slice(texts, start, stop)]
        h.update(b"".join(len(b).to_bytes(8, "little") + b for b in enc))
    return h.hexdigest()[:24]


class EmbeddingStore:
    """The store of one (model, corpus): see the module docstring for its layout and checks.

    Args:
        root: the store folder.
        owner: the model's cache folder name (its fingerprint, ``@precision`` when not fp32).
        corpus: :func:`corpus_fingerprint` of the texts.
        n: number of rows.
        dim: embedding dimension.
        dtype: "float32" or "float16" rows.
        chunk_rows: rows per chunk (the unit written, checked and resumed).
    """

    def __init__(
        self,
        root: str | os.PathLike,
        *,
        owner: str,
        corpus: str,
        n: int,
        dim: int,
        dtype: str = "float32",
        chunk_rows: int = DEFAULT_CHUNK_ROWS,
    ):
        if chunk_rows < 1:
            raise ValueError(f"chunk_rows must be >= 1, got {chunk_rows}")
        self.root = Path(root)
        self.dtype = np.dtype(check_store_dtype(dtype)).newbyteorder("<")
        self.identity = {
            "format": STORE_FORMAT,
            "owner": owner,
            "corpus": corpus,
            "n": int(n),
            "dim": int(dim),
            "dtype": check_store_dtype(dtype),
            "chunk_rows": int(chunk_rows),
        }
        self.n, self.dim, self.chunk_rows = int(n), int(dim), int(chunk_rows)
        self.n_chunks = -(-self.n // self.chunk_rows)
        self._tag = json.dumps(self.identity, sort_keys=True).encode()

    @classmethod
    def for_corpus(
        cls,
        model_cache: str | os.PathLike,
        *,
        corpus: str,
        n: int,
        dim: int,
        dtype: str = "float32",
        chunk_rows: int = DEFAULT_CHUNK_ROWS,
    ) -> EmbeddingStore:
        """The store of ``corpus`` beside a model's per-text cache folder (``<model cache>/stores/...``).

        Args:
            model_cache: the model's cache folder (``EmbeddingCache.root``; its name is the owner).
            corpus: :func:`corpus_fingerprint` of the texts.
            n: number of rows.
            dim: embedding dimension.
            dtype: "float32" or "float16".
            chunk_rows: rows per chunk.
        """
        model_cache = Path(model_cache)
        root = model_cache / "stores" / f"{corpus}-{check_store_dtype(dtype)}"
        return cls(root, owner=model_cache.name, corpus=corpus, n=n, dim=dim, dtype=dtype, chunk_rows=chunk_rows)

    # ------------------------------------------------------------------ layout

    @property
    def data_path(self) -> Path:
        return self.root / DATA_FILE

    @property
    def manifest_path(self) -> Path:
        return self.root / MANIFEST

    def record_path(self, i: int) -> Path:
        return self.root / f"chunk-{i:06d}.json"

    def chunk_range(self, i: int) -> tuple[int, int]:
        """Rows ``[start, stop)`` of chunk ``i``."""
        start = i * self.chunk_rows
        return start, min(self.n, start + self.chunk_rows)

    @property
    def nbytes(self) -> int:
        return self.n * self.dim * self.dtype.itemsize

    # ------------------------------------------------------------------ checks

    def _checksum(self, i: int, data: bytes | memoryview) -> str:
        h = hashlib.sha256(self._tag)
        h.update(f"\x00chunk {i}\x00".encode())
        h.update(data)
        return h.hexdigest()

    def _region(self, i: int) -> bytes:
        start, stop = self.chunk_range(i)
        row = self.dim * self.dtype.itemsize
        with open(self.data_path, "rb") as fh:
            fh.seek(start * row)
            data = fh.read((stop - start) * row)
        if len(data) != (stop - start) * row:
            raise StoreError(f"{self.data_path}: chunk {i} is truncated ({len(data)} of {(stop - start) * row} bytes)")
        return data

    def _set_aside(self, path: Path, reason: str, *, suffix: str = ".corrupt", quiet: bool = False) -> None:
        failed = paths.set_aside(path, suffix)
        where = failed or f"moved to {path.name + suffix}"
        if not quiet or failed:
            logger.warning("embedding store: %s; %s, its rows will be encoded again", reason, where)

    def _read_json(self, path: Path) -> dict:
        try:
            value = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
            raise StoreError(f"{path}: unreadable ({type(err).__name__}: {err})") from err
        if not isinstance(value, dict):
            raise StoreError(f"{path}: not a JSON object")
        return value

    def _check_record(self, i: int, record: dict, path: Path) -> str:
        """The recorded sha256 of chunk ``i`` if the record belongs to this store and chunk."""
        start, stop = self.chunk_range(i)
        if record.get("identity") != self.identity:
            raise StoreError(f"{path}: a record of another store (identity {record.get('identity')!r})")
        if record.get("index") != i or record.get("rows") != [start, stop] or record.get("dim") != self.dim:
            raise StoreError(
                f"{path}: wrong shape (index {record.get('index')}, rows {record.get('rows')}, dim {record.get('dim')}; "
                f"expected {i}, [{start}, {stop}], {self.dim})"
            )
        checksum = record.get("sha256")
        if not isinstance(checksum, str) or len(checksum) != 64:
            raise StoreError(f"{path}: no sha256")
        return checksum

    def chunk_ok(self, i: int) -> bool:
        """True when chunk ``i`` has a record of this store and its bytes match its sha256; a record
        that fails is set aside with a warning (its rows are then missing, to be encoded again).

        Args:
            i: the chunk index.
        """
        path = self.record_path(i)
        if not path.exists():
            return False
        try:
            checksum = self._check_record(i, self._read_json(path), path)
            if not self.data_path.exists():
                raise StoreError(f"{self.data_path}: missing")
            if self._checksum(i, self._region(i)) != checksum:
                raise StoreError(f"{path}: checksum mismatch (the rows of chunk {i} changed after writing)")
        except StoreError as err:
            self._set_aside(path, str(err))
            if self.manifest_path.exists():  # the store is no longer complete
                self._set_aside(self.manifest_path, f"{self.manifest_path}: chunk {i} failed", suffix=".stale", quiet=True)
            return False
        return True

    def is_complete(self) -> bool:
        """True when the manifest exists and names this store (its chunks are checked by :meth:`open`)."""
        if not self.manifest_path.exists():
            return False
        try:
            manifest = self._read_json(self.manifest_path)
        except StoreError:
            return False
        return manifest.get("identity") == self.identity and len(manifest.get("chunks", [])) == self.n_chunks

    # ------------------------------------------------------------------ writing

    def prepare(self) -> None:
        """Make the folder and its full-size data file ready for chunk writes (one process calls it).

        A folder of another store format or identity, or a data file of the wrong size, is set aside
        with a warning; existing chunk records are kept (each is verified before it is trusted).
        """
        self.root.mkdir(parents=True, exist_ok=True)
        if self.manifest_path.exists():
            try:
                manifest = self._read_json(self.manifest_path)
                if manifest.get("identity") != self.identity:
                    raise StoreError(
                        f"{self.manifest_path}: a store of another format or identity "
                        f"({manifest.get('identity', {}).get('format', 'unknown format')})"
                    )
            except StoreError as err:
                self._set_aside_all(str(err))
        if self.data_path.exists() and self.data_path.stat().st_size != self.nbytes:
            self._set_aside_all(f"{self.data_path}: {self.data_path.stat().st_size} bytes, expected {self.nbytes} (wrong shape)")
        if not self.data_path.exists():
            with paths.atomic_path(self.data_path) as tmp, open(tmp, "r+b") as fh:
                fh.truncate(self.nbytes)  # sparse: nothing is allocated until a chunk is written

    def _set_aside_all(self, reason: str) -> None:
        """Set the whole store aside: data file, manifest and every chunk record (one warning)."""
        stamp = uuid.uuid4().hex[:8]
        for path in [self.data_path, self.manifest_path, *sorted(self.root.glob("chunk-*.json"))]:
            if path.exists():
                self._set_aside(path, "", suffix=f".corrupt-{stamp}", quiet=True)
        logger.warning("embedding store: %s; set aside as *.corrupt-%s, every row will be encoded again", reason, stamp)

    def write_chunk(self, i: int, rows: np.ndarray) -> None:
        """Write chunk ``i``'s rows into its region, flush them to disk, then its record (atomically).

        Args:
            i: the chunk index.
            rows: (stop - start, dim) embeddings (cast to the store's dtype).
        """
        start, stop = self.chunk_range(i)
        rows = np.ascontiguousarray(rows, dtype=self.dtype)
        if rows.shape != (stop - start, self.dim):
            raise ValueError(f"{self.root}: chunk {i} needs ({stop - start}, {self.dim}) rows, got {rows.shape}")
        data = rows.tobytes()
        fd = os.open(self.data_path, os.O_RDWR)
        try:
            written = os.pwrite(fd, data, start * self.dim * self.dtype.itemsize)
            if written != len(data):
                raise OSError(f"{self.data_path}: short write ({written} of {len(data)} bytes)")
            os.fsync(fd)
        finally:
            os.close(fd)
        checksum = self._checksum(i, data)
        record = {"identity": self.identity, "index": i, "rows": [start, stop], "dim": self.dim, "sha256": checksum}
        paths.atomic_write_text(self.record_path(i), json.dumps(record, sort_keys=True))

    def finalize(self) -> None:
        """Write the manifest (atomically, last) from the chunk records; a StoreError if one is missing."""
        chunks = []
        for i in range(self.n_chunks):
            path = self.record_path(i)
            if not path.exists():
                raise StoreError(f"{self.root}: chunk {i} was not written ({path.name} missing)")
            chunks.append(self._check_record(i, self._read_json(path), path))
        manifest = {"identity": self.identity, "chunks": chunks, "data": DATA_FILE}
        paths.atomic_write_text(self.manifest_path, json.dumps(manifest, sort_keys=True))

    # ------------------------------------------------------------------ reading

    def open(self, *, verify: bool = True) -> np.ndarray | None:
        """The (N, dim) rows as a read-only memory map, or None when the store is incomplete or a chunk
        fails its checksum (that chunk is set aside, to be encoded again).

        Args:
            verify: check every chunk's sha256 against its record and the manifest (streamed, one
                chunk in memory at a time).
        """
        if not self.is_complete():
            return None
        if verify:
            manifest = self._read_json(self.manifest_path)
            bad = [i for i in range(self.n_chunks) if not self.chunk_ok(i)]
            for i, checksum in enumerate(manifest["chunks"]):
                if i not in bad and self._check_record(i, self._read_json(self.record_path(i)), self.record_path(i)) != checksum:
                    self._set_aside(self.record_path(i), f"{self.record_path(i)}: does not match the manifest")
                    bad.append(i)
            if bad:
                if self.manifest_path.exists():
                    reason = f"{self.manifest_path}: {len(bad)} chunk(s) failed"
                    self._set_aside(self.manifest_path, reason, suffix=".stale", quiet=True)
                return None
        if self.n == 0:
            return np.zeros((0, self.dim), dtype=self.dtype)
        return np.memmap(self.data_path, dtype=self.dtype, mode="r", shape=(self.n, self.dim))
