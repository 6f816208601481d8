"""The per-text embedding cache (small benchmarks) and :func:`encode`, the cached, de-duplicating encoder.

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

from polyret.errors import CacheShardError, LegacyShard

from .. import paths
from ..paths import cache_dir, set_aside
from .stream import WINDOW, check_precision, encode_window, resolve_for
from .tokens import model_dim, prompt_of

KEY_BYTES = 16
SHARD_FORMAT = "polyret-embeddings/2"
NORM_TOLERANCE = 1e-3  # rows are written L2-normalised; float32 noise is far below this

logger = logging.getLogger("polyret.encode")  # one logger for the package (warnings name files)


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
        self._variants: dict[str, EmbeddingCache] = {}
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
        failed = set_aside(path, suffix)
        where = failed or f"moved to {path.name + suffix}"
        if not quiet or failed:
            logger.warning("embedding cache shard ignored, its texts will be encoded again: %s; %s", reason, where)

    def _add(self, path: Path, keys: np.ndarray, emb: np.ndarray) -> None:
        shard_id = len(self._shards)
        self._shards.append(emb)
        self._paths.append(path)
        for row, key in enumerate(keys):
            self._index[key.tobytes() if isinstance(key, np.ndarray) else key] = (shard_id, row)

    def refresh(self) -> int:
        """Read shards written since this cache was opened (by another process or rank); returns the
        number of new rows. Shards that fail their checks are set aside as on open.
        """
        known = {path for path, _, _ in self._valid}
        new = 0
        if not self.root.is_dir():
            return 0
        for shard in sorted(self.root.glob("shard-*.npz")):
            if shard in known:
                continue
            try:
                keys, emb = self._read_shard(shard)
            except LegacyShard as err:
                self._set_aside(shard, str(err), suffix=".legacy")
                continue
            except CacheShardError as err:
                self._set_aside(shard, str(err))
                continue
            if self._dim is None:
                self._dim = emb.shape[1]
            if emb.shape[1] != self._dim:
                self._set_aside(shard, f"{shard}: dimension {emb.shape[1]}, but the model produces {self._dim}")
                continue
            self._valid.append((shard, keys, emb))
            self._add(shard, keys, emb)
            new += len(keys)
        return new

    def variant(self, precision: str) -> EmbeddingCache:
        """The cache of the same model encoded at another inference ``precision``: a sibling folder
        ``<fingerprint>@<precision>`` (its shards' checksums name it, so rows never mix); ``self`` for fp32.

        Args:
            precision: "fp32", "bf16" or "fp16".
        """
        if check_precision(precision) == "fp32":
            return self
        if precision not in self._variants:
            root = self.root.with_name(f"{self.root.name}@{precision}")
            self._variants[precision] = EmbeddingCache(root, dim=self._dim if self._dim_known else None)
        return self._variants[precision]

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
        with paths.atomic_path(target) as tmp, open(tmp, "wb") as fh:
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
    precision: str = "auto",
    window: int = WINDOW,
    distributed: bool = False,
    pool: dict | None = None,
) -> np.ndarray:
    """L2-normalised float32 embeddings of ``texts`` with the model's ``kind`` prompt ("query"/"passage").

    Texts already in ``cache`` are not encoded again; duplicates within ``texts`` are encoded once.
    Missing texts are encoded ``window`` at a time: each window is tokenized (only to count tokens),
    sorted longest-first by TOKEN count and cut into batches of at most ``batch_size`` texts and
    ``max_tokens`` padded tokens (padding is the dominant cost: one 357-token outlier padded a 64-text
    batch to 16 s on 2 cores, against 1.5 s without it). ``progress(n_done)`` drives a progress bar,
    and every ``chunk_batches`` batches are cached as soon as they are done, so an interrupted run keeps
    its work. This is the path for small benchmarks (one Python key per text); corpora go through
    :func:`polyret.encode.sharded.encode_to_store`.

    Args:
        model: a loaded SentenceTransformer.
        texts: the texts.
        kind: "query" or "passage".
        batch_size: most texts per batch.
        cache: the model's :class:`EmbeddingCache` (None: no cache).
        progress: called with the number of texts done after each batch.
        chunk_batches: batches per cache shard.
        max_tokens: most padded tokens per batch.
        precision: "auto" (bf16 on a GPU or a CPU with native bf16, else fp16 on GPU / fp32:
            :func:`polyret.precision.resolve`), "fp32", "bf16" or "fp16" inference; a resolved precision
            other than fp32 uses the cache's :meth:`EmbeddingCache.variant` folder.
        window: texts tokenized and length-sorted together.
        distributed: under a process group with a cache, every rank encodes its share of the missing
            texts into the cache, then all ranks wait for each other and read the others' rows
            (every rank must call). Without a cache, every rank encodes everything.
        pool: a sentence-transformers multi-process pool (:func:`polyret.encode.sharded.device_pool`).
    """
    from .. import distributed as dist

    prompt = prompt_of(model, kind)
    precision = resolve_for(model, precision)  # "auto" -> what this model's device runs: it keys the cache
    if cache is not None:
        cache = cache.variant(precision)
    keys = [text_key(key_prompt(model, kind, prompt), t) for t in texts]
    dim = model_dim(model)
    if cache is not None and dim:
        cache.require_dim(dim)  # cached rows of another dimension are not this model's
    sharded = distributed and cache is not None and dist.world_size() > 1
    if sharded:
        # the ranks split the MISSING texts, so they must agree on which are missing: each rank opened
        # the cache at its own time (a fast rank may already have written shards a slow rank then read).
        # Between the two barriers nobody writes, so every rank's refresh sees the same shards.
        dist.barrier()
        cache.refresh()
        dist.barrier()
    out, missing = cache.get(keys) if cache is not None else (None, list(range(len(texts))))

    first_pos: dict[bytes, int] = {}
    for i in missing:
        first_pos.setdefault(keys[i], i)
    todo = list(first_pos.values())
    shard = (dist.rank(), dist.world_size()) if sharded else None

    pending_keys: list[bytes] = []
    pending_rows: list[np.ndarray] = []
    encoded: list[int] = []  # positions this process encoded

    def flush() -> None:
        if cache is not None and pending_keys:
            cache.put(list(pending_keys), np.concatenate(pending_rows))  # a shard every few batches
        pending_keys.clear()
        pending_rows.clear()

    failure: BaseException | None = None
    try:
        step = max(1, window)
        for start in range(0, len(todo), step):
            win = todo[start : start + step]
            local: list[np.ndarray] = []  # positions in the window encoded here

            def on_batch(idx: np.ndarray, emb: np.ndarray, win=win, local=local) -> None:
                local.append(idx)
                encoded.extend(win[j] for j in idx)
                pending_keys.extend(keys[win[j]] for j in idx)
                pending_rows.append(emb)
                if len(pending_keys) >= batch_size * chunk_batches:
                    flush()
                if progress is not None:
                    progress(len(idx))

            rows = encode_window(
                model,
                [texts[i] for i in win],
                kind=kind,
                batch_size=batch_size,
                max_tokens=max_tokens,
                precision=precision,
                pool=pool,
                on_batch=on_batch,
                dim=dim,
                shard=shard,
            )
            flush()
            if out is None and rows.shape[1]:
                out = np.zeros((len(texts), rows.shape[1]), dtype=np.float32)
            if out is not None and local:
                here = np.concatenate(local)
                out[np.asarray(win)[here]] = rows[here]

    except BaseException as err:  # noqa: BLE001 - re-raised below, after telling the other ranks
        failure = err
    if sharded and not dist.all_ok(failure is None):  # also the barrier: every rank's shards are on disk
        if failure is not None:
            raise failure
        raise RuntimeError(f"{cache.root}: another rank failed while encoding its share")
    if failure is not None:
        raise failure

    if sharded:
        cache.refresh()
        done = set(encoded)
        others = [i for i in todo if i not in done]
        got, still = cache.get([keys[i] for i in others])
        if still:
            raise RuntimeError(
                f"{cache.root}: {len(still)} of {len(others)} texts other ranks should have encoded are not in the cache"
            )
        if others:
            if out is None:
                out = np.zeros((len(texts), got.shape[1]), dtype=np.float32)
            out[others] = got

    if not texts:
        return np.zeros((0, dim or 0), dtype=np.float32)
    if out is None:  # pragma: no cover - every text is cached or encoded above
        raise RuntimeError("nothing encoded and nothing cached")
    for i in missing:
        src = first_pos[keys[i]]
        if src != i:
            out[i] = out[src]
    # Cached rows were normalised when written; renormalise anyway so foreign caches can't skew cosine.
    norms = np.linalg.norm(out, axis=1, keepdims=True)
    np.divide(out, np.maximum(norms, 1e-12), out=out)
    return out


def count_missing(model, texts: Sequence[str], *, kind: str, cache: EmbeddingCache | None, precision: str = "auto") -> int:
    """How many distinct texts ``encode`` would have to run through the model (for progress totals).

    Args:
        model: the model.
        texts: the texts.
        kind: "query" or "passage".
        cache: the model's cache (None: every distinct text).
        precision: the inference precision (selects the cache variant; "auto" resolved as ``encode`` does).
    """
    prompt = prompt_of(model, kind)
    keys = {text_key(key_prompt(model, kind, prompt), t) for t in texts}
    if cache is None:
        return len(keys)
    cache = cache.variant(resolve_for(model, precision))
    return sum(1 for k in keys if k not in cache)


def key_prompt(model, kind: str, prompt: str) -> str:
    """What a cache key is made of besides the text: the prompt, and for a model that routes queries and
    passages differently (a sentence-transformers ``Router``) also the kind, so a passage never gets a
    cached query row of the same text and prompt."""
    from ..models import has_router

    return f"route={kind}\x00{prompt}" if has_router(model) else prompt
