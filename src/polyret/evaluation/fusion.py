"""Reciprocal-rank fusion of TREC runs (Cormack, Clarke & Buettcher 2009, SIGIR).

``rrf(d) = sum over runs of 1 / (k + rank_run(d))`` per query, with ``k = 60`` as in the paper; a
document a run does not list adds nothing from that run. The fused run orders each query's documents
by fused score descending, ties by document id descending (trec_eval's order, the one polyret's search
uses), and ranks them 1..n. Columnar throughout: no Python object per line.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from polyret.data.records import DataError
from polyret.data.trec import TrecRun

__all__ = ["RRF_K", "fuse_rrf"]

RRF_K = 60


def fuse_rrf(runs: Sequence[TrecRun], *, k: int = RRF_K, tag: str = "rrf") -> TrecRun:
    """Fuse ``runs`` by reciprocal rank, per query id (the runs' query ids must be written alike).

    Args:
        runs: two or more runs read with :func:`polyret.data.trec.read_run_table`.
        k: the RRF constant (> 0); 60 in Cormack et al.
        tag: the fused run's tag.

    Returns:
        A ``TrecRun`` whose ``line`` is the 1-based position of each entry in the fused order and
        whose ``path`` names the inputs.

    Raises:
        DataError: fewer than two runs, or a non-positive ``k``.
    """
    if len(runs) < 2:
        raise DataError(f"reciprocal-rank fusion needs at least two runs, got {len(runs)}")
    if k <= 0:
        raise DataError(f"the RRF constant k must be > 0, got {k}")
    qid = np.concatenate([r.qids[r.query] for r in runs])
    doc = np.concatenate([r.docid for r in runs])
    contrib = np.concatenate([1.0 / (k + r.rank.astype(np.float64)) for r in runs])
    qids, q_code = np.unique(qid, return_inverse=True)
    docs, d_code = np.unique(doc, return_inverse=True)
    pair = q_code.astype(np.int64) * len(docs) + d_code
    pairs, p_code = np.unique(pair, return_inverse=True)
    fused = np.bincount(p_code, weights=contrib, minlength=len(pairs))
    f_query = (pairs // len(docs)).astype(np.int64)
    f_doc = (pairs % len(docs)).astype(np.int64)
    # docs ranks ascending = id descending among equal fused scores: sort by -score, then -doc code
    order = np.lexsort((-f_doc, -fused, f_query))
    f_query, f_doc, fused = f_query[order], f_doc[order], fused[order]
    first = np.ones(len(order), dtype=bool)
    first[1:] = f_query[1:] != f_query[:-1]
    starts = np.flatnonzero(first)
    group = np.cumsum(first) - 1
    rank = np.arange(len(order)) - starts[group] + 1
    # query codes in order of first appearance in the first run, then the others'
    seen_order = np.unique(q_code, return_index=True)[1]
    appear = np.argsort(np.argsort(seen_order))  # code -> rank of its first appearance
    by_appearance = np.lexsort((rank, appear[f_query]))
    f_query, f_doc, fused, rank = f_query[by_appearance], f_doc[by_appearance], fused[by_appearance], rank[by_appearance]
    order_codes = np.argsort(seen_order)  # codes sorted by first appearance
    recode = np.empty(len(qids), dtype=np.int32)
    recode[order_codes] = np.arange(len(qids), dtype=np.int32)
    return TrecRun(
        path=f"rrf({', '.join(r.path for r in runs)})",
        qids=qids[order_codes],
        query=recode[f_query],
        docid=docs[f_doc],
        rank=rank.astype(np.int32),
        score=fused,
        line=np.arange(1, len(order) + 1, dtype=np.int32),
        tag=tag,
    )
