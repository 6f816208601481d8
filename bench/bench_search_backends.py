"""Claim (issue 11, the faiss `map` defect): on the same embeddings, exact search and faiss agree on
every measure with a cutoff up to k (Flat: identical; IVF / HNSW: approximate), while a no-cutoff
measure is refused on a faiss run (``metrics.per_query``) and reported as ``<measure>@k`` by
``evaluate`` -- never a top-k number under the full-ranking name.

    nice -n 10 python bench/bench_search_backends.py [--n 100000] [--queries 500] [--dim 32] [--k 100]

Data: a seeded synthetic one-language corpus of unit vectors; each query has 3 relevant passages
whose vectors are the query's plus noise (so the measures are far from 0 and from 1).
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--queries", type=int, default=500)
    ap.add_argument("--dim", type=int, default=32)
    ap.add_argument("--k", type=int, default=100)
    ap.add_argument("--noise", type=float, default=1.6)
    args = ap.parse_args()

    from polyret.data.records import Benchmark, CandidateTable, Query
    from polyret.evaluation import score
    from polyret.evaluation.metrics import per_query

    rng = np.random.default_rng(0)
    n, nq, dim, k = args.n, args.queries, args.dim, args.k
    c = rng.standard_normal((n, dim)).astype(np.float32)
    q = rng.standard_normal((nq, dim)).astype(np.float32)
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    rel = rng.choice(n, size=(nq, 3), replace=False)
    c[rel] = q[:, None, :] + args.noise / np.sqrt(dim) * rng.standard_normal((nq, 3, dim)).astype(np.float32)
    c /= np.linalg.norm(c, axis=1, keepdims=True)
    ids = [f"d{i}" for i in range(n)]
    table = CandidateTable(ids, np.zeros(n, np.int16), ("xx",), [""] * n)
    queries = [Query(f"q{i}", "xx", "") for i in range(nq)]
    qrels = {f"q{i}": {f"d{j}": 1 for j in rel[i]} for i in range(nq)}
    bench = Benchmark("synthetic", ("xx",), queries, table, qrels, families=("mono",))

    asked = ["map", f"map@{k}", "map@20", "ndcg", "ndcg@10", "mrr", "mrr@10", "recall@1", "recall@10", f"recall@{k}"]
    cols: dict[str, dict[str, str]] = {}
    runs = {}
    for backend in ("exact", "faiss", "faiss-ivf", "faiss-hnsw"):
        t0 = time.perf_counter()
        res, run = score(bench, q, c, measures=asked, k=k, backend=backend)
        runs[backend] = run
        vals = res.macro["mono"]
        col = {}
        for m in asked:
            if m in vals:
                col[m] = f"{vals[m]:.4f}"
            else:
                col[m] = f"-> {res.extra['renamed_measures'][m]} = {vals[res.extra['renamed_measures'][m]]:.4f}"
        cols[backend] = col
        print(f"# {backend}: {time.perf_counter() - t0:.1f} s", flush=True)
    refused = {}
    for backend, run in runs.items():
        for m in ("map", "ndcg", "mrr"):
            try:
                per_query(run, [m])
                refused[(backend, m)] = "computed"
            except ValueError:
                refused[(backend, m)] = "refused"
    print(f"\nN={n}, {nq} queries, dim {dim}, k={k}; `score(..., backend=...)` macro means (one setting)\n")
    print("| measure asked | exact | faiss (Flat) | faiss-ivf | faiss-hnsw | exact vs Flat |")
    print("|---|---:|---:|---:|---:|---|")
    for m in asked:
        e, f = cols["exact"][m], cols["faiss"][m]
        same = "identical" if e == f else ("renamed on faiss" if f.startswith("->") else "DIFFER")
        row = " | ".join(cols[b][m] for b in ("exact", "faiss", "faiss-ivf", "faiss-hnsw"))
        print(f"| {m} | {row} | {same} |")
    print("\n`metrics.per_query(run, [m])` on each run table:\n")
    print("| measure | " + " | ".join(runs) + " |")
    print("|---|" + "---|" * len(runs))
    for m in ("map", "ndcg", "mrr"):
        print(f"| {m} | " + " | ".join(refused[(b, m)] for b in runs) + " |")


if __name__ == "__main__":
    main()
