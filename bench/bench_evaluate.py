"""Claims: (a) the full XQuAD-R evaluation of a model (11 languages, 132 settings) costs little more than
encoding each text once: scoring + metrics from cached embeddings in under 10 s, total within 1.2x of
the encoding time; (b) against the per-pair way (re-encode the pool and the queries for every setting),
polyret is many times faster, measured in one run on a subset of languages.

    python bench/bench_evaluate.py --part a [--model builtin:me5-small] [--benchmark xquad-r]
    python bench/bench_evaluate.py --part b [--languages de,en,zh] [--benchmark xquad-r:test]

Each part uses a fresh embedding cache (a temporary POLYRET_CACHE_DIR for embeddings) so encoding is
really measured; the converted model itself is reused from the user cache.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time

import numpy as np


def peak_rss_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def part_a(args) -> None:
    from polyret.evaluation import evaluate
    from polyret.models import load

    model = load(args.model, max_seq_length=args.max_seq_length)
    model.polyret_spec = args.model
    with tempfile.TemporaryDirectory() as cache:
        t0 = time.perf_counter()
        res = evaluate(
            model, args.benchmark, cache_dir=cache, batch_size=args.batch_size, progress=not args.quiet, output=args.output
        )
        wall = time.perf_counter() - t0
        t1 = time.perf_counter()
        again = evaluate(model, args.benchmark, cache_dir=cache, batch_size=args.batch_size, progress=False)
        cached_wall = time.perf_counter() - t1
    assert again.macro == res.macro
    t = res.timing
    n_texts = res.extra["n_queries"] + res.extra["n_candidates"]
    print(f"\n## (a) full evaluation: {args.model} on {args.benchmark}\n")
    print(
        "| settings | queries | candidates | encode s | texts/s | search s | metrics+bias s | total s | "
        "total / encode | rerun from cache s | peak RSS GiB |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    print(
        f"| {res.extra['n_settings']} | {res.extra['n_queries']} | {res.extra['n_candidates']} | "
        f"{t['encode_s']:.1f} | {n_texts / t['encode_s']:.1f} | {t['search_s']:.2f} | {t['metrics_s']:.2f} | "
        f"{wall:.1f} | {(t['encode_s'] + t['search_s'] + t['metrics_s']) / t['encode_s']:.3f} | "
        f"{cached_wall:.1f} | {peak_rss_gib():.2f} |"
    )
    print("\n| family | " + " | ".join(res.measures) + " |")
    print("|---|" + "---:|" * len(res.measures))
    for fam in res.families():
        print(f"| {fam} | " + " | ".join(f"{res.macro[fam][m]:.4f}" for m in res.measures) + " |")
    b = res.bias
    print(
        f"\nmax rank distance {b['max_rank_distance']:.2f}; same-language rate {b['same_language_rate']:.3f} "
        f"(chance {b['same_language_chance']:.3f})"
    )
    print(json.dumps({"timing": t, "wall_s": wall, "cached_wall_s": cached_wall}, indent=1))


def part_b(args) -> None:
    """Per-pair tools encode the queries and the pool of every setting again; polyret encodes once."""
    from polyret.data import load_benchmark
    from polyret.encode import encode
    from polyret.evaluation import evaluate
    from polyret.evaluation.encoding import candidate_texts
    from polyret.evaluation.metrics import per_query, per_setting
    from polyret.evaluation.search import build_run_table
    from polyret.evaluation.settings import settings_for
    from polyret.models import load

    langs = args.languages.split(",")
    bench = load_benchmark(args.benchmark, languages=langs)
    model = load(args.model, max_seq_length=args.max_seq_length)
    model.polyret_spec = args.model

    with tempfile.TemporaryDirectory() as cache:
        t0 = time.perf_counter()
        ours = evaluate(model, bench, cache_dir=cache, batch_size=args.batch_size, progress=False)
        polyret_s = time.perf_counter() - t0

    # per pair: for each setting, encode its queries and its pool from scratch, then score that setting alone
    t0 = time.perf_counter()
    texts = candidate_texts(bench)
    n_encoded = 0
    per_pair: dict[str, float] = {}
    for setting in settings_for(bench):
        qi = [i for i, q in enumerate(bench.queries) if q.lang == setting.query_lang]
        ci = [i for i, c in enumerate(bench.candidates) if c.lang in setting.pool_langs]
        q_emb = np.zeros((len(bench.queries), model.get_sentence_embedding_dimension()), np.float32)
        c_emb = np.zeros((len(bench.candidates), q_emb.shape[1]), np.float32)
        q_emb[qi] = encode(model, [bench.queries[i].text for i in qi], kind="query", batch_size=args.batch_size)
        c_emb[ci] = encode(model, [texts[i] for i in ci], kind="passage", batch_size=args.batch_size)
        n_encoded += len(qi) + len(ci)
        run = build_run_table(bench, q_emb, c_emb, [setting])
        per_pair.update(per_setting(per_query(run, ["map"])))
    per_pair_s = time.perf_counter() - t0
    worst = max(abs(per_pair[n]["map"] - ours.per_setting[n]["map"]) for n in per_pair)
    n_once = len(bench.queries) + len(bench.candidates)
    print(f"\n## (b) encode once vs per pair: {args.model} on {args.benchmark}, languages {args.languages}\n")
    print("| way | settings | texts encoded | seconds | ratio |")
    print("|---|---:|---:|---:|---:|")
    print(f"| polyret (encode once, all settings) | {len(per_pair)} | {n_once} | {polyret_s:.1f} | 1.00 |")
    print(
        f"| per pair (re-encode per setting) | {len(per_pair)} | {n_encoded} | {per_pair_s:.1f} | {per_pair_s / polyret_s:.2f} |"
    )
    print(f"\nlargest mAP difference between the two ways over all settings: {worst:.2e}")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--part", choices=["a", "b", "ab"], default="ab")
    p.add_argument("--model", default="builtin:me5-small")
    p.add_argument("--benchmark", default=None)
    p.add_argument("--languages", default="de,en,zh")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--max-seq-length", type=int, default=None)
    p.add_argument("--output", default=None, help="(a) also write the results folder here")
    p.add_argument("--quiet", action="store_true")
    args = p.parse_args(argv)
    if "a" in args.part:
        part_a(argparse.Namespace(**{**vars(args), "benchmark": args.benchmark or "xquad-r"}))
    if "b" in args.part:
        part_b(argparse.Namespace(**{**vars(args), "benchmark": args.benchmark or "xquad-r:test"}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
