"""The faiss backend of ``build_run_table``: one index per distinct pool, for corpora too big to score densely.

``IndexFlatIP`` (exact scores, ranks only within the returned top-k) or ``IndexHNSWFlat``
(approximate). A relevant candidate outside the returned top-k gets rank 0 ("not retrieved") and its
exact dot-product score, so only cutoff metrics up to k are exact with this backend. Split from
``search.py`` (which holds the exact backend and the shared preparation) to keep each under 400 lines.
"""

from __future__ import annotations

import numpy as np

from polyret.data.records import Benchmark
from polyret.evaluation.search import _chunk_pairs, _Prepared, _Rows
from polyret.evaluation.settings import Setting

__all__ = ["emit_faiss", "search_faiss"]


def search_faiss(
    prep: _Prepared, benchmark: Benchmark, settings: list[Setting], k: int, chunk_size: int, out: _Rows, hnsw_m: int | None
) -> None:
    """Add every setting's rows to ``out``: one faiss index per distinct pool, queries in chunks.

    Args:
        prep: the candidates grouped by language, the queries and their relevant pairs.
        benchmark: the benchmark the embeddings belong to.
        settings: the settings to search (their order gives the setting codes).
        k: candidates retrieved per query.
        chunk_size: queries searched at once.
        out: the run-table rows being built.
        hnsw_m: links per node of an HNSW index (approximate), or None for an exact IndexFlatIP.
    """
    import faiss  # optional heavy dependency, only for big corpora

    lang_code = {lang: i for i, lang in enumerate(prep.langs)}
    q_lang = np.asarray([q.lang for q in benchmark.queries], dtype=str)
    dim = prep.cands.shape[1]
    indexes: dict[tuple[int, ...], tuple[object, np.ndarray]] = {}
    for code, setting in enumerate(settings):
        pool = tuple(sorted(lang_code[y] for y in setting.pool_langs if y in lang_code))
        if not pool:
            continue
        if pool not in indexes:
            cols = np.concatenate([prep.perm[prep.start[li] : prep.start[li + 1]] for li in pool])
            if hnsw_m:
                index = faiss.IndexHNSWFlat(dim, hnsw_m, faiss.METRIC_INNER_PRODUCT)
            else:
                index = faiss.IndexFlatIP(dim)
            index.add(np.ascontiguousarray(prep.cands[cols]))
            indexes[pool] = (index, cols)
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
            exact_score = np.einsum("ij,ij->i", prep.queries[q_idx][pr], prep.cands[pd])
            score = np.where(found, scores.ravel()[hit], exact_score)
            t_valid = valid.ravel()
            emit_faiss(out, code, q_idx, t_docs, scores, t_rank, t_valid, pr, pd, pg, rank, score, len(prep.perm))


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
