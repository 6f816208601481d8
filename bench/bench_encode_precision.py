"""Claim: bf16 (and fp16) inference changes a model's mAP by less than a stated amount, measured, not assumed.

    nice -n 10 python bench/bench_encode_precision.py [--model builtin:me5-small] [--benchmark xquad-r:test]
        [--languages de,en,zh] [--precisions fp32,bf16]

Each precision encodes the benchmark once (no cache), is scored with the same ``score()`` and reports
macro mAP per family, the mean cosine between its rows and the fp32 rows, and the encode time.
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--model", default="builtin:me5-small")
    p.add_argument("--benchmark", default="xquad-r:test")
    p.add_argument("--languages", default="")
    p.add_argument("--precisions", default="fp32,bf16")
    p.add_argument("--batch-size", type=int, default=32)
    args = p.parse_args(argv)

    from polyret.data import load_benchmark
    from polyret.evaluation.encoding import encode_benchmark
    from polyret.evaluation.scoring import score
    from polyret.models import load

    langs = [x for x in args.languages.split(",") if x] or None
    bench = load_benchmark(args.benchmark, languages=langs)
    model = load(args.model, device="cpu")
    base = None
    print(f"{args.benchmark} languages={langs or 'all'}: {len(bench.queries)} queries, {len(bench.candidates)} candidates")
    print("| precision | encode s | mean cos to fp32 rows | min cos | " + " | ".join(f"{f} mAP" for f in bench.families) + " |")
    print("|---|---:|---:|---:|" + "---:|" * len(bench.families))
    for precision in args.precisions.split(","):
        t = time.perf_counter()
        q, c = encode_benchmark(model, bench, batch_size=args.batch_size, cache=None, progress=False, precision=precision)
        wall = time.perf_counter() - t
        res, _ = score(bench, q, c, measures=["map"])
        if base is None:
            base = (q, c)
        cos = np.concatenate([(q * base[0]).sum(1), (c * base[1]).sum(1)])
        maps = " | ".join(f"{res.macro[f]['map']:.4f}" for f in bench.families if f in res.macro)
        print(f"| {precision} | {wall:.0f} | {cos.mean():.6f} | {cos.min():.6f} | {maps} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
