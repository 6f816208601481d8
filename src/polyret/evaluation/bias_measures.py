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


_LISTS_MEMO: dict[tuple[int, str], _Lists] = {}  # filled by compute() for the duration of one call


def _lists(run: RunTable, family: str) -> _Lists:
    memo = _LISTS_MEMO.get((id(run), family))
    return memo if memo is not None else _build_lists(run, family)


def _build_lists(run: RunTable, family: str) -> _Lists:
    codes = [i for i, s in enumerate(run.settings) if s.family == family]
    rows = np.flatnonzero(np.isin(run.setting, codes))
    rank_key = np.where(run.rank[rows] > 0, run.rank[rows], np.iinfo(np.int32).max)
    rows = rows[np.lexsort((rank_key, run.query[rows], run.setting[rows]))]
    s, q = run.setting[rows], run.query[rows]
    new = np.ones(len(rows), dtype=bool)
    new[1:] = (s[1:] != s[:-1]) | (q[1:] != q[:-1])
    starts = np.flatnonzero(new)
    return _Lists(s[starts], q[starts], np.append(starts, len(rows)), rows)


def _list_lengths(run: RunTable, g: _Lists) -> np.ndarray:
    """How long each retrieved list of ``g`` is: the longest run of ranks 1, 2, 3 ... among its rows (rows
    are sorted by rank, rank-0 rows last). A search keeps the top k plus each deeper gold row at its true
    rank, and polyret's TREC export writes the same rows, so this finds k in both (a run file does not
    state it); a plain run file of depth d gives d."""
    n_lists = len(g.setting)
    if n_lists == 0:
        return np.zeros(0, dtype=np.int64)
    sizes = np.diff(g.bounds)
    lid = np.repeat(np.arange(n_lists), sizes)
    pos = np.arange(len(g.rows)) - g.bounds[lid] + 1  # 1-based position within the list
    bad = np.where(run.rank[g.rows] != pos, pos - 1, np.iinfo(np.int64).max)
    first_bad = np.minimum.reduceat(bad, g.bounds[:-1])
    return np.minimum(first_bad, sizes).astype(np.int64)


def _row_lists(g: _Lists) -> tuple[np.ndarray, np.ndarray]:
    """(list index, run-table row) of every row of ``g``, in ``g``'s order."""
    return np.repeat(np.arange(len(g.setting)), np.diff(g.bounds)), g.rows


def _doc_lang_is_query_lang(run: RunTable, rows: np.ndarray, query: np.ndarray) -> np.ndarray:
    """Per row: whether its document's language is its query's (codes compared, not strings)."""
    langs, codes = np.unique(np.concatenate([run.doc_langs, run.query_langs]).astype(str), return_inverse=True)
    doc_code, query_code = codes[: len(run.doc_langs)], codes[len(run.doc_langs) :]
    return doc_code[run.doc[rows]] == query_code[query]


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
    from scipy import special  # chi2.sf is special.chdtrc; scipy.stats would cost ~0.6 s more to import

    h = (n.sum() - 1) * ssg / ssa
    return float(special.chdtrc(len(groups) - 1, h))


def _kruskal_peer_many(sample: np.ndarray, group: np.ndarray, value: np.ndarray, n_samples: int) -> np.ndarray:
    """:func:`kruskal_peer` of many samples at once: item j belongs to sample ``sample[j]`` and to its
    language group ``group[j]`` (any integer code), with rank ``value[j]`` (NaN = unretrieved). Samples
    without items give 1. The same formula, with per-sample sums by ``np.bincount``.
    """
    p = np.ones(n_samples, dtype=np.float64)
    if len(sample) == 0:
        return p
    unret = np.isnan(value)
    n_tot = np.bincount(sample, minlength=n_samples).astype(np.float64)
    n_unret = np.bincount(sample, weights=unret, minlength=n_samples)
    fill = (2 * n_tot + n_unret + 1) / 2
    x = np.where(unret, fill[sample], value)
    # one code per (sample, language group)
    width = int(group.max()) + 1
    gid = sample.astype(np.int64) * width + group  # dense (sample, group) codes: no sort
    n_g = np.bincount(gid, minlength=n_samples * width).astype(np.float64)
    g_sample = np.arange(len(n_g)) // width
    n_groups = np.bincount(g_sample, weights=n_g > 0, minlength=n_samples)
    with np.errstate(invalid="ignore", divide="ignore"):
        r_bar = np.bincount(sample, weights=x, minlength=n_samples) / n_tot
        g_mean = np.bincount(gid, weights=x, minlength=len(n_g)) / n_g
        g_term = np.where(n_g > 0, np.square(g_mean - r_bar[g_sample]) * n_g, 0.0)  # empty groups add nothing
        ssg = np.bincount(g_sample, weights=g_term, minlength=n_samples)
        ssa = np.bincount(sample, weights=np.square(x - r_bar[sample]), minlength=n_samples)
        h = (n_tot - 1) * ssg / ssa
    ok = (n_tot > 0) & (n_unret < n_tot) & (n_groups >= 2) & (ssa != 0.0)
    if ok.any():
        from scipy import special  # chi2.sf is special.chdtrc; scipy.stats would cost ~0.6 s more to import

        p[ok] = special.chdtrc(n_groups[ok] - 1, h[ok])
    return p


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
    n_lists = len(g.setting)
    lid = np.repeat(np.arange(n_lists), np.diff(g.bounds))
    rel = run.relevance[g.rows]
    rank = run.rank[g.rows]
    _, doc_lang = np.unique(run.doc_langs.astype(str), return_inverse=True)
    lang = doc_lang[run.doc[g.rows]]
    n = _list_lengths(run, g)
    k = n if cutoff is None else np.minimum(int(cutoff), n)
    inside = (rank >= 1) & (rank <= k[lid])
    scored = np.bincount(lid, weights=rel > 0, minlength=n_lists) > 0
    total = np.zeros(n_lists, dtype=np.float64)
    for lv in sorted(weights):
        w = float(weights[lv])
        if w == 0.0:
            continue
        sel = (rel == lv) & (inside if lv == 0 else True)
        value = np.where(inside[sel], rank[sel].astype(np.float64), np.nan)
        p = _kruskal_peer_many(lid[sel], lang[sel], value, n_lists)
        # a positive level counts for the queries that hold it (level 0 for every query)
        present = np.bincount(lid[sel], minlength=n_lists) > 0 if lv != 0 else np.ones(n_lists, dtype=bool)
        total += np.where(present, w * p, 0.0)
    keep = np.flatnonzero(scored)
    setting, query, values = g.setting[keep].tolist(), g.query[keep].tolist(), total[keep].tolist()
    skipped = int(n_lists - len(keep))
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
    lid, rows = _row_lists(g)
    gold = run.relevance[rows] > 0
    n_lists = len(g.setting)
    n_gold = np.bincount(lid[gold], minlength=n_lists)
    unranked = np.bincount(lid[gold], weights=run.rank[rows][gold] <= 0, minlength=n_lists) > 0
    worst = np.zeros(n_lists, dtype=np.int64)
    np.maximum.at(worst, lid[gold], run.rank[rows][gold].astype(np.int64))
    keep = np.flatnonzero((n_gold > 0) & ~unranked)
    setting, query, values = g.setting[keep].tolist(), g.query[keep].tolist(), worst[keep].astype(np.float64).tolist()
    skipped = int(n_lists - len(keep))
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
    lid, rows = _row_lists(g)
    gold = run.relevance[rows] > 0
    lid, rows = lid[gold], rows[gold]
    n_lists = len(g.setting)
    own = _doc_lang_is_query_lang(run, rows, g.query[lid])
    top = (run.rank[rows] >= 1) & (run.rank[rows] <= k)
    n_top = np.bincount(lid, weights=top, minlength=n_lists)
    n_own = np.bincount(lid, weights=own, minlength=n_lists)
    n_own_top = np.bincount(lid, weights=own & top, minlength=n_lists)
    n_gold = np.bincount(lid, minlength=n_lists)
    keep = np.flatnonzero((n_top > 0) & (n_own > 0))
    setting, query = g.setting[keep].tolist(), g.query[keep].tolist()
    values = (n_own_top[keep] / n_top[keep]).tolist()
    chance = (n_own[keep] / n_gold[keep]).tolist()
    skipped = int(n_lists - len(keep))
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
    lid, rows = _row_lists(g)
    gold = run.relevance[rows] > 0
    lid, rows = lid[gold], rows[gold]
    n_lists = len(g.setting)
    gain = run.relevance[rows].astype(np.float64) * np.where(_doc_lang_is_query_lang(run, rows, g.query[lid]), 1.0, other_gain)
    rank = run.rank[rows]
    top = (rank >= 1) & (rank <= k)
    dcg = np.bincount(lid[top], weights=gain[top] / np.log2(rank[top] + 1.0), minlength=n_lists)
    # the ideal list: each query's gains in descending order, the first k of them
    order = np.lexsort((-gain, lid))
    lid_o, gain_o = lid[order], gain[order]
    first = np.searchsorted(lid_o, np.arange(n_lists))
    pos = np.arange(len(lid_o)) - first[lid_o]  # 0-based position in the ideal list
    head = pos < k
    idcg = np.bincount(lid_o[head], weights=gain_o[head] / np.log2(pos[head] + 2.0), minlength=n_lists)
    keep = np.flatnonzero(idcg > 0)
    setting, query = g.setting[keep].tolist(), g.query[keep].tolist()
    values = (dcg[keep] / idcg[keep]).tolist()
    skipped = int(n_lists - len(keep))
    return _finish("lang_ndcg", run, setting, query, values, skipped, k=k, other_gain=other_gain)


# ------------------------------------------------------------------------------------------------ MRC
def _union_spearman(present: np.ndarray, ranks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Spearman's rho of every pair of top-k lists over the union of the pair's two lists.

    Row a of ``present`` / ``ranks`` marks (1 / its rank 1..n_a) the documents of list a among the
    columns (the union of all the lists). On the union of lists a and b (size u), list a's value of a
    document it misses is n_a + 1 for all of them, i.e. the average rank n_a + (u - n_a + 1) / 2 after
    ``scipy.stats.rankdata``; its retrieved documents keep ranks 1..n_a. Then rho = cov / sqrt(var_a
    var_b) from sums over the intersection (three matrix products), in O(m^2 |union|) per group of m
    parallel queries instead of a rank transform per pair. Every sum is of integers and halves, so the
    value is the same as the per-pair Pearson correlation of the ranked vectors. A pair whose union is
    empty is not valid; a constant vector gives rho 1 (no evidence of disagreement).

    Returns:
        (rho, valid), both m x m; the diagonal is not valid.
    """
    n = present.sum(axis=1)
    inter = present @ present.T  # |a and b|
    rr = ranks @ ranks.T  # sum over a and b of r_a r_b
    ra_in_b = ranks @ present.T  # [a, b]: sum of a's ranks of the documents b also has
    u = n[:, None] + n[None, :] - inter
    fill_a = n[:, None] + (u - n[:, None] + 1) / 2
    fill_b = n[None, :] + (u - n[None, :] + 1) / 2
    tri = n * (n + 1) / 2
    sq = n * (n + 1) * (2 * n + 1) / 6
    mean2u = u * np.square((u + 1) / 2)
    cov = rr + fill_b * (tri[:, None] - ra_in_b) + fill_a * (tri[None, :] - ra_in_b.T) - mean2u
    var_a = sq[:, None] + (u - n[:, None]) * np.square(fill_a) - mean2u
    var_b = sq[None, :] + (u - n[None, :]) * np.square(fill_b) - mean2u
    den = np.sqrt(var_a * var_b)
    with np.errstate(invalid="ignore", divide="ignore"):
        rho = np.where(den > 0, cov / np.where(den > 0, den, 1.0), 1.0)
    valid = u > 0
    np.fill_diagonal(valid, False)
    return rho, valid


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
    g = _lists(run, family)
    n_lists = len(g.setting)
    lid = np.repeat(np.arange(n_lists), np.diff(g.bounds))
    rank = run.rank[g.rows]
    keep = (rank >= 1) & (rank <= _list_lengths(run, g)[lid])
    rows, lid, rank = g.rows[keep], lid[keep], rank[keep]
    order = np.lexsort((run.doc[rows], lid))  # per list, by document
    rows, lid, rank = rows[order], lid[order], rank[order]
    doc = run.doc[rows]
    starts = np.searchsorted(lid, np.arange(n_lists + 1))
    members_of: dict[str, dict[int, int]] = {}  # qid -> query index -> its (last) list
    for i, qi in enumerate(g.query.tolist()):
        members_of.setdefault(str(run.query_ids[qi]), {})[qi] = i
    setting, query, values = [], [], []
    skipped = 0
    for members in members_of.values():
        if len(members) < 2:
            skipped += len(members)
            continue
        idx = list(members)
        lists_ = [members[qi] for qi in idx]
        docs = [doc[starts[i] : starts[i + 1]] for i in lists_]
        union, inv = np.unique(np.concatenate(docs), return_inverse=True)
        m = len(idx)
        present = np.zeros((m, len(union)))
        ranks = np.zeros((m, len(union)))
        at = 0
        for a, i in enumerate(lists_):
            cols = inv[at : at + len(docs[a])]
            at += len(docs[a])
            present[a, cols] = 1.0
            ranks[a, cols] = rank[starts[i] : starts[i + 1]]
        rho, valid = _union_spearman(present, ranks)
        counts = valid.sum(axis=1)
        sums = np.where(valid, rho, 0.0).cumsum(axis=1)[:, -1]  # left to right, as pair by pair
        for a, qi in enumerate(idx):
            if counts[a] == 0:
                skipped += 1
                continue
            setting.append(int(g.setting[members[qi]]))
            query.append(qi)
            values.append(float(sums[a] / counts[a]))
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
    _LISTS_MEMO[(id(run), family)] = _build_lists(run, family)  # the lists every measure reads, grouped once
    try:
        return _compute(run, wanted, params, family)
    finally:
        _LISTS_MEMO.pop((id(run), family), None)


def _compute(run: RunTable, wanted: tuple[str, ...], params: BiasParams, family: str) -> dict[str, BiasValues]:
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


def per_query_columns(per_query, values: dict[str, BiasValues]) -> dict[str, np.ndarray]:
    """Measures as columns aligned with a ``PerQuery`` table's rows (NaN where not scored); the table's
    (setting, query) -> row index built once.

    Args:
        per_query: a :class:`polyret.evaluation.perquery.PerQuery`.
        values: name -> one measure's values.
    """
    row = {key: i for i, key in enumerate(zip(per_query.setting, per_query.query_id))}
    out = {}
    for name, bv in values.items():
        col = np.full(len(per_query.setting), np.nan, dtype=np.float64)
        idx = np.fromiter((row.get(key, -1) for key in zip(bv.setting_names, bv.query_ids)), dtype=np.int64, count=len(bv.values))
        found = idx >= 0
        col[idx[found]] = np.asarray(bv.values, dtype=np.float64)[found]
        out[name] = col
    return out
