"""report.tex: the report's tables as LaTeX (booktabs), for papers; what ranx's ``Report.to_latex`` gives.

A pure function of the ``Report``, like ``report.md``: per benchmark the main table (bold = best in the
column, ``$^\\dagger$`` = a difference to the baseline the significance tests call real) and one
significance table per column with the raw and Holm-adjusted p-values. Needs ``\\usepackage{booktabs}``.
"""

from __future__ import annotations

import math

from ..evaluation.significance import ALPHA, TIE_TOLERANCE
from .markdown import _best
from .summary import BenchmarkSummary, ReportData

_SPECIAL = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
}


def escape(text: str) -> str:
    """``text`` with LaTeX's special characters escaped.

    Args:
        text: plain text (a system or column name).
    """
    return "".join(_SPECIAL.get(ch, ch) for ch in str(text))


def _num(x: float | None, digits: int, sign: bool = False) -> str:
    if x is None or not math.isfinite(x):
        return "--"
    return f"{x:+.{digits}f}" if sign else f"{x:.{digits}f}"


def _tabular(header: list[str], rows: list[list[str]], align: str, caption: str, label: str) -> list[str]:
    return [
        r"\begin{table}[t]",
        r"\centering",
        rf"\caption{{{caption}}}",
        rf"\label{{{label}}}",
        rf"\begin{{tabular}}{{{align}}}",
        r"\toprule",
        " & ".join(header) + r" \\",
        r"\midrule",
        *(" & ".join(r) + r" \\" for r in rows),
        r"\bottomrule",
        r"\end{tabular}",
        r"\end{table}",
        "",
    ]


def _label(text: str) -> str:
    return "".join(ch if ch.isalnum() else "-" for ch in text.lower())


def _main(bench: BenchmarkSummary, baseline: str) -> list[str]:
    bests = {c.key: _best(bench, c) for c in bench.columns}
    rows = []
    for s in bench.systems:
        row = [escape(s.name)]
        for c in bench.columns:
            st = s.stats[c.key]
            cell = _num(st.mean, c.digits)
            if st.std is not None:
                cell += rf" $\pm$ {_num(st.std, c.digits)}"
            if s.name in bests[c.key]:
                cell = rf"\textbf{{{cell}}}"
            sig = bench.comparison(s.name, baseline, c.key) if st.diff_to_base is not None else None
            if sig is not None and sig.significant:
                cell += r"$^\dagger$"
            row.append(cell)
        rows.append(row)
    caption = (
        f"{escape(bench.id)}: bold = best in the column; $^\\dagger$ = differs from {escape(baseline)} "
        f"(95\\% CI over questions excludes 0, not a tie within {TIE_TOLERANCE:g}, Holm-adjusted $p < {ALPHA:g}$)."
    )
    header = ["System", *(escape(c.label) for c in bench.columns)]
    return _tabular(header, rows, "l" + "r" * len(bench.columns), caption, f"tab:{_label(bench.id)}-main")


def _significance(bench: BenchmarkSummary) -> list[str]:
    out: list[str] = []
    for col in bench.columns:
        rows_c = [r for r in bench.significance if r.column == col.key]
        if not rows_c:
            continue
        d = col.digits + (1 if col.digits >= 3 else 0)
        rows = []
        for r in rows_c:
            verdict = f"{escape(r.better)} better" if r.significant and r.better else "tie" if r.high == r.low == 0 else "--"
            rows.append(
                [
                    rf"{escape(r.a)} $-$ {escape(r.b)}",
                    _num(r.diff, d, True),
                    f"[{_num(r.low, d, True)}, {_num(r.high, d, True)}]",
                    _num(r.p_randomization, 3),
                    _num(r.p_randomization_holm, 3),
                    verdict,
                ]
            )
        caption = (
            f"{escape(bench.id)}, {escape(col.label)}: paired tests over questions; "
            "$p_\\mathrm{Holm}$ = randomization $p$ adjusted by Holm-Bonferroni over this table's comparisons."
        )
        header = ["$a - b$", "diff", r"95\% CI", "$p$", r"$p_\mathrm{Holm}$", "verdict"]
        out += _tabular(header, rows, "lrrrrl", caption, f"tab:{_label(bench.id)}-{_label(col.key)}-significance")
    return out


def render_latex(report: ReportData) -> str:
    """report.tex's text: every benchmark's main table and significance tables.

    Args:
        report: the analysed report.
    """
    lines = [f"% {report.title}: tables written by polyret (needs \\usepackage{{booktabs}})", ""]
    for bench in report.benchmarks:
        lines += _main(bench, report.baseline)
        lines += _significance(bench)
    return "\n".join(lines).rstrip() + "\n"
