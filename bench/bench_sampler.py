"""Claim (issue 9): keeping passage identities apart costs the sampler well under 1% of a training step, and
removes the false negatives the group-only sampler put into XQuAD-R train batches.

    PYTHONPATH=src python bench/bench_sampler.py [--groups 50000] [--data-dir ../shared/data]

1. Overhead: seconds per per-device batch of 100 at world size 8 (one global batch = 800 groups), hybrid,
   on a synthetic source of ``--groups`` groups x 4 languages where a third of the groups share their
   positive with another group and every pair has a hard negative that is often another's positive;
   with the identity check and without it (the same index with every passage distinct = old rule).
2. XQuAD-R train (if the files are there): distinct passage identities vs questions, and the fraction of
   batches of 16 / 32 / 100 groups (mixed strategy, one epoch, world size 1) that hold a repeated
   passage identity under the old group-only rule vs the sampler now.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from polyret.data.records import Pair, PairGroups
from polyret.training.pairs_dataset import PairIndex
from polyret.training.samplers import ParallelBatchSampler, batch_sampler_cost

LANGS = ("de", "en", "es", "fr")


def synthetic(n_groups: int, seed: int = 0) -> PairGroups:
    rng = np.random.default_rng(seed)
    pids = np.where(rng.random(n_groups) < 1 / 3, rng.integers(0, n_groups // 6, n_groups), np.arange(n_groups) + n_groups)
    negs = rng.integers(0, 2 * n_groups, n_groups)
    groups = {}
    for g in range(n_groups):
        p, n = f"P{pids[g]}", f"P{negs[g]}"
        groups[f"g{g}"] = {lang: Pair(f"g{g}", lang, f"q{g}", p, n, "syn", positive_id=p, negative_id=n) for lang in LANGS}
    return PairGroups("syn", groups)


def group_only(index: PairIndex) -> PairIndex:
    """The same index with every passage distinct: the sampler then keeps only groups apart (old rule)."""
    old = PairIndex.__new__(PairIndex)
    old.__dict__.update(index.__dict__)
    old.pair_positive = np.arange(index.num_pairs, dtype=np.int32)
    old.pair_negative = np.arange(index.num_pairs, 2 * index.num_pairs, dtype=np.int32)
    old.num_identities = 2 * index.num_pairs
    return old


def conflicted_fraction(index: PairIndex, sampler: ParallelBatchSampler) -> float:
    bad = n = 0
    for batch in sampler:
        d = index.decode(batch)
        pos, neg = index.pair_positive[d.passage_row], index.pair_negative[d.passage_row]
        other = (neg[:, None] == pos[None, :]) & ~np.eye(len(pos), dtype=bool)
        bad += bool(len(np.unique(pos)) < len(pos) or other[neg >= 0].any())
        n += 1
    return bad / max(n, 1)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--groups", type=int, default=50_000)
    p.add_argument("--data-dir", default=str(Path(__file__).resolve().parents[2] / "shared" / "data"))
    args = p.parse_args(argv)

    t0 = time.perf_counter()
    index = PairIndex([synthetic(args.groups)])
    print(
        f"synthetic index: {index.num_groups} groups, {index.num_pairs} pairs, {index.num_identities} identities "
        f"({time.perf_counter() - t0:.1f} s to build)"
    )
    for name, ix in (("identity check", index), ("group-only (old)", group_only(index))):
        t0 = time.perf_counter()
        sampler = ParallelBatchSampler(ix, 100, strategy="hybrid", seed=0, world_size=8)
        setup = time.perf_counter() - t0
        per_batch = batch_sampler_cost(sampler, epochs=1)
        deferred = sum(i.deferred for i in sampler.plan(0)) // 8
        print(
            f"  {name:18s}: {per_batch * 1e3:.3f} ms per batch of 100 (world size 8), setup {setup:.2f} s, "
            f"{deferred} groups deferred per epoch"
        )

    from polyret.data.pairs import load_pairs

    if not (Path(args.data_dir) / "xquad-r" / "en.json").is_file():
        print("xquad-r files absent: skipping part 2")
        return 0
    pairs = load_pairs("xquad-r:train", data_dir=args.data_dir, download=False)
    ix = PairIndex([pairs])
    en = len({by["en"].positive for by in pairs.groups.values()})
    print(
        f"xquad-r:train: {len(pairs)} questions, {en} distinct English gold sentences, "
        f"{len(np.unique(ix.pair_positive))} passage identities (translations and shared golds in any language joined)"
    )
    en_code = np.unique([by["en"].positive for by in pairs.groups.values()], return_inverse=True)[1]
    for bs in (16, 32, 100):
        old_en = []
        for s in range(5):
            sampler = ParallelBatchSampler(group_only(ix), bs, strategy="mixed", seed=s)
            codes = [en_code[ix.decode(b).group] for b in sampler]
            old_en.append(np.mean([len(np.unique(c)) < len(c) for c in codes]))
        rows = [f"old, same English gold only {np.mean(old_en):.0%}"]
        for name, sampler_ix in (("old", group_only(ix)), ("now", ix)):
            fractions = [conflicted_fraction(ix, ParallelBatchSampler(sampler_ix, bs, strategy="mixed", seed=s))
                         for s in range(5)]  # fmt: skip
            rows.append(f"{name} {np.mean(fractions):.0%}")
        print(f"  batches of {bs:3d} with a repeated passage (5 seeds, one epoch each): " + ", ".join(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
