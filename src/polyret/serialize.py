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


def yaml_load_unique(text: str, *, source: str) -> Any:
    """``yaml.safe_load(text)``, but a mapping that names one key twice is refused.

    PyYAML keeps the last of two equal keys silently (``seeds: 1`` then ``seeds: 3`` trains 3 seeds), so a
    config file's typo or leftover would change a run without a word.

    Args:
        text: the YAML document.
        source: the file it came from, named in the message.

    Raises:
        ValueError: ``<source>:<line>: duplicate key '<key>' (first on line <n>)``; ``yaml.YAMLError`` for
            text that is not YAML.
    """
    import yaml

    class UniqueKeyLoader(yaml.SafeLoader):
        pass

    def construct_mapping(loader, node, deep=False):
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            key = loader.construct_object(key_node, deep=True)
            try:
                first = seen.get(key)
            except TypeError:  # an unhashable key: let PyYAML say so
                break
            line = key_node.start_mark.line + 1
            if first is not None:
                raise ValueError(f"{source}:{line}: duplicate key {key!r} (first on line {first}); keep one of them")
            seen[key] = line
        return yaml.SafeLoader.construct_mapping(loader, node, deep=deep)

    UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, construct_mapping)
    return yaml.load(text, Loader=UniqueKeyLoader)


def unique_json_keys(source: str | Path):
    """An ``object_pairs_hook`` for ``json.loads`` that refuses an object naming one key twice.

    Args:
        source: the file the JSON came from, named in the message.
    """

    def hook(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in pairs:
            if key in out:
                raise ValueError(f"{source}: duplicate key {key!r} in one JSON object; keep one of them")
            out[key] = value
        return out

    return hook


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
