"""``polyret score``: score one or more runs (and their fusion) on a benchmark and, with several systems,
write a comparison report.

A workflow over :mod:`polyret.evaluation.external_runs` (one run -> results, by the same metrics and bias
measures as ``evaluate``) and :mod:`polyret.report` (the significance tests and tables of an experiment's
report); it lives on the report's floor because it writes one.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..data.records import Benchmark, DataError
from ..data.trec import TrecRun, read_run_table
from ..evaluation import metrics
from ..evaluation.external_runs import score_run
from ..evaluation.pipeline import write_evaluation
from ..evaluation.results import Results
from ..evaluation.runtable import RunTable
from ..evaluation.settings import split_setting
from ..paths import file_sha256
from ..vocabulary import DEFAULT_MEASURES

__all__ = ["check_system_name", "score_runs"]


def _form(trec: TrecRun) -> str:
    """How a run writes its query ids, from its first one: ``'<setting>/<qid>@<lang>'`` or ``'<qid>[@<lang>]'``."""
    prefix, slash, _ = str(trec.qids[trec.query[np.argmin(trec.line)]]).partition("/")
    if slash:
        try:
            split_setting(prefix)
            return "'<setting>/<qid>@<lang>'"
        except ValueError:
            pass
    return "'<qid>[@<lang>]'"


def _unique_name(name: str, taken: set[str]) -> str:
    out, n = name, 2
    while out in taken:
        out, n = f"{name}-{n}", n + 1
    taken.add(out)
    return out


def score_runs(
    runs: Sequence[str | os.PathLike],
    benchmark: str | Benchmark,
    *,
    names: Sequence[str | None] | None = None,
    output: str | os.PathLike | None = None,
    fuse: str | None = None,
    rrf_k: int = 60,
    latex: bool = False,
    compare: Sequence[str | os.PathLike] = (),
    baseline: str | None = None,
    families: Sequence[str] | None = None,
    languages: Sequence[str] | None = None,
    measures: Sequence[str] = DEFAULT_MEASURES,
    data_dir: str | os.PathLike | None = None,
    bias_measures: Sequence[str] | None = None,
    overwrite: bool = False,
) -> dict[str, Results]:
    """Score one or more runs (and their fusion) on a benchmark; with several systems, write a report.

    Every run file is read and checked against the benchmark before anything is written. Output layout:
    one system and nothing to compare: ``output`` is its results folder (results.json, settings.csv,
    per_query.csv.gz, completion marker last). Several systems (runs, the fused run, ``compare``
    folders of ``polyret evaluate``): ``output/<system>/`` per scored run and ``output/report/``
    (report.md, report.json: the same significance tests over questions as an experiment's report).

    Args:
        runs: TREC run files; a system is named after its file's stem unless ``names`` names it.
        benchmark: a benchmark id or a loaded ``Benchmark``.
        names: one system name per run (None entries: the file's stem); names must be unique.
        output: where to write (None: nothing is written).
        fuse: ``"rrf"``, ``"combsum"`` or ``"combmnz"`` (``polyret.evaluation.fusion``) adds the fusion of
            the runs as a system named after the method; its parameters go into its results.json.
        rrf_k: the RRF constant.
        latex: also write the report's tables as LaTeX (``report/report.tex``).
        compare: finished results folders (``polyret evaluate --output``) on the same benchmark.
        baseline: the report's reference system (default: the first compared folder, else the first run).
        families, languages, measures: as for :func:`score_run`.
        data_dir: the data root for a benchmark id.
        bias_measures: the language-bias measures (``polyret.evaluation.bias_measures``; None: all).
        overwrite: empty ``output`` first when it holds another producer's finished output (an
            evaluation, other runs); without it such a folder is refused. ``output`` is locked while
            it is written (a second writer gets ``FolderBusy``).

    Returns:
        system name -> Results, in the order scored (compared folders last).

    Raises:
        DataError: a malformed run, a compared folder that is unfinished or on another benchmark, an
            unknown fusion method or baseline.
    """
    from ..evaluation.fusion import FUSION_METHODS

    if not runs:
        raise DataError("no run to score: give at least one run file")
    if fuse not in (None, *FUSION_METHODS):
        raise DataError(f"unknown fusion method {fuse!r}; known: {', '.join(FUSION_METHODS)}")
    if fuse and len(runs) < 2:
        raise DataError(f"--fuse {fuse} needs at least two runs")
    if latex and len(runs) + bool(fuse) + len(compare) < 2:
        raise DataError("--latex writes the comparison report's tables: give at least two systems (runs, --fuse, --compare)")
    names = list(names) if names is not None else [None] * len(runs)
    if len(names) != len(runs):
        raise DataError(f"{len(names)} names for {len(runs)} runs")
    given = [n for n in names if n]
    for n in given:
        check_system_name(n)
    if len(set(given)) != len(given):
        twice = next(n for n in given if given.count(n) > 1)
        raise DataError(f"--run: the name {twice!r} is given to two runs")
    measures = metrics.canonical_measures(measures)
    if output is None:
        return _score_runs(runs, names, benchmark, None, fuse, rrf_k, latex, compare, baseline, families, languages,
                           measures, data_dir, bias_measures)  # fmt: skip
    from ..guards import check_outputs_spare_inputs
    from ..paths import claim_output, output_lock, refuse_output_over_inputs
    from ..paths import data_dir as resolve_data_dir

    # before any run is read: never write over a run or a compared evaluation, nor above the data
    check_outputs_spare_inputs({"--run": list(runs), "--compare": list(compare)}, {"--output": output},
                               folders=["--output"])  # fmt: skip
    refuse_output_over_inputs(output, [resolve_data_dir(data_dir)], what="--output")
    bench_id = benchmark if isinstance(benchmark, str) else benchmark.id
    producer = {"kind": "score", "benchmark": bench_id, "runs": [str(Path(r).resolve()) for r in runs]}
    with output_lock(output, "polyret score"):
        claim_output(output, producer, overwrite=overwrite)
        return _score_runs(runs, names, benchmark, output, fuse, rrf_k, latex, compare, baseline, families, languages,
                           measures, data_dir, bias_measures, producer)  # fmt: skip


def _score_runs(runs, names, benchmark, output, fuse, rrf_k, latex, compare, baseline, families, languages, measures,
                data_dir, bias_measures, producer=None):  # fmt: skip
    """The body of :func:`score_runs` (its arguments checked; its output, if any, locked and claimed)."""
    from ..data import load_benchmark
    from ..evaluation.fusion import fuse as fuse_runs
    from ..evaluation.results import is_done

    bench = load_benchmark(benchmark, data_dir=data_dir) if isinstance(benchmark, str) else benchmark
    taken: set[str] = {n for n in names if n}
    trecs = {(n or _unique_name(Path(r).name.split(".")[0] or "run", taken)): read_run_table(r) for n, r in zip(names, runs)}
    scored: dict[str, tuple[Results, RunTable, TrecRun]] = {}
    for name, trec in trecs.items():
        res, table = score_run(
            trec, bench, families=families, languages=languages, measures=measures, name=name, bias_measures=bias_measures
        )
        res.extra.update(run_file=trec.path, run_sha256=file_sha256(trec.path))
        scored[name] = (res, table, trec)
    if fuse:
        forms = {name: _form(t) for name, t in trecs.items()}
        if len(set(forms.values())) > 1:
            first = next(iter(forms))
            other = next(n for n, f in forms.items() if f != forms[first])
            a, fa, b, fb = trecs[first].path, forms[first], trecs[other].path, forms[other]
            raise DataError(f"cannot fuse runs written differently: {a} writes query ids as {fa}, {b} as {fb}")
        fused, params = fuse_runs(list(trecs.values()), fuse, rrf_k=rrf_k)
        name = _unique_name(fuse, taken)
        res, table = score_run(
            fused, bench, families=families, languages=languages, measures=measures, name=name, bias_measures=bias_measures
        )
        res.extra.update(fusion={**params, "runs": [t.path for t in trecs.values()], "systems": list(trecs)})
        scored[name] = (res, table, fused)
    compared: dict[str, Results] = {}
    for folder in compare:
        if not is_done(folder):
            raise DataError(f"{folder}: not a finished evaluation (no results.json with its completion marker)")
        res = Results.load(folder)
        if res.benchmark != bench.id:
            raise DataError(f"{folder}: evaluated on {res.benchmark!r}, not on {bench.id!r}")
        compared[_unique_name(Path(folder).name or "model", taken)] = res
    results = {name: r for name, (r, _, _) in scored.items()} | compared
    if baseline is not None and baseline not in results:
        raise DataError(f"--baseline: no system {baseline!r}; systems: {', '.join(results)}")
    if output is None:
        return results
    from ..data.trec import write_run
    from ..paths import clear_complete, mark_complete

    out = Path(output)
    if len(results) == 1:
        ((res, table, _),) = scored.values()
        write_evaluation(res, out, producer=producer)
        return results
    clear_complete(out)
    for name, (res, _table, trec) in scored.items():
        extra = []
        if fuse and "fusion" in res.extra:
            (out / name).mkdir(parents=True, exist_ok=True)
            clear_complete(out / name)
            write_run(trec, out / name / "run.trec")
            extra.append(out / name / "run.trec")
        write_evaluation(res, out / name, producer={**producer, "system": name}, extra_files=extra)
    from . import ReportEntry, build_report

    measure = "map" if "map" in measures else metrics.parse_measure(measures[0]).name
    base = baseline or (next(iter(compared)) if compared else next(iter(scored)))
    entries = [ReportEntry(name, None, bench.id, r) for name, r in results.items()]
    build_report(entries, out / "report", title=f"Runs on {bench.id}", measure=measure, baseline=base, latex=latex)
    mark_complete(out, producer=producer, kind="score", benchmark=bench.id)  # last: every system and the report
    return results


def check_system_name(name: str) -> str:
    """A system name given on the command line (``--run NAME=path``): a folder name in the output.

    Args:
        name: the name.

    Raises:
        DataError: an empty name, ``.``/``..``, or one with a path separator or whitespace.
    """
    if not name or name in (".", "..") or any(ch in name for ch in "/\\") or any(ch.isspace() for ch in name):
        raise DataError(f"--run: {name!r} is not a usable system name (no '/', '\\', whitespace, '.' or '..')")
    if name == "report":
        raise DataError("--run: 'report' is the report's folder, not a system name")
    return name
