"""Training: config and recipes here (light to import); the verb is ``polyret.training.train.train``.

``train`` is not re-exported: the submodule of the same name would shadow it once imported.
"""

from __future__ import annotations

from polyret.training.config import RECIPES, STRATEGIES, ConfigError, TrainConfig

__all__ = ["RECIPES", "STRATEGIES", "ConfigError", "TrainConfig", "audit_batches"]


def __getattr__(name: str):
    if name == "audit_batches":  # lazy: the trainer module imports torch
        from polyret.training.train import audit_batches

        return audit_batches
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
