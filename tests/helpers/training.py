"""Training helpers: a small ``TrainConfig`` for the tiny model, a model folder's weights, a simulated crash."""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import load_file
from transformers import TrainerCallback

from polyret.training.config import TrainConfig


def small_config(tiny_model: Path, pairs_file: Path, out: Path, **overrides) -> TrainConfig:
    # keep_checkpoints: the tests read the checkpoints of finished runs (by default they are deleted)
    base = dict(model=str(tiny_model), train=[str(pairs_file)], output_dir=str(out), batch_size=8, lr=5e-4,
                warmup_ratio=0.0, max_steps=6, logging_steps=2, precision="fp32", seed=3,
                keep_checkpoints=True)  # fmt: skip
    base.update(overrides)
    return TrainConfig(**base)


def weights(model_dir: Path) -> dict[str, torch.Tensor]:
    return load_file(str(model_dir / "model.safetensors"))


class StopAt(TrainerCallback):
    """Simulates a crash right after the checkpoint at ``step``."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step >= self.step:
            control.should_training_stop = True
        return control
