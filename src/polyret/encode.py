"""Encode every text once per model, with an on-disk embedding cache.

Per-text caching (not per-list) lets a benchmark split, a language subset and the full benchmark share
embeddings: a key is a hash of (prompt, text), and a cache folder belongs to one model fingerprint. New
embeddings are appended as shard files written atomically, so a crash never leaves a half-written cache,
and each shard carries a checksum verified on load (see ``EmbeddingCache``), so a damaged or foreign
shard is set aside and re-encoded instead of silently changing the numbers.
"""

from __future__ import annotations

import hashlib
import logging
import os
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from .models import encode_batch
from .paths import atomic_path, cache_dir

KEY_BYTES = 16
SHARD_FORMAT = "polyret-embeddings/2"
NORM_TOLERANCE = 1e-3  # rows are written L2-normalised; float32 noise is far below this

logger = logging.getLogger(__name__)


def text_key(prompt: str, text: str) -> bytes:
    return hashlib.blake2b(f"{prompt}\x00{text}".encode(), digest_size=KEY_BYTES).digest()


def shard_checksum(owner: str, keys: np.ndarray, emb: np.ndarray) -> str:
    """sha256 over the format, the owning cache folder's name (the model fingerprint), the shape, the keys
    and the float32 rows: a shard with other rows, another model's shard or a damaged one fails it.

    Args:
        owner: the cache folder's name (``EmbeddingCache.for_model`` uses the model fingerprint).
        keys: (n, KEY_BYTES) uint8 text keys.
        emb: (n, dim) float32 embeddings aligned with ``keys``.
    """
    h = hashlib.sha256()
    h.update(f"{SHARD_FORMAT}\x00{owner}\x00{emb.shape[0]}x{emb.shape[1]}\x00".encode())
    h.update(np.ascontiguousarray(keys, dtype=np.uint8).tobytes())
    h.update(np.ascontiguousarray(emb, dtype="<f4").tobytes())
    return h.hexdigest()


class CacheShardError(ValueError):
    """A cache shard failed its integrity checks (the message names the file and the reason)."""


class LegacyShard(CacheShardError):
    """A shard of a polyret before checksums: not damaged, but it cannot be verified."""


class EmbeddingCache:
    """Embeddings of one model, keyed by (prompt, text), stored as append-only ``.npz`` shards.

    Every shard carries a sha256 checksum (:func:`shard_checksum`) over its keys, its rows and the
    cache folder's name (the model fingerprint). On load a shard is verified: readable, checksum,
    one dimension for the whole cache (``dim`` when given, else the dimension holding most rows),
    finite and L2-normalised rows. A shard that fails is ignored with a warning naming the file and
    the reason and renamed ``<shard>.corrupt``, so it is not read again; its texts are simply missing
    and get encoded again. Shards of older polyret versions have no checksum: they cannot be verified
    and are treated the same way (re-encoding is cheap next to trusting wrong rows).

    Args:
        root: the cache folder of one model (``for_model`` names it by fingerprint).
        dim: the embedding dimension expected, when known.
    """

    def __init__(self, root: str | os.PathLike, *, dim: int | None = None):
        self.root = Path(root)
        self._index: dict[bytes, tuple[int, int]] = {}
        self._shards: list[np.ndarray] = []
        self._paths: list[Path] = []
        self._valid: list[tuple[Path, np.ndarray, np.ndarray]] = []  # every shard that passed its own checks
        if self.root.is_dir():
            legacy: list[Path] = []
            for shard in sorted(self.root.glob("shard-*.npz")):
                try:
                    self._valid.append((shard, *self._read_shard(shard)))
                except LegacyShard:
                    legacy.append(shard)
                except CacheShardError as err:
                    self._set_aside(shard, str(err))
            if legacy:  # one line for a whole cache of an older polyret, not one per shard
                for shard in legacy:
                    self._set_aside(shard, "", suffix=".legacy", quiet=True)
                logger.warning(
                    "%s: %d embedding cache shard(s) of an older polyret have no checksum (e.g. %s); set "
                    "aside as *.legacy, their texts will be encoded again",
                    self.root,
                    len(legacy),
                    legacy[0].name,
                )
        self._dim_known = dim is not None
        if dim is None and self._valid:
            rows: dict[int, int] = {}
            for _, _, emb in self._valid:
                rows[emb.shape[1]] = rows.get(emb.shape[1], 0) + len(emb)
            dim = max(sorted(rows, reverse=True), key=lambda d: rows[d])
            if len(rows) > 1:
                logger.warning(
                    "%s: cache shards of dimensions %s; using the %d-dim ones until the model's dimension is known",
                    self.root,
                    sorted(rows),
                    dim,
                )
        self._dim = dim
        self._reindex()

    def _reindex(self) -> None:
        """Index the valid shards of the cache's dimension; once the model's dimension is known
        (``dim`` given or :meth:`require_dim`), shards of any other dimension are set aside."""
        self._index.clear()
        self._shards.clear()
        self._paths.clear()
        kept = []
        for path, keys, emb in self._valid:
            if emb.shape[1] != self._dim:
                if self._dim_known:
                    self._set_aside(path, f"{path}: dimension {emb.shape[1]}, but the model produces {self._dim}")
                    continue
                kept.append((path, keys, emb))
                continue
            kept.append((path, keys, emb))
            self._add(path, keys, emb)
        self._valid = kept

    @classmethod
    def for_model(cls, fingerprint: str, root: str | os.PathLike | None = None, *, dim: int | None = None) -> EmbeddingCache:
        """The cache folder of the model with ``fingerprint`` (under ``root``, default the user cache).

        Args:
            fingerprint: the model's weights fingerprint (``polyret.models.fingerprint``).
            root: the folder holding one cache folder per model.
            dim: the model's embedding dimension; shards of another dimension are set aside.
        """
        base = Path(root) if root is not None else cache_dir() / "embeddings"
        return cls(base / fingerprint, dim=dim)

    @property
    def dim(self) -> int | None:
        """The dimension of the cached rows in use (None while the cache is empty)."""
        return self._shards[0].shape[1] if self._shards else None

    def _read_shard(self, path: Path) -> tuple[np.ndarray, np.ndarray]:
        """(keys, emb) of a shard that passes every check; CacheShardError naming the file otherwise."""
        try:
            with np.load(path, allow_pickle=False) as data:
                names = set(data.files)
                if "checksum" not in names:
                    raise LegacyShard(f"{path}: no checksum (written by an older polyret; re-encoding)")
                keys, emb, checksum = data["keys"], data["emb"], str(data["checksum"])
        except CacheShardError:
            raise
        except Exception as err:  # truncated, not a zip, a member missing or damaged
            raise CacheShardError(f"{path}: unreadable ({type(err).__name__}: {err})") from err
        if keys.dtype != np.uint8 or keys.ndim != 2 or keys.shape[1] != KEY_BYTES:
            raise CacheShardError(f"{path}: keys are {keys.dtype} {keys.shape}, expected (n, {KEY_BYTES}) uint8")
        if emb.dtype != np.float32 or emb.ndim != 2 or len(emb) != len(keys) or emb.shape[1] < 1:
            raise CacheShardError(f"{path}: embeddings are {emb.dtype} {emb.shape}, expected ({len(keys)}, dim) float32")
        if checksum != shard_checksum(self.root.name, keys, emb):
            raise CacheShardError(f"{path}: checksum mismatch (rows, keys or owner changed after writing)")
        if not np.isfinite(emb).all():
            bad = int(np.flatnonzero(~np.isfinite(emb).all(axis=1))[0])
            raise CacheShardError(f"{path}: row {bad} is not finite (NaN or infinity)")
        norms = np.linalg.norm(emb.astype(np.float64), axis=1)
        off = np.flatnonzero(np.abs(norms - 1.0) > NORM_TOLERANCE)
        if len(off):
            raise CacheShardError(f"{path}: row {int(off[0])} has norm {norms[off[0]]:.4g}, not 1 (not normalised)")
        return keys, emb

    def _set_aside(self, path: Path, reason: str, *, suffix: str = ".corrupt", quiet: bool = False) -> None:
        """Warn (naming the shard) and rename it ``*.corrupt`` so no later run reads it again."""
        target = path.with_name(path.name + suffix)
        try:
            os.replace(path, target)
            where = f"moved to {target.name}"
        except OSError as err:
            where = f"could not be moved aside ({err})"
            quiet = False
        if not quiet:
            logger.warning("embedding cache shard ignored, its texts will be encoded again: %s; %s", reason, where)

    def _add(self, path: Path, keys: np.ndarray, emb: np.ndarray) -> None:
        shard_id = len(self._shards)
        self._shards.append(emb)
        self._paths.append(path)
        for row, key in enumerate(keys):
            self._index[key.tobytes() if isinstance(key, np.ndarray) else key] = (shard_id, row)

    def require_dim(self, dim: int) -> None:
        """Use only shards of ``dim`` (the model's dimension); set every other one aside, with a warning.

        Args:
            dim: the dimension the model produces.
        """
        if self._dim_known and self._dim == dim:
            return
        self._dim, self._dim_known = dim, True
        self._reindex()

    def __len__(self) -> int:
        return len(self._index)

    def __contains__(self, key: bytes) -> bool:
        return key in self._index

    def get(self, keys: Sequence[bytes]) -> tuple[np.ndarray | None, list[int]]:
        """Return (matrix with cached rows filled, positions still missing)."""
        missing = [i for i, k in enumerate(keys) if k not in self._index]
        if not self._shards or len(missing) == len(keys):
            return None, missing
        dim = self._shards[0].shape[1]
        out = np.zeros((len(keys), dim), dtype=np.float32)
        for i, k in enumerate(keys):
            hit = self._index.get(k)
            if hit is not None:
                out[i] = self._shards[hit[0]][hit[1]]
        return out, missing

    def put(self, keys: Sequence[bytes], emb: np.ndarray) -> None:
        """Append ``emb`` (rows aligned with ``keys``) as one checksummed shard, written atomically.

        Args:
            keys: text keys (:func:`text_key`).
            emb: (len(keys), dim) L2-normalised embeddings.
        """
        if len(keys) == 0:
            return
        emb = np.ascontiguousarray(emb, dtype=np.float32)
        if self._dim is not None and emb.shape[1] != self._dim:
            raise ValueError(f"{self.root}: cannot cache {emb.shape[1]}-dim rows beside {self._dim}-dim ones")
        self.root.mkdir(parents=True, exist_ok=True)
        # uint8 rows, not an "S16" array: numpy strips trailing NUL bytes from fixed-width bytes.
        key_arr = np.frombuffer(b"".join(keys), dtype=np.uint8).reshape(len(keys), KEY_BYTES)
        target = self.root / f"shard-{uuid.uuid4().hex}.npz"
        checksum = shard_checksum(self.root.name, key_arr, emb)
        # atomic_path names the shard on an OSError (a full disk says only ENOSPC) and leaves nothing behind
        with atomic_path(target) as tmp, open(tmp, "wb") as fh:
            np.savez(fh, keys=key_arr, emb=emb, checksum=np.asarray(checksum))
        if self._dim is None:
            self._dim = emb.shape[1]
        self._valid.append((target, key_arr, emb))
        self._add(target, key_arr, emb)


ProgressCallback = Callable[[int], None]


def encode(
    model,
    texts: Sequence[str],
    *,
    kind: str,
    batch_size: int = 64,
    cache: EmbeddingCache | None = None,
    progress: ProgressCallback | None = None,
    chunk_batches: int = 8,
    max_tokens: int = 4096,
) -> np.ndarray:
    """L2-normalised float32 embeddings of ``texts`` with the model's ``kind`` prompt ("query"/"passage").

    Texts already in ``cache`` are not encoded again; duplicates within ``texts`` are encoded once.
    Missing texts are encoded longest-first by TOKEN count, one batch at a time, and a batch holds at
    most ``batch_size`` texts and ``max_tokens`` padded tokens (padding is the dominant cost: one
    357-token outlier padded a 64-text batch to 16 s on 2 cores, against 1.5 s without it);
    ``progress(n_done)`` drives a progress bar, and every few batches are cached as soon as they are
    done, so an interrupted run keeps its work.
    """
    if kind not in ("query", "passage"):
        raise ValueError(f"kind must be 'query' or 'passage', not {kind!r}")
    prompt = (getattr(model, "prompts", None) or {}).get(kind, "")
    keys = [text_key(prompt, t) for t in texts]
    model_dim = _model_dim(model)
    if cache is not None and model_dim:
        cache.require_dim(model_dim)  # cached rows of another dimension are not this model's
    out, missing = cache.get(keys) if cache is not None else (None, list(range(len(texts))))

    # Encode each distinct missing text once.
    first_pos: dict[bytes, int] = {}
    for i in missing:
        first_pos.setdefault(keys[i], i)
    todo = list(first_pos.values())
    lengths = token_lengths(model, [prompt + texts[i] for i in todo])
    todo = [todo[j] for j in np.argsort(-lengths, kind="stable")]
    new_rows: dict[bytes, np.ndarray] = {}
    # One model.encode call per batch: sentence-transformers would re-sort a longer list by characters,
    # which mixes scripts of very different token counts in one batch and pads them all to the longest.
    sorted_lengths = np.sort(lengths)[::-1]
    pending_keys: list[bytes] = []
    pending_rows: list[np.ndarray] = []
    for start, stop in token_budget_batches(sorted_lengths, batch_size, max_tokens):
        chunk = todo[start:stop]
        emb = encode_batch(model, [texts[i] for i in chunk], kind=kind, batch_size=batch_size).astype(np.float32)
        bad = ~np.isfinite(emb).all(axis=1)
        if bad.any():  # never cached: the next run would set the shard aside and encode the texts again
            first = texts[chunk[int(np.flatnonzero(bad)[0])]]
            raise ValueError(
                f"the model produced non-finite embeddings for {int(bad.sum())} of {len(chunk)} "
                f"{kind} texts (e.g. {first[:80]!r}); check its weights and precision"
            )
        chunk_keys = [keys[i] for i in chunk]
        for key, row in zip(chunk_keys, emb):
            new_rows[key] = row
        pending_keys += chunk_keys
        pending_rows.append(emb)
        last = stop >= len(todo)
        if cache is not None and (len(pending_keys) >= batch_size * chunk_batches or last):
            cache.put(pending_keys, np.concatenate(pending_rows))  # a shard every few batches
            pending_keys, pending_rows = [], []
        if progress is not None:
            progress(len(chunk))

    if not texts:
        dim = model.get_sentence_embedding_dimension() or 0
        return np.zeros((0, dim), dtype=np.float32)
    if out is None:
        dim = next(iter(new_rows.values())).shape[0]
        out = np.zeros((len(texts), dim), dtype=np.float32)
    for i in missing:
        out[i] = new_rows[keys[i]]
    # Cached rows were normalised when written; renormalise anyway so foreign caches can't skew cosine.
    norms = np.linalg.norm(out, axis=1, keepdims=True)
    np.divide(out, np.maximum(norms, 1e-12), out=out)
    return out


def _model_dim(model) -> int | None:
    getter = getattr(model, "get_embedding_dimension", None) or getattr(model, "get_sentence_embedding_dimension", None)
    try:
        dim = getter() if callable(getter) else None
    except Exception:  # noqa: BLE001 - a model that cannot say: nothing to check against
        return None
    return int(dim) if isinstance(dim, (int, np.integer)) and dim > 0 else None


def token_budget_batches(lengths_desc: np.ndarray, batch_size: int, max_tokens: int) -> list[tuple[int, int]]:
    """(start, stop) batches over lengths sorted longest-first: at most ``batch_size`` texts and at most
    ``max_tokens`` padded tokens (= texts x longest) per batch, but always at least one text."""
    out = []
    start, n = 0, len(lengths_desc)
    while start < n:
        longest = max(int(lengths_desc[start]), 1)
        size = max(1, min(batch_size, max_tokens // longest))
        out.append((start, min(n, start + size)))
        start += size
    return out


def token_lengths(model, texts: Sequence[str]) -> np.ndarray:
    """Token counts (truncated like the model truncates), or character counts for models without a tokenizer."""
    tokenizer = getattr(model, "tokenizer", None)
    if tokenizer is None or not texts:
        return np.array([len(t) for t in texts], dtype=np.int64)
    max_len = getattr(model, "max_seq_length", None) or None
    ids = tokenizer(list(texts), add_special_tokens=True, truncation=max_len is not None, max_length=max_len)["input_ids"]
    return np.array([len(x) for x in ids], dtype=np.int64)


def count_missing(model, texts: Sequence[str], *, kind: str, cache: EmbeddingCache | None) -> int:
    """How many distinct texts ``encode`` would have to run through the model (for progress totals)."""
    prompt = (getattr(model, "prompts", None) or {}).get(kind, "")
    keys = {text_key(prompt, t) for t in texts}
    if cache is None:
        return len(keys)
    return sum(1 for k in keys if k not in cache)
