"""Pairs at scale (issue 12): build / re-open time and peak memory of the on-disk pair store, per process.

Each measured phase runs in a FRESH process (so its peak memory is its own) over one synthetic JSONL file:

* ``build``: ``pair_file_store(path)``: stream, validate, write Arrow, compute the integer arrays.
* ``open``: what every rank does at start-up: map the finished store, take the trainer's view, build the
  PairIndex and the batch sampler (world size 8, batch 100), then fetch the texts of 50 batches.
* ``train``: ``polyret.train`` with ``max_steps`` 3 on the store (a tiny random BERT; CPU), run twice: the
  first run builds the training index into the cache (``polyret.training.index_cache``), the second maps it
  (what every rank of a multi-GPU run and every later run does). Each run also reports, per phase of
  ``train()``, the private memory when the phase ends and its peak during the phase (``phases``).

Memory is read from ``/proc/self/status`` by a sampling thread (every 20 ms): ``anon`` is the peak of
RssAnon (private memory: what grows per rank), ``file`` the peak of RssFile (pages of memory-mapped
files: shared by every rank through the page cache, reclaimable). ``VmHWM`` is the kernel's peak RSS.

Usage::

    nice -n 10 python bench/bench_pairs_scale.py --pairs 1000000 10000000 --work /tmp/pairs-bench --json out.json
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

LANGS = ("en", "de", "fr", "es")
WORDS = "city river capital country year people war king church music school water language history".split()


# ------------------------------------------------------------------------------------------- data
def write_pairs(path: Path, n_pairs: int, seed: int = 0) -> dict:
    """``n_pairs`` JSONL rows in groups of 2-4 languages; half the groups carry passage ids, a third hard negatives."""
    import numpy as np

    rng = np.random.default_rng(seed)
    tmp = path.with_suffix(".partial")
    rows = groups = 0
    with tmp.open("w", encoding="utf-8", buffering=1 << 20) as f:
        while rows < n_pairs:
            sizes = rng.integers(2, 5, size=10_000)
            words = rng.integers(0, len(WORDS), size=(10_000, 10))
            lines = []
            for k, w in zip(sizes.tolist(), words.tolist()):
                if rows >= n_pairs:
                    break
                g = groups
                langs = LANGS[:k] if g % 2 else LANGS[-k:]
                q, p = " ".join(WORDS[i] for i in w[:4]), " ".join(WORDS[i] for i in w[4:])
                for lang in langs:
                    if rows >= n_pairs:
                        break
                    extra = f', "positive_id": "P{g}"' if g % 2 else ""
                    if g % 3 == 0:
                        extra += f', "negative": "{lang} other passage {g + 1} {q}"'
                    lines.append(
                        f'{{"id": "g{g}", "lang": "{lang}", "query": "what {lang} {g} {q}", '
                        f'"positive": "{lang} passage {g} {p}"{extra}}}\n'
                    )
                    rows += 1
                groups += 1
            f.writelines(lines)
    tmp.replace(path)
    return {"pairs": rows, "groups": groups, "bytes": path.stat().st_size}


# ------------------------------------------------------------------------------------------ memory
class Peak:
    """Samples /proc/self/status every 20 ms; ``result()`` gives the peaks in MB."""

    def __init__(self) -> None:
        self.anon = self.file = 0
        self.phase = 0  # the peak since PhaseLog last reset it
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    @staticmethod
    def _read() -> dict[str, int]:
        out = {}
        with open("/proc/self/status") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key in ("RssAnon", "RssFile", "VmHWM"):
                    out[key] = int(value.split()[0])  # kB
        return out

    def _run(self) -> None:
        while not self._stop.is_set():
            s = self._read()
            self.anon, self.file = max(self.anon, s["RssAnon"]), max(self.file, s["RssFile"])
            self.phase = max(self.phase, s["RssAnon"])
            time.sleep(0.02)

    def result(self) -> dict[str, float]:
        self._stop.set()
        self._thread.join()
        s = self._read()
        self.anon, self.file = max(self.anon, s["RssAnon"]), max(self.file, s["RssFile"])
        return {"anon_mb": round(self.anon / 1024, 1), "file_mb": round(self.file / 1024, 1),
                "hwm_mb": round(s["VmHWM"] / 1024, 1)}  # fmt: skip


# ------------------------------------------------------------------------------------------ phases
def phase_build(path: Path) -> dict:
    from polyret.data.pairstore import pair_file_store

    store = pair_file_store(path)
    return {"rows": store.num_rows, "groups": store.num_groups, "store_mb": _folder_mb(store.folder)}


def phase_open(path: Path) -> dict:
    import numpy as np

    from polyret.data.pairs import load_pair_source
    from polyret.training.pairs_dataset import PairIndex
    from polyret.training.samplers import ParallelBatchSampler

    t0 = time.perf_counter()
    view = load_pair_source(str(path))
    t_view = time.perf_counter() - t0
    index = PairIndex([view])
    t_index = time.perf_counter() - t0
    sampler = ParallelBatchSampler(index, 100, strategy="hybrid", seed=1, world_size=8)
    t_sampler = time.perf_counter() - t0
    it = iter(sampler)
    batches = [next(it) for _ in range(50)]
    t_batches = time.perf_counter() - t0
    chars = sum(len(t) for b in batches for col in index.texts(b).values() for t in col)
    t_texts = time.perf_counter() - t0
    arrays = sum(getattr(index, n).nbytes for n in dir(index) if isinstance(getattr(index, n, None), np.ndarray))
    return {"pairs": index.num_pairs, "groups": index.num_groups, "s_view": round(t_view, 2),
            "s_index": round(t_index - t_view, 2), "s_sampler": round(t_sampler - t_index, 2),
            "ms_per_batch_sample": round(1000 * (t_batches - t_sampler) / 50, 2),
            "ms_per_batch_texts": round(1000 * (t_texts - t_batches) / 50, 2), "text_chars": chars,
            "index_arrays_mb": round(arrays / 2**20, 1), "s_total": round(t_texts, 2)}  # fmt: skip


class PhaseLog:
    """Private memory (RssAnon) per phase of ``train()``: wraps the functions it calls, one after the other."""

    def __init__(self, peak: Peak) -> None:
        self.peak = peak
        self.rows: list[dict] = []

    def wrap(self, owner, name: str, label: str) -> None:
        fn = getattr(owner, name)

        def wrapped(*args, **kwargs):
            start = time.perf_counter()
            self.peak.phase = Peak._read()["RssAnon"]  # the peak of this phase alone
            try:
                return fn(*args, **kwargs)
            finally:
                now = Peak._read()["RssAnon"]
                self.rows.append({"phase": label, "s": round(time.perf_counter() - start, 2),
                                  "anon_end_mb": round(now / 1024, 1),
                                  "anon_peak_mb": round(max(self.peak.phase, now) / 1024, 1)})  # fmt: skip

        setattr(owner, name, wrapped)


def phase_train(path: Path, work: Path, peak: Peak) -> dict:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from conftest import build_tiny_model
    from sentence_transformers import SentenceTransformerTrainer

    import polyret
    from polyret.training import index_cache, pair_sources, plan, trainer
    from polyret.training.config import TrainConfig
    from polyret.training.pairs_dataset import PairIndex

    log = PhaseLog(peak)
    log.wrap(pair_sources, "load_training_sources", "sources (map the store, take the view)")
    log.wrap(plan, "split_sources", "dev split")
    log.wrap(index_cache, "cached_pair_index", "index (build + save, or map)")
    log.wrap(plan, "resolve_plan", "plan (sampler, Conflicts)")
    log.wrap(PairIndex, "to_dataset", "dataset view")
    log.wrap(trainer, "_load_model", "model")
    log.wrap(SentenceTransformerTrainer, "__init__", "trainer construction")
    log.wrap(SentenceTransformerTrainer, "train", "trainer.train (sampler, 3 steps)")

    model = work / "tiny-model"
    if not model.exists():
        build_tiny_model(model)
    out = work / f"run-{path.stem}-{os.getpid()}"
    config = TrainConfig(model=str(model), train=(str(path),), output_dir=str(out), batch_size=32, lr=5e-4,
                         warmup_ratio=0.0, max_steps=3, logging_steps=1, precision="fp32", seed=3)  # fmt: skip
    t0 = time.perf_counter()
    final = polyret.train(config)
    info = json.loads((final / "polyret_train.json").read_text())
    return {"s_train": round(time.perf_counter() - t0, 2), "global_step": info.get("global_step"),
            "train_pairs": info.get("train_pairs"), "train_loss": info.get("train_loss"), "phases": log.rows}  # fmt: skip


def _folder_mb(folder: Path) -> float:
    return round(sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) / 2**20, 1)


def run_phase(phase: str, path: Path, work: Path) -> dict:
    import datasets  # noqa: F401  imports are not the phase's work: load them before measuring
    import torch  # noqa: F401

    import polyret.data.pairstore
    import polyret.training.samplers  # noqa: F401

    if phase == "train":
        import sentence_transformers  # noqa: F401
    base = Peak._read()
    peak = Peak()
    t0 = time.perf_counter()
    if phase == "build":
        out = phase_build(path)
    elif phase == "open":
        out = phase_open(path)
    else:
        out = phase_train(path, work, peak)
    out["seconds"] = round(time.perf_counter() - t0, 2)
    out.update(peak.result())
    out["anon_base_mb"] = round(base["RssAnon"] / 1024, 1)  # after the imports, before the work
    return out


def child(phase: str, path: Path, work: Path, env: dict) -> dict:
    cmd = [sys.executable, __file__, "--phase", phase, "--file", str(path), "--work", str(work)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"{phase} on {path} failed:\n{proc.stderr[-4000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pairs", type=int, nargs="+", default=[1_000_000])
    ap.add_argument("--work", type=Path, default=Path("/tmp/pairs-bench"))
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--train-min", type=int, default=0, help="run the train phase for sizes >= this (0: never)")
    ap.add_argument("--skip-build", action="store_true", help="the stores exist: no build / re-open / open phases")
    ap.add_argument("--phase", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--file", type=Path, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.phase:
        print(json.dumps(run_phase(args.phase, args.file, args.work)))
        return
    args.work.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "POLYRET_CACHE_DIR": str(args.work / "cache"), "OMP_NUM_THREADS": "1",
           "TOKENIZERS_PARALLELISM": "false"}  # fmt: skip
    results = []
    for n in args.pairs:
        path = args.work / f"pairs-{n}.jsonl"
        t0 = time.perf_counter()
        data = write_pairs(path, n) if not path.exists() else {"pairs": n, "bytes": path.stat().st_size}
        row = {"n": n, "data": data, "s_write_jsonl": round(time.perf_counter() - t0, 2)}
        if not args.skip_build:
            row["build"] = child("build", path, args.work, env)
            row["reopen"] = child("build", path, args.work, env)  # the store exists: open only
            row["open"] = child("open", path, args.work, env)
        if args.train_min and n >= args.train_min:
            row["train"] = child("train", path, args.work, env)  # builds the training index into the cache
            row["train_mapped"] = child("train", path, args.work, env)  # maps it
        results.append(row)
        print(json.dumps(row), flush=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
