"""Language bias in the multilingual pool, as pure functions of the run table.

In a multilingual setting every query has its answer in several languages (XQuAD-R / MLQA-R: one
parallel answer sentence per language). A language-agnostic retriever ranks those translations
together, wherever they fall; a biased one pulls the query's own language (or a favourite language)
ahead and pushes the others down. Two views of that:

* ``max_rank_distance``: how far apart the gold translations end up in the full ranking.
* ``same_language_preference``: how often the best-ranked gold answer is in the query's language,
  compared with the rate a language-blind ranking would give.

Both need the exact full ranks of every relevant row (exact backend); queries whose relevant rows
include an unretrieved one (rank 0, approximate backends) are skipped and counted.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from polyret.evaluation.runtable import RunTable


@dataclass
class _RelGroups:
    setting: np.ndarray  # per group: setting code
    query: np.ndarray  # per group: query index
    starts: np.ndarray  # group start offsets into the row arrays below
    rank: np.ndarray  # relevant rows, grouped, ascending rank
    doc: np.ndarray
    n_skipped: int


def _multi_groups(run: RunTable, family: str) -> _RelGroups:
    codes = [i for i, s in enumerate(run.settings) if s.family == family]
    rows = np.flatnonzero((run.relevance > 0) & np.isin(run.setting, codes))
    order = np.lexsort((run.rank[rows], run.query[rows], run.setting[rows]))
    rows = rows[order]
    s, q = run.setting[rows], run.query[rows]
    new = np.ones(len(rows), dtype=bool)
    new[1:] = (s[1:] != s[:-1]) | (q[1:] != q[:-1])
    starts = np.flatnonzero(new)
    gid = np.cumsum(new) - 1
    unretrieved = np.bincount(gid, weights=(run.rank[rows] <= 0), minlength=len(starts)) > 0
    keep_group = ~unretrieved
    keep_rows = keep_group[gid]
    sizes = np.diff(np.append(starts, len(rows)))[keep_group]
    rows = rows[keep_rows]
    new_starts = np.concatenate(([0], np.cumsum(sizes)[:-1])).astype(np.int64) if len(sizes) else np.empty(0, np.int64)
    return _RelGroups(
        setting=run.setting[rows[new_starts]] if len(rows) else np.empty(0, np.int16),
        query=run.query[rows[new_starts]] if len(rows) else np.empty(0, np.int32),
        starts=new_starts,
        rank=run.rank[rows].astype(np.int64),
        doc=run.doc[rows],
        n_skipped=int(unretrieved.sum()),
    )


def _lang_means(values: np.ndarray, langs: np.ndarray) -> dict[str, float]:
    return {str(lang): float(values[langs == lang].mean()) for lang in dict.fromkeys(langs.tolist())}


@dataclass
class RankDistance:
    """Maximum rank distance per query, per query language and overall (lower = less bias).

    Args:
        setting_names, query_ids, query_langs: per query.
        values: per query, worst gold rank minus best gold rank.
        per_language: mean over each query language's queries.
        mean: mean over languages of ``per_language``.
        n_skipped: queries left out (a gold answer was not retrieved: approximate search).
    """

    setting_names: list[str]  # per query
    query_ids: list[str]
    query_langs: list[str]
    values: np.ndarray  # per query: worst gold rank - best gold rank
    per_language: dict[str, float] = field(default_factory=dict)  # mean over that language's queries
    mean: float = float("nan")  # mean over languages of per_language
    n_skipped: int = 0  # queries left out: a gold answer was not retrieved (approximate search)


def max_rank_distance(run: RunTable, family: str = "multi") -> RankDistance:
    """Per query: rank of its worst-ranked relevant answer minus rank of its best-ranked one.

    Ranks are 1-based positions in the full ranking of the multilingual pool. Averaged per query
    language, then over languages (each language weighs the same). Queries with fewer than two
    relevant answers in the pool carry no information and are left out. This is the "maximum rank
    distance" language-bias measure used for the hybrid-batch-training study this toolkit follows
    (Elmahdy, Lin & Ahmad 2024, "Synergistic Approach for Simultaneous Optimization of Monolingual,
    Cross-lingual, and Multilingual Information Retrieval", arXiv:2408.10536) on XQuAD-R / MLQA-R.
    """
    g = _multi_groups(run, family)
    sizes = np.diff(np.append(g.starts, len(g.rank)))
    if len(g.starts):
        best = g.rank[g.starts]
        worst = g.rank[g.starts + sizes - 1]
        dist = (worst - best).astype(np.float64)
    else:
        dist = np.empty(0)
    keep = sizes >= 2
    dist, setting, query = dist[keep], g.setting[keep], g.query[keep]
    names = np.asarray(run.setting_names, dtype=object)
    langs = run.query_langs[query]
    per_lang = _lang_means(dist, langs) if len(dist) else {}
    return RankDistance(
        setting_names=names[setting].tolist(),
        query_ids=run.query_ids[query].tolist(),
        query_langs=langs.tolist(),
        values=dist,
        per_language=per_lang,
        mean=float(np.mean(list(per_lang.values()))) if per_lang else float("nan"),
        n_skipped=g.n_skipped,
    )


@dataclass
class LanguagePreference:
    """How often the best-ranked gold answer is in the query's own language.

    Args:
        query_ids, query_langs: per query.
        same_language: per query, 1.0 if its top-ranked gold answer is in the query language.
        chance: per query, the share of its gold answers in the query language.
        per_language, chance_per_language: those rates per query language.
        rate, chance_rate: means over languages of the two.
        preference: ``rate / chance_rate`` (1 = language-blind, > 1 = prefers its own language).
        top_answer_langs: query language -> language of the top gold answer -> count.
        n_skipped: queries left out.
    """

    query_ids: list[str]  # per query
    query_langs: list[str]
    same_language: np.ndarray  # per query: 1.0 if the top-ranked gold answer is in the query language
    chance: np.ndarray  # per query: share of its gold answers that are in the query language
    per_language: dict[str, float] = field(default_factory=dict)  # rate per query language
    chance_per_language: dict[str, float] = field(default_factory=dict)
    rate: float = float("nan")  # mean over languages of per_language
    chance_rate: float = float("nan")  # mean over languages of chance_per_language (1/L on XQuAD-R)
    preference: float = float("nan")  # rate / chance_rate: 1 = language-blind, > 1 = prefers own language
    top_answer_langs: dict[str, dict[str, int]] = field(default_factory=dict)  # query lang -> answer lang -> count
    n_skipped: int = 0


def same_language_preference(run: RunTable, family: str = "multi") -> LanguagePreference:
    """Share of queries whose best-ranked relevant answer is in the query's language, vs chance.

    Source: this operationalises the language bias described by Roy et al. 2020 ("LAReQA:
    Language-agnostic answer retrieval from a multilingual pool", EMNLP 2020, arXiv:2004.05484): a
    "weakly aligned" model prefers same-language answers over correct answers in other languages,
    while "strong alignment" is language-blind (their Figure 1 and Section 1). The exact statistic
    here is our own and is not copied from a paper: per query, 1 if the top-ranked gold answer is
    in the query language, else 0; its chance level is the share of that query's gold answers that
    are in the query language (1/L with one parallel answer per language), which is what a ranking
    blind to language would give in expectation. Only queries with gold answers both in and outside
    the query language count. Close in spirit to the "Language Preference Rate" of the MLAIRE
    protocol (Jang et al. 2026, arXiv:2605.07249), whose exact formula we did not verify.
    """
    g = _multi_groups(run, family)
    sizes = np.diff(np.append(g.starts, len(g.rank)))
    if len(g.starts) == 0:
        return LanguagePreference([], [], np.empty(0), np.empty(0), n_skipped=g.n_skipped)
    gid = np.repeat(np.arange(len(g.starts)), sizes)
    q_lang = run.query_langs[g.query]
    d_lang = run.doc_langs[g.doc]
    own = d_lang == q_lang[gid]
    n_own = np.bincount(gid, weights=own, minlength=len(g.starts))
    keep = (n_own > 0) & (n_own < sizes)
    top_lang = d_lang[g.starts]
    same = (top_lang == q_lang).astype(np.float64)[keep]
    chance = (n_own / sizes)[keep]
    langs = q_lang[keep]
    per_lang = _lang_means(same, langs) if len(same) else {}
    chance_lang = _lang_means(chance, langs) if len(same) else {}
    matrix: dict[str, dict[str, int]] = {}
    for ql, al in zip(langs.tolist(), top_lang[keep].tolist()):
        row = matrix.setdefault(ql, {})
        row[al] = row.get(al, 0) + 1
    rate = float(np.mean(list(per_lang.values()))) if per_lang else float("nan")
    chance_rate = float(np.mean(list(chance_lang.values()))) if chance_lang else float("nan")
    return LanguagePreference(
        query_ids=run.query_ids[g.query[keep]].tolist(),
        query_langs=langs.tolist(),
        same_language=same,
        chance=chance,
        per_language=per_lang,
        chance_per_language=chance_lang,
        rate=rate,
        chance_rate=chance_rate,
        preference=rate / chance_rate if chance_rate and chance_rate == chance_rate else float("nan"),
        top_answer_langs=matrix,
        n_skipped=g.n_skipped,
    )


_DEFINITIONS = {
    "max_rank_distance": "per query, rank of the worst-ranked relevant answer minus rank of the best-ranked "
    "one in the multilingual pool (ranks from 1); mean per query language, then over languages",
    "same_language_rate": "share of queries whose best-ranked relevant answer is in the query language "
    "(cf. LAReQA, Roy et al. 2020); same_language_chance is the rate of a language-blind ranker, "
    "same_language_preference = rate / chance (1 = no preference)",
}


@dataclass(frozen=True)
class BiasSummary:
    """Both language-bias measures of one run, without the per-query arrays.

    ``to_dict()`` is the ``language_bias`` block of results.json (flat; ``max_rank_distance`` is the
    headline number, lower is better).

    Args:
        max_rank_distance: mean over languages of the per-language mean maximum rank distance.
        same_language_rate: share of queries whose best-ranked gold answer is in the query language.
        same_language_chance: that share for a language-blind ranker.
        same_language_preference: rate / chance (1 = no preference).
        per_language: language -> {max_rank_distance, same_language_rate, same_language_chance}.
        top_answer_langs: query language -> language of the top gold answer -> count.
        n_queries: queries with a maximum rank distance.
        n_skipped: queries left out (a gold answer not retrieved).
    """

    max_rank_distance: float
    same_language_rate: float
    same_language_chance: float
    same_language_preference: float
    per_language: dict[str, dict[str, float]]
    top_answer_langs: dict[str, dict[str, int]]
    n_queries: int
    n_skipped: int

    def to_dict(self) -> dict[str, Any]:
        """The JSON block (with the measures' definitions), keys in results.json's order."""
        return {
            "max_rank_distance": self.max_rank_distance,
            "same_language_rate": self.same_language_rate,
            "same_language_chance": self.same_language_chance,
            "same_language_preference": self.same_language_preference,
            "per_language": self.per_language,
            "top_answer_langs": self.top_answer_langs,
            "n_queries": self.n_queries,
            "n_skipped": self.n_skipped,
            "definitions": dict(_DEFINITIONS),
        }


def summary(run: RunTable, family: str = "multi") -> BiasSummary:
    """Both measures of ``run``'s ``family`` settings (per-query arrays left out).

    Args:
        run: the pooled run table.
        family: the settings whose pools hold several languages (``"multi"``).
    """
    dist = max_rank_distance(run, family)
    pref = same_language_preference(run, family)
    langs = list(dict.fromkeys([*dist.per_language, *pref.per_language]))
    per_language = {
        lang: {
            "max_rank_distance": dist.per_language.get(lang, float("nan")),
            "same_language_rate": pref.per_language.get(lang, float("nan")),
            "same_language_chance": pref.chance_per_language.get(lang, float("nan")),
        }
        for lang in langs
    }
    return BiasSummary(
        max_rank_distance=dist.mean,
        same_language_rate=pref.rate,
        same_language_chance=pref.chance_rate,
        same_language_preference=pref.preference,
        per_language=per_language,
        top_answer_langs=pref.top_answer_langs,
        n_queries=len(dist.values),
        n_skipped=dist.n_skipped,
    )
