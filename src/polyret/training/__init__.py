"""Training: the public API of polyret's hybrid-batch InfoNCE training.

The batch strategies (``mono``, ``cross``, ``hybrid``, ``mixed``) are those of Elmahdy, Lin, Ahmad 2024
(arXiv 2408.10536). Importing this package is light (config and vocabulary only); the names that need
torch or sentence-transformers (``train``, the samplers, losses, audit and mining) load on first use.

Modules: ``config`` (TrainConfig, recipes), ``trainer`` (``train``), ``samplers`` / ``conflicts`` /
``sampler_hooks`` (batches), ``pairs_dataset`` (the index view of the pairs), ``losses``, ``dev`` (held-out
groups, dev evaluator), ``checkpoints``, ``card`` (final model), ``mining`` (hard negatives); the batch log and
its audit are ``polyret.batchlog``, one floor down (evaluation reads it too). ``python -m polyret.training``
is the torchrun entry.
"""

from __future__ import annotations

import importlib

from polyret.training.config import (
    RECIPES,
    STRATEGIES,
    ConfigError,
    TrainConfig,
    TrainingDiverged,
)

# name -> module that defines it; loaded on first access (these import torch / sentence-transformers)
_LAZY = {
    "train": "trainer",
    "ParallelBatchSampler": "samplers",
    "BatchInfo": "samplers",
    "BatchView": "samplers",
    "SamplerFactory": "sampler_hooks",
    "SamplerEpochCallback": "sampler_hooks",
    "PairIndex": "pairs_dataset",
    "build_pairs_dataset": "pairs_dataset",
    "LengthSortedMNRL": "losses",
    "LengthSortedCachedMNRL": "losses",
    "build_loss": "losses",
    "audit_batches": "polyret.batchlog",
    "BatchAudit": "polyret.batchlog",
    "read_batch_log": "polyret.batchlog",
    "last_checkpoint": "checkpoints",
    "mine": "mining",
    "mine_negatives": "mining",
    "MineStats": "mining",
}

__all__ = [
    "RECIPES", "STRATEGIES", "BatchAudit", "BatchInfo", "BatchView", "ConfigError", "LengthSortedCachedMNRL",
    "LengthSortedMNRL", "MineStats", "PairIndex", "ParallelBatchSampler", "SamplerEpochCallback",
    "SamplerFactory", "TrainConfig", "TrainingDiverged", "audit_batches", "build_loss", "build_pairs_dataset",
    "last_checkpoint", "mine", "mine_negatives", "read_batch_log", "train",
]  # fmt: skip
assert set(__all__) == {"RECIPES", "STRATEGIES", "ConfigError", "TrainConfig", "TrainingDiverged", *_LAZY}


def __getattr__(name: str):
    # not cached in globals(): a test that patches ``polyret.training.trainer.train`` is seen here too
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module if module.startswith("polyret.") else f"{__name__}.{module}"), name)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
