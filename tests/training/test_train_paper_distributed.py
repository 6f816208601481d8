"""The paper recipe's code path on two CPU processes (gloo, torchrun) with a tiny model.

One run of ``python -m polyret.training --recipe paper`` on a local mMARCO copy plus a QA JSONL file
checks: the global batch is split over the ranks (4 + 4 = 8), negatives are gathered (7 per query) and
the two ranks' halves of a step share its kind, source and mono language while never holding the same
passage; eval and save fire at the derived interval and the best checkpoint is kept; the unused pooler
is frozen instead of turning DDP's find_unused_parameters on. A second run, resumed from a copy of the
first run's step-2 checkpoint, replays the same batches on both ranks and ends at the same weights.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from polyret.batchlog import batch_log_path, read_batch_log
from tests.helpers.models import build_tiny_model
from tests.helpers.pairs import write_mmarco, write_pairs
from tests.helpers.training import weights

LANGS = ("de", "en", "es")


def torchrun(args: list[str]) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false",
           "PYTHONPATH": os.pathsep.join([str(Path(__file__).resolve().parents[2] / "src"),
                                          os.environ.get("PYTHONPATH", "")])}  # fmt: skip
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "polyret.training", "--recipe", "paper", *args]  # fmt: skip
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)  # hang guard only


@pytest.mark.distributed
def test_paper_recipe_on_two_processes(tmp_path):
    model = build_tiny_model(tmp_path / "model")
    mmarco = write_mmarco(tmp_path / "mmarco", 30, languages=LANGS)
    qa = write_pairs(tmp_path / "qa.jsonl", 40)
    out = tmp_path / "run"
    overrides = [f"model={model}", f"train=mmarco:{mmarco},{qa}", "languages=de,en,es", f"output_dir={out}",
                 "batch_size=8", "dev_groups=24", "eval_points=3", "save_total_limit=3", "mini_batch_size=4",
                 "max_seq_length=32", "precision=fp32", "lr=5e-4", "logging_steps=1", "seed=4",
                 "keep_checkpoints=true"]  # fmt: skip
    proc = torchrun(overrides)
    assert proc.returncode == 0, proc.stderr[-4000:]

    saved = json.loads((out / "model" / "polyret_train.json").read_text())
    steps = saved["global_step"]
    assert steps >= 4 and saved["world_size"] == 2
    assert (saved["batch_scope"], saved["global_batch"], saved["per_device_batch"]) == ("global", 8, 4)
    assert saved["gather_across_devices"] is True and saved["in_batch_negatives"] == 7
    assert saved["ddp_find_unused_parameters"] is False and saved["unused_parameters_frozen"] > 0  # the pooler
    assert saved["loss"].startswith("LengthSortedCachedMNRL")  # the paper recipe's GradCache
    every = saved["eval_steps"]
    assert every == saved["save_steps"] == -(-steps // 3)  # derived: 3 evaluations per run
    assert saved["best_checkpoint"] is not None and saved["metric_for_best_model"] == "eval_loss"
    state = json.loads((out / "checkpoints" / f"checkpoint-{steps}" / "trainer_state.json").read_text())
    evals = [e["step"] for e in state["log_history"] if "eval_loss" in e]
    assert evals == sorted({*range(every, steps + 1, every), steps})  # every `every` steps, and at the end

    logs = [read_batch_log(batch_log_path(out, rank)) for rank in (0, 1)]
    for rank, log in enumerate(logs):
        assert [e["step"] for e in log] == list(range(1, steps + 1)), f"rank {rank}"
        assert all(e["rank"] == rank and e["world_size"] == 2 and e["size"] == 4 for e in log)
    for a, b in zip(*logs):
        assert (a["kind"], a["sources"]) == (b["kind"], b["sources"]), (a, b)
        if a["kind"] == "mono":
            assert a["query_langs"] == b["query_langs"] and len(a["query_langs"]) == 1
        assert not set(a["pos"]) & set(b["pos"])  # the gathered batch holds each passage once
    assert {a["kind"] for a in logs[0]} == {"mono", "cross"}
    assert len({a["sources"][0] for a in logs[0]}) == 2  # both sources trained on

    # resume: a copy of the run as it stood at its step-2 checkpoint (the rest removed), continued
    resumed = tmp_path / "resumed"
    resumed.mkdir()
    shutil.copy(out / "polyret_train.json", resumed)
    for rank in (0, 1):
        shutil.copy(batch_log_path(out, rank), batch_log_path(resumed, rank))
    (resumed / "checkpoints").mkdir()
    shutil.copytree(out / "checkpoints" / f"checkpoint-{every}", resumed / "checkpoints" / f"checkpoint-{every}")
    proc = torchrun([*overrides[:3], *overrides[4:], f"output_dir={resumed}", "resume=true"])
    assert proc.returncode == 0, proc.stderr[-4000:]
    again = json.loads((resumed / "model" / "polyret_train.json").read_text())
    assert again["resumed_from"] == f"checkpoint-{every}" and again["global_step"] == steps
    assert again["best_checkpoint"] == saved["best_checkpoint"]
    for rank in (0, 1):
        assert read_batch_log(batch_log_path(resumed, rank)) == logs[rank]
    a, b = weights(out / "model"), weights(resumed / "model")
    for key in a:
        torch.testing.assert_close(a[key], b[key], atol=1e-5, rtol=1e-4)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(pytest.main([__file__, "-q"]))
