"""The alpha trade-off: how the share of monolingual batches moves each score, and the mono-vs-multi plane.

Hybrid batch training draws a monolingual batch with probability alpha and a cross-lingual one
otherwise (Elmahdy, Lin & Ahmad 2024, arXiv 2408.10536), so the ``mono`` strategy is alpha = 1 and
``cross`` is alpha = 0; ``hybrid`` is alpha = 0.5 and ``hybrid-a<x>`` (an experiment's ``alpha_sweep``)
alpha = x. With three or more of these in a report, two figures are drawn:

* ``alpha_curves``: mono, cross and multi score and max rank distance against the REALIZED share of
  monolingual steps (mean over seeds, the seeds' range as a horizontal bar; each point labelled with its
  nominal alpha; the nominal alpha where the trainings did not record it), one panel each,
  with each point's 95% interval over seeds and questions (over questions only for one seed, said in
  the title), and the base model as a dashed line;
* ``alpha_plane``: each alpha a point in the (multi score, mono score) plane, the base model and the
  two pure strategies marked, and the Pareto front (points no other point beats on both, the base model
  among them) drawn; each label sits beside its own marker, away from its nearest neighbour.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from .. import plotting as draw
from .summary import BenchmarkSummary, SystemSummary

_HYBRID_ALPHA = re.compile(r"^hybrid-a(\d+(?:\.\d*)?|\.\d+)$")


def system_alpha(name: str) -> float | None:
    """alpha of a system name: mono 1, cross 0, hybrid 0.5, ``hybrid-a<x>`` x; None for other systems."""
    if name == "mono":
        return 1.0
    if name == "cross":
        return 0.0
    if name == "hybrid":
        return 0.5
    m = _HYBRID_ALPHA.match(name)
    return float(m.group(1)) if m else None


def realized_alpha(nominal: float, system: SystemSummary) -> float:
    """The share of monolingual steps the system's trainings really had (mean over seeds), else ``nominal``.

    Args:
        nominal: the alpha its name gives.
        system: its summary (``mono_share`` from the trainings' batch logs).
    """
    return system.mono_share_mean if system.mono_share_mean is not None else nominal


def _share_range(nominal: float, system: SystemSummary) -> tuple[float, float]:
    """(below, above) the mean realized share: the seeds' range, as a horizontal error bar."""
    if not system.mono_share:
        return 0.0, 0.0
    values, mean = list(system.mono_share.values()), realized_alpha(nominal, system)
    return mean - min(values), max(values) - mean


def alpha_systems(bench: BenchmarkSummary) -> list[tuple[float, SystemSummary]]:
    """The benchmark's systems with a known alpha, sorted by alpha."""
    out = [(system_alpha(s.name), s) for s in bench.systems]
    return sorted(((a, s) for a, s in out if a is not None), key=lambda t: t[0])


def pareto_front(points: list[tuple[float, float]]) -> list[int]:
    """Indices of the points no other point beats on both coordinates (higher is better), sorted by x.

    Args:
        points: (x, y) pairs; NaN points are never on the front.
    """
    idx = [i for i, (x, y) in enumerate(points) if np.isfinite(x) and np.isfinite(y)]
    front = [
        i
        for i in idx
        if not any(points[j][0] >= points[i][0] and points[j][1] >= points[i][1] and points[j] != points[i] for j in idx)
    ]
    return sorted(front, key=lambda i: points[i][0])


def label_offsets(points: list[tuple[float, float]], distance: float = 16.0) -> list[tuple[float, float]]:
    """Where each point's label goes, in offset points from its marker: away from its nearest neighbour
    (in axis-normalised coordinates), so two close points get their labels on opposite sides and each
    label sits beside its own marker, never between two. A lone point's label goes up and right.

    Args:
        points: (x, y) data coordinates.
        distance: the label's distance from its marker, in points.
    """
    xy = np.asarray(points, dtype=float).reshape(-1, 2)
    finite = np.isfinite(xy).all(axis=1)
    span = np.ptp(xy[finite], axis=0) if finite.any() else np.ones(2)
    norm = xy / np.where(span > 0, span, 1.0)
    out = []
    for i in range(len(xy)):
        others = [j for j in range(len(xy)) if j != i and finite[j]]
        if not finite[i] or not others:
            out.append((distance * 0.7, distance * 0.7))
            continue
        d = norm[i] - norm[others]
        j = int(np.argmin((d**2).sum(axis=1)))
        v = d[j] if np.any(d[j]) else np.array([1.0, 1.0])
        v = v / np.linalg.norm(v)
        out.append((float(v[0] * distance), float(v[1] * distance)))
    return out


def _interval(s: SystemSummary, key: str) -> tuple[float, float, float, bool]:
    """(mean, low, high, over_seeds) of a system's column; low/high NaN without an interval."""
    mean = s.stats[key].mean
    iv = s.ci_seeds.get(key)
    if iv is not None:
        return mean, iv.low, iv.high, True
    iv = s.ci.get(key)
    if iv is not None:
        return mean, iv.low, iv.high, False
    return mean, float("nan"), float("nan"), False


def _annotate(ax, text: str, xy: tuple[float, float], offset: tuple[float, float]) -> None:
    """A label ``offset`` points from its marker at ``xy``, aligned away from it, tied to it by a thin line."""
    dx, dy = offset
    ax.annotate(
        text,
        xy,
        textcoords="offset points",
        xytext=(dx, dy),
        ha="left" if dx > 2 else ("right" if dx < -2 else "center"),
        va="bottom" if dy > 2 else ("top" if dy < -2 else "center"),
        fontsize=7,
        arrowprops={"arrowstyle": "-", "color": "#777777", "linewidth": 0.6, "shrinkA": 0, "shrinkB": 3},
    )


def draw_alpha_figures(bench: BenchmarkSummary, fig_dir: Path, slug: str, name: str, baseline: str) -> dict[str, Path]:
    """Draw ``alpha_curves`` and ``alpha_plane`` when the benchmark has 3+ systems with a known alpha.

    Args:
        bench: the analysed benchmark.
        fig_dir: the figures folder.
        slug: the benchmark's file-name slug.
        name: the measure's label (``"mAP"``).
        baseline: the untrained reference system (dashed line / grey point).
    """
    points = alpha_systems(bench)
    if len(points) < 3:
        return {}
    keys = [c.key for c in bench.columns if c.key in ("mono", "cross", "multi", "max_rank_distance")]
    if not keys:
        return {}
    plt = draw._pyplot()
    base = bench.system(baseline)
    # x is what each system DID: its realized share of monolingual steps (mean over seeds, the seeds' range as
    # a horizontal bar) where the trainings recorded it, else the nominal alpha
    alphas = np.array([realized_alpha(a, s) for a, s in points])
    spread = np.array([_share_range(a, s) for a, s in points]).T
    realized = any(s.mono_share for _, s in points)
    figs: dict[str, Path] = {}

    fig, axes = plt.subplots(1, len(keys), figsize=(3.4 * len(keys), 3.4), squeeze=False)
    any_q_only = False
    for ax, key in zip(axes[0], keys):
        vals = [_interval(s, key) for _, s in points]
        mean = np.array([v[0] for v in vals])
        low = np.array([v[1] for v in vals])
        high = np.array([v[2] for v in vals])
        any_q_only |= any(not v[3] for v in vals)
        err = np.vstack([mean - low, high - mean])
        err = np.where(np.isfinite(err), err, 0.0)
        ax.errorbar(alphas, mean, yerr=err, xerr=spread if realized else None, marker="o", capsize=3, color="#1f77b4")
        for a, m, (nominal, s) in zip(alphas, mean, points):
            text = f"{s.name} (α {nominal:g})" if realized and abs(a - nominal) > 1e-9 else s.name
            ax.annotate(text, (a, m), textcoords="offset points", xytext=(3, 4), fontsize=6)
        if base is not None and np.isfinite(base.stats[key].mean):
            ax.axhline(base.stats[key].mean, color="#9a9a9a", linestyle="--", label=baseline)
            ax.legend(fontsize=7, loc="best")
        label = "max rank distance (lower = less bias)" if key == "max_rank_distance" else f"{key} {name}"
        ax.set_title(label, fontsize=9)
        ax.set_xlabel(
            "realized share of monolingual steps (labels: nominal α)" if realized else "alpha (share of monolingual batches)"
        )
        ax.set_xlim(-0.05, 1.05)
        ax.grid(alpha=0.3)
    what = "95% CI over questions (one seed: seed noise not covered)" if any_q_only else "95% CI over seeds and questions"
    against = "the realized share of monolingual steps" if realized else "alpha"
    fig.suptitle(
        f"{bench.id}: scores against {against}; error bars = each system's own {what}\n"
        "overlapping bars do not mean no difference: paired differences are in the report's claims table",
        fontsize=9,
    )
    fig.tight_layout()
    figs["alpha_curves"] = draw.save(fig, fig_dir / f"{slug}_alpha_curves.png")

    if "mono" in keys and "multi" in keys:
        fig, ax = plt.subplots(figsize=(5.6, 4.8))
        xy = [(s.stats["multi"].mean, s.stats["mono"].mean) for _, s in points]
        has_base = base is not None and np.isfinite(base.stats["mono"].mean) and np.isfinite(base.stats["multi"].mean)
        base_xy = [(base.stats["multi"].mean, base.stats["mono"].mean)] if has_base else []
        front = pareto_front(xy + base_xy)  # the base model is on the front when no system beats it on both
        # each label beside its own marker, away from its nearest neighbour (base included), with a leader line
        offsets = label_offsets(xy + base_xy)
        for i, ((a, s), (x, y)) in enumerate(zip(points, xy)):
            _, xl, xh, _ = _interval(s, "multi")
            _, yl, yh, _ = _interval(s, "mono")
            xerr = [[x - xl], [xh - x]] if np.isfinite(xl) else None
            yerr = [[y - yl], [yh - y]] if np.isfinite(yl) else None
            pure = s.name in ("mono", "cross")
            color = "#d62728" if pure else "#1f77b4"
            ax.errorbar(x, y, xerr=xerr, yerr=yerr, fmt="none", ecolor=color, alpha=0.35, capsize=2, linewidth=1)
            ax.plot([x], [y], marker="s" if pure else "o", color=color, markersize=7, linestyle="none")
            label = f"{s.name} (α {a:g})" if not s.name.startswith("hybrid-a") else f"α {a:g}"
            if s.mono_share:
                label += f", realized {s.mono_share_mean:.2f}"
            _annotate(ax, label, (x, y), offsets[i])
        every = xy + base_xy
        if len(front) > 1:
            ax.plot([every[i][0] for i in front], [every[i][1] for i in front], color="#2ca02c", linewidth=1.5,
                    label="Pareto front", zorder=0)  # fmt: skip
        elif front:
            ax.scatter([every[front[0]][0]], [every[front[0]][1]], s=160, facecolors="none", edgecolors="#2ca02c",
                       label="Pareto front")  # fmt: skip
        if has_base:
            ax.scatter([base_xy[0][0]], [base_xy[0][1]], marker="x", s=60, color="#555555", label=baseline)
            _annotate(ax, baseline, base_xy[0], offsets[-1])
        ax.margins(0.15)  # room for the labels of the outermost points
        ax.set_xlabel(f"multi {name} (one pool of all languages)")
        ax.set_ylabel(f"mono {name}")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="best")
        ax.set_title(
            f"{bench.id}: mono vs multi trade-off over alpha\n(up and right is better; squares = pure strategies;\n"
            "faint bars: each score's own 95% CI; paired differences: the claims table)",
            fontsize=8,
        )
        fig.tight_layout()
        figs["alpha_plane"] = draw.save(fig, fig_dir / f"{slug}_alpha_plane.png")
    return figs
