"""Large models on one GPU, checked on CPU with the tiny model: gradient checkpointing (same training),
GradCache wiring, LoRA (only the adapter trains; the final model is plain merged weights), honest
precision, the unused-parameter probe of DDP runs and DataLoader workers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from sentence_transformers.sentence_transformer.losses import CachedMultipleNegativesRankingLoss
from transformers import TrainerCallback

from polyret import models
from polyret.batchlog import batch_log_path, read_batch_log
from polyret.precision import EmulatedPrecisionWarning
from polyret.training import train
from polyret.training.config import ConfigError, TrainConfig
from polyret.training.lora import add_lora, merge_lora
from polyret.training.losses import build_loss
from polyret.training.trainer import find_unused_parameters, resolve_precision
from tests.helpers.models import build_tiny_model
from tests.helpers.pairs import write_pairs
from tests.helpers.training import StopAt, small_config, weights


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "model")


@pytest.fixture(scope="module")
def pairs_file(tmp_path_factory) -> Path:
    return write_pairs(tmp_path_factory.mktemp("pairs") / "pairs.jsonl", 60)


class CheckpointingSpy(TrainerCallback):
    def __init__(self) -> None:
        self.enabled: bool | None = None

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        self.enabled = bool(model[0].auto_model.is_gradient_checkpointing)


def test_gradient_checkpointing_trains_the_same(tiny_model, pairs_file, tmp_path):
    runs = {}
    for flag in (False, True):
        spy = CheckpointingSpy()
        out = train(small_config(tiny_model, pairs_file, tmp_path / f"ckpt-{flag}", max_steps=3, gradient_checkpointing=flag),
                    callbacks=[spy])  # fmt: skip
        assert spy.enabled is flag
        runs[flag] = (json.loads((out / "polyret_train.json").read_text()), weights(out))
    (info_off, w_off), (info_on, w_on) = runs[False], runs[True]
    assert info_on["gradient_checkpointing"] and not info_off["gradient_checkpointing"]
    assert info_on["train_loss"] == pytest.approx(info_off["train_loss"], rel=1e-5)
    for key in w_off:  # recomputed activations (dropout masks too: RNG state is replayed) give the same steps
        torch.testing.assert_close(w_on[key], w_off[key], atol=1e-5, rtol=1e-4)


def test_cached_loss_reaches_gradcache_with_its_mini_batch_and_gather(tiny_model):
    model = models.load(str(tiny_model))
    loss = build_loss(model, TrainConfig(cached_loss=True, mini_batch_size=5), gather=True)
    assert isinstance(loss, CachedMultipleNegativesRankingLoss) and loss.mini_batch_size == 5
    assert loss.gather_across_devices is True
    assert build_loss(model, TrainConfig(cached_loss=True)).gather_across_devices is False  # one process: unset is off


def test_lora_trains_only_the_adapter_and_writes_merged_weights(tiny_model, pairs_file, tmp_path):
    out = train(small_config(tiny_model, pairs_file, tmp_path / "lora", max_steps=3, lr=5e-3, lora_r=4,
                             lora_dropout=0.0))  # fmt: skip
    info = json.loads((out / "polyret_train.json").read_text())
    assert info["lora_parameters"] == 2 * 2 * 4 * (32 + 32)  # 2 layers x (query, value) x r x (in + out)
    assert not (out / "adapter_config.json").exists()  # merged: a plain model, loadable without peft
    base, trained = weights(tiny_model), weights(out)
    assert set(trained) == set(base)
    changed = {k for k in base if not torch.equal(base[k], trained[k])}
    targets = {k for k in base if k.endswith(("attention.self.query.weight", "attention.self.value.weight"))}
    assert changed == targets and len(targets) == 4  # the adapter's delta B @ A lands on exactly those
    reloaded = models.load(str(out))
    emb = reloaded.encode(["query: the city"], convert_to_tensor=True)
    assert emb.shape == (1, 32) and torch.isfinite(emb).all()


@pytest.mark.slow
def test_a_lora_run_resumes_from_its_checkpoint_to_the_same_weights(tiny_model, pairs_file, tmp_path):
    kw = dict(max_steps=4, save_steps=2, lr=5e-3, lora_r=4, lora_dropout=0.0)
    straight = train(small_config(tiny_model, pairs_file, tmp_path / "straight", **kw))
    split = small_config(tiny_model, pairs_file, tmp_path / "split", **kw)
    train(split, callbacks=[StopAt(2)])
    resumed = train(split.replace(resume=True))
    assert json.loads((resumed / "polyret_train.json").read_text())["resumed_from"] == "checkpoint-2"
    a, b = weights(straight), weights(resumed)
    for key in a:
        torch.testing.assert_close(a[key], b[key], atol=1e-5, rtol=1e-4)


def test_merge_lora_keeps_the_adapted_function(tiny_model):
    torch.manual_seed(0)
    model = models.load(str(tiny_model))
    add_lora(model, TrainConfig(lora_r=4, lora_dropout=0.0))
    with torch.no_grad():  # a non-zero adapter (B starts at zero)
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.5)
    model.eval()
    texts = ["query: the capital city", "passage: der fluss"]
    before = model.encode(texts, convert_to_tensor=True)
    assert merge_lora(model) == 4
    after = model.encode(texts, convert_to_tensor=True)
    assert not any("lora" in n for n, _ in model.named_parameters())
    torch.testing.assert_close(after, before, atol=1e-5, rtol=1e-4)


def test_lora_errors_are_config_errors(tiny_model, pairs_file, tmp_path):
    with pytest.raises(ConfigError, match="LoRA cannot be added"):
        train(small_config(tiny_model, pairs_file, tmp_path / "bad", lora_r=4, lora_target_modules=("nonexistent",)))


@pytest.mark.skipif(torch.cuda.is_available(), reason="the CPU answer")
def test_precision_is_honest_on_cpu():
    with pytest.raises(ConfigError, match="fp16 needs a CUDA device"):
        resolve_precision("fp16")
    # conftest: a CPU without native bf16, where auto is fp32 and an explicit bf16 runs emulated, with a warning
    assert resolve_precision("auto") == "fp32"
    with pytest.warns(EmulatedPrecisionWarning, match="emulated"):
        assert resolve_precision("bf16") == "bf16"


def test_the_probe_finds_the_pooler_mean_pooling_never_reads(tiny_model):
    model = models.load(str(tiny_model))
    unused = find_unused_parameters(model)
    assert unused and all(".pooler." in name for name in unused)
    assert all(p.grad is None for p in model.parameters())  # the probe leaves no gradient behind
    for name, p in model.named_parameters():
        if name in unused:
            p.requires_grad_(False)
    assert find_unused_parameters(model) == []


def test_dataloader_workers_write_the_same_batch_log(tiny_model, pairs_file, tmp_path):
    """The log comes from the sampler in the main process: a worker fetching the texts changes nothing."""
    logs = {}
    for workers in (0, 1):
        run = tmp_path / f"workers-{workers}"
        out = train(small_config(tiny_model, pairs_file, run, max_steps=3, dataloader_num_workers=workers))
        assert json.loads((out / "polyret_train.json").read_text())["global_step"] == 3
        logs[workers] = read_batch_log(batch_log_path(run))
    assert [e["step"] for e in logs[1]] == [1, 2, 3] and logs[1] == logs[0]
    assert {e["kind"] for e in logs[1]} <= {"mono", "cross"} and all(len(e["pos"]) == e["size"] for e in logs[1])
