"""Matplotlib figure primitives shared by ``polyret evaluate`` and the experiment report.

A leaf module (no polyret imports) so that evaluation can draw its heatmap without knowing the report.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .paths import atomic_path


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def heatmap(
    matrix: np.ndarray,
    labels: Sequence[str],
    path: str | Path,
    *,
    title: str = "",
    diverging: bool = False,
    xlabel: str = "pool (candidate) language",
    ylabel: str = "query language",
    fmt: str = "{:.3f}",
    vmin: float | None = None,
    vmax: float | None = None,
) -> Path:
    """Query x pool language matrix. ``diverging`` centres the colours on 0 (for differences).

    ``vmin``/``vmax`` fix the colour scale (for a row of figures compared side by side); for a
    diverging map the larger absolute value of the two sets the symmetric limit.
    """
    plt = _pyplot()
    m = np.asarray(matrix, dtype=float)
    n = len(labels)
    # a minimum readable size (a 2-language map is not a thumbnail), growing with the languages
    width, height = max(5.0, 1.6 + 0.62 * n), max(4.2, 1.5 + 0.55 * n)
    fig, ax = plt.subplots(figsize=(width, height), dpi=120)
    if diverging:
        lim = np.nanmax(np.abs(m)) if np.isfinite(m).any() else 1.0
        if vmin is not None or vmax is not None:
            lim = max(abs(vmin or 0.0), abs(vmax or 0.0))
        lim = lim if lim > 0 else 1.0
        im = ax.imshow(m, cmap="RdBu", vmin=-lim, vmax=lim)
    else:
        lo = vmin if vmin is not None else (np.nanmin(m) if np.isfinite(m).any() else 0)
        hi = vmax if vmax is not None else (np.nanmax(m) if np.isfinite(m).any() else 1)
        im = ax.imshow(m, cmap="viridis", vmin=lo, vmax=hi)
    ax.set_xticks(range(n), labels)
    ax.set_yticks(range(n), labels)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(wrap_title(title, width), fontsize=9)
    lo, hi = im.get_clim()
    for i in range(m.shape[0]):
        for j in range(m.shape[1]):
            if np.isfinite(m[i, j]):
                v = m[i, j]
                if diverging:
                    dark = abs(v) > 0.6 * max(abs(lo), abs(hi))
                else:
                    dark = (v - lo) < 0.55 * (hi - lo)
                txt = fmt.format(v).replace("0.", ".", 1) if not diverging else fmt.format(v).replace("0.", ".", 1)
                ax.text(j, i, txt, ha="center", va="center", fontsize=9 if n <= 6 else 7, color="white" if dark else "black")
            if i == j:
                ax.add_patch(plt.Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, lw=1.2, ec="black"))
    bar = fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    short = lambda v: fmt.format(v).replace("0.", ".", 1)  # noqa: E731
    bar.set_label(f"colour range {short(lo)} to {short(hi)}", fontsize=8)
    fig.tight_layout()
    return save(fig, path)


def wrap_title(title: str, width_inches: float, fontsize: float = 9) -> str:
    """``title`` with each line wrapped to fit a figure ``width_inches`` wide at ``fontsize`` points (about
    0.6 x fontsize points per character, over the axes' ~78% of the width), so a long model path is never clipped.

    Args:
        title: the title, lines separated by newlines.
        width_inches: the figure's width.
        fontsize: the title's font size in points.
    """
    import textwrap

    chars = max(20, int(0.78 * width_inches * 72 / (0.6 * fontsize)))  # the axes: ~78% of the figure
    out = []
    for line in title.split("\n"):
        out += textwrap.wrap(line, chars, break_long_words=True, break_on_hyphens=False) or [""]
    return "\n".join(out)


def save(fig, path: str | Path) -> Path:
    plt = _pyplot()
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
    return path


def grouped_bars(
    groups: Sequence[str],
    series: dict[str, tuple[Sequence[float], Sequence[float] | None]],
    path: str | Path,
    *,
    title: str = "",
    ylabel: str = "",
    colors: dict[str, str] | None = None,
    fmt: str = "{:.3f}",
) -> Path:
    """Bars for each group (x) and series (colour); ``series[name] = (heights, error bars or None)``.

    Heights are printed above the bars when there is room (few series), so the figure reads without the axis.
    """
    plt = _pyplot()
    names = list(series)
    n_g, n_s = len(groups), max(len(names), 1)
    width = 0.8 / n_s
    fig, ax = plt.subplots(figsize=(min(11.0, max(5.0, 1.0 + n_g * (0.35 + 0.42 * n_s))), 3.8), dpi=120)
    top = 0.0
    label_values = n_s * n_g <= 24
    for k, name in enumerate(names):
        heights, errs = series[name]
        h = np.asarray(heights, dtype=float)
        e = np.full_like(h, np.nan) if errs is None else np.asarray(errs, dtype=float)
        x = np.arange(n_g) - 0.4 + width * (k + 0.5)
        color = (colors or {}).get(name)
        ax.bar(x, np.nan_to_num(h), width * 0.92, label=name, color=color)
        has_err = np.isfinite(h) & np.isfinite(e)
        if has_err.any():  # NaN error = no error bar (e.g. a single seed), not a zero-width one
            ax.errorbar(x[has_err], h[has_err], yerr=e[has_err], fmt="none", capsize=2.5, elinewidth=0.9, ecolor="black")
        e = np.nan_to_num(e, nan=0.0)
        if label_values:
            for xi, hi, ei in zip(x, h, e):
                if np.isfinite(hi):
                    # a few points above the error bar's cap, whatever the axis scale
                    ax.annotate(
                        fmt.format(hi).replace("0.", ".", 1),
                        (xi, hi + ei),
                        xytext=(0, 3),
                        textcoords="offset points",
                        ha="center",
                        va="bottom",
                        fontsize=6.5,
                        rotation=90 if n_s > 3 else 0,
                    )
        finite = h[np.isfinite(h)]
        if len(finite):
            top = max(top, float(np.max(finite + e[np.isfinite(h)])))
    ax.set_xticks(range(n_g), groups)
    ax.set_ylim(0, top * (1.22 if label_values else 1.08) + 1e-9)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title, fontsize=10)
    ax.grid(axis="y", alpha=0.3)
    ax.set_axisbelow(True)
    ax.legend(fontsize=8, frameon=False, ncol=1, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.tight_layout()
    return save(fig, path)


def distributions(
    series: dict[str, np.ndarray],
    path: str | Path,
    *,
    title: str = "",
    xlabel: str = "",
    log: bool = True,
    colors: dict[str, str] | None = None,
) -> Path:
    """Distribution of per-query values per series: box plots (left) and ECDF curves (right), shared x axis.

    ``log`` uses a log x axis (values must be > 0 there; others are clipped to the smallest positive).
    """
    plt = _pyplot()
    names = [n for n in series if np.isfinite(np.asarray(series[n], dtype=float)).any()]
    data = [np.asarray(series[n], dtype=float) for n in names]
    data = [v[np.isfinite(v)] for v in data]
    if log:
        pos = np.concatenate([v[v > 0] for v in data]) if data else np.empty(0)
        floor = float(pos.min()) if len(pos) else 1.0
        data = [np.maximum(v, floor) for v in data]
    fig, (ax_box, ax_cdf) = plt.subplots(
        1, 2, figsize=(10.0, 1.6 + 0.38 * max(len(names), 3)), dpi=120, gridspec_kw={"width_ratios": [1, 1.15]}
    )
    ys = np.arange(len(names))[::-1]
    bp = ax_box.boxplot(
        data,
        positions=ys,
        orientation="horizontal",
        widths=0.6,
        showmeans=True,
        patch_artist=True,
        flierprops={"markersize": 2, "alpha": 0.4},
        meanprops={"marker": "D", "markersize": 4, "markerfacecolor": "white", "markeredgecolor": "black"},
        medianprops={"color": "black"},
    )
    for patch, name in zip(bp["boxes"], names):
        patch.set_facecolor((colors or {}).get(name, "#9ecae1"))
        patch.set_alpha(0.75)
    ax_box.set_yticks(ys, names)
    ax_box.set_xlabel(xlabel + (" (log scale)" if log else ""))
    ax_box.set_title("box: quartiles, whiskers 1.5 IQR, \u25c7 mean", fontsize=8)
    for name, v in zip(names, data):
        xs = np.sort(v)
        ax_cdf.step(
            xs,
            np.arange(1, len(xs) + 1) / len(xs),
            where="post",
            lw=1.4,
            color=(colors or {}).get(name),
            label=f"{name}: median {np.median(xs):.4g}",
        )
    ax_cdf.set_xlabel(xlabel + (" (log scale)" if log else ""))
    ax_cdf.set_ylabel("share of queries \u2264 x")
    ax_cdf.set_ylim(0, 1.01)
    ax_cdf.legend(fontsize=7.5, frameon=True, framealpha=0.9, loc="upper left")
    for ax in (ax_box, ax_cdf):
        if log:
            ax.set_xscale("log")
        ax.grid(alpha=0.3, which="major")
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return save(fig, path)
