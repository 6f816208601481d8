"""The ``evaluate()`` verb: benchmark -> model -> encode (cached) -> score -> an evaluation folder.

Every text is encoded once (:mod:`polyret.evaluation.encoding`) and every setting scored from those
embeddings (:mod:`polyret.evaluation.scoring`); nothing is encoded per setting. With an output folder the
verb owns it (a lock, a claimed producer) and writes it through :func:`write_evaluation`: the results'
own files (:meth:`Results.write <polyret.evaluation.results.Results.write>`) plus the MTEB result files
(:mod:`polyret.evaluation.mteb_export`), the completion marker last.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .. import distributed
from .. import precision as precisions
from ..data.records import Benchmark
from ..encode import EmbeddingCache
from ..encode.stream import model_device_type
from ..errors import ConfigError
from ..vocabulary import check_languages
from .config import EvalConfig
from .encoding import encode_benchmark
from .mteb_export import MTEB_RESULTS_DIR, write_mteb_results
from .results import Results
from .runtable import RunTable
from .scoring import score, split_unretrievable

__all__ = ["evaluate", "training_record", "write_evaluation"]

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
    if output is not None:  # run.trec + qrels.trec with the run; marker last
        write_evaluation(res, output, run=run if keep_run else None, provenance=provenance)
    res.run = run if keep_run else None
    return res


def write_evaluation(
    res: Results,
    output: str | os.PathLike,
    *,
    run: RunTable | None = None,
    heatmap: bool = True,
    producer: dict[str, Any] | None = None,
    provenance: dict[str, Any] | None = None,
    extra_files: Sequence[Path] = (),
) -> dict[str, Path]:
    """Write an evaluation folder: what :meth:`Results.write` writes (results.json, settings.csv,
    per_query.csv.gz, the heatmap, with ``run`` run.npz + run.trec + qrels.trec) and the MTEB result files
    (``mteb/results/<model>/<revision>/<Task>.json`` + ``model_meta.json``, :mod:`.mteb_export`), all in
    one completed step: the marker removed first, written last, listing every file.

    The writer of every results folder: :func:`evaluate` and ``polyret score``
    (:func:`polyret.report.runs.score_runs`).

    Args:
        res: the results to write.
        output: the results folder (created if needed).
        run: the run table to save with the results (:meth:`Results.write`).
        heatmap: also draw ``heatmap_map.png``.
        producer: what wrote the folder (default: the evaluation of ``res``'s model and benchmark).
        provenance: further fields recorded in the marker.
        extra_files: files the caller already wrote into ``output`` for this step.

    Returns:
        ``{key: path}`` of every file written (the MTEB files under ``mteb_task_<family>`` / ``mteb_model_meta``).
    """
    return res.write(
        output,
        heatmap=heatmap,
        run=run,
        producer=producer,
        provenance=provenance,
        extra_files=tuple(extra_files),
        exports=(_mteb_files,),
    )


def _mteb_files(res: Results, folder: Path) -> dict[str, Path]:
    """The MTEB result files of ``res`` inside the evaluation folder ``folder`` (its ``mteb/`` subfolder)."""
    return write_mteb_results(res, folder / MTEB_RESULTS_DIR)


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
