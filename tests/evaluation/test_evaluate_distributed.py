"""``evaluate`` under torchrun (2 CPU processes, gloo): every rank encodes, rank 0 alone writes, same numbers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers.benchmarks import tiny_benchmark

SCRIPT = r"""
import json, os, sys
from pathlib import Path
sys.path.insert(0, os.environ["REPO_DIR"])
from tests.helpers.benchmarks import tiny_benchmark  # the same tiny benchmark as the one-process tests
import polyret.paths
from polyret.evaluation import evaluate

out = Path(sys.argv[2])
writes = []
real = polyret.paths.atomic_path  # every file polyret writes goes through it
import contextlib
import polyret.evaluation.results as results_mod
spy = contextlib.contextmanager(lambda target: (yield from _spy(target)))
def _spy(target):
    writes.append(str(target))
    with real(target) as tmp:
        yield tmp
polyret.paths.atomic_path = results_mod.atomic_path = spy
import polyret.models
encoded = []  # texts this rank sent through the model
real_batch = polyret.models.encode_batch
def counting(model, texts, **kw):
    encoded.extend(texts)
    return real_batch(model, texts, **kw)
polyret.models.encode_batch = counting
use_cache = sys.argv[3] == "cache"
res = evaluate(sys.argv[1], tiny_benchmark(), output=out, cache=use_cache, progress=False, device="cpu")
rank = int(os.environ.get("RANK", "0"))
info = {"rank": rank, "returned": None if res is None else res.per_setting, "writes": writes, "encoded": encoded}
(out.parent / f"rank{rank}-{out.name}.json").write_text(json.dumps(info))
"""


@pytest.mark.distributed
def test_evaluate_under_torchrun_scores_once_and_matches_one_process(tiny_model_dir, tmp_path):
    script = tmp_path / "run_eval.py"
    script.write_text(SCRIPT)
    src = Path(__file__).resolve().parents[2] / "src"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false",
           "POLYRET_CACHE_DIR": str(tmp_path / "cache"), "REPO_DIR": str(Path(__file__).resolve().parents[2]),
           "PYTHONPATH": os.pathsep.join([str(src), os.environ.get("PYTHONPATH", "")])}  # fmt: skip
    for var in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(var, None)
    from polyret.evaluation import evaluate

    solo = evaluate(tiny_model_dir, tiny_benchmark(), output=tmp_path / "one", cache=False, progress=False, device="cpu")
    for name, cache in (("two", "nocache"), ("shared", "cache")):
        two = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                              str(script), tiny_model_dir, str(tmp_path / name), cache], env=env,
                             capture_output=True, text=True, timeout=300)  # fmt: skip
        assert two.returncode == 0, two.stdout[-2000:] + two.stderr[-4000:]

    # with the shared cache the ranks split the texts: each encodes a share, together every text once
    s0 = json.loads((tmp_path / "rank0-shared.json").read_text())
    s1 = json.loads((tmp_path / "rank1-shared.json").read_text())
    bench = tiny_benchmark()
    n_texts = len({q.text for q in bench.queries}) + len({c.text for c in bench.candidates})
    assert s0["encoded"] and s1["encoded"]
    assert len(s0["encoded"]) + len(s1["encoded"]) == n_texts
    assert s0["returned"] == json.loads(json.dumps(solo.per_setting)) == s1["returned"]

    r0 = json.loads((tmp_path / "rank0-two.json").read_text())
    r1 = json.loads((tmp_path / "rank1-two.json").read_text())
    assert any(w.endswith("results.json") for w in r0["writes"])
    assert r1["writes"] == []  # rank 1 wrote nothing: the results are written once, by rank 0
    # identical numbers: one process, rank 0, and rank 1 (which returns what rank 0 wrote)
    assert r0["returned"] == json.loads(json.dumps(solo.per_setting)) == r1["returned"]
    a = json.loads((tmp_path / "one" / "results.json").read_text())
    b = json.loads((tmp_path / "two" / "results.json").read_text())
    assert a["settings"] == b["settings"]
    assert (tmp_path / "two" / ".complete.json").exists()
