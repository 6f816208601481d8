"""The report's figures, drawn from a ``BenchmarkSummary``: a heatmap per system (query x pool
language), difference heatmaps (hybrid - mono, hybrid - cross), grouped bars per family and the
distribution of per-query max rank distances.

The drawing primitives (``heatmap``, ``grouped_bars``, ``distributions``) stay in ``polyret.plotting``:
evaluation draws its own heatmap with them, and evaluation sits below the report in the data flow.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from .. import plotting as draw
from ..paths import atomic_path
from ..vocabulary import FAMILIES
from .alpha import draw_alpha_figures
from .summary import BenchmarkSummary, measure_name


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9.=-]+", "_", text).strip("_") or "x"


def system_colors(names: list[str], baseline: str) -> dict[str, str]:
    """Grey for the baseline, distinct non-grey colours for the others (stable within one report).

    Args:
        names: the systems, in report order.
        baseline: the system drawn in grey.
    """
    import matplotlib

    palette = [matplotlib.colors.to_hex(c) for c in matplotlib.colormaps["tab10"].colors]
    palette = [c for i, c in enumerate(palette) if i != 7]  # tab10's grey is the baseline's colour
    palette += [matplotlib.colors.to_hex(c) for i, c in enumerate(matplotlib.colormaps["tab20"].colors) if i % 2]
    out, k = {}, 0
    for name in names:
        if name == baseline:
            out[name] = "#9a9a9a"
        else:
            out[name] = palette[k % len(palette)]
            k += 1
    return out


def draw_benchmark(bench: BenchmarkSummary, fig_dir: Path, measure: str, baseline: str) -> dict[str, Path]:
    """Draw every figure the benchmark's data allows into ``fig_dir``; returns figure key -> path.

    Args:
        bench: the analysed benchmark.
        fig_dir: the figures folder.
        measure: the primary measure (labels and file names).
        baseline: the system drawn in grey.
    """
    figs: dict[str, Path] = {}
    slug = _slug(bench.id)
    name = measure_name(measure)
    colors = system_colors([s.name for s in bench.systems], baseline)
    mats = {s.name: (s.matrix_languages, s.matrix) for s in bench.systems if s.matrix is not None}
    if mats:
        finite = np.concatenate([m[np.isfinite(m)] for _, m in mats.values()])
        lo, hi = (float(finite.min()), float(finite.max())) if len(finite) else (0.0, 1.0)
        for s in bench.systems:
            langs, m = mats[s.name]
            seeds = f", mean of {s.n} seeds" if s.n > 1 else ""
            figs[f"heatmap:{s.name}"] = draw.heatmap(
                m,
                langs,
                fig_dir / f"{slug}_{name}_{_slug(s.name)}.png",
                title=f"{name}: {s.name}{seeds}\n{bench.id}; box = mono\ncolour scale shared by all systems",
                vmin=lo,
                vmax=hi,
            )
        for a, b in (("hybrid", "mono"), ("hybrid", "cross")):
            if a in mats and b in mats:
                langs, ma = mats[a]
                _, mb = mats[b]
                figs[f"diff:{a}-{b}"] = draw.heatmap(
                    ma - mb,
                    langs,
                    fig_dir / f"{slug}_diff_{a}-{b}.png",
                    diverging=True,
                    fmt="{:+.3f}",
                    title=f"{name}: {a} minus {b}\n{bench.id}, blue = {a} better",
                )
    fam_cols = [c for c in bench.columns if c.key in FAMILIES]
    if fam_cols:
        series = {
            s.name: (
                [s.stats[c.key].mean for c in fam_cols],
                [s.stats[c.key].std if s.stats[c.key].std is not None else float("nan") for c in fam_cols],
            )
            for s in bench.systems
        }
        any_std = any(s.n > 1 for s in bench.systems)
        figs["bars"] = draw.grouped_bars(
            [c.key for c in fam_cols],
            series,
            fig_dir / f"{slug}_bars.png",
            colors=colors,
            ylabel=f"macro {name}",
            title=f"{name} per setting family, {bench.id}" + (" (error bars: std over seeds)" if any_std else ""),
        )
    dist = {
        (s.name if s.n == 1 else f"{s.name} ({s.n} seeds)"): s.rank_distances
        for s in bench.systems
        if s.rank_distances is not None and len(s.rank_distances)
    }
    if dist:
        cmap = {k: colors[k.split(" (")[0]] if k.split(" (")[0] in colors else colors.get(k) for k in dist}
        figs["rank_distance"] = draw.distributions(
            dist,
            fig_dir / f"{slug}_rank_distance.png",
            colors=cmap,
            log=True,
            xlabel="max rank distance",
            title=f"Per-query max rank distance of the gold answers in the multilingual "
            f"pool, {bench.id}\n(all seeds pooled; lower = less language bias)",
        )
    figs.update(draw_alpha_figures(bench, fig_dir, slug, name, baseline))
    bias = draw_bias_panels(bench, fig_dir / f"{slug}_bias_measures.png", colors)
    if bias is not None:
        figs["bias_measures"] = bias
    return figs


_BIAS_PANELS = ("max_rank_distance", "peer", "max_at_r", "lpr", "lang_ndcg", "mrc")


def draw_bias_panels(bench: BenchmarkSummary, path: Path, colors: dict[str, str]) -> Path | None:
    """One panel per language-bias measure: each system's value with its 95% interval over questions
    (the report's bootstrap; over seeds and questions where a system has several seeds). None when the
    benchmark has fewer than two of these measures.

    Args:
        bench: the analysed benchmark.
        path: the PNG to write.
        colors: system -> colour.
    """
    cols = [c for key in _BIAS_PANELS for c in bench.columns if c.key == key]
    if len(cols) < 2:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [s.name for s in bench.systems]
    ncol = 3
    nrow = (len(cols) + ncol - 1) // ncol
    fig, axes = plt.subplots(nrow, ncol, figsize=(4.2 * ncol, 0.45 * len(names) * nrow + 1.4 * nrow), squeeze=False)
    for ax, col in zip(axes.flat, cols):
        y = np.arange(len(names))
        for i, s in enumerate(bench.systems):
            mean = s.stats[col.key].mean
            ci = s.ci_seeds.get(col.key) or s.ci.get(col.key)
            ax.barh(i, mean, color=colors.get(s.name, "#444444"), height=0.7)
            if ci is not None:
                ax.plot([ci.low, ci.high], [i, i], color="black", lw=1.2)
        ax.set_yticks(y, names, fontsize=8)
        ax.invert_yaxis()
        arrow = {"high": "higher = less bias", "low": "lower = less bias"}.get(col.better, "")
        if col.key == "lang_ndcg":  # rewards the query language: utility for a reader of that language
            arrow = "higher = relevant and in the query language"
        ax.set_title(f"{col.label}\n({arrow})" if arrow else col.label, fontsize=9)
        ax.tick_params(axis="x", labelsize=8)
        ax.grid(axis="x", alpha=0.3)
    for ax in list(axes.flat)[len(cols) :]:
        ax.axis("off")
    fig.suptitle(f"Language bias in the multilingual pool, {bench.id} (bars: mean; lines: 95% interval)", fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
    return path
