"""The faiss backends of ``build_run_table``: one index per distinct pool, for corpora too big to score densely.

``flat`` (``IndexFlatIP``: exact scores, exact top-k), ``ivf`` (``IndexIVFFlat``: approximate,
``nlist`` lists trained on a seeded sample, ``nprobe`` searched) or ``hnsw`` (``IndexHNSWFlat``:
approximate). Candidates are added in blocks of rows, so a memory-mapped embedding matrix is never
copied whole; the index holds the one copy faiss needs. With faiss-gpu installed (and GPUs visible)
Flat and IVF indexes are moved to every GPU (``index_cpu_to_all_gpus``) before the rows are added;
HNSW has no GPU version and stays on the CPU.

A relevant candidate outside the returned top-k gets rank 0 ("not retrieved") and its exact
dot-product score, so only measures with a cutoff up to k can be computed from such a run (a
no-cutoff ``map`` is refused by ``metrics.per_query`` and renamed ``map@k`` by ``evaluate``).
Split from ``search.py`` (the exact backend); both read ``searchdata.py`` (the shared preparation).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import numpy as np

from polyret.data.records import Benchmark
from polyret.evaluation.searchdata import _chunk_pairs, _Prepared, _Rows
from polyret.evaluation.settings import Setting

__all__ = ["FaissOptions", "emit_faiss", "search_faiss"]

logger = logging.getLogger(__name__)
_ADD_ROWS = 1 << 16  # candidate rows added to an index at a time


@dataclass(frozen=True)
class FaissOptions:
    """How the faiss index of a pool is built.

    Args:
        kind: ``"flat"`` (exact), ``"ivf"`` or ``"hnsw"`` (approximate).
        hnsw_m: links per node of an HNSW index.
        ivf_nlist: inverted lists of an IVF index (None: ``4 * sqrt(pool size)``, at most pool / 39).
        ivf_nprobe: lists searched per query.
        gpu: move Flat / IVF indexes to the GPUs (None: when faiss-gpu sees one).
        seed: the seed of the IVF training sample.
    """

    kind: str = "flat"
    hnsw_m: int = 32
    ivf_nlist: int | None = None
    ivf_nprobe: int = 16
    gpu: bool | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        if self.kind not in ("flat", "ivf", "hnsw"):
            raise ValueError(f"unknown faiss index kind {self.kind!r}; expected flat, ivf or hnsw")
        for name in ("hnsw_m", "ivf_nprobe"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.ivf_nlist is not None and self.ivf_nlist < 1:
            raise ValueError(f"ivf_nlist must be >= 1, got {self.ivf_nlist}")


def _use_gpu(faiss, opts: FaissOptions) -> bool:
    n_gpus = faiss.get_num_gpus() if hasattr(faiss, "get_num_gpus") else 0
    if opts.gpu and n_gpus == 0:
        raise ValueError("faiss on GPU was asked for, but this faiss has no GPU (install faiss-gpu) or sees none")
    return bool(n_gpus) and opts.gpu is not False and opts.kind != "hnsw"


def build_index(prep: _Prepared, cols: np.ndarray, opts: FaissOptions):
    """A faiss inner-product index over candidate rows ``cols`` (added in blocks).

    Args:
        prep: the prepared candidates (``prep.rows`` reads blocks of the embedding matrix).
        cols: the candidate rows of the pool, in the order the index numbers them.
        opts: the index kind and its parameters.
    """
    import faiss  # optional heavy dependency, only for big corpora

    dim = prep.queries.shape[1]
    n = len(cols)
    if opts.kind == "hnsw":
        index = faiss.IndexHNSWFlat(dim, opts.hnsw_m, faiss.METRIC_INNER_PRODUCT)
    elif opts.kind == "ivf":
        nlist = opts.ivf_nlist or max(1, int(4 * math.sqrt(n)))
        nlist = max(1, min(nlist, n // 39 or 1))  # faiss wants >= 39 training points per list
        index = faiss.IndexIVFFlat(faiss.IndexFlatIP(dim), dim, nlist, faiss.METRIC_INNER_PRODUCT)
    else:
        index = faiss.IndexFlatIP(dim)
    if _use_gpu(faiss, opts):
        index = faiss.index_cpu_to_all_gpus(index)
    if opts.kind == "ivf":
        rng = np.random.default_rng(opts.seed)
        sample = np.sort(rng.choice(n, size=min(n, 256 * index.nlist), replace=False))
        index.train(prep.rows(cols[sample]))
        faiss.ParameterSpace().set_index_parameter(index, "nprobe", min(opts.ivf_nprobe, index.nlist))
    for lo in range(0, n, _ADD_ROWS):
        index.add(prep.rows(cols[lo : lo + _ADD_ROWS]))
    return index


def search_faiss(
    prep: _Prepared, benchmark: Benchmark, settings: list[Setting], k: int, chunk_size: int, out: _Rows, opts: FaissOptions
) -> None:
    """Add every setting's rows to ``out``: one faiss index per distinct pool, queries in chunks.

    Args:
        prep: the candidates grouped by language, the queries and their relevant pairs.
        benchmark: the benchmark the embeddings belong to.
        settings: the settings to search (their order gives the setting codes).
        k: candidates retrieved per query.
        chunk_size: queries searched at once.
        out: the run-table rows being built.
        opts: the index kind (flat, ivf, hnsw) and its parameters.
    """
    lang_code = {lang: i for i, lang in enumerate(prep.langs)}
    q_lang = np.asarray([q.lang for q in benchmark.queries], dtype=str)
    indexes: dict[tuple[int, ...], tuple[object, np.ndarray]] = {}
    last_use = {}
    for code, setting in enumerate(settings):
        last_use[tuple(sorted(lang_code[y] for y in setting.pool_langs if y in lang_code))] = code
    for code, setting in enumerate(settings):
        pool = tuple(sorted(lang_code[y] for y in setting.pool_langs if y in lang_code))
        if not pool:
            continue
        if pool not in indexes:
            cols = np.concatenate([prep.perm[prep.start[li] : prep.start[li + 1]] for li in pool])
            indexes[pool] = (build_index(prep, cols, opts), cols)
        index, cols = indexes[pool]
        q_all = np.flatnonzero(q_lang == setting.query_lang)
        kk = min(k, len(cols))
        for lo in range(0, len(q_all), chunk_size):
            q_idx = q_all[lo : lo + chunk_size]
            pr, pd, pg = _chunk_pairs(prep, q_idx)
            sel = np.isin(prep.cand_lang[pd], pool)
            pr, pd, pg = pr[sel], pd[sel], pg[sel]
            if len(pr) == 0:
                continue
            scores, ids = index.search(np.ascontiguousarray(prep.queries[q_idx]), kk)
            valid = ids >= 0
            t_docs = np.where(valid, cols[np.where(valid, ids, 0)], -1)
            t_rank = np.broadcast_to(np.arange(1, kk + 1, dtype=np.int32), t_docs.shape)
            # where each relevant doc sits in its query's returned list, if anywhere
            flat_keys = np.arange(len(q_idx), dtype=np.int64)[:, None] * len(prep.perm) + t_docs
            flat_keys = np.where(valid, flat_keys, -1).ravel()
            order = np.argsort(flat_keys, kind="stable")
            probe = pr.astype(np.int64) * len(prep.perm) + pd
            at = np.clip(np.searchsorted(flat_keys[order], probe), 0, len(order) - 1)
            found = flat_keys[order][at] == probe
            hit = order[at]
            rank = np.where(found, hit % kk + 1, 0)
            exact_score = np.einsum("ij,ij->i", prep.queries[q_idx][pr], prep.rows(pd))
            score = np.where(found, scores.ravel()[hit], exact_score)
            t_valid = valid.ravel()
            emit_faiss(out, code, q_idx, t_docs, scores, t_rank, t_valid, pr, pd, pg, rank, score, len(prep.perm))
        if last_use[pool] == code:  # no later setting searches this pool: free its index
            del indexes[pool]


def emit_faiss(out, code, q_idx, t_docs, t_scores, t_rank, t_valid, pr, pd, pg, rank, score, n_cands) -> None:
    """Add one setting's rows for a query chunk: valid top-k minus relevant, then every relevant doc."""
    n, kk = t_docs.shape
    has_gold = np.bincount(pr, minlength=n) > 0
    rows = np.repeat(np.arange(n), kk)
    docs = t_docs.ravel()
    keep = t_valid & has_gold[rows] & ~np.isin(rows.astype(np.int64) * n_cands + docs, pr.astype(np.int64) * n_cands + pd)
    out.add(
        code,
        q_idx[rows[keep]],
        docs[keep],
        t_rank.ravel()[keep],
        t_scores.ravel()[keep],
        np.zeros(int(keep.sum()), dtype=np.int16),
    )
    out.add(code, q_idx[pr], pd, rank, score, pg)
