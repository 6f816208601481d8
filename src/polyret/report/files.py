"""Writing a report folder: figures/*.png, then report.json, then report.md, each atomically."""

from __future__ import annotations

import json
from pathlib import Path

from ..paths import atomic_write_text
from .summary import ReportData


def save_report(report: ReportData, folder: str | Path, *, figures: bool = True, latex: bool = False) -> dict[str, Path]:
    """Render ``report`` into ``folder``; returns name -> path of every file written.

    The figures are drawn first (their paths are recorded in ``report``'s benchmarks, relative to
    ``folder``, so the markdown and JSON list them), then report.json, then report.md. Figures in
    ``folder/figures`` that this report did not draw (of systems an earlier, larger run had) are removed.

    Args:
        report: the analysed report.
        folder: the report folder (created).
        figures: draw the PNG figures; without, no figure is listed.
        latex: also write report.tex (the tables as LaTeX, :mod:`polyret.report.latex`).
    """
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    for b in report.benchmarks:
        b.figures = {}
    if figures:
        from .figures import draw_benchmark

        for b in report.benchmarks:
            drawn = draw_benchmark(b, out / "figures", report.measure, report.baseline)
            b.figures = {key: path.relative_to(out).as_posix() for key, path in drawn.items()}
    drawn_now = {out / rel for b in report.benchmarks for rel in b.figures.values()}
    figures_dir = out / "figures"
    if figures_dir.is_dir():  # figures of systems or benchmarks this report no longer has (a rerun with fewer)
        for old in figures_dir.rglob("*.png"):
            if old not in drawn_now:
                old.unlink()
    written = {"markdown": out / "report.md", "json": out / "report.json"}
    atomic_write_text(written["json"], json.dumps(report.to_json(), indent=2, ensure_ascii=False))
    atomic_write_text(written["markdown"], report.to_markdown())
    if latex:
        from .latex import render_latex

        written["latex"] = out / "report.tex"
        atomic_write_text(written["latex"], render_latex(report))
    for b in report.benchmarks:
        for key, rel in b.figures.items():
            written[f"{b.id}/{key}"] = out / rel
    return written
