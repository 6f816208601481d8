"""The report's input: ``ReportEntry`` (one evaluation of one system, one seed, one benchmark) and
``load_entries``, which reads every completed evaluation of an experiment folder (layout:
``polyret.report.layout``)."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

from ..data.records import DataError
from ..evaluation.results import Results, load_checked
from .layout import evals_root, find_evals


@dataclass(frozen=True)
class ReportEntry:
    """One evaluation that goes into a report.

    Args:
        system: the system name (``"base"``, ``"mono"``, ``"hybrid-a0.3"``, ...).
        seed: the training seed, or None for an untrained model.
        benchmark: the benchmark id.
        results: the evaluation's results.
    """

    system: str
    seed: int | None
    benchmark: str
    results: Results


def load_entries(folder: str | Path) -> list[ReportEntry]:
    """Every completed evaluation under ``<folder>/evals`` (or ``folder`` itself when it is the evals folder).

    A folder without a valid completion marker (unfinished, edited since, or an older polyret's) or
    whose results.json disagrees with its per_query.csv.gz is left out with a warning: the experiment
    redoes such a folder, a report never renders it.

    Args:
        folder: an experiment folder or its evals folder.

    Raises:
        DataError: no evals folder, an unreadable results.json, or no completed evaluation at all.
    """
    evals = evals_root(folder)
    entries: list[ReportEntry] = []
    for system, seed, bench_dir in find_evals(folder):
        res, why = load_checked(bench_dir)  # marker (sizes and sha256), then results.json against per_query
        if res is None:
            if (bench_dir / "results.json").exists():
                warnings.warn(
                    f"{bench_dir}: evaluation not complete or not consistent ({why}); "
                    "left out of the report, run the experiment again to redo it",
                    stacklevel=2,
                )
            continue
        entries.append(ReportEntry(system, seed, res.benchmark, res))
    if not entries:
        raise DataError(
            f"{evals}: no completed evaluation (results.json with its completion marker) under <system>/[seed<k>/]<benchmark>/"
        )
    return entries
