"""Claim (issue 11, done-when): a whole MIRACL-format evaluation of 1M passages -- ``polyret evaluate``
itself, corpus loading, encoding into the embedding store, exact search, metrics, writing -- runs in
peak RSS below 1.5x the embedding matrix plus a constant, cold and warm, in time linear in N.

    nice -n 19 python bench/bench_miracl_e2e.py --sizes 100000,300000,1000000 [--work DIR] [--lang sw]
        [--hidden 64] [--words 4,12] [--max-seq-length 32] [-- extra polyret evaluate options]
    python bench/bench_miracl_e2e.py --from-json run-a.out run-b.out   # the tables of saved runs

Data: the real MIRACL dev topics and qrels of ``--lang`` (sw: 482 queries with judgements) from
POLYRET_DATA_DIR, and a synthetic ``corpus/<lang>.jsonl.gz`` of N passages whose first ones carry every
judged docid (``bench_corpus_scale.make_data``), texts of 4-12 words drawn from a fixed multilingual word
list (``bench_encode_scale.WORDS``). Model: ``bench_encode_scale.build_model``, a 1-layer random BERT of
hidden 64 (256 B float32 rows), max_seq_length 32. Every run is a fresh process that calls the
``polyret`` command line in-process (``polyret.cli.app``: ``evaluate --benchmark miracl/<lang>
--data-dir ... --output ...``), 1 torch thread; "cold" starts from an empty POLYRET_CACHE_DIR (no corpus
cache, no embedding store), "warm" reruns it on the same cache.

Per phase the peak RSS is measured by resetting the kernel's high-water mark (``/proc/self/clear_refs``
5) at each phase boundary and reading ``VmHWM`` at the next; the phases are found by wrapping the
functions ``evaluate`` calls (``load_benchmark``, ``models.load``, ``encode_benchmark``, ``score``,
``Results.write``); "after X" is the glue that follows X. The run's peak is the largest phase peak.
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

HERE = Path(__file__).resolve().parent

# Passages of each MIRACL v1.0 corpus (Zhang et al. 2023, "MIRACL", Table 1), for the extrapolation.
MIRACL_PASSAGES = {
    "ar": 2_061_414, "bn": 297_265, "de": 15_866_222, "en": 32_893_221, "es": 10_373_953, "fa": 2_207_172,
    "fi": 1_883_509, "fr": 14_636_953, "hi": 506_264, "id": 1_446_315, "ja": 6_953_614, "ko": 1_486_752,
    "ru": 9_543_918, "sw": 131_924, "te": 518_079, "th": 542_166, "yo": 49_043, "zh": 4_934_368,
}  # fmt: skip

MIB = 2**20


def status_mib() -> dict[str, float]:
    """VmHWM, VmRSS, RssAnon, RssFile of this process, in MiB."""
    out = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmHWM", "VmRSS", "RssAnon", "RssFile", "RssShmem"):
            out[key] = int(value.split()[0]) / 1024
    return out


class Phases:
    """Per-phase wall, CPU and peak RSS (the kernel's high-water mark, reset at each boundary)."""

    def __init__(self) -> None:
        self.rows: list[dict] = []
        self.name = "start-up (imports, option checks)"
        self.t, self.cpu = time.perf_counter(), time.process_time()

    def switch(self, name: str) -> None:
        st = status_mib()
        t, cpu = time.perf_counter(), time.process_time()
        self.rows.append(
            {
                "phase": self.name,
                "wall_s": t - self.t,
                "cpu_s": cpu - self.cpu,
                "peak_mib": st["VmHWM"],
                "end_rss_mib": st["VmRSS"],
                "end_anon_mib": st["RssAnon"],
                "end_file_mib": st["RssFile"],
            }
        )
        Path("/proc/self/clear_refs").write_text("5")  # the high-water mark restarts at the current RSS
        self.name, self.t, self.cpu = name, time.perf_counter(), time.process_time()

    def wrap(self, owner, attr: str, name: str) -> None:
        inner = getattr(owner, attr)

        def wrapped(*args, **kwargs):
            self.switch(name)
            try:
                return inner(*args, **kwargs)
            finally:
                self.switch(f"after {name}")

        setattr(owner, attr, wrapped)


def child(args, extra: list[str]) -> int:
    """One measured ``polyret evaluate`` in this fresh process; prints one JSON line."""
    phases = Phases()
    t0, cpu0 = time.perf_counter(), time.process_time()
    import torch

    torch.set_num_threads(1)
    import polyret.data
    import polyret.evaluation.pipeline as ev  # the verb's module: it calls encode_benchmark and score
    import polyret.models
    from polyret.cli import app
    from polyret.evaluation.results import Results

    phases.wrap(polyret.data, "load_benchmark", "load corpus + topics/qrels")
    phases.wrap(polyret.models, "load", "load model")
    phases.wrap(ev, "encode_benchmark", "encode (queries, corpus store)")
    phases.wrap(ev, "score", "search + metrics")
    phases.wrap(Results, "write", "write results")
    out = Path(args.output)
    shutil.rmtree(out, ignore_errors=True)
    argv = ["evaluate", "--model", args.model, "--benchmark", f"miracl/{args.lang}", "--data-dir", args.data_dir]
    argv += ["--output", str(out), "--device", "cpu", "--batch-size", str(args.batch_size), *extra]
    code = app(argv, standalone_mode=False)
    phases.switch("exit")
    if code not in (0, None):
        print(f"polyret evaluate exited {code}", file=sys.stderr)
        return 1
    res = json.loads((out / "results.json").read_text())
    print(
        json.dumps(
            {
                "n": res["n_candidates"],
                "wall_s": time.perf_counter() - t0,
                "cpu_s": time.process_time() - cpu0,
                "peak_mib": max(r["peak_mib"] for r in phases.rows),
                "phases": phases.rows,
                "timing": res["timing_s"],
                "macro": {fam: {k: v for k, v in m.items() if k != "per_language"} for fam, m in res["settings"].items()},
            }
        )
    )
    return 0


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    extra = argv[argv.index("--") + 1 :] if "--" in argv else []
    argv = argv[: argv.index("--")] if "--" in argv else argv
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", default="100000,300000,1000000")
    p.add_argument("--work", default="/tmp/polyret-bench-e2e")
    p.add_argument("--lang", default="sw")
    p.add_argument("--hidden", type=int, default=64)
    p.add_argument("--words", default="4,12", help="words per passage: min,max")
    p.add_argument("--max-seq-length", type=int, default=32)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--runs", default="cold,warm")
    p.add_argument("--from-json", nargs="+", metavar="FILE", help="print the tables from saved stdout JSON lines; run nothing")
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--model", default="", help=argparse.SUPPRESS)
    p.add_argument("--data-dir", default="", help=argparse.SUPPRESS)
    p.add_argument("--output", default="", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        return child(args, extra)
    if args.from_json:
        saved = [json.loads(line) for f in args.from_json for line in Path(f).read_text().splitlines() if line.startswith("{")]
        report(sorted(saved, key=lambda r: (r["n"], r["run"] != "cold")), args.hidden)
        return 0
    sys.path.insert(0, str(HERE))
    from bench_corpus_scale import make_data
    from bench_encode_scale import WORDS, build_model

    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    model = work / f"tiny-1layer-h{args.hidden}-s{args.max_seq_length}"
    if not model.exists():
        build_model(model, args.hidden, args.max_seq_length)
    lo, hi = (int(x) for x in args.words.split(","))
    rows = []
    for n in (int(s) for s in args.sizes.split(",")):
        root = work / f"n{n}-w{lo}-{hi}"
        t0 = time.perf_counter()
        data = make_data(root, n, None, words=(lo, hi), vocab=WORDS, lang=args.lang)
        print(f"# N={n}: data ready in {time.perf_counter() - t0:.0f} s", file=sys.stderr, flush=True)
        cache = root / "cache"
        shutil.rmtree(cache, ignore_errors=True)  # cold: no corpus cache, no embedding store
        for run in args.runs.split(","):
            cmd = [sys.executable, __file__, "--child", "--model", str(model), "--data-dir", str(data), "--lang", args.lang]
            cmd += ["--output", str(root / f"out-{run}"), "--batch-size", str(args.batch_size), "--", *extra]
            env = {**os.environ, "POLYRET_CACHE_DIR": str(cache), "TOKENIZERS_PARALLELISM": "false", "OMP_NUM_THREADS": "1"}
            t1 = time.perf_counter()
            proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
            if proc.returncode != 0:
                print(proc.stdout[-2000:], proc.stderr[-4000:], file=sys.stderr)
                return 1
            r = json.loads(proc.stdout.strip().splitlines()[-1])
            r.update(run=run, process_wall_s=time.perf_counter() - t1, dim=args.hidden)
            rows.append(r)
            print(json.dumps(r), flush=True)
    report(rows, args.hidden)
    return 0


def report(rows: list[dict], dim: int) -> None:
    """The markdown tables and the fitted per-passage slope."""
    row_b = 4 * dim
    print("\n| N | run | wall s | CPU s | CPU us / passage | peak RSS MiB | matrix MiB | map | recall@100 |")
    print("|---:|---|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        m = r["macro"].get("mono", {})
        print(
            f"| {r['n']} | {r['run']} | {r['wall_s']:.0f} | {r['cpu_s']:.0f} | {1e6 * r['cpu_s'] / r['n']:.0f} | "
            f"{r['peak_mib']:.0f} | {r['n'] * row_b / MIB:.0f} | {m.get('map', float('nan')):.4f} | "
            f"{m.get('recall@100', float('nan')):.4f} |"
        )
    print("\n| N | run | phase | wall s | CPU s | peak RSS MiB | RSS at end MiB (anon + file) |")
    print("|---:|---|---|---:|---:|---:|---|")
    for r in rows:
        for ph in r["phases"]:
            print(
                f"| {r['n']} | {r['run']} | {ph['phase']} | {ph['wall_s']:.1f} | {ph['cpu_s']:.1f} | {ph['peak_mib']:.0f} | "
                f"{ph['end_rss_mib']:.0f} ({ph['end_anon_mib']:.0f} + {ph['end_file_mib']:.0f}) |"
            )
    import numpy as np

    for run in sorted({r["run"] for r in rows}):
        sel = sorted((r for r in rows if r["run"] == run), key=lambda r: r["n"])
        if len(sel) < 2:
            continue
        n = np.asarray([r["n"] for r in sel], dtype=float)
        peak = np.asarray([r["peak_mib"] * MIB for r in sel])
        cpu = np.asarray([r["cpu_s"] for r in sel])
        slope, const = np.polyfit(n, peak, 1)  # least squares over every size
        c_slope, c_const = np.polyfit(n, cpu, 1)
        worst = np.max(np.abs(peak - (const + slope * n))) / MIB
        c_worst = np.max(np.abs(cpu - (c_const + c_slope * n)))
        other = slope - row_b
        print(
            f"\n{run}: peak RSS = {const / MIB:.0f} MiB + {slope:.0f} B/passage (fit over {len(sel)} sizes, worst residual "
            f"{worst:.0f} MiB); the row is {row_b} B, so {slope / row_b:.2f}x the matrix ({other:.0f} B/passage beyond it)"
        )
        print(f"  CPU = {c_const:.0f} s + {1e6 * c_slope:.0f} us/passage (worst residual {c_worst:.1f} s)")
        big = 4 * 1024
        print(
            f"  dim 1024 float32 ({big} B rows): peak ~ {const / MIB:.0f} MiB + N x ({big} + {other:.0f}) B = "
            f"{(big + other) / big:.3f}x the matrix + constant:"
        )
        by_size = sorted(MIRACL_PASSAGES.items(), key=lambda kv: kv[1])
        print("  " + ", ".join(f"{k} {(const + v * (big + other)) / 2**30:.1f} GiB" for k, v in by_size))


if __name__ == "__main__":
    sys.exit(main())
