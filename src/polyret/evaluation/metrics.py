"""Ranking metrics as pure functions of the run table, one definition each, trec_eval conventions.

Every measure only needs the relevant rows of a (setting, query): the table holds a row for EVERY
relevant candidate of the pool with its true rank (exact backend), so no-cutoff AP is exact.

* ``map``        average precision over the full ranking; denominator = relevant docs in the pool
                 (trec_eval ``map``). Relevant docs with rank 0 (not retrieved) contribute 0.
* ``map@k``      AP truncated at k, same denominator (trec_eval ``map_cut_k``).
* ``ndcg@k``     graded gain = relevance, discount log2(rank + 1), ideal from the pool's qrels
                 (trec_eval ``ndcg_cut_k``); ``ndcg`` without a cutoff is trec_eval ``ndcg``.
* ``recall@k``   relevant in the top k / relevant in the pool (trec_eval ``recall_k``).
* ``p@k``        relevant in the top k / k (trec_eval ``P_k``).
* ``mrr@k``      1 / rank of the first relevant doc if it is within k, else 0 (trec_eval
                 ``recip_rank`` on a run truncated at k); ``mrr`` has no cutoff.
* ``success@k``  1 if any relevant doc is within k.

Names parse like ir_measures (``AP``, ``AP@10``, ``nDCG@10``, ``R@100``, ``RR@10``, ``P@5``) and like
trec_eval (``map_cut_10``, ``ndcg_cut_10``, ``recall_100``, ``P_5``, ``recip_rank``).
A query with no relevant doc in a pool has no rows in that setting, so it is not averaged there.

A run without full ranks (``run.exact_ranks`` False: a faiss backend, which ranks only its top k)
cannot give a no-cutoff measure: ``per_query`` refuses ``map`` / ``ndcg`` / ``mrr`` there rather than
return a top-k number under the full-ranking name (``evaluate`` asks for ``map@k`` instead, and says so).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from polyret.evaluation.perquery import PerQuery
from polyret.evaluation.runtable import RunTable
from polyret.evaluation.settings import split_setting
from polyret.vocabulary import DEFAULT_MEASURES

__all__ = ["DEFAULT_MEASURES", "Measure", "PerQuery", "macro", "parse_measure", "per_query", "per_setting"]

_ALIASES = {
    "map": "map",
    "ap": "map",
    "map_cut": "map",
    "ndcg": "ndcg",
    "ndcg_cut": "ndcg",
    "recall": "recall",
    "r": "recall",
    "p": "p",
    "precision": "p",
    "mrr": "mrr",
    "rr": "mrr",
    "recip_rank": "mrr",
    "success": "success",
}
_NEEDS_CUTOFF = {"recall", "p", "success"}


@dataclass(frozen=True)
class Measure:
    """A parsed measure name.

    Args:
        kind: ``map``, ``ndcg``, ``recall``, ``p``, ``mrr`` or ``success``.
        cutoff: the rank cutoff, or None for the full ranking.
    """

    kind: str  # map | ndcg | recall | p | mrr | success
    cutoff: int | None  # None = full ranking

    @property
    def name(self) -> str:
        return self.kind if self.cutoff is None else f"{self.kind}@{self.cutoff}"


def parse_measure(name: str) -> Measure:
    """``"nDCG@10"`` -> Measure("ndcg", 10); accepts ir_measures and trec_eval spellings."""
    text = name.strip().lower()
    m = re.fullmatch(r"([a-z_]+?)(?:[@_](\d+))?", text)
    if not m or m.group(1) not in _ALIASES:
        raise ValueError(f"unknown measure {name!r}; expected e.g. map, map@10, ndcg@10, recall@100, mrr@10, p@5")
    kind = _ALIASES[m.group(1)]
    cutoff = int(m.group(2)) if m.group(2) else None
    if cutoff is not None and cutoff < 1:
        raise ValueError(f"measure {name!r}: the cutoff must be >= 1")
    if cutoff is None and kind in _NEEDS_CUTOFF:
        raise ValueError(f"measure {name!r} needs a cutoff, e.g. {kind}@10")
    return Measure(kind, cutoff)


def _groups(run: RunTable):
    """Relevant rows sorted by (setting, query, rank with unretrieved last) and their group ids."""
    rel = np.flatnonzero(run.relevance > 0)
    rank = run.rank[rel].astype(np.int64)
    rank_key = np.where(rank > 0, rank, np.iinfo(np.int64).max)
    order = np.lexsort((rank_key, run.query[rel], run.setting[rel]))
    rel = rel[order]
    s, q = run.setting[rel], run.query[rel]
    new = np.ones(len(rel), dtype=bool)
    new[1:] = (s[1:] != s[:-1]) | (q[1:] != q[:-1])
    starts = np.flatnonzero(new)
    gid = np.cumsum(new) - 1
    return rel, starts, gid


def per_query(run: RunTable, measures: tuple[str, ...] | list[str] = DEFAULT_MEASURES, *, as_trec_eval: bool = False) -> PerQuery:
    """Every measure for every (setting, query) that has a relevant doc in its pool.

    Args:
        run: the pooled run table.
        measures: measure names (see :func:`parse_measure`); values are keyed by the canonical name.
        as_trec_eval: score a run that ranks only its top k the way trec_eval scores a run file
            (relevant documents it does not retrieve count as never found), which is what an external
            run's ``map`` means; without it such a run refuses measures that need full ranks.

    Returns:
        A :class:`PerQuery`, rows grouped by setting in the run table's order.
    """
    parsed = [parse_measure(m) for m in measures]
    if not run.exact_ranks and not as_trec_eval:
        full = [m.name for m in parsed if m.cutoff is None]
        if full:
            raise ValueError(
                f"measures {full} need the full rank of every relevant document, but this run "
                f"({run.meta.get('backend', 'top-k only')}) ranks only its top {run.k}; ask for "
                f"{', '.join(f'{name}@{run.k}' for name in full)} or use the exact backend"
            )
        too_deep = [m.name for m in parsed if m.cutoff is not None and m.cutoff > run.k]
        if too_deep:
            raise ValueError(
                f"measures {too_deep} cut deeper than the {run.k} retrieved candidates of an approximate run; "
                "rebuild the run with a larger k or the exact backend"
            )
    rel, starts, gid = _groups(run)
    n_groups = len(starts)
    names = np.asarray(run.setting_names, dtype=object)
    queries = run.query[rel[starts]]
    out = PerQuery(
        setting=names[run.setting[rel[starts]]].tolist(),
        query_id=run.query_ids[queries].tolist(),
        query_lang=run.query_langs[queries].tolist(),
    )
    if n_groups == 0:
        out.values = {m.name: np.empty(0) for m in parsed}
        return out
    rank = run.rank[rel].astype(np.float64)
    gain = run.relevance[rel].astype(np.float64)
    retrieved = rank > 0
    n_rel = np.diff(np.append(starts, len(rel))).astype(np.float64)
    pos = np.arange(len(rel)) - starts[gid] + 1  # relevant docs ranked at or above this one
    safe_rank = np.where(retrieved, rank, 1.0)
    first_rank = rank[starts]

    ideal_gain = None
    for m in parsed:
        cut = np.inf if m.cutoff is None else float(m.cutoff)
        within = retrieved & (rank <= cut)
        if m.kind == "map":
            val = np.add.reduceat(np.where(within, pos / safe_rank, 0.0), starts) / n_rel
        elif m.kind == "ndcg":
            if ideal_gain is None:
                ideal_order = np.lexsort((-gain, gid))
                ideal_gain = gain[ideal_order]  # gains descending within each group, same group layout
            dcg = np.add.reduceat(np.where(within, gain / np.log2(safe_rank + 1.0), 0.0), starts)
            idcg = np.add.reduceat(np.where(pos <= cut, ideal_gain / np.log2(pos + 1.0), 0.0), starts)
            val = np.divide(dcg, idcg, out=np.zeros(n_groups), where=idcg > 0)
        elif m.kind == "recall":
            val = np.add.reduceat(within.astype(np.float64), starts) / n_rel
        elif m.kind == "p":
            val = np.add.reduceat(within.astype(np.float64), starts) / cut
        elif m.kind == "mrr":
            ok = (first_rank > 0) & (first_rank <= cut)
            val = np.where(ok, 1.0 / np.where(ok, first_rank, 1.0), 0.0)
        elif m.kind == "success":
            val = ((first_rank > 0) & (first_rank <= cut)).astype(np.float64)
        else:  # parse_measure guards this
            raise AssertionError(m.kind)
        out.values[m.name] = val
    return out


def per_setting(scores: PerQuery) -> dict[str, dict[str, float]]:
    """Mean of each measure over the queries of each setting (settings without queries omitted)."""
    names, codes = scores.setting_codes()
    n = np.bincount(codes, minlength=len(names))
    out: dict[str, dict[str, float]] = {}
    sums = {m: np.bincount(codes, weights=v, minlength=len(names)) for m, v in scores.values.items()}
    for code, name in enumerate(names):
        out[name] = {m: float(sums[m][code] / n[code]) for m in scores.values}
    return out


def macro(scores: PerQuery) -> dict[str, dict[str, float]]:
    """Per family: the mean over its settings of the per-setting means (each setting weighs the same)."""
    by_setting = per_setting(scores)
    grouped: dict[str, list[dict[str, float]]] = {}
    for name, vals in by_setting.items():
        grouped.setdefault(split_setting(name)[0], []).append(vals)
    return {fam: {m: float(np.mean([v[m] for v in rows])) for m in scores.values} for fam, rows in grouped.items()}
