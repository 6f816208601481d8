"""Claim (issue 11): MIRACL-format evaluation in bounded memory. Loading a corpus (streamed into Arrow
columns, cached as a memory-mapped Arrow file) and exact search over a memory-mapped embedding matrix
take peak RSS below 1.5x the embedding matrix plus a constant, and time linear in the passages N.

    nice -n 10 python bench/bench_corpus_scale.py --sizes 100000,300000,1000000 [--dim 32] [--work DIR]
    nice -n 10 python bench/bench_corpus_scale.py --sizes 100000 --evaluate   # + the full evaluate() with a tiny BERT

Data: the real MIRACL sw dev topics and qrels (482 queries with judgements) from POLYRET_DATA_DIR and
a synthetic corpus/sw.jsonl.gz of N passages holding every judged docid plus seeded filler passages
(~40 words each). Embeddings: seeded random unit vectors of ``--dim`` (32: the tiny BERT's) written
once as .npy and opened with ``np.load(mmap_mode="r")``, standing in for the embedding store of the
encode work (issue 11 item 1) until it is merged. Every phase runs in a fresh process, so each peak
RSS (ru_maxrss, which counts the memory-mapped pages a process touched) is that phase's alone:

* load-cold: parse the JSONL.gz into columns, write the Arrow cache;  load-warm: open that cache.
* search: load-warm + exact blocked search (k=100) + metrics over the memory-mapped matrix.
* faiss: the same with --backend faiss (IndexFlatIP: the index holds its own copy of the matrix).
* evaluate (with --evaluate): polyret's evaluate() with a 2-layer hidden-32 BERT, cold and warm
  embedding cache (today's cache, owned by the encode work: it is not the bounded store yet).
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

LANG = "sw"


def rss_mib() -> float:
    """This process's peak RSS (VmHWM: reset by exec, unlike ru_maxrss, which keeps the parent's peak)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def make_data(
    root: Path, n: int, dim: int | None, seed: int = 0, *, words: tuple[int, int] = (40, 40), vocab=None, lang: str = LANG
) -> Path:
    """``root/data/miracl/{topics,qrels,corpus}`` and ``root/emb-<dim>.npy``; skipped when present.

    Args:
        root: the folder to write under.
        n: passages in the synthetic corpus (the first ones carry every judged docid of ``lang``).
        dim: the dimension of the seeded unit-vector embeddings written beside it (None: none).
        seed: the corpus and embedding seed.
        words: (fewest, most) words per passage text.
        vocab: the words drawn from (None: the words of ``lang``'s real topics).
        lang: the MIRACL language whose real topics and qrels are copied.
    """
    from polyret.data.trec import read_qrels

    shared = Path(os.environ.get("POLYRET_DATA_DIR", "/work/shared/data")) / "miracl"
    data = root / "data" / "miracl"
    corpus = data / "corpus" / f"{lang}.jsonl.gz"
    if not corpus.exists():
        for kind in ("topics", "qrels"):
            (data / kind).mkdir(parents=True, exist_ok=True)
            name = f"{kind}.miracl-v1.0-{lang}-dev.tsv"
            shutil.copy(shared / kind / name, data / kind / name)
        judged = sorted({d for rel in read_qrels(data / "qrels" / f"qrels.miracl-v1.0-{lang}-dev.tsv").values() for d in rel})
        if vocab is None:
            topic_words = (shared / "topics" / f"topics.miracl-v1.0-{lang}-dev.tsv").read_text(encoding="utf-8").split()
            vocab = sorted({w for w in topic_words if not w.isdigit()})
        vocab = np.asarray(list(vocab), dtype=object)
        rng = np.random.default_rng(seed)
        corpus.parent.mkdir(parents=True, exist_ok=True)
        tmp = corpus.with_suffix(".tmp")
        judged_set = set(judged)
        with gzip.open(tmp, "wt", encoding="utf-8", compresslevel=1) as fh:
            filler = (f"{i}#{j}" for i in range(10**9) for j in range(5))
            for i in range(n):
                docid = judged[i] if i < len(judged) else next(d for d in filler if d not in judged_set)
                size = words[0] if words[0] == words[1] else int(rng.integers(words[0], words[1] + 1))
                text = " ".join(vocab[rng.integers(0, len(vocab), size)])
                fh.write(json.dumps({"docid": docid, "title": f"Kichwa {i % 997}", "text": text}, ensure_ascii=False) + "\n")
        tmp.rename(corpus)
    emb = root / f"emb-{dim}.npy"
    if dim is not None and not emb.exists():
        rng = np.random.default_rng(seed + 1)
        out = np.lib.format.open_memmap(emb.with_suffix(".tmp"), mode="w+", dtype=np.float32, shape=(n, dim))
        for lo in range(0, n, 1 << 16):
            block = rng.standard_normal((min(n, lo + (1 << 16)) - lo, dim)).astype(np.float32)
            out[lo : lo + len(block)] = block / np.linalg.norm(block, axis=1, keepdims=True)
        out.flush()
        del out
        emb.with_suffix(".tmp").rename(emb)
    return root / "data"


def phase(args) -> dict:
    """One measured phase, in this (fresh) process."""
    os.environ["POLYRET_CACHE_DIR"] = str(Path(args.work) / "cache")
    from polyret.data import load_benchmark

    base = rss_mib()
    t0 = time.perf_counter()
    bench = load_benchmark(f"miracl/{LANG}", data_dir=args.data_dir)
    t_load = time.perf_counter() - t0
    out = {"phase": args.phase, "n": len(bench.candidates), "load_s": t_load, "base_rss_mib": base}
    if args.phase in ("search", "faiss"):
        from polyret.evaluation import score

        c = np.load(Path(args.work) / f"emb-{args.dim}.npy", mmap_mode="r")
        rng = np.random.default_rng(7)
        q = rng.standard_normal((len(bench.queries), args.dim)).astype(np.float32)
        q /= np.linalg.norm(q, axis=1, keepdims=True)
        t1 = time.perf_counter()
        res, _ = score(bench, q, c, k=100, backend="exact" if args.phase == "search" else "faiss")
        out.update(search_s=time.perf_counter() - t1, measures=res.macro["mono"])
    if args.phase.startswith("evaluate"):
        from polyret.evaluation import evaluate

        t1 = time.perf_counter()
        res = evaluate(args.model, bench, progress=False, device="cpu", batch_size=128)
        out.update(search_s=time.perf_counter() - t1, timing=res.timing)
    out["peak_rss_mib"] = rss_mib()
    out["cpu_s"] = cpu_s()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="100000,300000,1000000")
    ap.add_argument("--dim", type=int, default=32)
    ap.add_argument("--work", default="/tmp/polyret-bench-scale")
    ap.add_argument("--evaluate", action="store_true", help="also run evaluate() with a tiny BERT (cold, warm)")
    ap.add_argument("--phase", help=argparse.SUPPRESS)
    ap.add_argument("--data-dir", help=argparse.SUPPRESS)
    ap.add_argument("--model", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.phase:
        print(json.dumps(phase(args)))
        return
    rows = []
    model = None
    if args.evaluate:
        sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
        from conftest import build_tiny_model

        model = Path(args.work) / "tiny-bert"
        if not model.exists():
            build_tiny_model(model)
    for n in [int(x) for x in args.sizes.split(",")]:
        work = Path(args.work) / f"n{n}"
        t0 = time.perf_counter()
        data = make_data(work, n, args.dim)
        print(f"# N={n}: data ready in {time.perf_counter() - t0:.0f} s", file=sys.stderr, flush=True)
        shutil.rmtree(work / "cache", ignore_errors=True)  # cold: no corpus cache, no embeddings
        phases = ["load-cold", "load-warm", "search", "faiss"] + (["evaluate-cold", "evaluate-warm"] if args.evaluate else [])
        for name in phases:
            cmd = [sys.executable, __file__, "--phase", name, "--data-dir", str(data), "--work", str(work)]
            cmd += ["--dim", str(args.dim)]
            if model is not None:
                cmd += ["--model", str(model)]
            t1 = time.perf_counter()
            proc = subprocess.run(cmd, capture_output=True, text=True)
            if proc.returncode != 0:
                raise SystemExit(proc.stderr[-3000:])
            row = json.loads(proc.stdout.strip().splitlines()[-1])
            row["wall_s"] = time.perf_counter() - t1
            rows.append(row)
            print(json.dumps(row), file=sys.stderr, flush=True)
    head = "| N | phase | wall s | cpu s | load s | search s | peak RSS MiB | emb matrix MiB | (RSS - base) / matrix | map |"
    print("\n" + head)
    print("|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        mat = r["n"] * args.dim * 4 / 2**20
        m = r.get("measures", {})
        print(
            f"| {r['n']} | {r['phase']} | {r['wall_s']:.1f} | {r['cpu_s']:.1f} | {r['load_s']:.1f} | "
            f"{r.get('search_s', 0):.1f} | "
            f"{r['peak_rss_mib']:.0f} | {mat:.0f} | {(r['peak_rss_mib'] - r['base_rss_mib']) / mat:.2f} | "
            f"{m.get('map', m.get('map@100', float('nan'))):.4g} |"
        )


if __name__ == "__main__":
    main()
