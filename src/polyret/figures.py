"""Matplotlib figure primitives shared by ``polyret evaluate`` and the experiment report.

A leaf module (no polyret imports) so that evaluation can draw its heatmap without knowing the report.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

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
) -> Path:
    """Query x pool language matrix. ``diverging`` centres the colours on 0 (for differences)."""
    plt = _pyplot()
    m = np.asarray(matrix, dtype=float)
    n = len(labels)
    fig, ax = plt.subplots(figsize=(1.0 + 0.62 * n, 0.8 + 0.55 * n), dpi=120)
    if diverging:
        lim = np.nanmax(np.abs(m)) if np.isfinite(m).any() else 1.0
        lim = lim if lim > 0 else 1.0
        im = ax.imshow(m, cmap="RdBu", vmin=-lim, vmax=lim)
    else:
        im = ax.imshow(m, cmap="viridis", vmin=np.nanmin(m) if np.isfinite(m).any() else 0, vmax=np.nanmax(m) if np.isfinite(m).any() else 1)
    ax.set_xticks(range(n), labels)
    ax.set_yticks(range(n), labels)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title, fontsize=10)
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
                ax.text(j, i, txt, ha="center", va="center", fontsize=7, color="white" if dark else "black")
            if i == j:
                ax.add_patch(plt.Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, lw=1.2, ec="black"))
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    fig.tight_layout()
    return save(fig, path)


def save(fig, path: str | Path) -> Path:
    plt = _pyplot()
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
    return path
