"""Embeddings -> run table -> metrics and language bias -> :class:`~polyret.evaluation.results.Results`.

The public scoring step, for callers that already have embeddings (the training-time evaluator, an
external run, a benchmark of your own): :func:`score` searches every setting of a benchmark once into the
pooled run table (:mod:`polyret.evaluation.search`), computes the per-query measures
(:mod:`polyret.evaluation.metrics`) and the language-bias block of the multilingual settings
(:mod:`polyret.evaluation.bias`, :mod:`polyret.evaluation.bias_measures`). Nothing here encodes a text
(:mod:`polyret.evaluation.encoding`) or writes a file (:mod:`polyret.evaluation.pipeline`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..data.records import Benchmark
from ..vocabulary import DEFAULT_MEASURES
from . import bias as rank_bias
from . import bias_measures as bias_suite
from . import metrics
from .perquery import PerQuery
from .results import Results
from .runtable import RunTable
from .search import build_run_table
from .settings import settings_for

__all__ = ["add_unretrievable", "language_bias", "measures_for_backend", "per_query_table", "score", "split_unretrievable"]

logger = logging.getLogger(__name__)


def score(
    benchmark: Benchmark,
    query_emb: np.ndarray,
    cand_emb: np.ndarray,
    *,
    families: Sequence[str] | None = None,
    measures: Sequence[str] = DEFAULT_MEASURES,
    k: int = 100,
    backend: str = "exact",
    model_name: str = "",
    bias_measures: Sequence[str] | None = None,
    bias_params: bias_suite.BiasParams | None = None,
) -> tuple[Results, RunTable]:
    """Score every setting from precomputed embeddings; returns (Results, run table).

    ``bias_measures`` selects the language-bias measures of the multilingual settings (None: all of
    ``polyret.evaluation.bias_measures.BIAS_MEASURES``); each also becomes a per-query column.

    Relevant judgements naming a docid absent from a one-language benchmark's candidates (a partial
    MIRACL corpus) are relevant but unretrievable: they count against recall and mAP as trec_eval counts
    a relevant document never retrieved; ``extra["unretrievable_relevant"]`` says how many there are.

    Args:
        benchmark: the benchmark the embeddings belong to.
        query_emb: one row per ``benchmark.queries`` entry.
        cand_emb: one row per ``benchmark.candidates`` entry (an array or a read-only memmap).
        families: the setting families to score (None: the benchmark's).
        measures: measure names (``polyret.evaluation.metrics.parse_measure`` spellings).
        k: candidates retrieved per query and setting.
        backend: the search backend (``exact``, ``faiss``...).
        model_name: the model named in the results.
        bias_measures: the language-bias measures of the multilingual settings (None: all).
        bias_params: their parameters (None: the defaults).
    """
    t0 = time.perf_counter()
    measures, renamed = measures_for_backend(metrics.canonical_measures(measures), backend, k)
    settings = settings_for(benchmark, families=families)
    if not settings:
        raise ValueError(f"benchmark {benchmark.id!r} has no setting to evaluate for families {families}")
    present, absent = split_unretrievable(benchmark)
    run = build_run_table(present, query_emb, cand_emb, settings, k=k, backend=backend)
    if absent:
        run = add_unretrievable(run, benchmark, absent)
    t1 = time.perf_counter()
    qs = metrics.per_query(run, measures=measures)
    per_setting = metrics.per_setting(qs)
    for name, n in qs.counts().items():
        per_setting[name]["n_queries"] = n
    macro = metrics.macro(qs)
    bias: dict[str, Any] = {}
    per_query = per_query_table(qs, list(measures))
    if any(s.family == "multi" for s in settings):
        bias = language_bias(run, per_query, bias_measures, bias_params)
    t2 = time.perf_counter()
    res = Results(
        model=model_name,
        benchmark=benchmark.id,
        languages=list(benchmark.languages),
        measures=list(measures),
        per_setting=per_setting,
        macro=macro,
        bias=bias,
        timing={"search_s": t1 - t0, "metrics_s": t2 - t1},
        per_query=per_query,
        extra={
            "n_queries": len(benchmark.queries),
            "n_candidates": len(benchmark.candidates),
            "n_settings": len(settings),
            "k": k,
            "backend": backend,
            "unretrievable_relevant": sum(len(v) for v in absent.values()),
            **({"renamed_measures": renamed} if renamed else {}),
        },
    )
    return res, run


def measures_for_backend(measures: Sequence[str], backend: str, k: int) -> tuple[list[str], dict[str, str]]:
    """``(measures to compute, {asked: computed})``: a no-cutoff measure becomes ``<measure>@k`` on a
    backend that ranks only its top k (faiss), so a top-k number never carries the full-ranking name.

    Args:
        measures: the measure names asked for.
        backend: the search backend.
        k: candidates retrieved per query.
    """
    from .search import EXACT_RANK_BACKENDS

    if backend in EXACT_RANK_BACKENDS:
        return list(measures), {}
    out: list[str] = []
    renamed: dict[str, str] = {}
    for name in measures:
        m = metrics.parse_measure(name)
        if m.cutoff is None and m.kind != "ir":
            renamed[name] = m.at(k).name
            name = renamed[name]
        if name not in out:
            out.append(name)
    if renamed:
        logger.warning(
            "backend %s ranks only the top %d candidates: %s reported as %s (no-cutoff values need --backend exact)",
            backend,
            k,
            ", ".join(renamed),
            ", ".join(renamed.values()),
        )
    return out, renamed


def split_unretrievable(benchmark: Benchmark) -> tuple[Benchmark, dict[str, dict[str, int]]]:
    """``(benchmark with qrels restricted to its candidates, {qid: {absent docid: rel}})``.

    Checked before anything is encoded. Absent docids are allowed only in a one-language benchmark
    (a partial corpus: they are misses in its settings); in a multilingual one their pool is unknown,
    so they are a ``DataError`` naming the query and the docid.

    Args:
        benchmark: the benchmark to check.
    """
    from ..data.records import DataError

    query_ids = {q.id for q in benchmark.queries}
    judged = sorted({d for rel in benchmark.qrels.values() for d in rel})
    cand_ids = {d for d, w in zip(judged, benchmark.candidates.positions(judged)) if w >= 0}  # judged ones only
    absent: dict[str, dict[str, int]] = {}
    for qid, rel in benchmark.qrels.items():
        if qid not in query_ids:
            continue
        for docid, r in rel.items():
            if int(r) > 0 and docid not in cand_ids:
                absent.setdefault(qid, {})[docid] = int(r)
    if not absent:
        return benchmark, {}
    if len(benchmark.languages) != 1:
        qid, docs = next(iter(absent.items()))
        raise DataError(
            f"benchmark {benchmark.id!r}: qrels of query {qid!r} name candidate {next(iter(docs))!r}, which is "
            f"not among the benchmark's candidates ({sum(len(v) for v in absent.values())} such judgements)"
        )
    qrels = {qid: {d: r for d, r in rel.items() if d in cand_ids} for qid, rel in benchmark.qrels.items()}
    present = Benchmark(
        id=benchmark.id,
        languages=benchmark.languages,
        queries=benchmark.queries,
        candidates=benchmark.candidates,
        qrels=qrels,
        families=benchmark.families,
        provenance=benchmark.provenance,
    )
    return present, absent


def add_unretrievable(run, benchmark: Benchmark, absent: dict[str, dict[str, int]]):
    """The run table plus one rank-0 (never retrieved) relevant row per absent judgement and setting.

    Args:
        run: the run table of the benchmark's present candidates.
        benchmark: the (one-language) benchmark.
        absent: ``{qid: {absent docid: relevance}}`` (:func:`split_unretrievable`).
    """
    names = sorted({d for docs in absent.values() for d in docs})
    extra_code = {d: len(run.doc_ids) + i for i, d in enumerate(names)}
    lang = benchmark.languages[0]
    rows: dict[str, list] = {c: [] for c in ("setting", "query", "doc", "rank", "score", "relevance")}
    for code, setting in enumerate(run.settings):
        for qi in np.flatnonzero(run.query_langs == setting.query_lang):
            for docid, rel in sorted(absent.get(str(run.query_ids[qi]), {}).items()):
                rows["setting"].append(code)
                rows["query"].append(qi)
                rows["doc"].append(extra_code[docid])
                rows["rank"].append(0)
                rows["score"].append(-np.inf)
                rows["relevance"].append(rel)
    cols = {c: np.concatenate([getattr(run, c), np.asarray(v, dtype=getattr(run, c).dtype)]) for c, v in rows.items()}
    return RunTable(
        settings=list(run.settings),
        query_ids=run.query_ids,
        query_langs=run.query_langs,
        doc_ids=np.concatenate([run.doc_ids, np.asarray(names, dtype=str)]),
        doc_langs=np.concatenate([run.doc_langs, np.full(len(names), lang, dtype=str)]),
        k=run.k,
        exact_ranks=run.exact_ranks,
        benchmark_id=run.benchmark_id,
        meta=dict(run.meta),
        **cols,
    )


def per_query_table(qs: PerQuery, measures: list[str]) -> PerQuery:
    """The per-query values of ``measures`` (in that order), for results and their CSV.

    Args:
        qs: the per-query values :func:`polyret.evaluation.metrics.per_query` computed.
        measures: the measures to keep, in their column order.
    """
    return PerQuery(
        setting=qs.setting,
        query_id=qs.query_id,
        query_lang=qs.query_lang,
        values={m: np.asarray(qs.values[m], dtype=np.float64) for m in measures},
    )


def language_bias(
    run: RunTable,
    per_query: PerQuery | None,
    measures: Sequence[str] | None = None,
    params: bias_suite.BiasParams | None = None,
) -> dict[str, Any]:
    """The ``language_bias`` block of results.json for ``run``'s multilingual settings, adding each
    selected measure's per-query values to ``per_query`` as a column of the same name.

    Args:
        run: the pooled run table.
        per_query: the per-query table to extend (None: nothing added).
        measures: names from ``polyret.evaluation.bias_measures.BIAS_MEASURES`` (None: all).
        params: the measures' parameters (None: the defaults).
    """
    wanted = bias_suite.check_bias_measures(measures)
    params = params or bias_suite.BiasParams()
    block: dict[str, Any] = {}
    if "max_rank_distance" in wanted or "same_language" in wanted:
        block = rank_bias.summary(run).to_dict()
        if per_query is not None and "max_rank_distance" in wanted:
            _add_rank_distance(per_query, run)
    values = bias_suite.compute(run, wanted, params)
    if per_query is not None:
        columns = bias_suite.per_query_columns(per_query, values)
        for name in values:
            per_query.values[name] = columns[name]
    block = bias_suite.add_to_block(block, values, params)
    block["measures"] = list(wanted)
    return block


def _add_rank_distance(per_query: PerQuery, run) -> None:
    """Attach each multilingual query's maximum rank distance as a per-query column (NaN elsewhere)."""
    dist = rank_bias.max_rank_distance(run)
    lookup = {(s, q): v for s, q, v in zip(dist.setting_names, dist.query_ids, dist.values)}
    col = np.full(len(per_query), np.nan)
    for i, (s, q) in enumerate(zip(per_query.setting, per_query.query_id)):
        v = lookup.get((s, q))
        if v is not None:
            col[i] = v
    per_query.values["max_rank_distance"] = col
