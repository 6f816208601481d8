"""Claim: run table + all metrics for XQuAD-R (11 languages, 122 settings, k=100) in under 10 s on 2 cores.

Uses the real XQuAD-R benchmark structure (queries, candidates, qrels) when the data is available,
else a synthetic benchmark of the same shape; embeddings are random unit vectors (dim 384) where the
gold answers lie near their question's topic, so rankings look roughly like a trained model's.

    python bench/bench_scoring.py [--synthetic] [--k 100] [--dim 384] [--chunk-size 1024] [--repeat 2]
"""

from __future__ import annotations

import argparse
import resource
import sys
import time

import numpy as np

from polyret.data.records import Benchmark, Candidate, Query
from polyret.evaluation import bias
from polyret.evaluation.metrics import macro, per_query, per_setting
from polyret.evaluation.search import build_run_table
from polyret.evaluation.settings import settings_for
from polyret.vocabulary import DEFAULT_MEASURES as MEASURES

LANGS = ("ar", "de", "el", "en", "es", "hi", "ru", "th", "tr", "vi", "zh")


def synthetic_xquad_r(n_questions: int = 1190, n_sentences: int = 1183) -> Benchmark:
    queries = [Query(f"q{i}", lang, "") for lang in LANGS for i in range(n_questions)]
    cands = [Candidate(f"{lang}-s{j}", lang, "") for lang in LANGS for j in range(n_sentences)]
    qrels = {f"q{i}": {f"{lang}-s{i % n_sentences}": 1 for lang in LANGS} for i in range(n_questions)}
    return Benchmark("synthetic-xquad-r", LANGS, queries, cands, qrels)


def load(synthetic: bool) -> Benchmark:
    if not synthetic:
        try:
            from polyret.data.registry import load_benchmark

            return load_benchmark("xquad-r", download=False)
        except Exception as err:  # noqa: BLE001 - no data here: fall back to the same shape
            print(f"(real XQuAD-R not available: {err}; using a synthetic benchmark)", file=sys.stderr)
    return synthetic_xquad_r()


def embeddings(bench: Benchmark, dim: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Unit vectors; a question's translations and its gold answers share a topic vector."""
    rng = np.random.default_rng(seed)
    qids = sorted({q.id for q in bench.queries})
    topic = {qid: i for i, qid in enumerate(qids)}
    topics = rng.standard_normal((len(qids), dim)).astype(np.float32)
    q = topics[[topic[x.id] for x in bench.queries]] + 1.2 * rng.standard_normal((len(bench.queries), dim), dtype=np.float32)
    c = rng.standard_normal((len(bench.candidates), dim)).astype(np.float32)
    index = {cand.id: i for i, cand in enumerate(bench.candidates)}
    for qid, rels in bench.qrels.items():
        for cid in rels:
            c[index[cid]] = topics[topic[qid]] + 1.2 * rng.standard_normal(dim, dtype=np.float32)
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    c /= np.linalg.norm(c, axis=1, keepdims=True)
    return q, c


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--synthetic", action="store_true")
    ap.add_argument("--k", type=int, default=100)
    ap.add_argument("--dim", type=int, default=384)
    ap.add_argument("--chunk-size", type=int, default=1024)
    ap.add_argument("--repeat", type=int, default=2)
    args = ap.parse_args()

    bench = load(args.synthetic)
    q, c = embeddings(bench, args.dim)
    settings = settings_for(bench)
    print(
        f"benchmark {bench.id}: {len(bench.queries)} queries, {len(bench.candidates)} candidates, "
        f"{len(settings)} settings, dim {args.dim}, k {args.k}"
    )
    for rep in range(args.repeat):
        t0 = time.perf_counter()
        run = build_run_table(bench, q, c, settings, k=args.k, chunk_size=args.chunk_size)
        t1 = time.perf_counter()
        scores = per_query(run, MEASURES)
        by_setting = per_setting(scores)
        fam = macro(scores)
        t2 = time.perf_counter()
        b = bias.summary(run)
        t3 = time.perf_counter()
        print(
            f"[{rep}] run table {t1 - t0:6.2f} s ({len(run):,} rows) | metrics {t2 - t1:5.2f} s "
            f"({len(scores):,} query-settings) | bias {t3 - t2:5.2f} s | total {t3 - t0:6.2f} s"
        )
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS {peak:,.0f} MiB; {len(by_setting)} settings scored")
    for name, vals in fam.items():
        print(f"  {name:6s} " + "  ".join(f"{m} {v:.3f}" for m, v in vals.items()))
    print(
        f"  max rank distance {b.max_rank_distance:.1f}; same-language rate "
        f"{b.same_language_rate:.3f} (chance {b.same_language_chance:.3f})"
    )


if __name__ == "__main__":
    main()
