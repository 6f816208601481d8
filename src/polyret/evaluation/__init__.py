"""Evaluation: settings, search, the pooled run table, metrics, language bias, significance, ``evaluate()``.

Modules by step: ``config`` (``EvalConfig``), ``encoding`` (a benchmark's texts -> embeddings),
``scoring`` (embeddings -> run table -> metrics -> ``Results``: ``score``), ``results`` / ``perquery``
(the files), ``mteb_export`` (MTEB result files), ``pipeline`` (the ``evaluate`` verb and
``write_evaluation``). No module is named like a function this package exports.
"""

from ..vocabulary import DEFAULT_MEASURES
from .config import EvalConfig
from .perquery import PerQuery
from .pipeline import evaluate
from .results import Results
from .scoring import score

__all__ = ["DEFAULT_MEASURES", "EvalConfig", "PerQuery", "Results", "evaluate", "score"]
