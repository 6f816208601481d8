"""report.md: a ``Report`` as markdown (main table, seeds, figures, significance, per-language tables).

A pure function of the ``Report``: no file is read, no number is computed that the analysis lacks
(only the mean row of each per-language table and the bold cells).
"""

from __future__ import annotations

import math
import re

import numpy as np

from ..evaluation.significance import ALPHA, TIE_TOLERANCE
from .summary import BenchmarkSummary, Column, Comparison, ReportData, measure_name

_LANGUAGE_CAPTIONS = {
    "mono": "Monolingual {name} (query and pool in the same language)",
    "cross": "Cross-lingual {name}, query language x mean over the other pool languages",
    "multi": "Multilingual {name} (pool of all languages)",
    "max_rank_distance": "Max rank distance in the multilingual pool (lower = less language bias)",
    "peer": "PEER in the multilingual pool (higher = documents of every language have equal expected rank)",
    "max_at_r": "Max@R, worst rank of the gold translations in the multilingual pool (lower = less language bias)",
    "lpr": "LPR@k, query-language share of the gold passages in the top k (lower = less preference; chance 1/L)",
    "lang_ndcg": "Lang-nDCG@k in the multilingual pool (other-language gold passages gain less)",
    "mrc": "MRC, mean Spearman correlation of parallel queries' rankings (higher = more language-consistent)",
}

_BIAS_KEYS = ("peer", "max_at_r", "lpr", "lang_ndcg", "mrc")  # polyret.evaluation.bias_measures' columns
_BIAS_LEGEND = (
    "Published bias measures (polyret.evaluation.bias_measures, parameters in each results.json's "
    "language_bias.parameters): *PEER* (Yang et al. SIGIR 2024): Kruskal-Wallis p-value that documents of each language "
    "have equal expected rank, weighted over relevance levels (higher = fairer). *Max@R* (arXiv 2604.05684): worst rank "
    "of the gold translations (lower = better). *LPR@k* (MLAIRE, arXiv 2605.07249): share of the gold passages in the "
    "top k that are in the query language (a language-blind ranker sits at ~1/L). *Lang-nDCG@k* (MLAIRE): nDCG@k with "
    "half gain for gold passages in another language. *MRC* (arXiv 2509.06195): mean Spearman correlation between the "
    "rankings of parallel queries in different languages, on the union of their top-k lists (higher = more consistent). "
    "A system named *X+remedy* is X's embeddings after a training-free remedy (center, shift, leace; see its "
    "results.json's debias record)."
)


def _f(x: float | None, digits: int, sign: bool = False) -> str:
    if x is None or not math.isfinite(x):
        return "\u2013"
    return f"{x:+.{digits}f}" if sign else f"{x:.{digits}f}"


def _best(bench: BenchmarkSummary, col: Column) -> set[str]:
    vals = {s.name: round(s.stats[col.key].mean, col.digits) for s in bench.systems if math.isfinite(s.stats[col.key].mean)}
    if not vals:
        return set()
    if col.better == "high":
        target = max(vals.values())
    elif col.better == "low":
        target = min(vals.values())
    else:
        if not math.isfinite(bench.chance):
            return set()
        dist = {k: round(abs(v - bench.chance), col.digits) for k, v in vals.items()}
        target_d = min(dist.values())
        return {k for k, d in dist.items() if d == target_d}
    return {k for k, v in vals.items() if v == target}


def _table(header: list[str], rows: list[list[str]], align: list[str] | None = None) -> list[str]:
    align = align or ["l"] + ["r"] * (len(header) - 1)
    sep = ["---:" if a == "r" else ":---" for a in align]
    return ["| " + " | ".join(header) + " |", "| " + " | ".join(sep) + " |", *("| " + " | ".join(r) + " |" for r in rows)]


def _seeds_cell(s) -> str:
    return "\u2013" if s.untrained else str(s.n)


def _share_cell(s) -> str:
    """The realized share of monolingual steps: mean over seeds, each seed's in parentheses."""
    if not s.mono_share:
        return "\u2013"
    cell = f"{s.mono_share_mean:.2f}"
    if len(s.mono_share) > 1:
        cell += " (" + " / ".join(f"{v:.2f}" for v in s.mono_share.values()) + ")"
    return cell


def _main_table(bench: BenchmarkSummary, baseline: str) -> list[str]:
    multi_seed = any(s.n > 1 for s in bench.systems)
    shares = any(s.mono_share for s in bench.systems)
    header = ["system", "seeds"] + (["mono share (realized)"] if shares else [])
    for c in bench.columns:
        label = c.label
        if c.key == "same_language_rate" and math.isfinite(bench.chance):
            label += f" (chance {bench.chance:.3f})"
        header.append(label)
    bests = {c.key: _best(bench, c) for c in bench.columns}
    rows = []
    for s in bench.systems:
        row = [s.name, _seeds_cell(s)] + ([_share_cell(s)] if shares else [])
        for c in bench.columns:
            st = s.stats[c.key]
            cell = _f(st.mean, c.digits)
            if st.std is not None:
                cell += f" \u00b1 {_f(st.std, c.digits)}"
            if s.name in bests[c.key]:
                cell = f"**{cell}**"
            if st.diff_to_base is not None:
                sig = bench.comparison(s.name, baseline, c.key)
                mark = "\u2020" if sig and sig.significant else ""
                cell += f" ({_f(st.diff_to_base, c.digits, sign=True)}{mark})"
            row.append(cell)
        rows.append(row)
    out = _table(header, rows)
    crit = ["highest score"]
    if any(c.better == "low" for c in bench.columns):
        crit.append("lowest rank distance")
    if any(c.better == "chance" for c in bench.columns):
        crit.append("same-language rate closest to chance")
    legend = ["", f"Bold: best in the column ({', '.join(crit)})."]
    if multi_seed:
        legend.append("Values are means over training seeds \u00b1 sample std over seeds (column *seeds*).")
    if shares:
        legend.append(
            "*mono share (realized)*: the share of optimizer steps that were monolingual, as each training's batch "
            "log recorded it (mean over seeds; per seed in parentheses). The name gives the nominal alpha (`hybrid` "
            ".5, `hybrid-a<x>` x): with `alpha_schedule: draw` a short run's share can be far from it."
        )
    if bench.system(baseline) is not None:
        legend.append(
            f"In parentheses: difference to `{baseline}`; \u2020 = a difference the significance tests call real "
            "(95% bootstrap CI over questions excludes 0, not a tie, Holm-adjusted p < 0.05; see Significance)."
        )
    return out + legend


def _per_language_tables(bench: BenchmarkSummary, measure: str) -> list[str]:
    name = measure_name(measure)
    out: list[str] = []
    for t in bench.language_tables:
        digits, high = t.digits, t.higher_is_better
        rows = []
        for i, q in enumerate(bench.languages + ["mean"]):
            vals = {
                n: (v[i] if i < len(bench.languages) else float(np.nanmean(v)) if np.isfinite(v).any() else float("nan"))
                for n, v in t.values.items()
            }
            finite = {n: round(v, digits) for n, v in vals.items() if math.isfinite(v)}
            target = (max if high else min)(finite.values()) if finite else None
            cells = [
                f"**{_f(v, digits)}**" if target is not None and finite.get(n) == target else _f(v, digits)
                for n, v in vals.items()
            ]
            rows.append([q if q != "mean" else "*mean*", *cells])
        caption = _LANGUAGE_CAPTIONS[t.key].format(name=name)
        out += [f"#### {caption}", "", *_table(["query language", *t.values], rows), ""]
    if out:
        out.append("Means over seeds; bold = best system in the row.")
    return out


def _seed_std_cell(std: float | None, n_seeds: int, digits: int) -> str:
    return _f(std, digits) if std is not None else "1 seed" if n_seeds == 1 else "\u2013"


def _significance_row(r: Comparison, d: int, baseline: str, untrained: frozenset[str] = frozenset()) -> list[str]:
    diff = f"{_f(r.diff, d, True)}"
    ci = f"[{_f(r.low, d, True)}, {_f(r.high, d, True)}]"
    if r.significant:
        diff, ci = f"**{diff}**", f"**{ci}**"
    sa = _seed_std_cell(r.seed_std_a, r.n_seeds_a, d)
    sb = _seed_std_cell(r.seed_std_b, r.n_seeds_b, d)
    if r.b == baseline and r.n_seeds_b == 1:
        sb = "\u2013"
    if r.a in untrained:  # a fixed run or model: no training seed, so no seed spread to report
        sa = "\u2013"
    if r.b in untrained:
        sb = "\u2013"
    if r.significant:
        verdict = f"{r.better} better"
        if r.within_seed_noise:
            verdict += " (but within 2x seed std)"
    elif abs(r.diff) <= TIE_TOLERANCE and r.low == 0 and r.high == 0:
        verdict = "tie (no per-query difference)"
    else:
        verdict = "no clear difference"
    if r.seeds_low is None or r.seeds_high is None:
        ci_s = "\u2013"
    else:
        ci_s = f"[{_f(r.seeds_low, d, True)}, {_f(r.seeds_high, d, True)}]"
        if r.a in untrained and r.b in untrained:
            ci_s = "\u2013"  # two fixed systems: no seed noise to add to the questions interval
        elif not r.seed_noise_covered:
            ci_s += " (1 seed)"
        elif r.seeds_low > 0 or r.seeds_high < 0:
            ci_s = f"**{ci_s}**"
        elif r.seeds_needed is not None:
            ci_s += f" (~{r.seeds_needed} seeds)"
    return [
        f"{r.a} \u2212 {r.b}",
        diff,
        ci,
        ci_s,
        f"{r.p_bootstrap:.3f}",
        f"{r.p_randomization:.3f}",
        _f(r.p_randomization_holm, 3),
        f"{sa} / {sb}",
        verdict,
    ]


def _significance_tables(bench: BenchmarkSummary, baseline: str, n_resamples: int) -> list[str]:
    if not bench.significance:
        return ["No per-query values (per_query.csv.gz) for at least two systems: no significance tests."]
    out = [
        (
            f"Paired tests over the {bench.n_questions} questions of the benchmark. The family score is a macro mean over "
            "settings and each question appears in every setting and language, so the bootstrap resamples whole questions "
            f"({n_resamples} resamples) and recomputes the macro mean; the randomization test swaps the two systems' values "
            "per question. With several seeds each system's per-query values are averaged over its seeds first, so the "
            "*questions* interval covers query sampling only. The *seeds + questions* interval also resamples each "
            "system's training seeds (a hierarchical bootstrap, see `polyret.evaluation.hierarchical`), so it carries "
            "both sources of noise; with one seed it cannot cover seed noise (marked), and where it spans 0 the "
            "seeds per system that the observed variances say would resolve it are given. "
            f"Per-query differences within {TIE_TOLERANCE:g} (the resolution per-query values are stored with) are ties. "
            "*p (randomization, Holm)* is the randomization p-value adjusted by Holm-Bonferroni over the comparisons of "
            "its table (one table per column); the raw p-values are not adjusted. A verdict says *better* only when the "
            f"95% CI over questions excludes 0, the difference is not a tie, and the Holm-adjusted p is below {ALPHA:g}; "
            "**bold** = the CI excludes 0."
        ),
        "",
    ]
    for col in bench.columns:
        rows_c = [r for r in bench.significance if r.column == col.key]
        if not rows_c:
            continue
        d = col.digits + (1 if col.digits >= 3 else 0)
        untrained = frozenset(x.name for x in bench.systems if x.untrained)
        rows = [_significance_row(r, d, baseline, untrained) for r in rows_c]
        direction = "lower is better" if col.better == "low" else "higher is better"
        out += [
            f"#### {col.label} ({direction})",
            "",
            *_table(
                [
                    "a \u2212 b",
                    "diff",
                    "95% CI (questions)",
                    "95% CI (seeds + questions)",
                    "p (bootstrap)",
                    "p (randomization)",
                    "p (randomization, Holm)",
                    "seed std a / b",
                    "verdict",
                ],
                rows,
                ["l", "r", "r", "r", "r", "r", "r", "r", "l"],
            ),
            "",
        ]
    return out


def _verdict_cell(v) -> str:
    """The verdict in words: a resolved one in bold, marked provisional when one seed judged it (seed noise
    not covered); an unresolved one with the way it leans."""
    if v.verdict == "not resolved":
        return f"not resolved, {v.lean}" if getattr(v, "lean", None) else "not resolved"
    cell = f"**{v.verdict}**"
    if not v.seed_noise_covered:
        cell += f", provisional ({min(v.n_seeds_a, v.n_seeds_b)} seed: training-seed noise not measured)"
    return cell


def _claims_section(bench: BenchmarkSummary, margin: float) -> list[str]:
    if not bench.claims:
        return []
    out = [
        "### The paper's claims",
        "",
        (
            "Each claim is a statement about a difference a \u2212 b, judged with the 95% interval over training seeds "
            'AND questions (hierarchical bootstrap). "At least as good as" is non-inferiority with a margin of '
            f"{margin:g}: *supported* when the interval lies above \u2212{margin:g}, *contradicted* when below it; "
            '"less bias" is *supported* when the interval lies below 0. Otherwise *not resolved* at this sample size.'
        ),
        "",
    ]
    rows = []
    for v in bench.claims:
        digits = 1 if v.claim.column == "max_rank_distance" else 4
        rows.append(
            [
                v.claim.text,
                f"{_f(v.diff, digits, True)}",
                f"[{_f(v.low, digits, True)}, {_f(v.high, digits, True)}]",
                f"{v.n_seeds_a} / {v.n_seeds_b}",
                _verdict_cell(v),
                v.note,
            ]
        )
    out += [
        *_table(
            ["claim", "a \u2212 b", "95% CI (seeds + questions)", "seeds a / b", "verdict", "why"],
            rows,
            ["l", "r", "r", "r", "l", "l"],
        ),
        "",
    ]
    return out


def _seed_section(bench: BenchmarkSummary, baseline: str) -> list[str]:
    others = [s for s in bench.systems if s.name != baseline]
    if not others:
        return []
    trained = [s for s in others if not s.untrained]  # external runs, fixed models, a remedy on base: no seed
    out = ["### Seeds", ""]
    if not trained:  # no training seed to vary
        out += [
            (
                "The systems compared here are fixed runs or models (no training seed): the intervals in this report "
                "cover query sampling only."
            ),
            "",
        ]
    elif all(s.n < 2 for s in trained):
        # no measured seed noise from elsewhere: with one seed this run cannot say how large it is
        out += [
            (
                "**Warning: every trained system was run with one seed.** The ranking of strategies on one seed may "
                "be noise: this run cannot measure how much the training seed moves a score. The confidence intervals "
                "in this report cover query sampling only, not training randomness; run more seeds before drawing "
                "conclusions."
            ),
            "",
        ]
    out += [f"- {text}" for text in bench.notes.values()]
    out.append("")
    cols = [c for c in bench.columns if c.settings_family is not None]
    header = ["system", "seeds"]
    for c in cols:
        header += [f"{c.label}: std over seeds", "\u00b1 95% CI (questions)"]
    rows = []
    for s in bench.systems:
        row = [s.name, _seeds_cell(s)]
        for c in cols:
            d = c.digits + (1 if c.digits >= 3 else 0)
            st = s.stats[c.key]
            ci = s.ci.get(c.key)
            row += [
                _f(st.std, d) if st.std is not None else "\u2013",
                f"\u00b1{_f((ci.high - ci.low) / 2, d)}" if ci else "\u2013",
            ]
        rows.append(row)
    out += [
        (
            "Spread over training seeds next to the query-sampling uncertainty of each system's own score (half width "
            "of its 95% bootstrap CI over questions, seed-averaged per-query values):"
        ),
        "",
        *_table(header, rows),
        "",
    ]
    if any(s.n > 1 for s in bench.systems):
        rows = []
        for s in bench.systems:
            if s.untrained:
                continue
            row = [s.name]
            for c in cols:
                d = c.digits + (1 if c.digits >= 3 else 0)
                row.append(", ".join(f"{k}: {_f(v, d)}" for k, v in s.stats[c.key].per_seed.items()))
            rows.append(row)
        out += [
            "Per-seed values (seed: value):",
            "",
            *_table(["system", *(c.label for c in cols)], rows, ["l"] * (1 + len(cols))),
            "",
        ]
    return out


def _anchor(text: str) -> str:
    return re.sub(r"[^a-z0-9 -]", "", text.lower()).replace(" ", "-")


def render_markdown(report: ReportData) -> str:
    """report.md's text.

    Args:
        report: the analysed report (its benchmarks' ``figures`` are linked when present).
    """
    measure, baseline = report.measure, report.baseline
    name = measure_name(measure)
    lines = [
        f"# {report.title}",
        "",
        (
            f"Primary measure: **{name}**{' (mean average precision over the full ranking)' if measure == 'map' else ''}. "
            "Families: *mono* = query and candidates in the same language, *cross* = candidates in one other "
            "language, *multi* = one pool of all languages; a family's score is the macro mean over its settings. "
            "*Max rank distance*: per query, rank of the worst-ranked gold translation minus the best-ranked one in the "
            "multilingual pool (lower = less language bias). *Same-language rate*: share of queries whose best-ranked "
            "gold answer is in the query language (a language-blind ranker scores the chance rate)."
        ),
        "",
    ]
    if report.setup:
        lines += ["## Setup", "", *_table(["", "value"], [[k, str(v)] for k, v in report.setup.items()], ["l", "l"]), ""]
    if report.precision:
        lines += [f"Inference precision of the evaluations: {report.precision}.", ""]
    lines += ["Benchmarks: " + ", ".join(f"[{b.id}](#{_anchor(b.id)})" for b in report.benchmarks), ""]
    for b in report.benchmarks:
        lines += [
            f"## {b.id}",
            "",
            f"{len(b.languages)} languages ({', '.join(b.languages)}); systems: "
            + ", ".join(s.name if s.untrained else f"{s.name} ({s.n} seed{'s' if s.n != 1 else ''})" for s in b.systems)
            + ".",
            "",
            "### Main results",
            "",
            *_main_table(b, baseline),
            "",
        ]
        if any(c.key in _BIAS_KEYS for c in b.columns):
            lines += [_BIAS_LEGEND, ""]
        lines += _claims_section(b, report.claim_margin)
        lines += _seed_section(b, baseline)
        if b.figures:
            lines += ["### Figures", ""]
            for key, path in b.figures.items():
                lines += [f"![{key}]({path})", ""]
        lines += ["### Significance", "", *_significance_tables(b, baseline, report.n_resamples)]
        per_lang = _per_language_tables(b, measure)
        if per_lang:
            lines += ["### Per language", "", *per_lang, ""]
    return "\n".join(lines).rstrip() + "\n"
