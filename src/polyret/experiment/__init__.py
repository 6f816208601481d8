"""``polyret experiment``: train each strategy, evaluate base and trained models everywhere, report.

- ``config``: ``ExperimentConfig`` (validation, type checks, YAML/JSON), ``System``, reserved train keys
- ``presets``: the named setups' settings (cpu, cpu-sweep, smoke, paper); ``config`` builds ``PRESETS`` from them
- ``inputs``: cheap disk checks of the model spec and training sources
- ``layout``: re-exports :mod:`polyret.report.layout`, the one owner of the experiment folder's layout
- ``runner``: ``run_experiment``, the resumable loop (imported on first use: it loads the report's
  modules, which the command line's start does not need)
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


def __getattr__(name: str):
    """``run_experiment`` imported on first use (see the module docstring)."""
    if name == "run_experiment":
        from .runner import run_experiment

        return run_experiment
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
