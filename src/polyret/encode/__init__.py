"""Encode every text once per model: streamed, sharded over ranks or devices, into checksummed storage.

Two storages, picked by size (``polyret.evaluation.encoding.encode_benchmark``'s ``store_threshold``):

- :class:`EmbeddingCache` (``cache.py``): per-text rows keyed by (prompt, text), for small benchmarks,
  so a split, a language subset and the full benchmark share embeddings. :func:`encode` uses it.
- :class:`EmbeddingStore` (``store.py``): one memory-mapped (N, dim) matrix per (model, corpus), written
  in checksummed chunks with a manifest written last, resumable, for corpora (MIRACL-size).
  :func:`encode_to_store` (``sharded.py``) fills it from one process, several ranks or several devices.

``stream.py`` holds the windowed tokenize / length-sort / encode loop both use; ``tokens.py`` the
token counts and batch budgets.
"""

from __future__ import annotations

from ..paths import atomic_path
from .cache import (
    KEY_BYTES,
    NORM_TOLERANCE,
    SHARD_FORMAT,
    CacheShardError,
    EmbeddingCache,
    LegacyShard,
    ProgressCallback,
    count_missing,
    encode,
    shard_checksum,
    text_key,
)
from .sharded import device_pool, encode_to_store, store_owner
from .store import DEFAULT_CHUNK_ROWS, STORE_FORMAT, EmbeddingStore, StoreError, corpus_fingerprint
from .stream import PRECISIONS, STORE_DTYPES, WINDOW, encode_stream, encode_window, inference_precision
from .tokens import EncodeError, model_dim, prompt_of, token_budget_batches, token_lengths

__all__ = [
    "DEFAULT_CHUNK_ROWS",
    "KEY_BYTES",
    "NORM_TOLERANCE",
    "PRECISIONS",
    "SHARD_FORMAT",
    "STORE_DTYPES",
    "STORE_FORMAT",
    "WINDOW",
    "CacheShardError",
    "EmbeddingCache",
    "EmbeddingStore",
    "EncodeError",
    "LegacyShard",
    "ProgressCallback",
    "StoreError",
    "atomic_path",
    "corpus_fingerprint",
    "count_missing",
    "device_pool",
    "encode",
    "encode_stream",
    "encode_to_store",
    "encode_window",
    "inference_precision",
    "model_dim",
    "prompt_of",
    "shard_checksum",
    "store_owner",
    "text_key",
    "token_budget_batches",
    "token_lengths",
]
