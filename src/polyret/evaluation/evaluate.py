"""``evaluate()``: the public verb. Encode every text once, score every setting from those embeddings.

Flow: benchmark -> model -> encode (cached) -> run table over all settings -> per-query metrics and
bias -> ``Results``. Every number comes from the one run table; nothing is encoded per setting.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Sequence
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import numpy as np

from .. import distributed
from .. import precision as precisions
from ..data.records import Benchmark
from ..encode import (
    DEFAULT_CHUNK_ROWS,
    EmbeddingCache,
    EncodeError,
    count_missing,
    device_pool,
    encode,
    encode_stream,
    encode_to_store,
)
from ..encode.stream import check_store_dtype, model_device_type, resolve_for
from ..errors import ConfigError
from ..vocabulary import DEFAULT_MEASURES, check_languages
from . import bias as bias_measures
from . import bias_measures as bias_suite
from . import metrics
from .config import STORE_THRESHOLD, EvalConfig, check_encode_options  # noqa: F401  (re-exported)
from .results import PerQuery, Results
from .runtable import RunTable
from .search import build_run_table
from .settings import settings_for

logger = logging.getLogger(__name__)


def _subset(benchmark: Benchmark, languages: Sequence[str] | None) -> Benchmark:
    if not languages:
        return benchmark
    langs = check_languages(languages, benchmark.languages, where=f"benchmark {benchmark.id!r}")
    keep = set(langs)
    rows = benchmark.candidates.indices_in(keep)
    cands = benchmark.candidates.take(rows)
    judged = sorted({d for rel in benchmark.qrels.values() for d in rel})
    where = benchmark.candidates.positions(judged)
    kept_row = np.zeros(len(benchmark.candidates), dtype=bool)
    kept_row[rows] = True
    dropped = {d for d, w in zip(judged, where) if w >= 0 and not kept_row[w]}
    qrels = {}
    for qid, rel in benchmark.qrels.items():
        kept = {d: r for d, r in rel.items() if d not in dropped}  # absent docids stay: misses (score())
        if kept:
            qrels[qid] = kept
    return Benchmark(
        id=benchmark.id,
        languages=langs,
        queries=[q for q in benchmark.queries if q.lang in keep],
        candidates=cands,
        qrels=qrels,
        families=benchmark.families,
        provenance=benchmark.provenance,
    )


def candidate_texts(benchmark: Benchmark, with_context: bool = False) -> list[str]:
    """The text encoded for each candidate, aligned with ``benchmark.candidates``.

    Args:
        benchmark: the benchmark.
        with_context: each candidate sentence followed by its paragraph (when it has another one).
    """
    if not with_context:
        return [c.text for c in benchmark.candidates]
    return [f"{c.text} {c.context}".strip() if c.context and c.context != c.text else c.text for c in benchmark.candidates]


def encode_benchmark(
    model,
    benchmark: Benchmark,
    *,
    batch_size: int = 32,
    with_context: bool = False,
    cache: EmbeddingCache | None = None,
    progress: bool = True,
    max_tokens: int = 4096,
    precision: str = "auto",
    store_dtype: str = "float32",
    store_threshold: int = STORE_THRESHOLD,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    devices: Sequence[str] | None = None,
    distributed: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """(query embeddings, candidate embeddings), aligned with ``benchmark.queries`` / ``.candidates``.

    Queries, and the candidates of a benchmark with fewer than ``store_threshold`` of them, go through
    the per-text cache (:func:`polyret.encode.encode`: subsets and splits share rows). Larger candidate
    sets go to the corpus's memory-mapped :class:`~polyret.encode.EmbeddingStore` beside the model's cache
    (streamed in chunks, checksummed, resumable); the candidate matrix is then a read-only ``np.memmap``
    of ``store_dtype`` rows. Without a cache, a large candidate set is encoded window by window into one
    in-memory float32 matrix.

    Args:
        model: a loaded SentenceTransformer.
        benchmark: the benchmark.
        batch_size: most texts per batch.
        with_context: encode each candidate sentence followed by its paragraph.
        cache: the model's per-text cache (None: nothing on disk).
        progress: show progress bars.
        max_tokens: most padded tokens per batch.
        precision: "auto" (resolved for the model's device, or the first of ``devices``), "fp32", "bf16"
            or "fp16" inference.
        store_dtype: "float32" or "float16" rows in a store (the per-text cache keeps float32).
        store_threshold: candidates from which the store is used.
        chunk_rows: rows per store chunk (the unit written, verified and resumed).
        devices: encode with one worker process per device (sentence-transformers' pool).
        distributed: under torchrun every rank encodes its share and reads the others' (every rank
            must call; needs ``cache``, else every rank encodes everything).
    """
    precision = resolve_for(model, precision, device=devices[0] if devices else None)
    check_store_dtype(store_dtype)
    if store_threshold < 0:
        raise EncodeError(f"store_threshold must be >= 0, got {store_threshold}")
    q_texts = [q.text for q in benchmark.queries]
    n_cand = len(benchmark.candidates)
    big = n_cand >= store_threshold and n_cand > 0
    # a corpus for the store stays columnar (Arrow, decoded a window at a time), never a list of str
    c_texts = benchmark.candidates.texts if big and not with_context else candidate_texts(benchmark, with_context)
    common = {"batch_size": batch_size, "max_tokens": max_tokens, "precision": precision}

    def run(bar=None) -> tuple[np.ndarray, np.ndarray]:
        pool_cm = device_pool(model, devices, precision) if devices else nullcontext()
        with pool_cm as pool:
            out = []
            for name, texts, kind in (("queries", q_texts, "query"), ("candidates", c_texts, "passage")):
                task = None
                if kind == "passage" and big:
                    if bar is not None:
                        task = bar.add_task(f"{name} (store)", total=None)
                    tick = (lambda n, t=task: bar.advance(t, n)) if bar is not None else None
                    plan = (lambda todo, total, t=task: bar.update(t, total=todo)) if bar is not None else None
                    if cache is not None:
                        emb = encode_to_store(
                            model,
                            texts,
                            model_cache=cache.root,
                            kind=kind,
                            store_dtype=store_dtype,
                            chunk_rows=chunk_rows,
                            distributed=distributed,
                            pool=pool,
                            progress=tick,
                            on_plan=plan,
                            **common,
                        )
                    else:
                        if plan is not None:
                            plan(len(texts), len(texts))
                        emb = encode_stream(model, texts, kind=kind, pool=pool, progress=tick, **common)
                    out.append(emb)
                    continue
                tick = None
                if bar is not None:
                    todo = count_missing(model, texts, kind=kind, cache=cache, precision=precision)
                    if todo:  # a warm cache draws no empty bar
                        task = bar.add_task(f"{name} ({len(texts) - todo if cache is not None else 0} cached)", total=todo)
                        tick = lambda n, t=task: bar.advance(t, n)  # noqa: E731
                out.append(
                    encode(model, texts, kind=kind, cache=cache, progress=tick, distributed=distributed, pool=pool, **common)
                )
        return out[0], out[1]

    if not progress:
        return run()
    from polyret.progress import progress_display

    with progress_display("encoding", unit="texts") as bar:
        return run(bar)


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
    """
    t0 = time.perf_counter()
    measures, renamed = measures_for_backend(metrics.canonical_measures(measures), backend, k)
    settings = settings_for(benchmark, families=families)
    if not settings:
        raise ValueError(f"benchmark {benchmark.id!r} has no setting to evaluate for families {families}")
    present, absent = split_unretrievable(benchmark)
    run = build_run_table(present, query_emb, cand_emb, settings, k=k, backend=backend)
    if absent:
        run = _add_unretrievable(run, benchmark, absent)
    t1 = time.perf_counter()
    qs = metrics.per_query(run, measures=measures)
    per_setting = metrics.per_setting(qs)
    for name, n in qs.counts().items():
        per_setting[name]["n_queries"] = n
    macro = metrics.macro(qs)
    bias: dict[str, Any] = {}
    per_query = _per_query_table(qs, list(measures))
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


def _add_unretrievable(run, benchmark: Benchmark, absent: dict[str, dict[str, int]]):
    """The run table plus one rank-0 (never retrieved) relevant row per absent judgement and setting."""
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


def _per_query_table(qs: PerQuery, measures: list[str]) -> PerQuery:
    """The per-query values of ``measures`` (in that order), for results and their CSV."""
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
        block = bias_measures.summary(run).to_dict()
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
    dist = bias_measures.max_rank_distance(run)
    lookup = {(s, q): v for s, q, v in zip(dist.setting_names, dist.query_ids, dist.values)}
    col = np.full(len(per_query), np.nan)
    for i, (s, q) in enumerate(zip(per_query.setting, per_query.query_id)):
        v = lookup.get((s, q))
        if v is not None:
            col[i] = v
    per_query.values["max_rank_distance"] = col


def evaluate(
    model: Any = "builtin:me5-small",
    benchmark: str | Benchmark = "xquad-r:test",
    *,
    config: EvalConfig | None = None,
    output: str | os.PathLike | None = None,
    progress: bool = True,
    keep_run: bool = False,
    trec_run: bool = False,
    overwrite: bool = False,
    provenance: dict[str, Any] | None = None,
    **overrides: Any,
) -> Results | None:
    """Evaluate ``model`` (a spec such as ``builtin:me5-small``, a folder, a Hub id, or a loaded
    SentenceTransformer) on ``benchmark`` (an id or a ``Benchmark``) in every setting family.

    ``overrides`` are ``EvalConfig`` fields. With ``output``, writes results.json, settings.csv,
    per_query.csv.gz, run.npz (with ``keep_run``) and the mAP heatmap there, then the completion marker
    last. Inputs (qrels) and the output folder (created, probed with a test file) are checked before
    the model is loaded; a failed write raises an ``OSError`` naming the file and leaves no marker.

    The output folder has one writer and one owner: this process holds its lock (``paths.output_lock``;
    a second writer gets a ``FolderBusy`` error naming this one) and a finished folder of another
    producer (another model or benchmark, a ``polyret score`` folder) is refused unless ``overwrite``,
    which empties it first (``paths.claim_output``).

    Args (besides ``overrides``, the ``EvalConfig`` fields):
        model: the model spec or a loaded model.
        benchmark: a benchmark id or a loaded ``Benchmark``.
        config: a base ``EvalConfig``.
        output: the results folder (None: nothing is written).
        progress: show progress bars.
        keep_run: keep the run table (``Results.run``) and write ``run.npz``, ``run.trec`` and ``qrels.trec``.
        trec_run: the same as ``keep_run`` (the command line's ``--trec-run``).
        overwrite: empty another producer's finished ``output`` instead of refusing it.
        provenance: further fields for the completion marker (the experiment records its model's marker).
    """
    from contextlib import ExitStack
    from dataclasses import replace

    distributed.init_from_env()  # under torchrun: one process group, so ranks share the work
    cfg = replace(config or EvalConfig(), **overrides)
    if not isinstance(model, str):
        model_name = getattr(model, "polyret_spec", None) or type(model).__name__
    else:
        model_name = model
    cfg = replace(cfg, model=model_name)
    cfg = replace(cfg, benchmark=benchmark if isinstance(benchmark, str) else benchmark.id)
    if cfg.corpus is not None and not isinstance(benchmark, str):
        raise ConfigError("corpus: give a benchmark id (miracl/<lang>) with a corpus file, not a loaded Benchmark")

    stack = ExitStack()
    if output is not None:  # an unusable output is found now, before any model loads, not after encoding
        from ..guards import check_outputs_spare_inputs
        from ..paths import check_writable, claim_output, data_dir, output_lock, refuse_output_over_inputs
        from .results import evaluation_producer

        check_outputs_spare_inputs(
            {"--model": cfg.model if isinstance(cfg.model, str) else None, "--corpus": cfg.corpus},
            {"--output": output},
            folders=["--output"],
        )
        # and never the filesystem root, the home folder or a folder above the data
        refuse_output_over_inputs(output, [data_dir(cfg.data_dir)], what="--output")
        check_writable(output)
        if distributed.is_main():  # one writer: rank 0 writes the folder
            stack.enter_context(output_lock(output, "polyret evaluate"))
            claim_output(output, evaluation_producer(model_name, cfg.benchmark), overwrite=overwrite)
    with stack:
        return _evaluate(model, benchmark, cfg, output, progress, keep_run or trec_run, provenance, model_name)


def _evaluate(model, benchmark, cfg: EvalConfig, output, progress: bool, keep_run: bool, provenance, model_name: str):
    """The body of :func:`evaluate` once its output is locked and claimed."""
    from dataclasses import replace

    from ..data import load_benchmark
    from ..models import fingerprint, load, load_cached

    t_start = time.perf_counter()
    bench = (
        load_benchmark(
            benchmark, data_dir=cfg.data_dir, languages=cfg.languages, corpus=cfg.corpus, corpus_cache=_corpus_cache(cfg)
        )  # fmt: skip
        if isinstance(benchmark, str)
        else _subset(benchmark, cfg.languages)
    )
    _, absent = split_unretrievable(bench)  # bad qrels fail here, before any model runs
    fit_bench = None
    if cfg.debias:  # the fit data is loaded and checked disjoint now, before any model runs
        from .debias import check_disjoint

        fit_bench = load_benchmark(cfg.debias_fit, data_dir=cfg.data_dir)
        check_disjoint(fit_bench, bench)
    if absent and not isinstance(benchmark, str):  # a loader by id has warned, naming its qrels file
        logger.warning(
            "%s: %d relevant judgements name docids absent from the corpus; they count as misses (%s)",
            bench.id,
            sum(len(v) for v in absent.values()),
            bench.provenance or "no provenance",
        )
    if isinstance(model, str):
        load_args = dict(
            device=cfg.device, query_prompt=cfg.query_prompt, passage_prompt=cfg.passage_prompt, max_seq_length=cfg.max_seq_length
        )
        if cfg.cache:  # with a cache: a model seen before with the same content and arguments loads only if needed
            from ..paths import cache_dir

            model = load_cached(model, memo_root=cache_dir(cfg.cache_dir) / "embeddings", cache_dir=cfg.cache_dir, **load_args)
        else:
            model = load(model, cache_dir=cfg.cache_dir, **load_args)
    t_loaded = time.perf_counter()
    # "auto" -> the precision this model's device runs; recorded (results.json) and keying the cache
    resolved = precisions.resolve(cfg.precision, cfg.devices[0] if cfg.devices else model_device_type(model))
    cfg = replace(cfg, precision=resolved.precision)
    fp = fingerprint(model)
    cache = None
    if cfg.cache:
        from ..paths import cache_dir

        cache = EmbeddingCache.for_model(fp, root=cache_dir(cfg.cache_dir) / "embeddings")
    q_emb, c_emb = encode_benchmark(
        model,
        bench,
        batch_size=cfg.batch_size,
        with_context=cfg.with_context,
        cache=cache,
        progress=progress,
        max_tokens=cfg.max_tokens,
        precision=cfg.precision,
        store_dtype=cfg.store_dtype,
        store_threshold=cfg.store_threshold,
        devices=cfg.devices,
        # under torchrun (with a cache) every rank encodes its share of the texts and reads the others'
        distributed=distributed.world_size() > 1,
    )
    debias_info = None
    if fit_bench is not None:  # the remedy, between encode and search (polyret.evaluation.debias)
        q_emb, c_emb, debias_info = _apply_debias(cfg, model, fp, cache, fit_bench, bench, q_emb, c_emb)
    bench.candidates.release_pages()  # the texts' mapped pages are done with: not resident during the search
    t_encoded = time.perf_counter()

    def score_and_write() -> Results:
        return _score_and_write(cfg, bench, q_emb, c_emb, model_name, fp, output, keep_run, (t_start, t_loaded, t_encoded),
                                resolved.reason, debias_info, provenance)  # fmt: skip

    if distributed.world_size() > 1:
        return _score_on_main(score_and_write, output)
    return score_and_write()


def training_record(spec: str) -> dict | None:
    """What a model folder trained by polyret records of its training: strategy, nominal alpha, schedule,
    steps and the share of them that were monolingual (from ``polyret_train.json``, else counted in the
    folder's ``batches.jsonl``); None for a model polyret did not train.

    Args:
        spec: the model spec (a folder for a trained model).
    """
    from ..batchlog import realized_mono_share, step_kinds

    path = Path(spec) / "polyret_train.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        config = data["config"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    kinds = data.get("step_kinds")
    if not isinstance(kinds, dict):
        kinds = step_kinds(Path(spec) / "batches.jsonl")  # a model trained before the share was recorded
    return {
        "strategy": config.get("strategy"),
        "alpha": config.get("alpha"),
        "alpha_schedule": config.get("alpha_schedule", "draw"),
        "steps": data.get("global_step"),
        "step_kinds": kinds,
        "realized_mono_share": realized_mono_share(kinds),
    }


def _corpus_cache(cfg: EvalConfig):
    """Where a MIRACL corpus's parsed columns are cached: ``<cache_dir>/corpora``, or nowhere with ``cache=False``
    (``--no-cache`` means no cache of any kind).

    Args:
        cfg: the evaluation's config.
    """
    if not cfg.cache:
        return False
    from ..paths import cache_dir

    return cache_dir(cfg.cache_dir) / "corpora"


def _apply_debias(cfg: EvalConfig, model, fp: str, cache, fit_bench: Benchmark, bench: Benchmark, q_emb, c_emb):
    """``(queries, candidates, record)``: the embeddings after ``cfg.debias`` fitted on ``fit_bench``."""
    from ..paths import cache_dir
    from .debias import fitted_transform

    tr = fitted_transform(
        model,
        cfg.debias,
        fit_bench,
        fingerprint=fp,
        max_queries=cfg.debias_fit_max_queries,
        cache_root=cache_dir(cfg.cache_dir) if cfg.cache else None,
        embed_cache=cache,
        encode_options={"batch_size": cfg.batch_size, "max_tokens": cfg.max_tokens, "precision": cfg.precision},
        languages=list(bench.languages),
    )
    q_langs = np.asarray([q.lang for q in bench.queries], dtype=str)
    c_langs = np.asarray(bench.candidates.langs, dtype=str)
    return tr.apply(q_emb, q_langs, "query"), tr.apply(c_emb, c_langs, "passage"), tr.info


def _score_and_write(cfg: EvalConfig, bench: Benchmark, q_emb, c_emb, model_name: str, fp: str, output, keep_run: bool, times,
                     precision_reason: str = "", debias_info=None, provenance: dict[str, Any] | None = None):  # fmt: skip
    """Search, score, and write ``output`` (when given): the part of ``evaluate`` one rank does."""
    t_start, t_loaded, t_encoded = times
    res, run = score(
        bench,
        q_emb,
        c_emb,
        families=cfg.families,
        measures=cfg.measures,
        k=cfg.k,
        backend=cfg.backend,
        model_name=model_name,
        bias_measures=cfg.bias_measures,
    )
    res.fingerprint = fp
    res.timing = {
        "load_s": t_loaded - t_start,
        "encode_s": t_encoded - t_loaded,
        **res.timing,
        "total_s": time.perf_counter() - t_start,
    }
    res.extra["config"] = {k: v for k, v in cfg.__dict__.items() if k not in ("cache_dir", "data_dir")}
    res.extra["precision"] = cfg.precision  # resolved: never "auto"
    res.extra["precision_reason"] = precision_reason
    training = training_record(model_name)
    if training is not None:  # what the model's training did (the report's realized share of mono steps)
        res.extra["training"] = training
    if debias_info is not None:
        res.extra["debias"] = debias_info
    if output is not None:
        res.write(output, run=run if keep_run else None, provenance=provenance)  # run.trec + qrels.trec with the run; marker last
    res.run = run if keep_run else None
    return res


def _score_on_main(work, output) -> Results | None:
    """Run ``work`` on rank 0 while the other ranks wait; every rank leaves together.

    Args:
        work: rank 0's search-score-write step, returning its Results.
        output: the results folder rank 0 writes (None: the other ranks return None).
    """
    import datetime

    import torch.distributed as dist

    from .results import is_done

    group = dist.new_group(backend="gloo", timeout=datetime.timedelta(days=7))  # collective: every rank
    try:
        if distributed.is_main():
            try:
                return work()
            finally:
                dist.barrier(group=group)  # also when rank 0 failed: the others must not wait forever
        dist.barrier(group=group)
        if output is None:
            return None
        if not is_done(output):
            raise RuntimeError(f"rank 0 did not finish writing {output} (see its error); rank {distributed.rank()} wrote nothing")
        return Results.load(output)
    finally:
        dist.destroy_process_group(group)
