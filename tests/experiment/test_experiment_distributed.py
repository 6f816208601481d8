"""``polyret experiment`` under torchrun (2 CPU processes, gloo): trained together, evaluated once."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest


@pytest.mark.distributed
def test_experiment_under_torchrun_trains_on_both_ranks_and_reports_once(tiny_model_dir, tmp_path):
    out = tmp_path / "exp"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false",
           "POLYRET_CACHE_DIR": str(tmp_path / "cache"),
           "PYTHONPATH": os.pathsep.join([str(Path(__file__).resolve().parents[2] / "src"),
                                          os.environ.get("PYTHONPATH", "")])}  # fmt: skip
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "polyret.cli", "experiment", "--preset", "smoke", "--model", tiny_model_dir,
           "--output", str(out), "--strategies", "mono,hybrid", "--set", "precision=fp32"]  # fmt: skip
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)  # hang guard only
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-4000:]
    assert "rank 1: trained 2" in proc.stdout
    for system in ("mono", "hybrid"):
        run_dir = out / "models" / system / "seed0"
        info = json.loads((run_dir / "model" / "polyret_train.json").read_text())
        assert info["world_size"] == 2
        assert (run_dir / "batches.rank1.jsonl").exists()  # rank 1 trained it too
        assert (out / "evals" / system / "seed0" / "xquad-r_test" / "results.json").exists()
        assert not list((run_dir / "model").glob("*.safetensors"))  # smoke: removed once every rank evaluated it
    assert (out / "evals" / "base" / "xquad-r_test" / "results.json").exists()
    assert (out / "report" / "report.md").exists()
    # each evaluation ran once, on rank 0
    assert proc.stdout.count("evaluating hybrid seed 0") == 1
