"""Do the language-bias measures agree on the order of the systems, and which separates them best?

Reads a report folder's report.json (``polyret experiment`` or ``build_report``) and prints, for one
benchmark: every bias column per system with its 95% interval over questions; Kendall's tau between
every pair of measures over the systems (each measure oriented so that larger = less bias; LPR is
"lower = less query-language preference", Lang-nDCG rewards the query language and is oriented as the
report does, higher = better); and each measure's separation relative to its noise: the range of the
system means divided by the mean half-width of the systems' 95% intervals.

    python bench/bias_measure_agreement.py runs/experiment/report [--benchmark xquad-r:test]
"""

from __future__ import annotations

import argparse
import itertools
import json
from pathlib import Path

import numpy as np
from scipy import stats

MEASURES = ("max_rank_distance", "peer", "max_at_r", "lpr", "lang_ndcg", "mrc")
SIGN = {"max_rank_distance": -1, "peer": 1, "max_at_r": -1, "lpr": -1, "lang_ndcg": 1, "mrc": 1}  # larger = better


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("report", type=Path, help="a report folder (with report.json)")
    ap.add_argument("--benchmark", default=None, help="benchmark id (default: the first)")
    args = ap.parse_args()
    data = json.loads((args.report / "report.json").read_text())
    benches = data["benchmarks"]
    b = benches[args.benchmark or next(iter(benches))]
    systems = list(b["systems"])
    cols = [m for m in MEASURES if all(m in b["systems"][s]["columns"] for s in systems)]
    print(f"benchmark {args.benchmark or next(iter(benches))}, systems: {', '.join(systems)}\n")
    print("| system | " + " | ".join(cols) + " |")
    print("|---|" + "---:|" * len(cols))
    means = {m: [] for m in cols}
    half = {m: [] for m in cols}
    for s in systems:
        sd = b["systems"][s]
        cells = []
        for m in cols:
            mean = sd["columns"][m]["mean"]
            ci = (sd.get("ci_over_seeds_and_questions") or {}).get(m) or (sd.get("ci_over_questions") or {}).get(m)
            means[m].append(mean)
            if ci:
                half[m].append((ci["high"] - ci["low"]) / 2)
                cells.append(f"{mean:.3f} [{ci['low']:.3f}, {ci['high']:.3f}]")
            else:
                cells.append(f"{mean:.3f}")
        print(f"| {s} | " + " | ".join(cells) + " |")
    print("\nKendall tau between measures over the systems (each oriented larger = less bias):\n")
    print("| | " + " | ".join(cols) + " |")
    print("|---|" + "---:|" * len(cols))
    for a in cols:
        row = []
        for c in cols:
            tau = stats.kendalltau(SIGN[a] * np.asarray(means[a]), SIGN[c] * np.asarray(means[c])).statistic
            row.append(f"{tau:+.2f}")
        print(f"| {a} | " + " | ".join(row) + " |")
    pairs = [
        stats.kendalltau(SIGN[a] * np.asarray(means[a]), SIGN[c] * np.asarray(means[c])).statistic
        for a, c in itertools.combinations(cols, 2)
    ]
    print(f"\nmean tau over {len(pairs)} pairs of measures: {np.nanmean(pairs):+.2f}")
    print("\nseparation relative to noise (range of system means / mean CI half-width):\n")
    for m in sorted(cols, key=lambda m: -(np.ptp(means[m]) / np.mean(half[m]) if half[m] else 0)):
        if half[m]:
            spread, noise = np.ptp(means[m]), np.mean(half[m])
            print(f"- {m}: range {spread:.4g}, mean half-width {noise:.4g}, ratio {spread / noise:.2f}")


if __name__ == "__main__":
    main()
