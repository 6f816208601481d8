"""Fault injection for training: SIGKILL ``train()`` between steps and inside checkpoint / final-model saves.

One driver subprocess imports torch + polyret once (single-threaded, so forking is safe), then for each
fault forks a worker that trains with the fault armed and dies by SIGKILL at that point, and afterwards
forks a fresh worker that resumes (``resume=True``) in the same output folder. An uninterrupted reference
run, forked the same way, gives the weights every resumed run must reproduce exactly. The driver records
which checkpoint each resume loaded and whether it was complete at that moment.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from polyret.paths import is_complete

SRC = Path(__file__).resolve().parents[2] / "src"
LANGS = ("de", "en", "es")
WORDS = ("query passage the city river capital country year people war king church music school water "
         "der die das stadt fluss hauptstadt land el los ciudad rio pais").split()  # fmt: skip

# fault id -> (what is killed, the checkpoint the resume must start from)
# (4 steps, a checkpoint every 2, the newest one kept; ":4" = while saving checkpoint-4, ":1" = 1st call)
FAULTS = {
    "step:3": ("between steps (at the end of step 3)", "checkpoint-2"),
    "weights_torn:4": ("saving checkpoint-4: config written, weights half-written", "checkpoint-2"),
    "tokenizer_torn:4": ("saving checkpoint-4: weights written, tokenizer.json half-written", "checkpoint-2"),
    "optimizer:4": ("saving checkpoint-4: model written, before optimizer.pt", "checkpoint-2"),
    "trainer_state:4": ("saving checkpoint-4: all but trainer_state.json written", "checkpoint-2"),
    "marker:4": ("saving checkpoint-4: completion marker written, before the rename", "checkpoint-2"),
    "rmtree:1": ("rotation after checkpoint-4: checkpoint-2 half-deleted", "checkpoint-4"),
    "final_card:1": ("final model write: weights saved in the temp folder, card not yet", "checkpoint-4"),
}

DRIVER = r'''
import json, os, signal, shutil, sys, traceback
from pathlib import Path

os.environ["TOKENIZERS_PARALLELISM"] = "false"
import torch
torch.set_num_threads(1)
torch.set_num_interop_threads(1)
import transformers  # noqa: F401  (everything imported once, before any fork)
from transformers import TrainerCallback
from polyret.training import card as card_mod
from polyret.training import checkpoints as checkpoints_mod
from polyret.training import trainer as train_mod
from polyret.training.config import TrainConfig
# train() imports these lazily; import them here, once, so that every forked worker starts warm
import accelerate, datasets  # noqa: F401,E401
from sentence_transformers import SentenceTransformer, SentenceTransformerTrainer  # noqa: F401
import polyret.data.pairs, polyret.models, polyret.training.losses  # noqa: F401,E401
import polyret.training.pairs_dataset, polyret.training.samplers  # noqa: F401,E401

spec = json.loads(Path(sys.argv[1]).read_text())
base = TrainConfig(model=spec["model"], train=(spec["pairs"],), batch_size=8, lr=5e-4, warmup_ratio=0.0,
                   max_steps=4, save_steps=2, save_total_limit=1, logging_steps=1, precision="fp32", seed=5,
                   keep_checkpoints=True)


def die():
    os.kill(os.getpid(), signal.SIGKILL)


def arm(fault):
    """Install the fault's hook; returns extra trainer callbacks."""
    kind, _, nth = fault.rpartition(":")
    nth, count = int(nth), [0]

    def hit(path=None):
        """The nth call, or (given the path being written) any call while checkpoint-<nth> is saved."""
        if path is not None:
            return f"checkpoint-{nth}" in str(path)
        count[0] += 1
        return count[0] == nth

    if kind == "step":
        class Kill(TrainerCallback):
            def on_step_end(self, args, state, control, **kwargs):
                if state.global_step == nth:
                    die()
        return [Kill()]
    if kind == "weights_torn":
        import transformers.modeling_utils as mu
        from safetensors.torch import save
        orig = mu.safe_save_file

        def torn(tensors, filename, metadata=None):
            if hit(filename):
                data = save(tensors, metadata=metadata)
                Path(filename).write_bytes(data[: len(data) // 2])
                die()
            return orig(tensors, filename, metadata=metadata)
        mu.safe_save_file = torn
    elif kind == "tokenizer_torn":
        from transformers.tokenization_utils_base import PreTrainedTokenizerBase
        orig = PreTrainedTokenizerBase.save_pretrained

        def torn(self, save_directory, *a, **k):
            out = orig(self, save_directory, *a, **k)
            if hit(save_directory):
                path = Path(save_directory) / "tokenizer.json"
                path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
                die()
            return out
        PreTrainedTokenizerBase.save_pretrained = torn
    elif kind == "optimizer":
        orig = torch.save

        def save(obj, f, *a, **k):
            if str(f).endswith("optimizer.pt") and hit(f):
                die()
            return orig(obj, f, *a, **k)
        torch.save = save
    elif kind == "trainer_state":
        from transformers.trainer_callback import TrainerState
        orig = TrainerState.save_to_json

        def save_to_json(self, path):
            if hit(path):
                die()
            return orig(self, path)
        TrainerState.save_to_json = save_to_json
    elif kind == "marker":
        orig = checkpoints_mod.mark_complete  # the same function in both modules (polyret.paths)

        def mark(folder, **info):
            out = orig(folder, **info)
            if hit(folder):
                die()
            return out
        checkpoints_mod.mark_complete = mark  # checkpoints
        card_mod.mark_complete = mark  # the final model
    elif kind == "rmtree":
        orig = shutil.rmtree

        def rmtree(path, *a, **k):
            if hit():
                files = sorted(p for p in Path(path).rglob("*") if p.is_file())
                for p in files[: len(files) // 2]:
                    p.unlink()
                die()
            return orig(path, *a, **k)
        shutil.rmtree = rmtree
    elif kind == "final_card":
        orig = card_mod.model_card

        def card(*a, **k):
            if hit():
                die()
            return orig(*a, **k)
        card_mod.model_card = card
    else:
        raise ValueError(fault)
    return []


def fork(fn):
    sys.stdout.flush(); sys.stderr.flush()
    pid = os.fork()
    if pid == 0:
        code = 0
        try:
            fn()
        except BaseException:
            traceback.print_exc()
            code = 1
        sys.stdout.flush(); sys.stderr.flush()
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    return -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)


def listing(out):
    folder = Path(out) / "checkpoints"
    return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []


def complete(path):
    check = getattr(train_mod, "checkpoint_is_complete", None)
    if check is None:  # polyret without markers: the trainer state is written last
        return (Path(path) / "trainer_state.json").exists()
    return check(path)


def resume(out, record):
    orig = SentenceTransformerTrainer._load_from_checkpoint

    def load(self, checkpoint_path, *a, **k):
        record["loaded"] = Path(checkpoint_path).name
        record["loaded_complete"] = complete(checkpoint_path)
        Path(out, "loaded.json").write_text(json.dumps(record))
        return orig(self, checkpoint_path, *a, **k)
    SentenceTransformerTrainer._load_from_checkpoint = load
    train_mod.train(base.replace(output_dir=str(out), resume=True))


import time
started = time.time()
results = {}
results["reference"] = {"rc": fork(lambda: train_mod.train(base.replace(output_dir=str(Path(spec["base"]) / "reference"))))}
for fault in spec["faults"]:
    out = Path(spec["base"]) / fault.replace(":", "-")
    r = {}
    r["kill_rc"] = fork(lambda: train_mod.train(base.replace(output_dir=str(out)), callbacks=arm(fault)))
    r["after_kill"] = listing(out)
    last = train_mod.last_checkpoint(out)
    r["last_checkpoint"] = last.name if last else None
    r["resume_rc"] = fork(lambda: resume(out, {}))
    loaded = out / "loaded.json"
    r.update(json.loads(loaded.read_text()) if loaded.exists() else {"loaded": None})
    r["after_resume"] = listing(out)
    results[fault] = r
results["seconds"] = time.time() - started
Path(spec["results"]).write_text(json.dumps(results, indent=2))
'''


def write_short_pairs(path: Path, groups: int = 30, seed: int = 0) -> Path:
    """Parallel pairs without negatives, short texts: a fast driver for the kill-and-resume runs."""
    rng = random.Random(seed)
    with open(path, "w", encoding="utf-8") as fh:
        for g in range(groups):
            topic = [rng.choice(WORDS) for _ in range(3)]
            for lang in LANGS:
                row = {
                    "id": f"g{g}",
                    "lang": lang,
                    "query": " ".join(topic + [rng.choice(WORDS), lang]),
                    "positive": " ".join(topic + [rng.choice(WORDS) for _ in range(rng.randint(2, 12))]),
                }
                fh.write(json.dumps(row) + "\n")
    return path


@pytest.fixture(scope="module")
def fault_runs(tiny_model_dir, tmp_path_factory):
    """Runs the driver once: the reference run, then kill + resume for every fault in FAULTS."""
    base = tmp_path_factory.mktemp("train-faults")
    spec = {
        "model": tiny_model_dir,
        "pairs": str(write_short_pairs(base / "pairs.jsonl")),
        "base": str(base),
        "faults": list(FAULTS),
        "results": str(base / "results.json"),
    }
    (base / "spec.json").write_text(json.dumps(spec))
    (base / "driver.py").write_text(DRIVER)
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")]),
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "OMP_NUM_THREADS": "1",
    }
    proc = subprocess.run(
        [sys.executable, str(base / "driver.py"), str(base / "spec.json")], env=env, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    results = json.loads((base / "results.json").read_text())
    assert results["reference"]["rc"] == 0, proc.stderr[-4000:]
    return base, results, proc.stderr


def _weights(model_dir: Path) -> dict[str, torch.Tensor]:
    return load_file(str(model_dir / "model.safetensors"))


@pytest.mark.parametrize("fault", list(FAULTS))
def test_kill_then_resume_reaches_the_uninterrupted_weights(fault_runs, fault):
    base, results, log = fault_runs
    r = results[fault]
    expected_start = FAULTS[fault][1]
    assert r["kill_rc"] == -9, f"the fault {fault} never fired: {r}"
    # what the killed run left: no half-written folder under a checkpoint name, resume picks the right one
    assert r["last_checkpoint"] == expected_start, r
    assert r["resume_rc"] == 0, log[-4000:]
    assert r["loaded"] == expected_start and r["loaded_complete"] is True, r
    out = base / fault.replace(":", "-")
    checkpoints = out / "checkpoints"
    assert all(is_complete(p) for p in checkpoints.glob("checkpoint-*")), r["after_resume"]
    assert not [n for n in r["after_resume"] if n.startswith(".")], r["after_resume"]  # leftovers cleaned
    assert r["after_resume"] == ["checkpoint-4"], r  # rotation kept the newest one
    final = out / "model"
    assert is_complete(final) and not list(out.glob(".model.*"))
    reference, resumed = _weights(base / "reference" / "model"), _weights(final)
    assert reference.keys() == resumed.keys()
    for key in reference:
        assert torch.equal(reference[key], resumed[key]), f"{fault}: {key} differs from the uninterrupted run"
    log_ref = (base / "reference" / "batches.jsonl").read_text()
    assert (out / "batches.jsonl").read_text() == log_ref  # the resumed run trained on the same batches
