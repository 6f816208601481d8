"""Claim: a cold encode of N passages into the embedding store peaks at < 1.5x the embedding matrix plus
a constant in RSS, and its time grows linearly in N; a warm run (verify + open) encodes nothing.

    nice -n 10 python bench/bench_encode_scale.py [--sizes 100000,300000,1000000] [--hidden 64] [--out DIR]
        [--words 20,60] [--max-seq-length 128]

Synthetic passages (``--words`` 20-60 words from a fixed multilingual word list) held in a columnar text
column (one UTF-8 buffer + offsets, decoded one window at a time, as a columnar corpus loader provides
them), a 1-layer random BERT (hidden ``--hidden``, vocab ~600, max_seq_length 128), float32 rows. Each
size runs in a fresh process (peak RSS = that process's ``ru_maxrss``), cold (empty cache) then warm;
after encoding, every row of the returned memmap is read once in blocks, as the searcher does, so the
matrix's pages count in RSS too.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

WORDS = """query passage the a of in and is was what who when where how many which city river capital country year
people war king church music school water language history science world first new old large small der die das und
ist war wer wann wo wie viele welche stadt fluss hauptstadt land jahr menschen krieg le la les et est qui quand ville
fleuve capitale pays el los las y es fue ciudad río país año город река столица страна год люди война король
مدينة نهر عاصمة بلد سنة الناس حرب ملك शहर नदी राजधानी देश वर्ष लोग युद्ध राजा 城市 河流 首都 国家 年份 人民 战争""".split()


class TextColumn:
    """Texts as one UTF-8 buffer + int64 offsets: ``len`` and slicing decode only the rows asked for."""

    def __init__(self, data: bytes, offsets: np.ndarray):
        self.data, self.offsets = data, offsets

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def __getitem__(self, key):
        if isinstance(key, slice):
            start, stop, _ = key.indices(len(self))
            return [self.data[self.offsets[i] : self.offsets[i + 1]].decode() for i in range(start, stop)]
        return self.data[self.offsets[key] : self.offsets[key + 1]].decode()


def synthetic(n: int, seed: int = 0, words: tuple[int, int] = (20, 60)) -> TextColumn:
    rng = np.random.default_rng(seed)
    vocab = np.array([w.encode() for w in WORDS], dtype=object)
    parts, offsets, pos = [], np.zeros(n + 1, dtype=np.int64), 0
    for i in range(n):
        text = b" ".join(vocab[rng.integers(0, len(vocab), size=int(rng.integers(words[0], words[1] + 1)))])
        parts.append(text)
        pos += len(text)
        offsets[i + 1] = pos
    return TextColumn(b"".join(parts), offsets)


def build_model(path: Path, hidden: int, max_seq_length: int = 128) -> Path:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    import torch
    from conftest import build_tiny_model
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Pooling, Transformer
    from transformers import BertModel

    build_tiny_model(path.with_name("two-layer"), hidden=hidden, max_seq_length=max_seq_length)
    hf = path.with_name("two-layer-hf")
    bert = BertModel.from_pretrained(hf)
    bert.encoder.layer = bert.encoder.layer[:1]  # one layer
    bert.config.num_hidden_layers = 1
    one = path.with_name("one-layer-hf")
    bert.save_pretrained(one)
    from transformers import AutoTokenizer

    AutoTokenizer.from_pretrained(hf).save_pretrained(one)
    torch.manual_seed(0)
    model = SentenceTransformer(
        modules=[Transformer(str(one), max_seq_length=max_seq_length), Pooling(hidden, "mean")],
        prompts={"query": "query: ", "passage": "passage: "},
        device="cpu",
    )
    model.save(str(path))
    return path


def child(args) -> int:
    import torch

    from polyret.encode import encode_to_store
    from polyret.models import fingerprint, load

    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    lo, hi = (int(x) for x in args.words.split(","))
    texts = synthetic(args.n, words=(lo, hi))
    t_data = time.perf_counter() - t0
    rss_data = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    model = load(args.model, device="cpu")
    model_cache = Path(args.cache) / "embeddings" / fingerprint(model)
    rss_model = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    t1 = time.perf_counter()
    cpu1 = time.process_time()
    emb = encode_to_store(model, texts, model_cache=model_cache, batch_size=args.batch_size, kind="passage")
    t_enc = time.perf_counter() - t1
    cpu_enc = time.process_time() - cpu1
    total = 0.0
    for start in range(0, len(emb), 65536):  # read every row once, as a blocked search does
        total += float(np.asarray(emb[start : start + 65536], dtype=np.float32).sum())
    t_all = time.perf_counter() - t0
    print(
        json.dumps(
            {
                "n": args.n,
                "dim": int(emb.shape[1]),
                "matrix_bytes": int(emb.nbytes),
                "data_s": t_data,
                "encode_s": t_enc,
                "encode_cpu_s": cpu_enc,
                "total_s": t_all,
                "rss_after_data": rss_data,
                "rss_after_model": rss_model,
                "peak_rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
                "checksum": total,
            }
        )
    )
    return 0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--sizes", default="100000,300000,1000000")
    p.add_argument("--hidden", type=int, default=64)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--words", default="20,60", help="words per passage: min,max")
    p.add_argument("--max-seq-length", type=int, default=128)
    p.add_argument("--out", default="/tmp/bench-encode-scale")
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--n", type=int, default=0, help=argparse.SUPPRESS)
    p.add_argument("--model", default="", help=argparse.SUPPRESS)
    p.add_argument("--cache", default="", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        return child(args)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    model = out / "tiny-1layer"
    if not model.exists():
        build_model(model, args.hidden, args.max_seq_length)
    rows = []
    for n in (int(s) for s in args.sizes.split(",")):
        cache = out / f"cache-{n}"
        for phase in ("cold", "warm"):
            cmd = [sys.executable, __file__, "--child", "--n", str(n), "--model", str(model), "--cache", str(cache),
                   "--batch-size", str(args.batch_size), "--threads", str(args.threads), "--words", args.words]  # fmt: skip
            proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "TOKENIZERS_PARALLELISM": "false"})
            if proc.returncode != 0:
                print(proc.stderr[-3000:], file=sys.stderr)
                return 1
            r = json.loads(proc.stdout.strip().splitlines()[-1])
            r["phase"] = phase
            rows.append(r)
            print(json.dumps(r), flush=True)
    print(
        "\n| passages | phase | dim | matrix MB | peak RSS MB | RSS after texts+model MB | peak - that MB "
        "| (peak - that) / matrix | encode wall s | encode CPU s | CPU us / passage |"
    )
    print("|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        mb = 2**20
        base = r["rss_after_model"]
        grow = r["peak_rss"] - base
        print(
            f"| {r['n']} | {r['phase']} | {r['dim']} | {r['matrix_bytes'] / mb:.0f} | {r['peak_rss'] / mb:.0f} "
            f"| {base / mb:.0f} | "
            f"{grow / mb:.0f} | {grow / r['matrix_bytes']:.2f} | {r['encode_s']:.0f} | {r['encode_cpu_s']:.0f} "
            f"| {1e6 * r['encode_cpu_s'] / r['n']:.0f} |"
        )
    cold = [r for r in rows if r["phase"] == "cold"]
    if len(cold) >= 2:
        a, b = cold[0], cold[-1]
        slope = (b["peak_rss"] - a["peak_rss"]) / (b["n"] - a["n"])
        print(
            f"\ncold peak RSS slope: {slope:.0f} B/passage (matrix row: {a['matrix_bytes'] / a['n']:.0f} B); "
            f"encode CPU-time ratio {b['encode_cpu_s'] / a['encode_cpu_s']:.2f} (wall {b['encode_s'] / a['encode_s']:.2f}) "
            f"for a size ratio {b['n'] / a['n']:.2f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
