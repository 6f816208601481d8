"""Training: config and recipes here (light to import); the verb is ``polyret.training.train.train``.

``train`` is not re-exported: the submodule of the same name would shadow it once imported.
"""

from __future__ import annotations

from polyret.training.config import RECIPES, STRATEGIES, ConfigError, TrainConfig

__all__ = ["RECIPES", "STRATEGIES", "ConfigError", "TrainConfig"]
