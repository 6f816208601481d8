"""Import cost of polyret's entry points: this tree against a git ref, interleaved, in fresh processes.

Each round imports every module once in a new interpreter for each tree (this one, then the ref's
``src/`` extracted with ``git archive``), recording the CPU seconds of the import (``time.process_time``:
less sensitive than wall time to other load on the machine) and how many modules it loaded. Prints the
median and minimum per module and tree, and the ratio of the medians.

    python bench/bench_import.py --ref 83de776 --rounds 15
    python bench/bench_import.py --ref 83de776 --modules polyret polyret.cli polyret.evaluation.results
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MODULES = ("polyret", "polyret.cli", "polyret.evaluation.results", "polyret.evaluation.config")
PROBE = (
    "import sys, time, json; t = time.process_time(); import {m}; print(json.dumps([time.process_time() - t, len(sys.modules)]))"
)


def measure(src: Path, module: str) -> tuple[float, int]:
    """(CPU seconds, modules loaded) of ``import module`` in a fresh interpreter with ``src`` first on the path."""
    env = {**os.environ, "PYTHONPATH": str(src)}
    out = subprocess.run([sys.executable, "-c", PROBE.format(m=module)], env=env, capture_output=True, text=True, check=True)
    seconds, loaded = json.loads(out.stdout.strip().splitlines()[-1])
    return seconds, loaded


def extract(ref: str, into: Path) -> Path:
    """The ``src/`` folder of ``ref`` (``git archive``) under ``into``."""
    archive = into / "ref.tar"
    with archive.open("wb") as fh:
        subprocess.run(["git", "-C", str(ROOT), "archive", ref, "src"], stdout=fh, check=True)
    with tarfile.open(archive) as tar:
        tar.extractall(into, filter="data")
    return into / "src"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ref", required=True, help="the git ref to compare with (e.g. the commit before a change)")
    ap.add_argument("--rounds", type=int, default=15, help="fresh processes per module and tree")
    ap.add_argument("--modules", nargs="+", default=list(MODULES), help="modules to import")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        trees = {"this": ROOT / "src", args.ref: extract(args.ref, Path(tmp))}
        rows = []
        for module in args.modules:
            times: dict[str, list[float]] = {name: [] for name in trees}
            loaded: dict[str, int] = {}
            for _ in range(args.rounds):  # interleaved: this tree, then the ref, each round
                for name, src in trees.items():
                    seconds, loaded[name] = measure(src, module)
                    times[name].append(seconds)
            med = {name: statistics.median(ts) for name, ts in times.items()}
            for name in trees:
                best = min(times[name])
                rows.append(f"{module:32s} {name:10s} median {med[name]:.3f} s  min {best:.3f} s  {loaded[name]} modules")
            ratio = med["this"] / med[args.ref] if med[args.ref] else float("nan")
            rows.append(f"{module:32s} this / {args.ref}: {ratio:.2f}")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
