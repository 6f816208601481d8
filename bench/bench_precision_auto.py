"""Claim (issue 27): on a CPU with native bf16, precision ``auto`` (the default) makes the main job faster
with the numbers unchanged: ``polyret evaluate`` >= 1.6x and a 20-step ``polyret train`` >= 1.25x faster
than with fp32, whole commands timed, mAP within .002.

    PYTHONPATH=$PWD/src POLYRET_DATA_DIR=/work/shared/data python bench/bench_precision_auto.py \
        [--jobs evaluate,train] [--reps 1] [--work /tmp/bench-precision-auto] [--models <cache>/models]

Each repetition runs the fp32 command and the default (auto) command back to back (the order alternates
between repetitions), each as its own process with a FRESH embedding cache (``POLYRET_CACHE_DIR`` a new
folder whose ``models/`` links to an already converted me5-small, so no run pays the one-time conversion).
Timed: the whole command, start to exit. Printed: one markdown row per run (wall s, resolved precision
as the run recorded it, mAP per family, max rank distance, train loss), the speed-ups per repetition,
and ``uptime`` before and after (the machine may be shared: compare runs of one repetition only).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

EVALUATE = ["evaluate", "--model", "builtin:me5-small", "--benchmark", "xquad-r", "--languages", "de,en,zh"]
TRAIN = ["train", "--recipe", "cpu", "--max-steps", "20", "--batch-size", "16", "--set", "lr=1e-5"]


def _uptime() -> str:
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True, check=False).stdout.strip()
    except OSError:
        return "uptime unavailable"


def _polyret() -> list[str]:
    exe = shutil.which("polyret", path=str(Path(sys.executable).parent))
    return [exe] if exe else [sys.executable, "-m", "polyret.cli"]


def _run(args: list[str], cache: Path, models: Path | None) -> float:
    cache.mkdir(parents=True)
    if models is not None:
        (cache / "models").symlink_to(models)
    env = {**os.environ, "POLYRET_CACHE_DIR": str(cache)}
    t = time.perf_counter()
    proc = subprocess.run([*_polyret(), *args], env=env, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - t
    if proc.returncode != 0:
        sys.exit(f"{' '.join(args)} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return wall


def _evaluate_row(out: Path) -> dict:
    data = json.loads((out / "results.json").read_text())
    fams = data["settings"]
    return {
        "precision": data.get("precision", "(not recorded)"),
        **{f"{f} mAP": fams[f]["map"] for f in ("mono", "cross", "multi") if f in fams},
        "max rank distance": data.get("language_bias", {}).get("max_rank_distance"),
    }


def _train_row(out: Path) -> dict:
    info = json.loads((out / "model" / "polyret_train.json").read_text())
    return {"precision": info["precision"], "train loss": info["train_loss"], "trainer s": info["train_seconds"]}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--jobs", default="evaluate,train")
    p.add_argument("--reps", type=int, default=1)
    p.add_argument("--work", default="/tmp/bench-precision-auto")
    p.add_argument("--models", default=None, help="an existing cache's models/ folder to link (default: convert once)")
    args = p.parse_args(argv)

    work = Path(args.work)
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    from polyret.me5_convert import me5_small_dir

    # converted once (or an existing cache's), linked into every fresh cache
    models = Path(args.models).resolve() if args.models else me5_small_dir(work / "seed-cache").parent
    print(f"start: {_uptime()}", flush=True)
    for job in [j for j in args.jobs.split(",") if j]:
        base = {"evaluate": EVALUATE, "train": TRAIN}[job]
        print(f"\n{job}: polyret {' '.join(base)} [--precision fp32 | --set precision=fp32]\n", flush=True)
        print("| rep | run | wall s | recorded precision | numbers |\n|---:|---|---:|---|---|", flush=True)
        for rep in range(args.reps):
            walls = {}
            for variant in ("fp32", "auto") if rep % 2 == 0 else ("auto", "fp32"):
                out = work / f"{job}-{rep}-{variant}"
                extra = []
                if variant == "fp32":
                    extra = ["--precision", "fp32"] if job == "evaluate" else ["--set", "precision=fp32"]
                walls[variant] = _run([*base, *extra, "--output", str(out)], work / f"cache-{job}-{rep}-{variant}", models)
                row = _evaluate_row(out) if job == "evaluate" else _train_row(out)
                numbers = ", ".join(
                    f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}" for k, v in row.items() if k != "precision"
                )
                print(f"| {rep} | {variant} | {walls[variant]:.1f} | {row['precision']} | {numbers} |", flush=True)
            print(f"| {rep} | speed-up | {walls['fp32'] / walls['auto']:.2f}x | | uptime: {_uptime()} |", flush=True)
    print(f"\nend: {_uptime()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
