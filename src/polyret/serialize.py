"""JSON-ready values: the one converter results, reports and model cards use before ``json.dumps``."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

# the config files' loaders live with the configs' base; imported from here by older code
from .configs import unique_json_keys, yaml_error_line, yaml_load_unique  # noqa: F401


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
