"""polyret: train and evaluate multilingual dense retrievers for mono-, cross- and multilingual retrieval.

The public API (as sentence-transformers' ``__init__`` exports its main classes)::

    from polyret import evaluate, train, TrainConfig, run_experiment, ExperimentConfig, PRESETS
    from polyret import load_model, load_benchmark, load_pairs, ParallelBatchSampler, build_report

Hybrid batch training follows Elmahdy, Lin, Ahmad 2024 (arXiv 2408.10536). Importing ``polyret`` is light:
each name loads its module (torch, sentence-transformers) on first use, so ``polyret --help`` stays fast.
Rooms: ``data`` (benchmarks, pairs, registry), ``models``, ``encode``, ``evaluation``, ``training``,
``experiment``, ``report``, ``cli``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from polyret.version import __version__
from polyret.vocabulary import DEFAULT_MEASURES, FAMILIES, STRATEGIES

# public name -> (module, attribute) that defines it, imported on first access
_LAZY: dict[str, tuple[str, str]] = {
    # errors (one family: PolyretError, a ValueError)
    "PolyretError": ("polyret.errors", "PolyretError"),
    # data
    "load_benchmark": ("polyret.data", "load_benchmark"),
    "list_benchmarks": ("polyret.data", "list_benchmarks"),
    "load_pairs": ("polyret.data", "load_pairs"),
    "Benchmark": ("polyret.data", "Benchmark"),
    "Pair": ("polyret.data", "Pair"),
    "DataError": ("polyret.errors", "DataError"),
    # models
    "load_model": ("polyret.models", "load"),
    "ModelError": ("polyret.errors", "ModelError"),
    # evaluation
    "evaluate": ("polyret.evaluation", "evaluate"),
    "EvalConfig": ("polyret.evaluation", "EvalConfig"),
    "Results": ("polyret.evaluation", "Results"),
    "PerQuery": ("polyret.evaluation", "PerQuery"),
    # training
    "train": ("polyret.training", "train"),
    "TrainConfig": ("polyret.training", "TrainConfig"),
    "ConfigError": ("polyret.errors", "ConfigError"),
    "TrainingDiverged": ("polyret.errors", "TrainingDiverged"),
    "RECIPES": ("polyret.training", "RECIPES"),
    "ParallelBatchSampler": ("polyret.training", "ParallelBatchSampler"),
    "SamplerFactory": ("polyret.training", "SamplerFactory"),
    "audit_batches": ("polyret.training", "audit_batches"),
    "mine": ("polyret.training", "mine"),
    # experiment and report
    "run_experiment": ("polyret.experiment", "run_experiment"),
    "ExperimentConfig": ("polyret.experiment", "ExperimentConfig"),
    "PRESETS": ("polyret.experiment", "PRESETS"),
    "build_report": ("polyret.report", "build_report"),
    "load_entries": ("polyret.report", "load_entries"),
    "analyse": ("polyret.report", "analyse"),
    "read_report": ("polyret.report", "read_report"),
    "Report": ("polyret.report", "Report"),
}

__all__ = [
    "Benchmark",
    "ConfigError",
    "DEFAULT_MEASURES",
    "DataError",
    "EvalConfig",
    "ExperimentConfig",
    "FAMILIES",
    "ModelError",
    "PRESETS",
    "Pair",
    "ParallelBatchSampler",
    "PerQuery",
    "PolyretError",
    "RECIPES",
    "Report",
    "Results",
    "STRATEGIES",
    "SamplerFactory",
    "TrainConfig",
    "TrainingDiverged",
    "__version__",
    "analyse",
    "audit_batches",
    "build_report",
    "evaluate",
    "list_benchmarks",
    "load_entries",
    "load_benchmark",
    "load_model",
    "load_pairs",
    "mine",
    "read_report",
    "run_experiment",
    "train",
]
assert set(__all__) == {"DEFAULT_MEASURES", "FAMILIES", "STRATEGIES", "__version__", *_LAZY}

if TYPE_CHECKING:  # for type checkers and IDEs: the same names, imported eagerly
    from polyret.data import Benchmark, DataError, Pair, list_benchmarks, load_benchmark, load_pairs
    from polyret.evaluation import EvalConfig, PerQuery, Results, evaluate
    from polyret.experiment import PRESETS, ExperimentConfig, run_experiment
    from polyret.models import ModelError
    from polyret.models import load as load_model
    from polyret.report import Report, analyse, build_report, load_entries, read_report
    from polyret.training import (
        RECIPES,
        ConfigError,
        ParallelBatchSampler,
        SamplerFactory,
        TrainConfig,
        TrainingDiverged,
        audit_batches,
        mine,
        train,
    )


def __getattr__(name: str):
    where = _LAZY.get(name)
    if where is None:
        raise AttributeError(f"module 'polyret' has no attribute {name!r}")
    return getattr(importlib.import_module(where[0]), where[1])


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
