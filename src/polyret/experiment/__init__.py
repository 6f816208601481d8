"""``polyret experiment``: train each strategy, evaluate base and trained models everywhere, report.

- ``config``: ``ExperimentConfig`` (validation, type checks, YAML/JSON), ``System``, reserved train keys
- ``presets``: the named setups' settings (cpu, cpu-sweep, smoke, paper); ``config`` builds ``PRESETS`` from them
- ``inputs``: cheap disk checks of the model spec and training sources
- ``layout``: the one owner of the experiment folder's layout (experiment.json, models/, evals/, report/)
- ``runner``: ``run_experiment``, the resumable loop
"""

from __future__ import annotations

from .config import (
    EXTENDABLE,
    PRESETS,
    RESERVED_TRAIN_KEYS,
    ExperimentConfig,
    System,
    check_train_overrides,
)
from .inputs import check_model_spec, check_train_source
from .runner import run_experiment

__all__ = [
    "EXTENDABLE",
    "PRESETS",
    "RESERVED_TRAIN_KEYS",
    "ExperimentConfig",
    "System",
    "check_model_spec",
    "check_train_overrides",
    "check_train_source",
    "run_experiment",
]
