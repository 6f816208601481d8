"""Fusion of TREC runs: reciprocal rank (RRF), CombSUM and CombMNZ.

* RRF (Cormack, Clarke & Buettcher 2009, SIGIR): ``rrf(d) = sum over runs of 1 / (k + rank_run(d))`` per
  query, with ``k = 60`` as in the paper.
* CombSUM and CombMNZ (Fox & Shaw 1994, "Combination of multiple searches", TREC-2), on scores min-max
  normalised per run and query as ranx defines them (Bassani 2022, ranx ``min_max_norm``):
  ``(s - min) / max(max - min, 1e-9)``. CombSUM is the sum of a document's normalised scores over the
  runs; CombMNZ multiplies that sum by the number of runs that list the document.

A document a run does not list adds nothing from that run. The fused run orders each query's documents
by fused score descending, ties by document id descending (trec_eval's order, the one polyret's search
uses), and ranks them 1..n. Columnar throughout: no Python object per line.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from polyret.data.records import DataError
from polyret.data.trec import TrecRun

__all__ = ["FUSION_METHODS", "MIN_MAX_EPS", "RRF_K", "fuse", "fuse_comb", "fuse_rrf", "min_max_norm"]

RRF_K = 60
MIN_MAX_EPS = 1e-9  # ranx's floor on max - min: a query whose scores are all equal normalises to 0
FUSION_METHODS = ("rrf", "combsum", "combmnz")


def min_max_norm(run: TrecRun) -> np.ndarray:
    """Each line's score min-max normalised within its query (ranx's ``min_max_norm``).

    Args:
        run: a run.

    Returns:
        float64 per line, in [0, 1].
    """
    n_q = len(run.qids)
    lo = np.full(n_q, np.inf)
    hi = np.full(n_q, -np.inf)
    np.minimum.at(lo, run.query, run.score)
    np.maximum.at(hi, run.query, run.score)
    return (run.score - lo[run.query]) / np.maximum(hi - lo, MIN_MAX_EPS)[run.query]


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
    contrib = [1.0 / (k + r.rank.astype(np.float64)) for r in runs]
    return _fuse(runs, contrib, multiply_by_count=False, tag=tag, label="rrf")


def fuse_comb(runs: Sequence[TrecRun], *, method: str = "combsum", tag: str | None = None) -> TrecRun:
    """CombSUM or CombMNZ of min-max normalised scores (ranx's definitions; module docstring).

    Args:
        runs: two or more runs read with :func:`polyret.data.trec.read_run_table`.
        method: ``"combsum"`` or ``"combmnz"``.
        tag: the fused run's tag (default: the method).

    Raises:
        DataError: fewer than two runs, an unknown method.
    """
    if method not in ("combsum", "combmnz"):
        raise DataError(f"unknown fusion method {method!r}; known: {', '.join(FUSION_METHODS)}")
    if len(runs) < 2:
        raise DataError(f"{method} fusion needs at least two runs, got {len(runs)}")
    contrib = [min_max_norm(r) for r in runs]
    return _fuse(runs, contrib, multiply_by_count=method == "combmnz", tag=tag or method, label=method)


def fuse(runs: Sequence[TrecRun], method: str, *, rrf_k: int = RRF_K) -> tuple[TrecRun, dict]:
    """Fuse ``runs`` with ``method`` (:data:`FUSION_METHODS`); returns the run and its recorded parameters.

    Args:
        runs: two or more runs.
        method: ``rrf``, ``combsum`` or ``combmnz``.
        rrf_k: the RRF constant (``rrf`` only).
    """
    if method == "rrf":
        return fuse_rrf(runs, k=rrf_k), {"method": "rrf", "k": rrf_k}
    if method in ("combsum", "combmnz"):
        return fuse_comb(runs, method=method), {
            "method": method,
            "normalization": "min-max per run and query (ranx)",
            "min_max_eps": MIN_MAX_EPS,
            "weights": [1.0] * len(runs),
        }
    raise DataError(f"unknown fusion method {method!r}; known: {', '.join(FUSION_METHODS)}")


def _fuse(runs: Sequence[TrecRun], contribs: list[np.ndarray], *, multiply_by_count: bool, tag: str, label: str) -> TrecRun:
    """Sum per (query id, docid) of ``contribs`` (one array per run, per line), times the count for MNZ."""
    contrib = np.concatenate(contribs)
    qid = np.concatenate([r.qids[r.query] for r in runs])
    doc = np.concatenate([r.docid for r in runs])
    qids, q_code = np.unique(qid, return_inverse=True)
    docs, d_code = np.unique(doc, return_inverse=True)
    pair = q_code.astype(np.int64) * len(docs) + d_code
    pairs, p_code = np.unique(pair, return_inverse=True)
    fused = np.bincount(p_code, weights=contrib, minlength=len(pairs))
    if multiply_by_count:
        fused = fused * np.bincount(p_code, minlength=len(pairs))
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
        path=f"{label}({', '.join(r.path for r in runs)})",
        qids=qids[order_codes],
        query=recode[f_query],
        docid=docs[f_doc],
        rank=rank.astype(np.int32),
        score=fused,
        line=np.arange(1, len(order) + 1, dtype=np.int32),
        tag=tag,
    )
