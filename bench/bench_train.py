"""Training benchmarks: (a) sampler overhead, (b) me5-small step time and peak memory.

(a) Training throughput (pairs/s) of the same model and batch under each polyret sampler (mono, cross,
    hybrid, mixed) and under sentence-transformers' own NoDuplicatesBatchSampler, all in one process on
    the sentence-transformers trainer; plus each sampler's own cost per batch (index generation and the
    dataset fetch, without the model) as a share of the median step time: the overhead target is <= 2%.
(b) me5-small (``polyret.models.load("builtin:me5-small")``) through ``polyret.training.train`` with and
    without frozen word embeddings, batch 32, max length 128: median step time and peak RSS, each in its
    own subprocess so the RSS peaks do not mix.

    python bench/bench_train.py                # both parts, markdown tables on stdout
    python bench/bench_train.py --part a --steps 8 --batch 32 --max-len 64 --layers 2

Timings on a shared 2-core machine are noisy; medians over the measured steps, first step excluded.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


class StepTimer:
    """Wall time between consecutive step ends (so data fetching and sampling are inside)."""

    def __new__(cls):
        from transformers import TrainerCallback

        class _Timer(TrainerCallback):
            def __init__(self) -> None:
                self.marks: list[float] = []

            def on_train_begin(self, args, state, control, **kwargs):
                self.marks = [time.perf_counter()]

            def on_step_end(self, args, state, control, **kwargs):
                self.marks.append(time.perf_counter())

            def step_times(self) -> list[float]:
                return [b - a for a, b in zip(self.marks, self.marks[1:])][1:]  # drop the warm-up step

        return _Timer()


def _args(out: str, batch: int, steps: int, batch_sampler):
    import torch
    from sentence_transformers import SentenceTransformerTrainingArguments

    return SentenceTransformerTrainingArguments(
        output_dir=out, per_device_train_batch_size=batch, max_steps=steps, learning_rate=3e-5, weight_decay=0.01,
        warmup_steps=0, save_strategy="no", eval_strategy="no", logging_steps=10_000, report_to="none", seed=1,
        batch_sampler=batch_sampler, prompts={"anchor": "query: ", "positive": "passage: "},
        dataloader_pin_memory=False, use_cpu=not torch.cuda.is_available(), disable_tqdm=True,
    )  # fmt: skip


def _sampler_cost(sampler, dataset, batches: int) -> float:
    """Seconds per batch for the sampler's indices plus the dataset fetch (what the DataLoader adds)."""
    start, n = time.perf_counter(), 0
    for batch in sampler:
        dataset.__getitems__(batch) if hasattr(dataset, "__getitems__") else dataset[batch]
        n += 1
        if n >= batches:
            break
    return (time.perf_counter() - start) / max(n, 1)


def part_a(model_spec: str, steps: int, batch: int, max_len: int, source: str, layers: int | None) -> list[dict]:
    import datasets
    from sentence_transformers import SentenceTransformerTrainer
    from sentence_transformers.base.sampler import BatchSamplers, NoDuplicatesBatchSampler
    from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss

    from polyret import models
    from polyret.data.pairs import load_pairs
    from polyret.training.pairs_dataset import build_pairs_dataset
    from polyret.training.samplers import ParallelBatchSampler, SamplerFactory
    from polyret.training.trainer import freeze_word_embeddings
    from polyret.vocabulary import STRATEGIES

    pairs = load_pairs(source)
    model = models.load(model_spec, max_seq_length=max_len)
    if layers:  # real tokenizer and weights, fewer layers: a faster step makes the overhead share conservative
        encoder = model[0].auto_model.encoder
        encoder.layer = encoder.layer[:layers]
    freeze_word_embeddings(model)  # the embedding matrix's optimizer step would dominate; same for every row
    loss = MultipleNegativesRankingLoss(model)
    index_ds, index = build_pairs_dataset(pairs, negatives=False)
    rows = [p for by_lang in pairs.groups.values() for p in by_lang.values()]  # every (query, positive) pair
    text_ds = datasets.Dataset.from_dict({"anchor": [p.query for p in rows], "positive": [p.positive for p in rows]})

    runs = [(s, index_ds, ParallelBatchSampler.factory(index, strategy=s, alpha=0.5, seed=1)) for s in
            STRATEGIES]  # fmt: skip
    runs.append(("ST NoDuplicatesBatchSampler", text_ds, BatchSamplers.NO_DUPLICATES))
    results = []
    for name, dataset, batch_sampler in runs:
        timer = StepTimer()
        with tempfile.TemporaryDirectory() as out:
            trainer = SentenceTransformerTrainer(model=model, args=_args(out, batch, steps + 1, batch_sampler),
                                                 train_dataset=dataset, loss=loss, callbacks=[timer])  # fmt: skip
            with contextlib.redirect_stdout(sys.stderr):  # the trainer prints its log dicts
                trainer.train()
        step = statistics.median(timer.step_times())
        if isinstance(batch_sampler, SamplerFactory):
            sampler = ParallelBatchSampler(index, batch, strategy=name, alpha=0.5, seed=2)
        else:
            sampler = NoDuplicatesBatchSampler(dataset, batch_size=batch, drop_last=True, seed=2)
        cost = _sampler_cost(sampler, dataset, 50)
        results.append({"sampler": name, "step_s": step, "pairs_per_s": batch / step, "sampler_ms": cost * 1e3,
                        "overhead_pct": 100 * cost / step})  # fmt: skip
        print(f"  {name}: {batch / step:.1f} pairs/s, sampler {cost * 1e3:.2f} ms/batch", file=sys.stderr, flush=True)
    return results


def one_b(model_spec: str, frozen: bool, steps: int, batch: int, max_len: int, source: str) -> dict:
    """Runs in a subprocess: one polyret train() call; reports the step time and this process's peak RSS."""
    from polyret.training import train
    from polyret.training.config import TrainConfig

    timer = StepTimer()
    with tempfile.TemporaryDirectory() as out:
        config = TrainConfig(model=model_spec, train=(source,), output_dir=out, batch_size=batch, max_seq_length=max_len,
                             max_steps=steps + 1, freeze_word_embeddings=frozen, warmup_ratio=0.0, logging_steps=1000,
                             precision="auto", seed=1)  # fmt: skip
        with contextlib.redirect_stdout(sys.stderr):
            train(config, callbacks=[timer])
    times = timer.step_times()
    return {"frozen": frozen, "step_s": statistics.median(times), "steps": len(times),
            "peak_rss_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20}  # fmt: skip


def part_b(model_spec: str, steps: int, batch: int, max_len: int, source: str) -> list[dict]:
    results = []
    for frozen in (False, True):
        cmd = [sys.executable, __file__, "--one-b", str(int(frozen)), "--model", model_spec, "--steps", str(steps),
               "--batch", str(batch), "--max-len", str(max_len), "--source", source]  # fmt: skip
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            raise RuntimeError(f"benchmark subprocess failed:\n{proc.stderr[-3000:]}")
        results.append(json.loads(proc.stdout.strip().splitlines()[-1]))
        r = results[-1]
        print(f"  frozen={frozen}: {r['step_s']:.2f} s/step, peak RSS {r['peak_rss_gib']:.2f} GiB", file=sys.stderr)
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--part", choices=("a", "b", "all"), default="all")
    parser.add_argument("--model", default="builtin:me5-small")
    parser.add_argument("--source", default="xquad-r:train")
    parser.add_argument("--steps", type=int, default=None, help="measured steps (a: 8, b: 5)")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--max-len", type=int, default=None, help="a: 64, b: 128")
    parser.add_argument("--layers", type=int, default=2, help="a: keep the first N encoder layers (0: all)")
    parser.add_argument("--one-b", type=int, default=None, help=argparse.SUPPRESS)
    ns = parser.parse_args()
    if ns.one_b is not None:
        print(json.dumps(one_b(ns.model, bool(ns.one_b), ns.steps, ns.batch, ns.max_len, ns.source)))
        return 0
    import torch

    device = torch.cuda.get_device_name() if torch.cuda.is_available() else f"CPU ({os.cpu_count()} cores)"
    print(f"# polyret training benchmarks\n\nmodel `{ns.model}`, data `{ns.source}`, {device}, "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads\n")  # fmt: skip
    if ns.part in ("a", "all"):
        steps, max_len = ns.steps or 8, ns.max_len or 64
        rows = part_a(ns.model, steps, ns.batch, max_len, ns.source, ns.layers)
        base = rows[-1]["pairs_per_s"]
        depth = f"first {ns.layers} encoder layers" if ns.layers else "all layers"
        print(f"## (a) throughput per sampler ({depth}, batch {ns.batch}, max length {max_len}, frozen word embeddings, "
              f"median of {steps} steps)\n")  # fmt: skip
        print("| sampler | s/step | pairs/s | vs ST NoDuplicates | sampler cost ms/batch | sampler overhead % of step |")
        print("|---|---:|---:|---:|---:|---:|")
        for r in rows:
            print(f"| {r['sampler']} | {r['step_s']:.3f} | {r['pairs_per_s']:.1f} | {100 * (r['pairs_per_s'] / base - 1):+.1f}% "
                  f"| {r['sampler_ms']:.2f} | {r['overhead_pct']:.2f} |")  # fmt: skip
        print()
    if ns.part in ("b", "all"):
        steps, max_len = ns.steps or 5, ns.max_len or 128
        rows = part_b(ns.model, steps, ns.batch, max_len, ns.source)
        print(f"## (b) me5-small step time and peak RSS (batch {ns.batch}, max length {max_len}, hybrid, "
              f"median of {steps} steps)\n")  # fmt: skip
        print("| word embeddings | s/step | pairs/s | peak RSS GiB |")
        print("|---|---:|---:|---:|")
        for r in rows:
            print(f"| {'frozen' if r['frozen'] else 'trained'} | {r['step_s']:.2f} | {ns.batch / r['step_s']:.1f} "
                  f"| {r['peak_rss_gib']:.2f} |")  # fmt: skip
        print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
