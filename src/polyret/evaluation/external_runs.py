"""Score runs polyret did not produce (BM25 from pyserini, a vendor API, a fusion) in polyret's settings.

A TREC run becomes the same pooled :class:`RunTable` that ``evaluate()`` builds, so the same metrics,
language-bias measures, significance tests and reports apply. Query ids in the run take one of two
forms (one form per file):

* ``<setting>/<qid>@<lang>`` (what ``polyret evaluate --trec-run`` writes): one ranking per setting;
  the rank column is the rank in that setting's pool (a gap before a deeper line says that unlisted
  candidates sit in between, so a run may list its relevant candidates at their true depth).
* ``<qid>@<lang>``, or ``<qid>`` when the benchmark has one query per id: one ranking of the whole
  corpus per query. Each setting of that query's language gets the ranking restricted to its pool,
  ranked 1..n in the run's order (as trec_eval orders a run per pool).

Every (setting, query) with a relevant candidate in its pool is scored, whether or not the run lists
the query (a query the run leaves out scores 0, as ``trec_eval -c`` counts it); a relevant candidate
the run does not list is "not retrieved" (rank 0). Every line must name a query of the benchmark and a
candidate of its corpus, in the pool of its setting: anything else is a ``DataError`` naming file:line.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..data.records import Benchmark, DataError
from ..data.trec import TrecRun, read_run_table, trec_token
from ..paths import file_sha256
from ..vocabulary import DEFAULT_MEASURES
from . import metrics
from .results import Results
from .runtable import RunTable
from .scoring import add_unretrievable, language_bias, per_query_table, split_unretrievable
from .settings import Setting, settings_for, split_setting

__all__ = ["run_table_from_trec", "score_run"]


class _Index:
    """Numpy lookups into a benchmark: candidate ids, query (id, lang) pairs, relevant pairs."""

    def __init__(self, benchmark: Benchmark) -> None:
        self.cand_ids = np.asarray([c.id for c in benchmark.candidates], dtype=str)
        self.cand_langs = np.asarray([c.lang for c in benchmark.candidates], dtype=str)
        self.cand_order = np.argsort(self.cand_ids, kind="stable")
        self.cand_sorted = self.cand_ids[self.cand_order]
        # a run names a candidate by its TREC token (ids with whitespace percent-encoded, as polyret writes them)
        tokens = [trec_token(c) for c in self.cand_ids.tolist()]
        if tokens != self.cand_ids.tolist():
            tok = np.asarray(tokens, dtype=str)
            self.token_order = np.argsort(tok, kind="stable")
            self.token_sorted = tok[self.token_order]
        else:
            self.token_order, self.token_sorted = self.cand_order, self.cand_sorted
        self.query_ids = np.asarray([q.id for q in benchmark.queries], dtype=str)
        self.query_langs = np.asarray([q.lang for q in benchmark.queries], dtype=str)
        keys = np.char.add(np.char.add(self.query_ids, "@"), self.query_langs)
        self.qkey_order = np.argsort(keys, kind="stable")
        self.qkey_sorted = keys[self.qkey_order]
        self.qid_order = np.argsort(self.query_ids, kind="stable")
        self.qid_sorted = self.query_ids[self.qid_order]
        # relevant (query index, candidate index, gain), for every query row of the benchmark
        rq: list[int] = []
        rd: list[str] = []
        rg: list[int] = []
        for qi, q in enumerate(benchmark.queries):
            for docid, rel in benchmark.qrels.get(q.id, {}).items():
                if int(rel) > 0:
                    rq.append(qi)
                    rd.append(docid)
                    rg.append(int(rel))
        docs, found = self.lookup_docs(np.asarray(rd, dtype=str))
        keep = found  # judgements of absent docids are handled as unretrievable (evaluate's rule)
        self.rel_query = np.asarray(rq, dtype=np.int64)[keep]
        self.rel_doc = docs[keep]
        self.rel_gain = np.asarray(rg, dtype=np.int64)[keep]
        self.n_cands = len(self.cand_ids)
        rel_key = self.rel_query * max(self.n_cands, 1) + self.rel_doc
        order = np.argsort(rel_key, kind="stable")
        self.rel_key_sorted = rel_key[order]
        self.rel_gain_sorted = self.rel_gain[order]

    @staticmethod
    def _find(sorted_keys: np.ndarray, order: np.ndarray, wanted: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if not len(sorted_keys):
            return np.zeros(len(wanted), dtype=np.int64), np.zeros(len(wanted), dtype=bool)
        pos = np.searchsorted(sorted_keys, wanted)
        pos = np.minimum(pos, len(sorted_keys) - 1)
        found = sorted_keys[pos] == wanted
        return order[pos].astype(np.int64), found

    def lookup_docs(self, docids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return self._find(self.cand_sorted, self.cand_order, docids)

    def lookup_tokens(self, tokens: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Candidates named by a run's docid column (:func:`polyret.data.trec.trec_token` of their ids)."""
        return self._find(self.token_sorted, self.token_order, tokens)

    def gains(self, query: np.ndarray, doc: np.ndarray) -> np.ndarray:
        key = query.astype(np.int64) * max(self.n_cands, 1) + doc.astype(np.int64)
        if not len(self.rel_key_sorted):
            return np.zeros(len(key), dtype=np.int64)
        pos = np.minimum(np.searchsorted(self.rel_key_sorted, key), len(self.rel_key_sorted) - 1)
        hit = self.rel_key_sorted[pos] == key
        return np.where(hit, self.rel_gain_sorted[pos], 0)


def _resolve_queries(
    trec: TrecRun, benchmark: Benchmark, index: _Index, settings: dict[str, Setting], all_settings: set[str]
) -> tuple[str, np.ndarray, np.ndarray]:
    """Per distinct run qid: (form, benchmark query index, setting name index or -1); -1 query = dropped.

    ``form`` is ``"setting"`` or ``"plain"``. Raises a DataError at the first line of a bad qid.
    """
    first_line = np.full(len(trec.qids), np.iinfo(np.int32).max, dtype=np.int64)
    np.minimum.at(first_line, trec.query, np.arange(len(trec.query)))
    names = list(settings)
    n_langs_per_id: dict[str, int] = {}
    for qid in index.query_ids.tolist():
        n_langs_per_id[qid] = n_langs_per_id.get(qid, 0) + 1
    form: str | None = None
    q_index = np.full(len(trec.qids), -1, dtype=np.int64)
    s_index = np.full(len(trec.qids), -1, dtype=np.int64)
    for code in np.argsort(first_line, kind="stable"):
        raw = str(trec.qids[code])
        where = trec.where(int(first_line[code]))
        prefix, slash, rest = raw.partition("/")
        this_form = "plain"
        setting_name = None
        if slash:
            try:
                split_setting(prefix)
            except ValueError:
                pass
            else:
                this_form, setting_name, raw = "setting", prefix, rest
        if form is None:
            form = this_form
        elif this_form != form:
            want = "'<setting>/<qid>@<lang>'" if form == "setting" else "'<qid>@<lang>' or '<qid>'"
            raise DataError(f"{where}: query id {str(trec.qids[code])!r} is written unlike the lines before it ({want})")
        qid, at, lang = raw.rpartition("@")
        if at and lang in benchmark.languages:
            pos, found = index._find(index.qkey_sorted, index.qkey_order, np.asarray([f"{qid}@{lang}"], dtype=str))
            if not found[0]:
                raise DataError(
                    f"{where}: unknown query {qid!r} in language {lang!r}: benchmark {benchmark.id!r} has no such query"
                )
            qi = int(pos[0])
        elif setting_name is not None:
            raise DataError(_setting_id_message(where, str(trec.qids[code]), setting_name, lang if at else None, benchmark))
        else:
            n = n_langs_per_id.get(raw, 0)
            if n == 0:
                raise DataError(f"{where}: unknown query id {raw!r}: benchmark {benchmark.id!r} has no such query")
            if n > 1:
                raise DataError(
                    f"{where}: query id {raw!r} is ambiguous in benchmark {benchmark.id!r} ({n} languages share it); "
                    f"write it as '{raw}@<lang>'"
                )
            pos, _ = index._find(index.qid_sorted, index.qid_order, np.asarray([raw], dtype=str))
            qi = int(pos[0])
        lang_of_query = str(index.query_langs[qi])
        if setting_name is not None:
            if setting_name not in all_settings:
                raise DataError(f"{where}: {setting_name!r} is not a setting of benchmark {benchmark.id!r}")
            if split_setting(setting_name)[1] != lang_of_query:
                raise DataError(
                    f"{where}: query {raw!r} is in language {lang_of_query!r}, not the query language of {setting_name!r}"
                )
            if setting_name not in settings:  # a family or language left out on purpose
                continue
            s_index[code] = names.index(setting_name)
        q_index[code] = qi
    used = q_index[q_index >= 0] if form == "plain" else (q_index * (len(names) + 1) + s_index)[q_index >= 0]
    if len(np.unique(used)) != len(used):
        values, counts = np.unique(used, return_counts=True)
        twice = np.flatnonzero(np.isin(q_index if form == "plain" else q_index * (len(names) + 1) + s_index, values[counts > 1]))
        twice = twice[np.argsort(first_line[twice])]
        a, b = (str(trec.qids[c]) for c in twice[:2])
        raise DataError(f"{trec.where(int(first_line[twice[1]]))}: query id {b!r} names the same query as {a!r}")
    return form or "plain", q_index, s_index


def run_table_from_trec(
    trec: TrecRun,
    benchmark: Benchmark,
    *,
    families: Sequence[str] | None = None,
    languages: Sequence[str] | None = None,
) -> RunTable:
    """The pooled run table of an external run over ``benchmark`` (see the module docstring).

    Args:
        trec: the run (``read_run_table``).
        benchmark: the benchmark it ranks.
        families: setting families to score (None: the benchmark's own).
        languages: restrict query and pool languages to these (None: all of the benchmark's).

    Raises:
        DataError: naming file:line, for a query or candidate the benchmark lacks, a candidate outside
            its setting's pool, a query id in an unexpected form.
    """
    present, absent = split_unretrievable(benchmark)
    index = _Index(present)
    all_settings = {s.name for s in settings_for(present)}
    settings = {s.name: s for s in settings_for(present, families=families, languages=languages)}
    if not settings:
        raise DataError(f"benchmark {benchmark.id!r} has no setting to score for families {families}")
    form, q_index, s_index = _resolve_queries(trec, present, index, settings, all_settings)
    doc, found = index.lookup_tokens(trec.docid)
    if not found.all():
        i = int(np.flatnonzero(~found)[np.argmin(trec.line[~found])])
        raise DataError(f"{trec.where(i)}: unknown docid {str(trec.docid[i])!r}: not a candidate of benchmark {benchmark.id!r}")
    line_query = q_index[trec.query]
    keep = line_query >= 0
    setting_list = list(settings.values())
    pool_codes = {lang: i for i, lang in enumerate(benchmark.languages)}
    doc_lang_code = np.asarray([pool_codes.get(lang, -1) for lang in index.cand_langs.tolist()], dtype=np.int64)

    cols: dict[str, list[np.ndarray]] = {c: [] for c in ("setting", "query", "doc", "rank", "score")}
    listed_groups: list[np.ndarray] = []
    for code, s in enumerate(setting_list):
        pool = np.zeros(len(benchmark.languages), dtype=bool)
        pool[[pool_codes[p] for p in s.pool_langs]] = True
        if form == "setting":
            rows = np.flatnonzero(keep & (s_index[trec.query] == code))
            in_pool = pool[doc_lang_code[doc[rows]]]
            if not in_pool.all():
                i = int(rows[~in_pool][np.argmin(trec.line[rows[~in_pool]])])
                raise DataError(
                    f"{trec.where(i)}: docid {str(trec.docid[i])!r} ({index.cand_langs[doc[i]]}) is not in the pool of {s.name}"
                )
            rank = trec.rank[rows].astype(np.int64)
        else:
            rows = np.flatnonzero(keep & (index.query_langs[np.maximum(line_query, 0)] == s.query_lang))
            rows = rows[pool[doc_lang_code[doc[rows]]]]
            rows = rows[np.lexsort((trec.rank[rows], line_query[rows]))]
            qs = line_query[rows]
            first = np.ones(len(rows), dtype=bool)
            first[1:] = qs[1:] != qs[:-1]
            starts = np.flatnonzero(first)
            rank = np.arange(len(rows)) - starts[np.cumsum(first) - 1] + 1
        cols["setting"].append(np.full(len(rows), code, dtype=np.int64))
        cols["query"].append(line_query[rows])
        cols["doc"].append(doc[rows])
        cols["rank"].append(rank)
        cols["score"].append(trec.score[rows])
        listed_groups.append(np.unique(line_query[rows]))
    setting = np.concatenate(cols["setting"])
    query = np.concatenate(cols["query"])
    docs = np.concatenate(cols["doc"])
    rank = np.concatenate(cols["rank"])
    score = np.concatenate(cols["score"])
    relevance = index.gains(query, docs)
    depth = _depth(setting, query, rank)
    # The run is the system's whole answer: what it does not list is not retrieved at any depth, so every
    # cutoff is final (trec_eval's reading of a run) and k covers every pool; meta keeps the listed depth.
    k_final = max(len(index.cand_ids), int(rank.max()) if len(rank) else 0)

    # every relevant candidate of each setting's pool that the run does not list: not retrieved (rank 0)
    miss: dict[str, list[np.ndarray]] = {c: [] for c in ("setting", "query", "doc")}
    have = np.unique((setting * len(index.query_ids) + query) * max(index.n_cands, 1) + docs)
    for code, s in enumerate(setting_list):
        sel = (index.query_langs[index.rel_query] == s.query_lang) & np.isin(index.cand_langs[index.rel_doc], s.pool_langs)
        rq, rd = index.rel_query[sel], index.rel_doc[sel]
        key = (code * len(index.query_ids) + rq) * max(index.n_cands, 1) + rd
        new = ~np.isin(key, have)
        miss["setting"].append(np.full(int(new.sum()), code, dtype=np.int64))
        miss["query"].append(rq[new])
        miss["doc"].append(rd[new])
    m_setting, m_query, m_doc = (np.concatenate(miss[c]) for c in ("setting", "query", "doc"))
    run = RunTable(
        settings=setting_list,
        query_ids=index.query_ids,
        query_langs=index.query_langs,
        doc_ids=index.cand_ids,
        doc_langs=index.cand_langs,
        setting=np.concatenate([setting, m_setting]),
        query=np.concatenate([query, m_query]),
        doc=np.concatenate([docs, m_doc]),
        rank=np.concatenate([rank, np.zeros(len(m_doc), dtype=np.int64)]),
        score=np.concatenate([score, np.full(len(m_doc), -np.inf)]),
        relevance=np.concatenate([relevance, index.gains(m_query, m_doc)]),
        k=k_final,
        exact_ranks=len(m_doc) == 0,
        benchmark_id=benchmark.id,
        meta={
            "backend": "run",
            "run": trec.path,
            "tag": trec.tag,
            "form": form,
            "depth": depth,
            "not_retrieved_relevant": int(len(m_doc)),
        },
    )
    if absent:
        run = add_unretrievable(run, benchmark, absent)
    return run


def _depth(setting: np.ndarray, query: np.ndarray, rank: np.ndarray) -> int:
    """The most rows any (setting, query) lists from rank 1 without a gap."""
    if not len(rank):
        return 0
    order = np.lexsort((rank, query, setting))
    s, q, r = setting[order], query[order], rank[order]
    first = np.ones(len(order), dtype=bool)
    first[1:] = (s[1:] != s[:-1]) | (q[1:] != q[:-1])
    starts = np.flatnonzero(first)
    pos = np.arange(len(order)) - starts[np.cumsum(first) - 1] + 1
    # ranks rise strictly within a group, so once a rank passes its position every later one does too:
    # the rows at their position are exactly the gap-free prefix
    return int(np.bincount(np.cumsum(first) - 1, weights=(r == pos).astype(np.float64)).max())


def score_run(
    run: str | os.PathLike | TrecRun,
    benchmark: Benchmark,
    *,
    families: Sequence[str] | None = None,
    languages: Sequence[str] | None = None,
    measures: Sequence[str] = DEFAULT_MEASURES,
    name: str | None = None,
    bias_measures: Sequence[str] | None = None,
) -> tuple[Results, RunTable]:
    """Score an external TREC run in every setting of ``benchmark``, as ``evaluate()`` scores a model.

    Args:
        run: a run file (read strictly) or a ``TrecRun`` (e.g. a fusion).
        benchmark: the benchmark the run ranks (``polyret.data.load_benchmark``).
        families: setting families to score (None: the benchmark's own).
        languages: restrict query and pool languages (None: all).
        measures: measure names (``polyret.evaluation.metrics.parse_measure``).
        name: the system's name in results and reports (None: the run's tag).
        bias_measures: the language-bias measures (``polyret.evaluation.bias_measures``; None: all).

    Returns:
        ``(Results, RunTable)``; ``Results.extra`` names the run file and its SHA-256.
    """
    t0 = time.perf_counter()
    measures = metrics.canonical_measures(measures)  # nDCG@10, ndcg_cut_10 -> ndcg@10: stable keys
    trec = run if isinstance(run, TrecRun) else read_run_table(run)
    table = run_table_from_trec(trec, benchmark, families=families, languages=languages)
    t1 = time.perf_counter()
    qs = metrics.per_query(table, measures=measures, as_trec_eval=True)
    per_setting = metrics.per_setting(qs)
    for setting_name, n in qs.counts().items():
        per_setting[setting_name]["n_queries"] = n
    bias: dict[str, Any] = {}
    per_query = per_query_table(qs, list(measures))
    if any(s.family == "multi" for s in table.settings):
        bias = language_bias(table, per_query, bias_measures)
    langs = [lang for lang in benchmark.languages if languages is None or lang in set(languages)]
    path = None if isinstance(run, TrecRun) else str(Path(run))
    res = Results(
        model=name or trec.tag or "run",
        benchmark=benchmark.id,
        languages=langs,
        measures=list(measures),
        per_setting=per_setting,
        macro=metrics.macro(qs),
        bias=bias,
        timing={"read_s": t1 - t0, "metrics_s": time.perf_counter() - t1},
        per_query=per_query,
        extra={
            "system": "external run",
            "run_file": path or trec.path,
            "run_sha256": file_sha256(path) if path else "",
            "run_tag": trec.tag,
            "n_run_lines": len(trec),
            "n_settings": len(table.settings),
            "depth": int(table.meta["depth"]),
            "backend": "run",
            "not_retrieved_relevant": int(table.meta.get("not_retrieved_relevant", 0)),
            "unretrievable_relevant": int(np.count_nonzero(table.doc >= len(benchmark.candidates))),
        },
    )
    return res, table


def _setting_id_message(where: str, raw: str, setting_name: str, lang: str | None, benchmark: Benchmark) -> str:
    """Why a ``<setting>/<qid>@<lang>`` query id does not fit ``benchmark`` (a run of another benchmark?)."""
    if lang is None:
        return f"{where}: query id {raw!r} must be '<setting>/<qid>@<lang>' (no '@<lang>' after the query id)"
    family, q_lang, p_lang = split_setting(setting_name)
    langs = ", ".join(benchmark.languages)
    missing = [x for x in dict.fromkeys((lang, q_lang, p_lang)) if x and x != "all" and x not in benchmark.languages]
    return (
        f"{where}: query id {raw!r} names setting {setting_name} and language {', '.join(missing) or lang}, "
        f"which benchmark {benchmark.id!r} does not have (its languages: {langs}); is this a run of another benchmark?"
    )
