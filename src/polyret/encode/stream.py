"""Windowed encoding: tokenize, length-sort and encode a bounded window of texts at a time.

A window (``WINDOW`` texts by default) is tokenized in one call only to count tokens, sorted
longest-first within itself, cut into token-budget batches (:func:`~polyret.encode.tokens.token_budget_batches`)
and run through :func:`polyret.models.encode_batch`, one batch per call: sentence-transformers would
re-sort a longer list by characters, which mixes scripts of very different token counts in one batch and
pads them all to the longest. Memory is one window's token ids plus the output rows, whatever the corpus.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, nullcontext

import numpy as np

from .. import models
from .. import precision as precisions
from ..precision import PRECISIONS
from .tokens import EncodeError, prompt_of, token_budget_batches, token_lengths

WINDOW = 16384  # texts tokenized and length-sorted together
STORE_DTYPES = ("float32", "float16")

BatchCallback = Callable[[np.ndarray, np.ndarray], None]


def check_precision(precision: str) -> str:
    """``precision`` if it is one of :data:`PRECISIONS`, else an :class:`EncodeError` naming it.

    Args:
        precision: "fp32", "bf16" or "fp16".
    """
    if precision not in PRECISIONS:
        raise EncodeError(f"precision: unknown {precision!r}; choose from {', '.join(PRECISIONS)}")
    return precision


def resolve_for(model, precision: str, device=None) -> str:
    """The precision ``model`` encodes in: ``auto`` resolved for its device (:func:`polyret.precision.resolve`:
    bf16 on a GPU or a CPU with native bf16, else fp16 on GPU / fp32), any other name checked and kept
    (an explicit bf16 on a CPU without bf16 instructions warns that it is emulated).

    Args:
        model: the model about to encode (its ``device`` decides).
        precision: "auto", "fp32", "bf16" or "fp16".
        device: the device to resolve for instead of the model's (e.g. a worker pool's first device).
    """
    if precision not in precisions.CHOICES:
        raise EncodeError(f"precision: unknown {precision!r}; choose from {', '.join(precisions.CHOICES)}")
    return precisions.resolve(precision, device if device is not None else model_device_type(model)).precision


def check_store_dtype(dtype: str) -> str:
    """``dtype`` if it is one of :data:`STORE_DTYPES`, else an :class:`EncodeError` naming it.

    Args:
        dtype: "float32" or "float16".
    """
    if str(dtype) not in STORE_DTYPES:
        raise EncodeError(f"store_dtype: unknown {dtype!r}; choose from {', '.join(STORE_DTYPES)}")
    return str(dtype)


def torch_dtype(precision: str):
    """The torch dtype of a precision name (None for fp32).

    Args:
        precision: "fp32", "bf16" or "fp16".
    """
    import torch

    return {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[check_precision(precision)]


def model_device_type(model) -> str:
    """The kind of device ``model`` is on (``"cpu"``, ``"cuda"``...; a lazy model's without loading it or torch)."""
    if isinstance(model, models.LazyModel):
        return model.device_type
    device = getattr(model, "device", None)
    return getattr(device, "type", None) or "cpu"


@contextmanager
def inference_precision(model, precision: str = "fp32"):
    """Run the block under autocast to ``precision`` on the model's device (weights stay float32).

    bf16 runs on CPU and GPU; fp16 on GPU (and on CPU where torch's CPU autocast supports it).

    Args:
        model: the model about to encode.
        precision: "fp32" (no autocast), "bf16" or "fp16".
    """
    dtype = torch_dtype(precision)
    if dtype is None:
        with nullcontext():
            yield
        return
    import torch

    with torch.autocast(device_type=model_device_type(model), dtype=dtype):
        yield


def _check_finite(emb: np.ndarray, texts: Sequence[str], kind: str) -> None:
    bad = ~np.isfinite(emb).all(axis=1)
    if bad.any():  # never cached or stored: a later run would set it aside and encode the texts again
        first = texts[int(np.flatnonzero(bad)[0])]
        raise ValueError(
            f"the model produced non-finite embeddings for {int(bad.sum())} of {len(texts)} "
            f"{kind} texts (e.g. {first[:80]!r}); check its weights and precision"
        )


def encode_window(
    model,
    texts: Sequence[str],
    *,
    kind: str,
    batch_size: int = 64,
    max_tokens: int = 4096,
    precision: str = "auto",
    pool: dict | None = None,
    on_batch: BatchCallback | None = None,
    dim: int | None = None,
    shard: tuple[int, int] | None = None,
) -> np.ndarray:
    """Float32 L2-normalised embeddings of one window of ``texts`` (rows in the order given).

    Args:
        model: a loaded SentenceTransformer.
        texts: the window (a list; keep it bounded, e.g. :data:`WINDOW` texts).
        kind: "query" or "passage" (the model's prompt for it applies).
        batch_size: most texts per batch.
        max_tokens: most padded tokens per batch (texts x longest).
        precision: "auto" (:func:`resolve_for`), "fp32", "bf16" or "fp16" inference (autocast).
        pool: a sentence-transformers multi-process pool (:func:`polyret.encode.sharded.device_pool`):
            the whole length-sorted window goes to the pool in one call, split into ``batch_size`` chunks.
        on_batch: ``on_batch(positions, rows)`` after each batch (positions index ``texts``).
        dim: the output dimension, for an empty window.
        shard: ``(rank, world_size)``: encode only the batches ``b % world_size == rank`` (every rank cuts
            the same batches, so each row comes out as one process would have made it); the rows of
            other ranks' batches are left zero (``on_batch`` says which rows were encoded).
    """
    prompt = prompt_of(model, kind)
    precision = resolve_for(model, precision)
    texts = list(texts)
    if not texts:
        return np.zeros((0, dim or 0), dtype=np.float32)
    lengths = token_lengths(model, [prompt + t for t in texts])
    order = np.argsort(-lengths, kind="stable")
    out: np.ndarray | None = None
    if pool is not None and shard is None:
        ordered = [texts[i] for i in order]
        chunk = max(1, min(batch_size, len(ordered)))
        emb = np.asarray(
            models.encode_batch(model, ordered, kind=kind, batch_size=batch_size, pool=pool, chunk_size=chunk),
            dtype=np.float32,
        )
        _check_finite(emb, ordered, kind)
        out = np.empty((len(texts), emb.shape[1]), dtype=np.float32)
        out[order] = emb
        if on_batch is not None:
            on_batch(order, emb)
        return out
    # one autocast region for the whole window: torch caches each weight's bf16/fp16 copy inside a region, so
    # the weights are cast once per window, not once per batch (the same casts: the embeddings are identical)
    with inference_precision(model, precision):
        for b, (start, stop) in enumerate(token_budget_batches(lengths[order], batch_size, max_tokens)):
            if shard is not None and b % shard[1] != shard[0]:
                continue
            idx = order[start:stop]
            batch = [texts[i] for i in idx]
            extra = {"pool": pool, "chunk_size": max(1, len(batch))} if pool is not None else {}
            emb = models.encode_batch(model, batch, kind=kind, batch_size=batch_size, **extra)
            emb = np.asarray(emb, dtype=np.float32)
            _check_finite(emb, batch, kind)
            if out is None:
                out = np.zeros((len(texts), emb.shape[1]), dtype=np.float32)
            out[idx] = emb
            if on_batch is not None:
                on_batch(idx, emb)
    if out is None:  # this rank had no batch in the window
        out = np.zeros((len(texts), dim or 0), dtype=np.float32)
    return out


def windows(n: int, size: int = WINDOW) -> Iterator[tuple[int, int]]:
    """(start, stop) windows covering ``range(n)``.

    Args:
        n: number of texts.
        size: texts per window.
    """
    if size < 1:
        raise EncodeError(f"window must be >= 1, got {size}")
    for start in range(0, n, size):
        yield start, min(n, start + size)


def text_slice(texts: Sequence[str], start: int, stop: int) -> list[str]:
    """``texts[start:stop]`` as a list of str, for lists and columnar text columns alike.

    Args:
        texts: any sequence of texts supporting ``len`` and slicing (or indexing), or an Arrow string
            array or chunked array (only the rows asked for are decoded).
        start: first position.
        stop: one past the last.
    """
    if hasattr(texts, "to_pylist") and hasattr(texts, "slice"):  # Arrow: decode just this slice
        return texts.slice(start, max(0, stop - start)).to_pylist()
    try:
        part = texts[start:stop]
    except TypeError:  # a sequence without slices
        part = [texts[i] for i in range(start, stop)]
    return [str(t) for t in part]


def encode_stream(
    model,
    texts: Sequence[str],
    *,
    kind: str,
    batch_size: int = 64,
    max_tokens: int = 4096,
    precision: str = "auto",
    pool: dict | None = None,
    window: int = WINDOW,
    progress: Callable[[int], None] | None = None,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """Every row of ``texts`` (no cache, no de-duplication), window by window, into one (N, dim) array.

    Args:
        model: a loaded SentenceTransformer.
        texts: the texts (a list or a columnar text column).
        kind: "query" or "passage".
        batch_size: most texts per batch.
        max_tokens: most padded tokens per batch.
        precision: inference precision ("auto": :func:`resolve_for`).
        pool: a multi-process pool (see :func:`encode_window`).
        window: texts tokenized and sorted together.
        progress: ``progress(n_done)`` after each batch.
        out: an (N, dim) array to fill (e.g. a memmap); allocated after the first window otherwise.
    """
    from .tokens import model_dim

    n = len(texts)
    dim = model_dim(model)
    precision = resolve_for(model, precision)
    for start, stop in windows(n, window):
        rows = encode_window(
            model,
            text_slice(texts, start, stop),
            kind=kind,
            batch_size=batch_size,
            max_tokens=max_tokens,
            precision=precision,
            pool=pool,
            on_batch=(lambda idx, emb: progress(len(idx))) if progress is not None else None,
        )
        if out is None:
            out = np.empty((n, rows.shape[1]), dtype=np.float32)
        out[start:stop] = rows
    if out is None:
        out = np.zeros((0, dim or 0), dtype=np.float32)
    return out
