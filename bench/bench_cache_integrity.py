"""What trusting caches by content costs (issue 21 §2): checksums at build, verification at every reuse.

One synthetic pair file (``bench_pairs_scale.write_pairs``: groups of 2-4 languages, ids, hard negatives) is
built into a pair store and a training index; then, in the same process and back to back, it times:

* ``build``: ``pair_file_store`` from scratch (parse, Arrow, integer arrays, and the sha256 of every file,
  which the build now records) and, separately, that checksum pass alone (``folder_checksums``);
* ``reuse``: a second ``pair_file_store`` call (the source digest remembered; every store file verified
  against its sha256, then mapped) against the verification alone (``_check_cache``);
* ``source digest``: hashing the pair file cold, and the remembered lookup;
* ``index``: ``cached_pair_index`` build, then its reuse (verification included) and the verification alone.

Every cost is also given as a ratio to the build it protects and as GB/s, since absolute timings on a
shared machine are noise. Usage::

    nice -n 10 python bench/bench_cache_integrity.py --pairs 1000000 --work /tmp/integrity-bench
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_pairs_scale import write_pairs


def _size(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def _timed(fn):
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", type=int, default=1_000_000)
    parser.add_argument("--work", type=Path, default=Path("/tmp/integrity-bench"))
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    shutil.rmtree(args.work, ignore_errors=True)
    args.work.mkdir(parents=True)
    os.environ["POLYRET_CACHE_DIR"] = str(args.work / "cache")
    os.environ.setdefault("POLYRET_BUILD_WORKERS", "1")

    from polyret.data import pairstore
    from polyret.integrity import file_sha256, folder_checksums, source_digest
    from polyret.training.index_cache import cached_pair_index, index_folder

    src = args.work / "pairs.jsonl"
    data = write_pairs(src, args.pairs)
    out: dict = {"pairs": data["pairs"], "source_bytes": data["bytes"], "load": os.getloadavg()[0]}

    _, out["source_digest_cold_s"] = _timed(lambda: file_sha256(src))
    store, out["store_build_s"] = _timed(lambda: pairstore.pair_file_store(src))
    folder = store.folder
    out["store_bytes"] = _size(folder)
    _, out["store_checksum_s"] = _timed(lambda: folder_checksums(folder))
    del store
    _, out["source_digest_remembered_s"] = _timed(lambda: source_digest(src))
    key = json.loads((folder / "meta.json").read_text())["key"]
    _, out["store_verify_s"] = _timed(lambda: pairstore._check_cache(folder, key))
    store, out["store_reuse_s"] = _timed(lambda: pairstore.pair_file_store(src))

    views = [store.view()]
    _, out["index_build_s"] = _timed(lambda: cached_pair_index(views, negatives=0))
    ifolder = index_folder(views, 0)
    out["index_bytes"] = _size(ifolder)
    ikey = json.loads((ifolder / "meta.json").read_text())["key"]
    _, out["index_verify_s"] = _timed(lambda: pairstore._check_cache(ifolder, ikey))
    _, out["index_reuse_s"] = _timed(lambda: cached_pair_index(views, negatives=0))
    out["load_after"] = os.getloadavg()[0]

    gb = 1e9
    out["ratios"] = {
        "store checksum at build / store build": out["store_checksum_s"] / out["store_build_s"],
        "store verify / store build": out["store_verify_s"] / out["store_build_s"],
        "store verify / store reuse (verify included)": out["store_verify_s"] / out["store_reuse_s"],
        "index verify / index build": out["index_verify_s"] / out["index_build_s"],
        "source digest cold / store build": out["source_digest_cold_s"] / out["store_build_s"],
        "source digest remembered / cold": out["source_digest_remembered_s"] / out["source_digest_cold_s"],
    }
    out["throughput_gb_s"] = {
        "store verify": out["store_bytes"] / gb / out["store_verify_s"],
        "index verify": out["index_bytes"] / gb / out["index_verify_s"],
        "source digest": out["source_bytes"] / gb / out["source_digest_cold_s"],
    }
    text = json.dumps(out, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")


if __name__ == "__main__":
    main()
