"""Issue 22, item 4: what the first training run on a just-built pair store does that later runs do not.

Per size, each step in a fresh process (private memory = RssAnon, sampled every 20 ms by
``bench_pairs_scale.Peak``; ``file_mb`` = RssFile, pages of mapped files):

* ``storebuild``: ``load_pair_source`` builds the pair store (no training index);
* ``first-reuse``: the trainer's start on it: the source view, then ``cached_pair_index`` (builds the
  training index into the cache and maps it);
* ``later``: the same again (maps the cached index).

    python bench/bench_pair_index_reuse.py --pairs 100000 300000 --work /tmp/pair-index-reuse
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_pairs_scale import Peak, write_pairs

PHASES = ("storebuild", "first-reuse", "later")


def phase(name: str, path: Path, work: Path, n: int) -> dict:
    import numpy as np  # noqa: F401  imports are not the phase's work
    import torch  # noqa: F401

    from polyret.data.pairs import load_pair_source
    from polyret.training.index_cache import cached_pair_index

    base = Peak._read()
    peak = Peak()
    t0 = time.perf_counter()
    src = load_pair_source(str(path), cache_dir=work / "cache")
    mid = Peak._read()
    if name != "storebuild":
        cached_pair_index([src], cache_dir=work / "cache")
    r = peak.result()
    above = r["anon_mb"] - base["RssAnon"] / 1024
    return {"phase": name, "n": n, "s": round(time.perf_counter() - t0, 1), "anon_base_mb": round(base["RssAnon"] / 1024, 1),
            "view_anon_above_base_mb": round((mid["RssAnon"] - base["RssAnon"]) / 1024, 1),
            "anon_peak_above_base_mb": round(above, 1), **r}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pairs", type=int, nargs="+", default=[100_000, 300_000])
    ap.add_argument("--work", type=Path, default=Path("/tmp/pair-index-reuse"))
    ap.add_argument("--phase", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--n", type=int, default=0, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.phase:
        path = args.work / f"pairs-{args.n}.jsonl"
        print(json.dumps(phase(args.phase, path, args.work / f"n{args.n}", args.n)))
        return
    args.work.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    rows = []
    for n in args.pairs:
        path = args.work / f"pairs-{n}.jsonl"
        if not path.exists():
            write_pairs(path, n)
        for name in PHASES:
            cmd = [sys.executable, __file__, "--phase", name, "--n", str(n), "--work", str(args.work)]
            out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True).stdout
            rows.append(json.loads(out.strip().splitlines()[-1]))
            print(json.dumps(rows[-1]), flush=True)
    if len(args.pairs) >= 2:
        lo, hi = min(args.pairs), max(args.pairs)
        for name in PHASES[1:]:
            a = next(r for r in rows if r["n"] == lo and r["phase"] == name)
            b = next(r for r in rows if r["n"] == hi and r["phase"] == name)
            slope = (b["anon_peak_above_base_mb"] - a["anon_peak_above_base_mb"]) * 2**20 / (hi - lo)
            print(f"{name}: private peak grows {slope:.0f} B per pair from {lo:,} to {hi:,} pairs")


if __name__ == "__main__":
    main()
