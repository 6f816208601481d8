"""Two processes under torchrun: local rank 0 builds the pair store once, the other rank maps the same files."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = """
import json, os, sys
from polyret import distributed
from polyret.data import pairstore

if os.environ["WITH_GROUP"] == "1":
    distributed.init_from_env("gloo")
built = []
real = pairstore._build
pairstore._build = lambda *a, **k: built.append(1) or real(*a, **k)
from polyret.data.pairs import load_pair_source
view = load_pair_source(sys.argv[1], languages=["en", "de"])
out = {"rank": int(os.environ["RANK"]), "folder": str(view.store.folder), "built": len(built),
       "rows": int(view.num_pairs), "group": type(view.store.group).__name__}
with open(sys.argv[2] + f".{out['rank']}", "w") as f:
    json.dump(out, f)
"""


@pytest.mark.distributed
@pytest.mark.parametrize("with_group", ["0", "1"])
def test_one_build_then_every_rank_maps_it(tmp_path, with_group):
    langs = ("en", "de", "fr")
    rows = [{"id": g, "lang": x, "query": f"q{g}{x}", "positive": f"p{g}{x}"} for g in range(3000) for x in langs]
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    script = tmp_path / "job.py"
    script.write_text(SCRIPT, encoding="utf-8")
    src = str(Path(__file__).resolve().parents[2] / "src")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "WITH_GROUP": with_group, "POLYRET_CACHE_DIR": str(tmp_path / "cache"),
           "PYTHONPATH": os.pathsep.join([src, os.environ.get("PYTHONPATH", "")])}  # fmt: skip
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", str(script),
           str(pairs), str(tmp_path / "out")]  # fmt: skip
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)  # hang guard only
    assert proc.returncode == 0, proc.stderr[-4000:]
    got = [json.loads((tmp_path / f"out.{r}").read_text()) for r in (0, 1)]
    assert [g["built"] for g in got] == [1, 0]  # local rank 0 built, rank 1 waited
    assert got[0]["folder"] == got[1]["folder"] and got[0]["rows"] == got[1]["rows"] == 6000
    assert got[1]["group"] == "memmap"
    assert [p.name for p in (tmp_path / "cache" / "pairs").iterdir()] == [Path(got[0]["folder"]).name]
