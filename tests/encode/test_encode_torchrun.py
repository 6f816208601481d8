"""Sharded encoding under torchrun (2 CPU processes, gloo): the rows of one process, every rank sees them."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

DRIVER = textwrap.dedent("""
    import os, sys
    import numpy as np
    import torch
    torch.set_num_threads(1)
    from polyret import distributed as dist
    from polyret.encode import EmbeddingCache, encode, encode_to_store
    from polyret.models import load

    model_dir, out, cache_root = sys.argv[1], sys.argv[2], sys.argv[3]
    dist.init_from_env("gloo")
    rng = np.random.default_rng(0)
    words = "the a river city capital king war music school water language history".split()
    texts = [" ".join(rng.choice(words, size=int(rng.integers(2, 40)))) for _ in range(150)]
    model = load(model_dir, device="cpu")
    cache = EmbeddingCache(os.path.join(cache_root, "fp"))
    stored = encode_to_store(model, texts, model_cache=cache.root, batch_size=8, chunk_rows=16, distributed=True)
    cached = encode(model, texts[:60] + texts[:10], kind="query", batch_size=8, cache=cache, distributed=True)
    np.save(os.path.join(out, f"store.rank{dist.rank()}.npy"), np.asarray(stored))
    np.save(os.path.join(out, f"cache.rank{dist.rank()}.npy"), cached)
    with open(os.path.join(out, f"seen.rank{dist.rank()}"), "w") as fh:
        fh.write(str(dist.world_size()))
""")


def _run(cmd, env):
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)  # hang guard only
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-4000:]


@pytest.mark.distributed
def test_two_ranks_encode_their_shards_and_both_read_the_rows_of_one_process(tiny_model_dir, tmp_path):
    driver = tmp_path / "driver.py"
    driver.write_text(DRIVER)
    src = str(Path(__file__).resolve().parents[2] / "src")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false",
           "PYTHONPATH": os.pathsep.join([src, os.environ.get("PYTHONPATH", "")])}  # fmt: skip
    one, two = tmp_path / "one", tmp_path / "two"
    one.mkdir()
    two.mkdir()
    _run([sys.executable, str(driver), tiny_model_dir, str(one), str(tmp_path / "cache1")], env)
    _run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
          str(driver), tiny_model_dir, str(two), str(tmp_path / "cache2")], env)  # fmt: skip
    assert (two / "seen.rank1").read_text() == "2"
    reference = np.load(one / "store.rank0.npy")
    for rank in (0, 1):
        np.testing.assert_array_equal(np.load(two / f"store.rank{rank}.npy"), reference)
        np.testing.assert_array_equal(np.load(two / f"cache.rank{rank}.npy"), np.load(one / "cache.rank0.npy"))
    # the store holds one record per chunk (10 chunks of 16 rows, 5 from each rank) and one manifest
    (store,) = (tmp_path / "cache2" / "fp" / "stores").iterdir()
    assert len(list(store.glob("chunk-*.json"))) == 10 and (store / "manifest.json").exists()
    # the per-text cache got each distinct text once, whichever rank encoded it
    from polyret.encode import EmbeddingCache

    assert len(EmbeddingCache(tmp_path / "cache2" / "fp")) == 60
