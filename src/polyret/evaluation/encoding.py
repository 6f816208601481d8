"""A benchmark's texts -> embeddings: every question and candidate encoded once, through :mod:`polyret.encode`.

The first step of :func:`polyret.evaluation.evaluate` (and of the training-time evaluator): queries and small
candidate sets through the per-text cache, large candidate sets streamed into the corpus's memory-mapped
store. What comes out is two matrices aligned with ``benchmark.queries`` and ``benchmark.candidates``, the
input of :func:`polyret.evaluation.scoring.score`.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import nullcontext

import numpy as np

from ..data.records import Benchmark
from ..encode import (
    DEFAULT_CHUNK_ROWS,
    EmbeddingCache,
    EncodeError,
    count_missing,
    device_pool,
    encode,
    encode_stream,
    encode_to_store,
)
from ..encode.stream import check_store_dtype, resolve_for
from .config import STORE_THRESHOLD

__all__ = ["candidate_texts", "encode_benchmark"]


def candidate_texts(benchmark: Benchmark, with_context: bool = False) -> list[str]:
    """The text encoded for each candidate, aligned with ``benchmark.candidates``.

    Args:
        benchmark: the benchmark.
        with_context: each candidate sentence followed by its paragraph (when it has another one).
    """
    if not with_context:
        return [c.text for c in benchmark.candidates]
    return [f"{c.text} {c.context}".strip() if c.context and c.context != c.text else c.text for c in benchmark.candidates]


def encode_benchmark(
    model,
    benchmark: Benchmark,
    *,
    batch_size: int = 32,
    with_context: bool = False,
    cache: EmbeddingCache | None = None,
    progress: bool = True,
    max_tokens: int = 4096,
    precision: str = "auto",
    store_dtype: str = "float32",
    store_threshold: int = STORE_THRESHOLD,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    devices: Sequence[str] | None = None,
    distributed: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """(query embeddings, candidate embeddings), aligned with ``benchmark.queries`` / ``.candidates``.

    Queries, and the candidates of a benchmark with fewer than ``store_threshold`` of them, go through
    the per-text cache (:func:`polyret.encode.encode`: subsets and splits share rows). Larger candidate
    sets go to the corpus's memory-mapped :class:`~polyret.encode.EmbeddingStore` beside the model's cache
    (streamed in chunks, checksummed, resumable); the candidate matrix is then a read-only ``np.memmap``
    of ``store_dtype`` rows. Without a cache, a large candidate set is encoded window by window into one
    in-memory float32 matrix.

    Args:
        model: a loaded SentenceTransformer.
        benchmark: the benchmark.
        batch_size: most texts per batch.
        with_context: encode each candidate sentence followed by its paragraph.
        cache: the model's per-text cache (None: nothing on disk).
        progress: show progress bars.
        max_tokens: most padded tokens per batch.
        precision: "auto" (resolved for the model's device, or the first of ``devices``), "fp32", "bf16"
            or "fp16" inference.
        store_dtype: "float32" or "float16" rows in a store (the per-text cache keeps float32).
        store_threshold: candidates from which the store is used.
        chunk_rows: rows per store chunk (the unit written, verified and resumed).
        devices: encode with one worker process per device (sentence-transformers' pool).
        distributed: under torchrun every rank encodes its share and reads the others' (every rank
            must call; needs ``cache``, else every rank encodes everything).
    """
    precision = resolve_for(model, precision, device=devices[0] if devices else None)
    check_store_dtype(store_dtype)
    if store_threshold < 0:
        raise EncodeError(f"store_threshold must be >= 0, got {store_threshold}")
    q_texts = [q.text for q in benchmark.queries]
    n_cand = len(benchmark.candidates)
    big = n_cand >= store_threshold and n_cand > 0
    # a corpus for the store stays columnar (Arrow, decoded a window at a time), never a list of str
    c_texts = benchmark.candidates.texts if big and not with_context else candidate_texts(benchmark, with_context)
    common = {"batch_size": batch_size, "max_tokens": max_tokens, "precision": precision}

    def run(bar=None) -> tuple[np.ndarray, np.ndarray]:
        pool_cm = device_pool(model, devices, precision) if devices else nullcontext()
        with pool_cm as pool:
            out = []
            for name, texts, kind in (("queries", q_texts, "query"), ("candidates", c_texts, "passage")):
                task = None
                if kind == "passage" and big:
                    if bar is not None:
                        task = bar.add_task(f"{name} (store)", total=None)
                    tick = (lambda n, t=task: bar.advance(t, n)) if bar is not None else None
                    plan = (lambda todo, total, t=task: bar.update(t, total=todo)) if bar is not None else None
                    if cache is not None:
                        emb = encode_to_store(
                            model,
                            texts,
                            model_cache=cache.root,
                            kind=kind,
                            store_dtype=store_dtype,
                            chunk_rows=chunk_rows,
                            distributed=distributed,
                            pool=pool,
                            progress=tick,
                            on_plan=plan,
                            **common,
                        )
                    else:
                        if plan is not None:
                            plan(len(texts), len(texts))
                        emb = encode_stream(model, texts, kind=kind, pool=pool, progress=tick, **common)
                    out.append(emb)
                    continue
                tick = None
                if bar is not None:
                    todo = count_missing(model, texts, kind=kind, cache=cache, precision=precision)
                    if todo:  # a warm cache draws no empty bar
                        task = bar.add_task(f"{name} ({len(texts) - todo if cache is not None else 0} cached)", total=todo)
                        tick = lambda n, t=task: bar.advance(t, n)  # noqa: E731
                out.append(
                    encode(model, texts, kind=kind, cache=cache, progress=tick, distributed=distributed, pool=pool, **common)
                )
        return out[0], out[1]

    if not progress:
        return run()
    from polyret.progress import progress_display

    with progress_display("encoding", unit="texts") as bar:
        return run(bar)
