"""Evaluation: settings, search, the pooled run table, metrics, language bias, significance, ``evaluate()``."""

from ..vocabulary import DEFAULT_MEASURES
from .evaluate import EvalConfig, evaluate, score
from .results import PerQuery, Results

__all__ = ["DEFAULT_MEASURES", "EvalConfig", "PerQuery", "Results", "evaluate", "score"]
