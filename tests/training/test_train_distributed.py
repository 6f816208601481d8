"""Two CPU processes (gloo) under torchrun run ``python -m polyret.training`` unchanged.

Checks from the per-rank batch logs that both ranks trained on the same batch kind (and, for mono
batches, the same language) at every step, and that the run completes with a model folder.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from polyret.batchlog import batch_log_path, read_batch_log
from tests.helpers.models import build_tiny_model
from tests.helpers.pairs import write_pairs


@pytest.mark.distributed
def test_two_process_training_agrees_on_batch_kinds(tmp_path):
    model = build_tiny_model(tmp_path / "model")
    pairs = write_pairs(tmp_path / "pairs.jsonl", 60)
    out = tmp_path / "run"
    config = {"model": str(model), "train": [str(pairs)], "output_dir": str(out), "batch_size": 6, "lr": 5e-4,
              "warmup_ratio": 0.0, "max_steps": 8, "logging_steps": 4, "precision": "fp32", "seed": 5,
              "gather_across_devices": True, "strategy": "hybrid", "alpha": 0.5,
              "batch_scope": "per_device"}  # fmt: skip
    config_file = tmp_path / "run.json"
    config_file.write_text(json.dumps(config))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false",
           "PYTHONPATH": os.pathsep.join([str(Path(__file__).resolve().parents[2] / "src"),
                                          os.environ.get("PYTHONPATH", "")])}  # fmt: skip
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "polyret.training", "--config", str(config_file)]  # fmt: skip
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)  # hang guard only
    assert proc.returncode == 0, proc.stderr[-4000:]

    logs = [read_batch_log(batch_log_path(out, rank)) for rank in (0, 1)]
    for rank, log in enumerate(logs):
        assert [e["step"] for e in log] == list(range(1, 9)), f"rank {rank}"
        assert all(e["rank"] == rank and e["world_size"] == 2 and e["size"] == 6 for e in log)
    kinds = [(a["kind"], b["kind"]) for a, b in zip(*logs)]
    assert all(a == b for a, b in kinds), kinds
    assert {a for a, _ in kinds} == {"mono", "cross"}  # seed 5 gives both kinds in 8 steps
    for a, b in zip(*logs):
        if a["kind"] == "mono":
            assert a["query_langs"] == b["query_langs"] and len(a["query_langs"]) == 1
    saved = json.loads((out / "model" / "polyret_train.json").read_text())
    assert saved["global_step"] == 8 and saved["world_size"] == 2
    assert (out / "model" / "model.safetensors").exists()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(pytest.main([__file__, "-q"]))
