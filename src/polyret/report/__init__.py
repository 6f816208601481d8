"""The experiment report people read: analysis -> a typed ``Report`` -> renderers (markdown, JSON, figures).

- ``entries``: ``ReportEntry`` (one evaluation) and ``load_entries`` (every completed evaluation of an
  experiment folder, whose layout ``polyret.report.layout`` owns)
- ``analysis``: ``analyse(entries) -> Report`` (seed statistics, significance over questions, seed
  notes computed from the run's own seeds, per-language tables, figure data); no rendering
- ``summary``: the typed report's data (``ReportData``, ``BenchmarkSummary``, ``SystemSummary``, ``Comparison`` ...)
- ``claims``: the paper's claims and their verdicts; ``alpha``: the alpha trade-off figures' data
- ``markdown`` / ``latex`` / ``jsonout`` / ``figures``: renderers of a ``ReportData``; ``files`` writes a report folder
- ``document``: ``Report``, the data with the methods that render it (``to_markdown``, ``to_json``, ``save``)

Imports run one way: summary < claims < alpha < renderers < files < document < analysis < entries/runs.

``build_report(entries, output)`` is ``analyse(entries).save(output)``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..vocabulary import BASELINE
from .analysis import analyse, check_entries
from .document import Report
from .entries import ReportEntry, load_entries
from .summary import (
    SCHEMA,
    BenchmarkSummary,
    Column,
    ColumnStats,
    Comparison,
    Interval,
    LanguageTable,
    ReportData,
    SystemSummary,
)

__all__ = [
    "SCHEMA",
    "BenchmarkSummary",
    "Column",
    "ColumnStats",
    "Comparison",
    "Interval",
    "LanguageTable",
    "Report",
    "ReportData",
    "ReportEntry",
    "SystemSummary",
    "analyse",
    "build_report",
    "load_entries",
    "read_report",
]


def build_report(
    entries: Sequence[ReportEntry],
    output: str | Path,
    *,
    title: str | None = None,
    measure: str = "map",
    baseline: str = BASELINE,
    n_resamples: int = 1000,
    seed: int = 0,
    figures: bool = True,
    latex: bool = False,
    setup: dict[str, str] | None = None,
) -> dict[str, Path]:
    """Write report.md, report.json and figures/*.png into ``output``; returns name -> path of every file.

    Args:
        entries: the evaluations (each system, seed and benchmark at most once).
        output: the report folder (created).
        title: the report's title (default ``"Experiment report"``).
        measure: the primary measure.
        baseline: the system the main table's differences refer to.
        n_resamples: resamples of the bootstrap and randomization tests.
        seed: their seed (deterministic for a given seed).
        figures: draw the PNG figures.
        latex: also write report.tex (the tables as LaTeX, booktabs).
        setup: the Setup section's rows (:func:`polyret.report.setup.collect_setup`; None: no section).

    Raises:
        ValueError: no entries, an entry given twice, or an entry without ``measure``.
    """
    entries = check_entries(entries, "build_report")
    out = Path(output)
    out.mkdir(parents=True, exist_ok=True)
    report = analyse(entries, title=title, measure=measure, baseline=baseline, n_resamples=n_resamples, seed=seed)
    report.setup = dict(setup or {})
    return report.save(out, figures=figures, latex=latex)


def read_report(output: str | Path) -> dict[str, Any]:
    """The report.json of a report folder (or the file itself), as written by ``build_report``.

    Args:
        output: a report folder or its report.json.
    """
    path = Path(output)
    path = path / "report.json" if path.is_dir() else path
    return json.loads(path.read_text(encoding="utf-8"))
