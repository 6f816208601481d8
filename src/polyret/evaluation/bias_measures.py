"""The published language-bias measures, each a pure function of the pooled run table.

Language bias in multilingual retrieval has no standard measure: since 2024 each paper brings its own.
This module computes them all from the one run table (:mod:`polyret.evaluation.runtable`), in the
multilingual settings (every query against the pool of all languages), per query, per query language
and macro-averaged over languages, so the report's significance tests and the hierarchical bootstrap
apply to them as to mAP. ``bias.py`` holds the two older ones (maximum rank distance, same-language
rate); :func:`compute` runs any selection of all of them.

============== ========================================================== ==========================
name           what                                                       better
============== ========================================================== ==========================
peer           PEER, Yang et al. SIGIR 2024 (arXiv 2405.00978)             high (1 = fair)
max_at_r       Max@R (arXiv 2604.05684): worst rank of the gold set       low
lpr            LPR@k (arXiv 2605.07249): query-language share of the      chance (``lpr_chance``)
               gold passages found in the top k
lang_ndcg      Lang-nDCG@k (arXiv 2605.07249): nDCG whose gain is lower   high
               for gold passages outside the query language
mrc            MRC (arXiv 2509.06195): mean Spearman correlation of the   high
               rankings parallel queries produce over the same pool
============== ========================================================== ==========================

Where a paper's definition leaves a choice open, the function's docstring states the choice made.
Queries a measure cannot score (no gold passage, a gold passage an approximate backend did not rank)
are left out and counted in ``n_skipped``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import stats

from .runtable import RunTable

__all__ = [
    "BIAS_MEASURES",
    "DEFAULT_BIAS_MEASURES",
    "BiasParams",
    "BiasValues",
    "check_bias_measures",
    "compute",
    "kruskal_peer",
    "lang_ndcg",
    "lpr",
    "max_at_r",
    "mrc",
    "peer",
]

# every selectable measure: the two of ``bias.py`` and the five here
BIAS_MEASURES = ("max_rank_distance", "same_language", "peer", "max_at_r", "lpr", "lang_ndcg", "mrc")
DEFAULT_BIAS_MEASURES = BIAS_MEASURES
BETTER = {"peer": "high", "max_at_r": "low", "lpr": "chance", "lang_ndcg": "high", "mrc": "high"}


def check_bias_measures(names: Sequence[str] | str | None) -> tuple[str, ...]:
    """The selection as a tuple (None: all); a ``ValueError`` names an unknown measure.

    Args:
        names: measure names (or one comma-separated string), from :data:`BIAS_MEASURES`.
    """
    if names is None:
        return DEFAULT_BIAS_MEASURES
    if isinstance(names, str):
        names = [n.strip() for n in names.split(",") if n.strip()]
    bad = [n for n in names if n not in BIAS_MEASURES]
    if bad:
        raise ValueError(f"bias_measures: unknown {bad[0]!r}; choose from {', '.join(BIAS_MEASURES)}")
    return tuple(dict.fromkeys(names))


@dataclass(frozen=True)
class BiasParams:
    """The free parameters of the measures (recorded in results.json's ``language_bias.parameters``).

    Args:
        lpr_k: the cutoff of LPR@k.
        lang_ndcg_k: the cutoff of Lang-nDCG@k.
        lang_ndcg_other_gain: gain of a gold passage outside the query language (1 inside it).
        peer_cutoff: PEER's rank cutoff (None: each query's retrieved list, the search's k).
        peer_weights: relevance level -> weight, summing to 1 (None: equal weights over level 0 and
            every positive level in the run).
    """

    lpr_k: int = 10
    lang_ndcg_k: int = 10
    lang_ndcg_other_gain: float = 0.5
    peer_cutoff: int | None = None
    peer_weights: dict[int, float] | None = None

    def __post_init__(self) -> None:
        for key in ("lpr_k", "lang_ndcg_k"):
            v = getattr(self, key)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"bias parameter {key} must be an integer >= 1, got {v!r}")
        if not 0.0 <= self.lang_ndcg_other_gain <= 1.0:
            raise ValueError(f"bias parameter lang_ndcg_other_gain must be in [0, 1], got {self.lang_ndcg_other_gain}")
        if self.peer_cutoff is not None and self.peer_cutoff < 1:
            raise ValueError(f"bias parameter peer_cutoff must be >= 1, got {self.peer_cutoff}")
        if self.peer_weights is not None and not math.isclose(sum(self.peer_weights.values()), 1.0):
            raise ValueError(f"bias parameter peer_weights must sum to 1, got {self.peer_weights}")


@dataclass
class BiasValues:
    """One measure over the multilingual settings of a run.

    Args:
        name: the measure (``peer``, ``max_at_r`` ...).
        setting_names, query_ids, query_langs: per scored query.
        values: per scored query.
        per_language: mean over each query language's queries.
        mean: mean over languages of ``per_language`` (each language weighs the same).
        n_skipped: queries the measure could not score.
        better: ``"high"``, ``"low"`` or ``"chance"``.
        extra: further numbers (``chance`` for LPR, the PEER weights actually used ...).
    """

    name: str
    setting_names: list[str]
    query_ids: list[str]
    query_langs: list[str]
    values: np.ndarray
    per_language: dict[str, float] = field(default_factory=dict)
    mean: float = float("nan")
    n_skipped: int = 0
    better: str = "high"
    extra: dict[str, Any] = field(default_factory=dict)


# ----------------------------------------------------------------------------------------- grouping
@dataclass
class _Lists:
    """Per (setting, query) of a family: its rows sorted by rank (unretrieved rank-0 rows last)."""

    setting: np.ndarray  # per group: setting code
    query: np.ndarray  # per group: query index
    bounds: np.ndarray  # group g is rows[bounds[g]:bounds[g + 1]]
    rows: np.ndarray  # row indices into the run table


def _lists(run: RunTable, family: str) -> _Lists:
    codes = [i for i, s in enumerate(run.settings) if s.family == family]
    rows = np.flatnonzero(np.isin(run.setting, codes))
    rank_key = np.where(run.rank[rows] > 0, run.rank[rows], np.iinfo(np.int32).max)
    rows = rows[np.lexsort((rank_key, run.query[rows], run.setting[rows]))]
    s, q = run.setting[rows], run.query[rows]
    new = np.ones(len(rows), dtype=bool)
    new[1:] = (s[1:] != s[:-1]) | (q[1:] != q[:-1])
    starts = np.flatnonzero(new)
    return _Lists(s[starts], q[starts], np.append(starts, len(rows)), rows)


def _list_length(ranks: np.ndarray) -> int:
    """How long a query's retrieved list is: the longest run of ranks 1, 2, 3 ... among its rows (sorted).

    A search keeps the top k plus each deeper gold row at its true rank, and polyret's TREC export
    writes the same rows, so this finds k in both (a run file does not state it); a plain run file of
    depth d gives d.
    """
    r = ranks[ranks > 0]  # ascending
    ok = r == np.arange(1, len(r) + 1)
    return int(len(r) if ok.all() else np.argmin(ok))


def _finish(
    name: str, run: RunTable, setting: list[int], query: list[int], values: list[float], n_skipped: int, **extra
) -> BiasValues:
    vals = np.asarray(values, dtype=np.float64)
    langs = run.query_langs[np.asarray(query, dtype=np.int64)] if query else np.empty(0, dtype=str)
    per_lang = {str(lg): float(vals[langs == lg].mean()) for lg in dict.fromkeys(langs.tolist())}
    names = np.asarray(run.setting_names, dtype=object)
    return BiasValues(
        name=name,
        setting_names=names[np.asarray(setting, dtype=np.int64)].tolist() if setting else [],
        query_ids=run.query_ids[np.asarray(query, dtype=np.int64)].tolist() if query else [],
        query_langs=langs.tolist(),
        values=vals,
        per_language=per_lang,
        mean=float(np.mean(list(per_lang.values()))) if per_lang else float("nan"),
        n_skipped=n_skipped,
        better=BETTER.get(name, "high"),
        extra=extra,
    )


# ---------------------------------------------------------------------------------------------- PEER
def kruskal_peer(samples: Sequence[Sequence[float]]) -> float:
    """The p-value of PEER's Kruskal-Wallis test over per-language rank samples (NaN = not retrieved).

    Follows the reference implementation (``peer-measure`` 0.0.1, by the paper's authors) exactly,
    including its choices: the statistic is computed on the rank POSITIONS themselves (not re-ranked
    within the sample); every unretrieved item takes the one value ``(2 N + U + 1) / 2`` (N = items in
    all groups, U = unretrieved items); empty groups are dropped; fewer than two groups, or only
    unretrieved items, give p = 1. ``H = (N - 1) SSG / SSA`` and p = ``chi2.sf(H, groups - 1)``.

    Args:
        samples: one list of ranks per language.
    """
    flat = [float(x) for s in samples for x in s]
    if not flat or all(math.isnan(x) for x in flat):
        return 1.0
    n_total = len(flat)
    n_unret = sum(1 for x in flat if math.isnan(x))
    fill = (2 * n_total + n_unret + 1) / 2
    groups = [np.asarray([fill if math.isnan(x) else x for x in s], dtype=np.float64) for s in samples if len(s)]
    if len(groups) < 2:
        return 1.0
    n = np.asarray([len(g) for g in groups], dtype=np.float64)
    alldata = np.concatenate(groups)
    r_bar = alldata.mean()
    ssg = float(np.square(np.asarray([g.mean() for g in groups]) - r_bar) @ n)
    ssa = float(np.square(alldata - r_bar).sum())
    if ssa == 0.0:  # every item at the same rank: no evidence of unequal expected ranks
        return 1.0
    h = (n.sum() - 1) * ssg / ssa
    return float(stats.chi2.sf(h, len(groups) - 1))


def peer(
    run: RunTable, family: str = "multi", *, cutoff: int | None = None, weights: dict[int, float] | None = None
) -> BiasValues:
    """PEER, Probability of Equal Expected Rank (Yang, Jänich, Mayfield & Lawrie, "Language Fairness in
    Multilingual Information Retrieval", SIGIR 2024, arXiv:2405.00978). Higher = fairer (1 = no
    evidence that documents of one language are ranked above equally relevant ones of another).

    Per query and per relevance level r (0 and every positive level): the ranks (top ``cutoff``) of the
    documents of level r, grouped by document language, are compared with a Kruskal-Wallis test
    (:func:`kruskal_peer`); relevant documents not in the top ``cutoff`` join their group as
    unretrieved. PEER(q) = sum over levels of weight(r) x p-value(r). Level 0 holds the retrieved
    non-relevant documents (as the reference implementation, which needs a 0 judgement per query).

    Choices: ``weights`` default to equal weights over level 0 and the positive levels present in the
    run ({0: .5, 1: .5} with binary judgements; the paper leaves them to the user); ``cutoff``
    defaults to the run's k. Note that with ONE gold passage per language (XQuAD-R, MLQA-R) every
    language group of level 1 holds one item, so its H is always N - 1 and its p-value a constant:
    on such pools only level 0 (where the non-relevant top-k documents sit) separates systems.

    Args:
        run: the pooled run table.
        family: the settings whose pools hold several languages.
        cutoff: the rank cutoff (None: each query's retrieved list, i.e. the search's k or a run file's depth).
        weights: relevance level -> weight, summing to 1.
    """
    if weights is None:
        levels = [0, *sorted(int(x) for x in np.unique(run.relevance[run.relevance > 0]))]
        weights = {lv: 1.0 / len(levels) for lv in levels}
    g = _lists(run, family)
    setting, query, values = [], [], []
    skipped = 0
    for i in range(len(g.setting)):
        rows = g.rows[g.bounds[i] : g.bounds[i + 1]]
        rel = run.relevance[rows]
        if not (rel > 0).any():
            skipped += 1
            continue
        rank = run.rank[rows]
        langs = run.doc_langs[run.doc[rows]]
        n = _list_length(rank)
        k = n if cutoff is None else min(int(cutoff), n)
        inside = (rank >= 1) & (rank <= k)
        levels = [0, *sorted(set(rel[rel > 0].tolist()))]
        total = 0.0
        for lv in levels:
            w = weights.get(lv, 0.0)
            if w == 0.0:
                continue
            sel = (rel == lv) & (inside if lv == 0 else True)
            by_lang: dict[str, list[float]] = {}
            for r, lg, ins in zip(rank[sel].tolist(), langs[sel].tolist(), inside[sel].tolist()):
                by_lang.setdefault(lg, []).append(float(r) if ins else float("nan"))
            total += w * kruskal_peer(list(by_lang.values()))
        setting.append(int(g.setting[i]))
        query.append(int(g.query[i]))
        values.append(total)
    return _finish(
        "peer", run, setting, query, values, skipped, weights={str(k_): v for k_, v in weights.items()}, cutoff=cutoff or "k"
    )


# ----------------------------------------------------------------------------------------------- Max@R
def max_at_r(run: RunTable, family: str = "multi") -> BiasValues:
    """Max@R (arXiv:2604.05684, ICLR 2026): the worst rank needed to recover ALL of a query's parallel
    gold passages, i.e. the largest true rank among its relevant candidates in the multilingual pool.
    Lower = the translations are found together near the top.

    Choice: ranks are 1-based positions in the full ranking of the pool (exact backend); a query with
    a gold passage an approximate backend did not rank (rank 0) is skipped, as is a query with none.

    Args:
        run: the pooled run table.
        family: the settings whose pools hold several languages.
    """
    g = _lists(run, family)
    setting, query, values = [], [], []
    skipped = 0
    for i in range(len(g.setting)):
        rows = g.rows[g.bounds[i] : g.bounds[i + 1]]
        ranks = run.rank[rows][run.relevance[rows] > 0]
        if len(ranks) == 0 or (ranks <= 0).any():
            skipped += 1
            continue
        setting.append(int(g.setting[i]))
        query.append(int(g.query[i]))
        values.append(float(ranks.max()))
    return _finish("max_at_r", run, setting, query, values, skipped)


# ------------------------------------------------------------------------------------ LPR, Lang-nDCG
def lpr(run: RunTable, family: str = "multi", *, k: int = 10) -> BiasValues:
    """LPR@k, Language Preference Rate (MLAIRE, Jang et al. 2026, arXiv:2605.07249): among the gold
    (parallel, equally relevant) passages a query gets in its top k, the share in the query language.
    Its chance level (``extra["chance"]``, macro over languages) is the share of the query's gold
    passages in its language (1/L with one per language); above chance = query-language preference.

    Choices (the protocol's exact formula was not verified against its text): only relevant passages
    count (so semantic misses do not move it); a query with no gold passage in the top k, or none in
    its language, is skipped; k defaults to 10.

    Args:
        run: the pooled run table.
        family: the settings whose pools hold several languages.
        k: the cutoff.
    """
    g = _lists(run, family)
    setting, query, values, chance = [], [], [], []
    skipped = 0
    for i in range(len(g.setting)):
        rows = g.rows[g.bounds[i] : g.bounds[i + 1]]
        rows = rows[run.relevance[rows] > 0]
        qlang = run.query_langs[g.query[i]]
        own = run.doc_langs[run.doc[rows]] == qlang
        top = (run.rank[rows] >= 1) & (run.rank[rows] <= k)
        if not top.any() or not own.any():
            skipped += 1
            continue
        setting.append(int(g.setting[i]))
        query.append(int(g.query[i]))
        values.append(float(own[top].mean()))
        chance.append(float(own.mean()))
    out = _finish("lpr", run, setting, query, values, skipped, k=k)
    ch = np.asarray(chance)
    langs = np.asarray(out.query_langs, dtype=str)
    per = {lg: float(ch[langs == lg].mean()) for lg in out.per_language}
    out.extra["chance_per_language"] = per
    out.extra["chance"] = float(np.mean(list(per.values()))) if per else float("nan")
    return out


def lang_ndcg(run: RunTable, family: str = "multi", *, k: int = 10, other_gain: float = 0.5) -> BiasValues:
    """Lang-nDCG@k (MLAIRE, Jang et al. 2026, arXiv:2605.07249): nDCG@k in which a relevant passage in
    the query language gains its full relevance and one in another language ``other_gain`` times it,
    normalised by the ideal ordering of the query's own gold passages (query-language ones first).
    Higher = correct AND in the reader's language.

    Choices (the protocol's exact gains were not verified against its text): gain = relevance x
    (1 if same language else ``other_gain``, default 0.5), discount 1 / log2(rank + 1), ideal DCG from
    every relevant passage of the query's pool; queries without a relevant passage are skipped.

    Args:
        run: the pooled run table.
        family: the settings whose pools hold several languages.
        k: the cutoff.
        other_gain: the gain factor of a relevant passage outside the query language, in [0, 1].
    """
    g = _lists(run, family)
    setting, query, values = [], [], []
    skipped = 0
    for i in range(len(g.setting)):
        rows = g.rows[g.bounds[i] : g.bounds[i + 1]]
        rows = rows[run.relevance[rows] > 0]
        if len(rows) == 0:
            skipped += 1
            continue
        qlang = run.query_langs[g.query[i]]
        gain = run.relevance[rows].astype(np.float64) * np.where(run.doc_langs[run.doc[rows]] == qlang, 1.0, other_gain)
        rank = run.rank[rows]
        top = (rank >= 1) & (rank <= k)
        dcg = float((gain[top] / np.log2(rank[top] + 1.0)).sum())
        ideal = np.sort(gain)[::-1][:k]
        idcg = float((ideal / np.log2(np.arange(2, len(ideal) + 2))).sum())
        if idcg <= 0:
            skipped += 1
            continue
        setting.append(int(g.setting[i]))
        query.append(int(g.query[i]))
        values.append(dcg / idcg)
    return _finish("lang_ndcg", run, setting, query, values, skipped, k=k, other_gain=other_gain)


# ------------------------------------------------------------------------------------------------ MRC
def _spearman(a: np.ndarray, b: np.ndarray) -> float:
    ra, rb = stats.rankdata(a), stats.rankdata(b)
    ra, rb = ra - ra.mean(), rb - rb.mean()
    den = math.sqrt(float(ra @ ra) * float(rb @ rb))
    return float(ra @ rb) / den if den > 0 else 1.0


def mrc(run: RunTable, family: str = "multi") -> BiasValues:
    """MRC, mean rank correlation (Yang, Jiang & Baldwin, "Language Bias in Information Retrieval: The
    Nature of the Beast and Mitigation Methods", arXiv:2509.06195): queries with the same meaning in
    different languages should rank the same multilingual pool the same way. Per query: the mean, over
    its parallel queries in the other languages (same query id), of the Spearman correlation of the two
    rankings. Higher = more language-consistent (1 = identical rankings).

    Choice: the run table keeps only each query's top k (the search's k; a run file's depth), so the
    correlation is computed on the UNION of the two top-k lists, a candidate missing from one list
    taking rank k + 1 there (ties get average ranks); queries without a parallel query in another
    language are skipped. Two disjoint lists give a negative value (about -0.75 for k = 20), two
    identical ones 1.

    Args:
        run: the pooled run table.
        family: the settings whose pools hold several languages.
    """
    lists: dict[str, dict[int, tuple[int, np.ndarray, np.ndarray]]] = {}  # qid -> query index -> (setting, docs, ranks)
    g = _lists(run, family)
    for i in range(len(g.setting)):
        rows = g.rows[g.bounds[i] : g.bounds[i + 1]]
        rows = rows[(run.rank[rows] >= 1) & (run.rank[rows] <= _list_length(run.rank[rows]))]
        order = np.argsort(run.doc[rows], kind="stable")
        qi = int(g.query[i])
        lists.setdefault(str(run.query_ids[qi]), {})[qi] = (int(g.setting[i]), run.doc[rows][order], run.rank[rows][order])
    setting, query, values = [], [], []
    skipped = 0
    for members in lists.values():
        if len(members) < 2:
            skipped += len(members)
            continue
        idx = list(members)
        sums = dict.fromkeys(idx, 0.0)
        counts = dict.fromkeys(idx, 0)
        for a_pos, a in enumerate(idx):
            _, da, ra = members[a]
            for b in idx[a_pos + 1 :]:
                _, db, rb = members[b]
                union = np.union1d(da, db)
                if len(union) == 0:  # neither query retrieved anything (a truncated run): no correlation
                    continue
                xa = np.full(len(union), len(da) + 1.0)
                xb = np.full(len(union), len(db) + 1.0)
                xa[np.searchsorted(union, da)] = ra
                xb[np.searchsorted(union, db)] = rb
                rho = _spearman(xa, xb)
                sums[a] += rho
                sums[b] += rho
                counts[a] += 1
                counts[b] += 1
        for qi in idx:
            if counts[qi] == 0:
                skipped += 1
                continue
            setting.append(members[qi][0])
            query.append(qi)
            values.append(sums[qi] / counts[qi])
    return _finish("mrc", run, setting, query, values, skipped, ranked_on="union of the two top-k lists")


# --------------------------------------------------------------------------------------------- compute
_DEFINITIONS = {
    "peer": "PEER (Yang et al. SIGIR 2024, arXiv:2405.00978): per query, weighted sum over relevance levels of the "
    "Kruskal-Wallis p-value that documents of each language have equal expected rank in the top cutoff; "
    "higher = fairer",
    "max_at_r": "Max@R (arXiv:2604.05684): per query, the worst true rank among its parallel gold passages; lower = less bias",
    "lpr": "LPR@k (MLAIRE, arXiv:2605.07249): share of the gold passages in the top k that are in the query "
    "language; lpr_chance is the share a language-blind ranker gives",
    "lang_ndcg": "Lang-nDCG@k (MLAIRE, arXiv:2605.07249): nDCG@k with gain 1 for a relevant passage in the query "
    "language and lang_ndcg_other_gain for one in another language",
    "mrc": "MRC (arXiv:2509.06195): per query, mean Spearman correlation with the rankings of its parallel queries "
    "in the other languages, on the union of the two top-k lists; higher = more consistent",
}


def compute(
    run: RunTable, measures: Sequence[str] | None = None, params: BiasParams | None = None, family: str = "multi"
) -> dict[str, BiasValues]:
    """The measures of this module named in ``measures`` (others are ignored), as name -> values.

    Args:
        run: the pooled run table.
        measures: names from :data:`BIAS_MEASURES` (None: all).
        params: the measures' parameters (None: the defaults).
        family: the settings whose pools hold several languages.
    """
    params = params or BiasParams()
    wanted = check_bias_measures(measures)
    out: dict[str, BiasValues] = {}
    if "peer" in wanted:
        out["peer"] = peer(run, family, cutoff=params.peer_cutoff, weights=params.peer_weights)
    if "max_at_r" in wanted:
        out["max_at_r"] = max_at_r(run, family)
    if "lpr" in wanted:
        out["lpr"] = lpr(run, family, k=params.lpr_k)
    if "lang_ndcg" in wanted:
        out["lang_ndcg"] = lang_ndcg(run, family, k=params.lang_ndcg_k, other_gain=params.lang_ndcg_other_gain)
    if "mrc" in wanted:
        out["mrc"] = mrc(run, family)
    return out


def add_to_block(block: dict[str, Any], values: dict[str, BiasValues], params: BiasParams) -> dict[str, Any]:
    """``block`` (the ``language_bias`` dict of results.json) with these measures added: the headline
    numbers flat, their per-language means under ``per_language``, parameters and definitions.

    Args:
        block: the block so far (``bias.summary(...).to_dict()`` or empty).
        values: :func:`compute`'s output.
        params: the parameters used.
    """
    out = dict(block)
    per_language = {lg: dict(v) for lg, v in out.get("per_language", {}).items()}
    for name, bv in values.items():
        out[name] = bv.mean
        if name == "lpr":
            out["lpr_chance"] = bv.extra.get("chance", float("nan"))
        for lg, v in bv.per_language.items():
            per_language.setdefault(lg, {})[name] = v
            if name == "lpr":
                per_language[lg]["lpr_chance"] = bv.extra["chance_per_language"].get(lg, float("nan"))
        out.setdefault("n_skipped_by_measure", {})[name] = bv.n_skipped
    out["per_language"] = per_language
    if values:
        out["parameters"] = {
            "lpr_k": params.lpr_k,
            "lang_ndcg_k": params.lang_ndcg_k,
            "lang_ndcg_other_gain": params.lang_ndcg_other_gain,
            **(
                {"peer_cutoff": values["peer"].extra["cutoff"], "peer_weights": values["peer"].extra["weights"]}
                if "peer" in values
                else {}
            ),
        }
        defs = dict(out.get("definitions", {}))
        defs.update({k: v for k, v in _DEFINITIONS.items() if k in values})
        out["definitions"] = defs
    out["better"] = {**out.get("better", {}), **{name: bv.better for name, bv in values.items()}}
    return out


def per_query_column(per_query, values: BiasValues) -> np.ndarray:
    """``values`` as a column aligned with a ``PerQuery`` table's rows (NaN where not scored).

    Args:
        per_query: a :class:`polyret.evaluation.results.PerQuery`.
        values: one measure's values.
    """
    lookup = {(s, q): v for s, q, v in zip(values.setting_names, values.query_ids, values.values.tolist())}
    return np.asarray([lookup.get((s, q), np.nan) for s, q in zip(per_query.setting, per_query.query_id)], dtype=np.float64)
