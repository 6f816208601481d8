"""Encoding a corpus into its store from several processes (torchrun ranks) or devices (one process).

Under a process group (``torchrun``, ``accelerate launch``; see :mod:`polyret.distributed`) with
``distributed=True``, every rank encodes the chunks ``i`` with ``i % world_size == rank`` into the
shared store, then all wait; rank 0 writes the manifest; then every rank opens the complete store.
Every rank must make the same call. On one machine with several devices and no launcher,
``devices=["cuda:0", "cuda:1"]`` (or ``["cpu", "cpu"]``) runs sentence-transformers' multi-process
pool: one worker process per device, each window sent to the pool in ``batch_size`` chunks.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Callable, Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from .. import distributed as dist
from .store import DEFAULT_CHUNK_ROWS, EmbeddingStore, StoreError, corpus_fingerprint
from .stream import check_precision, check_store_dtype, encode_window, resolve_for, text_slice, torch_dtype
from .tokens import EncodeError, model_dim, prompt_of


@contextmanager
def device_pool(model, devices: Sequence[str], precision: str = "auto"):
    """A sentence-transformers multi-process pool with one worker per device, stopped on exit.

    sentence-transformers moves the model to the CPU to share it with the workers; it is moved back
    to its device afterwards. Below fp32 the workers get a copy of the model cast to that dtype
    (autocast does not cross process boundaries), so pool bf16 rounds the weights too.

    Args:
        model: a loaded SentenceTransformer.
        devices: e.g. ``["cuda:0", "cuda:1"]`` or ``["cpu", "cpu"]``.
        precision: "auto" (resolved for the first device), "fp32", "bf16" or "fp16".
    """
    devices = [str(d) for d in devices]
    if not devices:
        raise EncodeError("devices: give at least one device (e.g. cuda:0,cuda:1)")
    dtype = torch_dtype(resolve_for(model, precision, device=devices[0]))
    target = copy.deepcopy(model).to(dtype) if dtype is not None else model
    device = getattr(model, "device", None)
    pool = target.start_multi_process_pool(devices)
    try:
        yield pool
    finally:
        target.stop_multi_process_pool(pool)
        if target is model and device is not None:
            model.to(device)


def store_owner(model_cache: str | os.PathLike, precision: str) -> Path:
    """The model cache folder a store of ``precision`` lives under (``<fingerprint>@<precision>`` below fp32).

    Args:
        model_cache: the model's fp32 cache folder (``EmbeddingCache.root``).
        precision: "fp32", "bf16" or "fp16".
    """
    model_cache = Path(model_cache)
    if check_precision(precision) == "fp32":
        return model_cache
    return model_cache.with_name(f"{model_cache.name}@{precision}")


def encode_to_store(
    model,
    texts: Sequence[str],
    *,
    model_cache: str | os.PathLike,
    kind: str = "passage",
    batch_size: int = 64,
    max_tokens: int = 4096,
    precision: str = "auto",
    store_dtype: str = "float32",
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    distributed: bool = False,
    devices: Sequence[str] | None = None,
    pool: dict | None = None,
    progress: Callable[[int], None] | None = None,
    on_plan: Callable[[int, int], None] | None = None,
) -> np.ndarray:
    """Every row of ``texts`` (in order, no de-duplication) from the corpus's store, encoding what is missing.

    The store is keyed by the model cache folder (fingerprint, precision), the corpus fingerprint
    (ordered texts + prompt) and ``store_dtype``. A complete store is verified (each chunk's sha256)
    and returned; otherwise the chunks without a valid record are encoded (resuming an interrupted
    run), each chunk's texts tokenized and length-sorted together, and the manifest is written last.

    Args:
        model: a loaded SentenceTransformer.
        texts: the corpus texts (a list or a columnar text column with slicing).
        model_cache: the model's cache folder (``EmbeddingCache.root``).
        kind: "query" or "passage".
        batch_size: most texts per batch.
        max_tokens: most padded tokens per batch.
        precision: "auto" (:func:`~polyret.encode.stream.resolve_for`), "fp32", "bf16" or "fp16" inference;
            the store lives under the resolved precision's cache folder.
        store_dtype: "float32" or "float16" rows on disk.
        chunk_rows: rows per chunk (also the tokenize / sort window).
        distributed: shard the chunks over the process group's ranks (every rank must call).
        devices: one worker process per device (sentence-transformers' pool); not with ``distributed``.
        pool: a running pool (:func:`device_pool`) to use instead of starting one for ``devices``.
        progress: ``progress(n_done)`` after each batch.
        on_plan: ``on_plan(rows_to_encode, rows_total)`` once this process knows its share.

    Returns:
        A read-only (N, dim) ``np.memmap`` of ``store_dtype`` rows (L2-normalised when written).
    """
    prompt = prompt_of(model, kind)
    precision = resolve_for(model, precision, device=devices[0] if devices else None)
    check_store_dtype(store_dtype)
    world, me = (dist.world_size(), dist.rank()) if distributed else (1, 0)
    if (devices or pool is not None) and world > 1:
        raise EncodeError("devices: give either several devices or several ranks (torchrun), not both")
    dim = model_dim(model)
    if dim is None:  # a model that cannot say: one text tells
        dim = int(encode_window(model, text_slice(texts, 0, 1) or ["x"], kind=kind, batch_size=1).shape[1])
    store = EmbeddingStore.for_corpus(
        store_owner(model_cache, precision),
        corpus=corpus_fingerprint(texts, prompt, kind=kind),
        n=len(texts),
        dim=dim,
        dtype=store_dtype,
        chunk_rows=chunk_rows,
    )
    if me == 0:
        store.prepare()
    if world > 1:
        dist.barrier()
    mine = [i for i in range(store.n_chunks) if i % world == me]
    todo = [i for i in mine if not store.chunk_ok(i)]
    if on_plan is not None:
        on_plan(sum(store.chunk_range(i)[1] - store.chunk_range(i)[0] for i in todo), store.n)
    failure: BaseException | None = None
    try:
        if todo:
            _encode_chunks(model, texts, store, todo, kind, batch_size, max_tokens, precision, devices, pool, progress, dim)
    except BaseException as err:  # noqa: BLE001 - re-raised below, after telling the other ranks
        failure = err
    if world > 1 and not dist.all_ok(failure is None):
        if failure is not None:
            raise failure
        raise StoreError(f"{store.root}: another rank failed while encoding its chunks")
    if failure is not None:
        raise failure
    if me == 0 and (todo or not store.is_complete() or world > 1):
        store.finalize()
    if world > 1:
        dist.barrier()
    out = store.open(verify=False)  # every chunk was verified (or written) by its rank in this call
    if out is None:
        raise StoreError(f"{store.root}: incomplete after encoding (another rank failed?)")
    return out


def _encode_chunks(model, texts, store, todo, kind, batch_size, max_tokens, precision, devices, pool, progress, dim) -> None:
    """Encode and write the chunks ``todo`` of ``store`` (each chunk is one tokenize / sort window)."""
    pool_cm = device_pool(model, devices, precision) if devices and pool is None else None
    if pool_cm is not None:
        pool = pool_cm.__enter__()
    try:
        for i in todo:
            start, stop = store.chunk_range(i)
            rows = encode_window(
                model,
                text_slice(texts, start, stop),
                kind=kind,
                batch_size=batch_size,
                max_tokens=max_tokens,
                precision=precision,
                pool=pool,
                on_batch=(lambda idx, emb: progress(len(idx))) if progress is not None else None,
                dim=dim,
            )
            store.write_chunk(i, rows)
    finally:
        if pool_cm is not None:
            pool_cm.__exit__(None, None, None)
