"""Claim: ``polyret score`` keeps a run as columns: time and memory grow linearly with the run's lines,
at a constant number of bytes per line (no Python object per line is kept).

A synthetic one-language benchmark (MIRACL-like: ``n`` queries, 10 candidates per query in the corpus,
2 relevant each) and a run of ``depth`` lines per query; for each size, the run file is read
(``read_run_table``) and scored (``score_run``: run table, every default measure). Peak memory is the
``tracemalloc`` peak of reading + scoring in a second, traced pass (the benchmark itself is built before
tracing starts; times come from the untraced first pass).

    python bench/bench_score_runs.py [--sizes 1000 4000 16000] [--depth 100]
"""

from __future__ import annotations

import argparse
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np

from polyret.data.records import Benchmark, Candidate, Query
from polyret.data.trec import read_run_table
from polyret.evaluation.external_runs import score_run


def synthetic(n: int) -> Benchmark:
    queries = [Query(f"q{i}", "xx", "") for i in range(n)]
    cands = [Candidate(f"d{j}", "xx", "") for j in range(10 * n)]
    qrels = {f"q{i}": {f"d{10 * i}": 1, f"d{10 * i + 1}": 1} for i in range(n)}
    return Benchmark(f"synthetic-{n}", ("xx",), queries, cands, qrels, families=("mono",))


def write_run(path: Path, n: int, depth: int, seed: int = 0) -> int:
    rng = np.random.default_rng(seed)
    with open(path, "w", encoding="utf-8") as fh:
        for i in range(n):
            docs = rng.choice(10 * n, size=depth, replace=False)
            fh.write("".join(f"q{i} Q0 d{d} {r} {1000 - r} bench\n" for r, d in enumerate(docs, 1)))
    return n * depth


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", type=int, nargs="+", default=[1000, 4000, 16000])
    ap.add_argument("--depth", type=int, default=100)
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in args.sizes:
            bench = synthetic(n)
            path = Path(tmp) / f"run-{n}.trec"
            lines = write_run(path, n, args.depth)
            t0 = time.perf_counter()
            run = read_run_table(path)
            t1 = time.perf_counter()
            res, _ = score_run(run, bench)
            t2 = time.perf_counter()
            del run
            tracemalloc.start()  # a second pass for memory: tracing slows Python allocations down
            res, _ = score_run(read_run_table(path), bench)
            _, peak = tracemalloc.get_traced_memory()
            tracemalloc.stop()
            rows.append((n, lines, t1 - t0, t2 - t1, peak))
            print(f"queries {n:>6}  lines {lines:>9}  read {t1 - t0:6.2f}s ({lines / (t1 - t0) / 1e6:.2f} M lines/s)  "
                  f"score {t2 - t1:6.2f}s  peak {peak / 2**20:7.1f} MiB ({peak / lines:.0f} B/line)  "
                  f"map {res.per_setting['mono:xx']['map']:.4f}")  # fmt: skip
    (_, l0, r0, s0, p0), (_, l1, r1, s1, p1) = rows[0], rows[-1]
    print(f"x{l1 / l0:.0f} lines: read time x{r1 / r0:.1f}, score time x{s1 / s0:.1f}, peak memory x{p1 / p0:.1f}")


if __name__ == "__main__":
    main()
