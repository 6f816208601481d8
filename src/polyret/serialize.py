"""JSON-ready values: the one converter results, reports and model cards use before ``json.dumps``."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np


def jsonable(obj: Any) -> Any:
    """``obj`` with numpy scalars as Python numbers, tuples as lists, keys as strings, paths as posix
    strings and non-finite floats (NaN, inf: not valid JSON) as ``None``."""
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, Path):
        return obj.as_posix()
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def yaml_error_line(exc: BaseException) -> str:
    """A YAML parse error as one line: ``line L, column C: problem (context)``, not PyYAML's 4-line text.

    Args:
        exc: a ``yaml.YAMLError`` (or any exception: its text, newlines folded).
    """
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None)
    if mark is not None and problem:
        context = getattr(exc, "context", None)
        return f"line {mark.line + 1}, column {mark.column + 1}: {problem}" + (f" ({context})" if context else "")
    return " ".join(str(exc).split())
