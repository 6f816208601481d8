"""Evaluation: settings, search, the pooled run table, metrics, language bias, significance, ``evaluate()``.

Modules by step: ``config`` (``EvalConfig``), ``encoding`` (a benchmark's texts -> embeddings),
``scoring`` (embeddings -> run table -> metrics -> ``Results``: ``score``), ``results`` / ``perquery``
(the files), ``mteb_export`` (MTEB result files), ``pipeline`` (the ``evaluate`` verb and
``write_evaluation``). No module is named like a function this package exports.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from ..vocabulary import DEFAULT_MEASURES

# exported name -> the module that defines it, imported on first access (PEP 562): importing one
# submodule (``polyret.evaluation.config`` for the command line's defaults) does not load the verb,
# the encoder and the search with it
_LAZY = {
    "EvalConfig": "polyret.evaluation.config",
    "PerQuery": "polyret.evaluation.perquery",
    "Results": "polyret.evaluation.results",
    "evaluate": "polyret.evaluation.pipeline",
    "score": "polyret.evaluation.scoring",
}

__all__ = ["DEFAULT_MEASURES", "EvalConfig", "PerQuery", "Results", "evaluate", "score"]

if TYPE_CHECKING:
    from .config import EvalConfig
    from .perquery import PerQuery
    from .pipeline import evaluate
    from .results import Results
    from .scoring import score


def __getattr__(name: str):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # once: later lookups are plain attribute reads
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
