"""The command line's start: ``polyret <verb> --help`` wall time, this tree against another, interleaved.

Every option's help text is read from the config classes' docstrings when ``polyret.cli`` is imported
(issue 20), so the start imports the three config modules; this measures what that costs as a ratio to a
baseline source tree run back to back in the same loop (machine noise hits both alike).

Usage::

    PYTHONPATH=src python bench/bench_cli_startup.py --baseline /path/to/other/checkout/src --runs 10

Args (command line):
    --baseline: another checkout's ``src`` folder (e.g. the main branch's) to compare with (optional).
    --runs: rounds; each round runs every tree once per verb.
    --verbs: the verbs whose ``--help`` is timed (``""``: ``polyret --help``).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path


def run_once(src: str, verb: str) -> float:
    env = {**os.environ, "PYTHONPATH": src}
    argv = [sys.executable, "-m", "polyret.cli", *([verb] if verb else []), "--help"]
    start = time.perf_counter()
    subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", default=None)
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--verbs", default=",evaluate")
    args = parser.parse_args()
    here = str(Path(__file__).resolve().parents[1] / "src")
    trees = {"this": here, **({"baseline": args.baseline} if args.baseline else {})}
    verbs = args.verbs.split(",")
    times: dict[tuple[str, str], list[float]] = {(t, v): [] for t in trees for v in verbs}
    for _ in range(args.runs):
        for verb in verbs:
            for tree, src in trees.items():
                times[(tree, verb)].append(run_once(src, verb))
    for verb in verbs:
        line = f"polyret {verb or ''} --help:".replace("  ", " ")
        for tree in trees:
            t = times[(tree, verb)]
            line += f"  {tree} median {statistics.median(t):.3f} s (min {min(t):.3f})"
        if "baseline" in trees:
            ratio = statistics.median(times[("this", verb)]) / statistics.median(times[("baseline", verb)])
            line += f"  ratio this/baseline {ratio:.3f}"
        print(line)


if __name__ == "__main__":
    main()
