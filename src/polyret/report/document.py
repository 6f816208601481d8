"""``Report``: the analysed experiment that renders itself (in the manner of ranx's reports): the typed data
(:class:`~polyret.report.summary.ReportData`) with ``to_markdown``, ``to_json`` and ``save``. It sits above
the renderers it calls, which read the data class only, so the report package's imports run one way:
summary < claims < alpha < renderers (markdown, latex, jsonout, figures) < files < document < analysis.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .files import save_report
from .jsonout import render_json
from .markdown import render_markdown
from .summary import ReportData

__all__ = ["Report"]


class Report(ReportData):
    """An analysed experiment (every field of :class:`~polyret.report.summary.ReportData`), rendered by its
    methods. Build one with ``polyret.report.analyse``; ``build_report`` analyses and saves in one call.
    """

    def to_markdown(self) -> str:
        """report.md's text (figures appear once ``save`` has drawn them)."""
        return render_markdown(self)

    def to_json(self) -> dict[str, Any]:
        """report.json's content: a JSON-ready dict (schema ``SCHEMA``)."""
        return render_json(self)

    def save(self, folder: str | Path, *, figures: bool = True, latex: bool = False) -> dict[str, Path]:
        """Write figures/*.png (when ``figures``), report.json, then report.md into ``folder``, each
        atomically; returns name -> path of every file (``"markdown"``, ``"json"``, ``"<bench>/<figure>"``).

        Args:
            folder: the report folder (created).
            figures: draw the PNG figures (and link them from the markdown).
            latex: also write report.tex, the tables as LaTeX (``"latex"``).
        """
        return save_report(self, folder, figures=figures, latex=latex)
