"""Claim: polyret's encoder (batches sorted by token count, cut to a padded-token budget) is faster than
sentence-transformers' own ``encode`` (which sorts by characters) on multilingual text, same embeddings.

    python bench/bench_encode.py [--n 384] [--batch-sizes 16,32,64] [--benchmark xquad-r:test]

Random sample of the benchmark's candidates (passages) and questions, no cache, one process.
"""

from __future__ import annotations

import argparse
import random
import sys
import time

import numpy as np


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--model", default="builtin:me5-small")
    p.add_argument("--benchmark", default="xquad-r:test")
    p.add_argument("--n", type=int, default=384)
    p.add_argument("--batch-sizes", default="16,32,64")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)

    from polyret.data import load_benchmark
    from polyret.encode import encode
    from polyret.models import load

    bench = load_benchmark(args.benchmark)
    rng = random.Random(args.seed)
    passages = rng.sample([c.text for c in bench.candidates], args.n)
    queries = rng.sample([q.text for q in bench.queries], args.n)
    model = load(args.model)
    encode(model, passages[:16], kind="passage")  # warm-up
    print("| kind | batch | sentence-transformers encode texts/s | polyret encode texts/s | speed-up | max abs diff |")
    print("|---|---:|---:|---:|---:|---:|")
    for bs in (int(b) for b in args.batch_sizes.split(",")):
        for kind, texts in (("passage", passages), ("query", queries)):
            t = time.perf_counter()
            st = model.encode(
                texts, prompt_name=kind, batch_size=bs, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False
            )
            t_st = time.perf_counter() - t
            t = time.perf_counter()
            ours = encode(model, texts, kind=kind, batch_size=bs)
            t_ours = time.perf_counter() - t
            diff = float(np.abs(st - ours).max())
            print(
                f"| {kind} | {bs} | {len(texts) / t_st:.1f} | {len(texts) / t_ours:.1f} | {t_st / t_ours:.2f} | {diff:.1e} |",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
