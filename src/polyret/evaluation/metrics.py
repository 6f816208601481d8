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

Names are parsed by ir_measures, the field's vocabulary (``AP``, ``AP@10``, ``nDCG@10``, ``R@100``,
``RR@10``, ``P@5``, ``Success@10``, ``Judged@10`` ...), including the trec_eval spellings it maps
(``map``, ``map_cut_10``, ``ndcg_cut_10``, ``recall_100``, ``P_5``, ``recip_rank``); polyret's own
lowercase names (``map@20``, ``recall@100``, ``mrr@10``, ``p@5``, ``success@10``) parse too. A measure
polyret has a kernel for (the six above with default parameters) is computed by the vectorised code
below and keyed by polyret's canonical name (``nDCG@10`` -> ``ndcg@10``, ``AP`` -> ``map``,
``RR@10`` -> ``mrr@10``, ``R@100`` -> ``recall@100``): results.json, CSVs, reports and MTEB files keep
those stable names whatever spelling was asked for. Any other measure ir_measures knows (``Judged@10``,
``AP(rel=2)@10``, ``nDCG(dcg='exp-log2')@10``, ``Bpref@100`` ...) is computed by ir_measures itself on
the run's top-k list (the rows with rank 1..k; a cutoff deeper than k is refused) and keyed by
ir_measures' own spelling. Note that polyret keeps only relevant judgements (rel > 0), so ``Judged@k``
counts judged-relevant documents. An unknown name is refused, naming what exists.
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

__all__ = ["DEFAULT_MEASURES", "Measure", "PerQuery", "canonical_measures", "macro", "parse_measure", "per_query", "per_setting"]

_NEEDS_CUTOFF = {"recall", "p", "success"}
# ir_measures' measure -> polyret's kernel, when the measure has no parameter but the cutoff
_IR_KERNELS = {"AP": "map", "nDCG": "ndcg", "R": "recall", "P": "p", "RR": "mrr", "Success": "success"}
_EXAMPLES = "polyret kernels: map, map@k, ndcg, ndcg@k, recall@k, p@k, mrr, mrr@k, success@k (or AP, nDCG@10, R@100, P@5, RR@10)"


@dataclass(frozen=True)
class Measure:
    """A parsed measure name.

    Args:
        kind: ``map``, ``ndcg``, ``recall``, ``p``, ``mrr`` or ``success`` (a polyret kernel), or ``ir``
            (computed by ir_measures).
        cutoff: the rank cutoff, or None for the full ranking.
        ir_name: for ``kind == "ir"``, ir_measures' canonical spelling (``Judged@10``).
    """

    kind: str  # map | ndcg | recall | p | mrr | success | ir
    cutoff: int | None  # None = full ranking
    ir_name: str = ""

    @property
    def name(self) -> str:
        """The stable key of the measure's values (polyret's name, or ir_measures' for ``ir``)."""
        if self.kind == "ir":
            return self.ir_name
        return self.kind if self.cutoff is None else f"{self.kind}@{self.cutoff}"

    def at(self, k: int) -> Measure:
        """The same kernel measure cut at ``k`` (a no-cutoff measure on a top-k run); ``ir`` ones unchanged."""
        return self if self.kind == "ir" else Measure(self.kind, k)


def _kernel(kind: str, cutoff: int | None, name: str) -> Measure:
    if cutoff is not None and cutoff < 1:
        raise ValueError(f"measure {name!r}: the cutoff must be >= 1")
    if cutoff is None and kind in _NEEDS_CUTOFF:
        raise ValueError(f"measure {name!r} needs a cutoff, e.g. {kind}@10")
    return Measure(kind, cutoff)


def _parse_ir(name: str):
    """ir_measures' measure for ``name`` (its own syntax, then trec_eval's), or None."""
    import ir_measures
    from ir_measures.util import parse_trec_measure

    try:
        return ir_measures.parse_measure(name)
    except Exception:  # noqa: BLE001 - ir_measures raises NameError / ValueError / SyntaxError for unknown text
        pass
    try:
        found = parse_trec_measure(name)
    except Exception:  # noqa: BLE001
        return None
    if len(found) != 1:
        spelled = ", ".join(str(m) for m in found)
        raise ValueError(f"measure {name!r} names {len(found)} measures ({spelled}); list them one by one")
    return found[0]


def parse_measure(name: str) -> Measure:
    """``"nDCG@10"`` -> Measure("ndcg", 10); ir_measures, trec_eval and polyret spellings (module docstring).

    Args:
        name: the measure name.

    Raises:
        ValueError: a name neither polyret nor ir_measures knows (the message lists what exists), a
            cutoff < 1, a measure that needs a cutoff without one.
    """
    text = str(name).strip()
    own = re.fullmatch(r"(map|ndcg|recall|p|mrr|success)(?:@(\d+))?", text)
    if own:
        return _kernel(own.group(1), int(own.group(2)) if own.group(2) else None, text)
    m = _parse_ir(text) if text else None
    if m is None:  # polyret's names in another case (MAP@10, Recall@100): what earlier releases accepted
        own = re.fullmatch(r"(map|ndcg|recall|p|mrr|success)(?:@(\d+))?", text.lower())
        if own:
            return _kernel(own.group(1), int(own.group(2)) if own.group(2) else None, text)
    if m is None:
        raise ValueError(f"unknown measure {name!r}; {_EXAMPLES}; or any measure ir_measures names, e.g. Judged@10, Bpref")
    params = dict(m.params)
    cutoff = params.pop("cutoff", None)
    if cutoff is not None and int(cutoff) < 1:
        raise ValueError(f"measure {name!r}: the cutoff must be >= 1")
    if m.NAME in _IR_KERNELS and not params:
        return _kernel(_IR_KERNELS[m.NAME], None if cutoff is None else int(cutoff), text)
    return Measure("ir", None if cutoff is None else int(cutoff), str(m))


def canonical_measures(names) -> list[str]:
    """The stable names of ``names`` (in order, duplicates dropped): ``["nDCG@10", "AP"]`` -> ``["ndcg@10", "map"]``.

    Args:
        names: measure names in any spelling :func:`parse_measure` accepts (a comma-separated string too).

    Raises:
        ValueError: an unknown name, or no name at all.
    """
    if isinstance(names, str):
        names = [n for n in names.split(",") if n.strip()]
    out = list(dict.fromkeys(parse_measure(n).name for n in names))
    if not out:
        raise ValueError(f"no measure given; {_EXAMPLES}")
    return out


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
    ir = [m for m in parsed if m.kind == "ir"]
    if ir and not as_trec_eval:
        bad = [m.name for m in ir if m.cutoff is None or m.cutoff > run.k]
        if bad:
            raise ValueError(
                f"measures {bad} are computed by ir_measures on the top {run.k} candidates of each query: "
                f"give each a cutoff <= {run.k} (e.g. {bad[0].split('@')[0]}@{min(10, run.k)}) or evaluate with a larger k"
            )
    if not run.exact_ranks and not as_trec_eval:
        full = [m.name for m in parsed if m.cutoff is None and m.kind != "ir"]
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
    ir_values = _ir_measures_values(run, ir, rel, starts) if ir else {}
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
        elif m.kind == "ir":
            val = ir_values[m.name]
        else:  # parse_measure guards this
            raise AssertionError(m.kind)
        out.values[m.name] = val
    return out


def _ir_measures_values(run: RunTable, measures: list[Measure], rel: np.ndarray, starts: np.ndarray) -> dict[str, np.ndarray]:
    """Per (setting, query) group of :func:`_groups`: values of measures polyret has no kernel for, by ir_measures.

    The run given to ir_measures is each group's listed candidates at ranks 1..k in polyret's order
    (scores ``-rank``, so ties keep polyret's order); the qrels are the group's relevant rows. A group
    ir_measures returns nothing for (no retrieved candidate) scores 0, as ``trec_eval -c`` counts it.
    """
    import ir_measures

    gid_of = {}
    keys = []
    s_rel, q_rel = run.setting[rel[starts]], run.query[rel[starts]]
    for g, (s_code, q_code) in enumerate(zip(s_rel.tolist(), q_rel.tolist())):
        key = f"{s_code}/{q_code}"
        gid_of[key] = g
        keys.append(key)
    qrels: dict[str, dict[str, int]] = {k: {} for k in keys}
    docs = run.doc_ids
    for i in rel.tolist():
        qrels[f"{run.setting[i]}/{run.query[i]}"][str(docs[run.doc[i]])] = int(run.relevance[i])
    listed = np.flatnonzero((run.rank >= 1) & (run.rank <= run.k))
    runs: dict[str, dict[str, float]] = {}
    for s_code, q_code, d, r in zip(run.setting[listed].tolist(), run.query[listed].tolist(), run.doc[listed].tolist(),
                                    run.rank[listed].tolist()):  # fmt: skip
        key = f"{s_code}/{q_code}"
        if key in gid_of:
            runs.setdefault(key, {})[str(docs[d])] = -float(r)
    out = {m.name: np.zeros(len(starts)) for m in measures}
    wanted = [ir_measures.parse_measure(m.name) for m in measures]
    names = {str(w): m.name for w, m in zip(wanted, measures)}
    for metric in ir_measures.iter_calc(wanted, qrels, runs):
        out[names[str(metric.measure)]][gid_of[metric.query_id]] = float(metric.value)
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
