"""Checks every verb runs on its inputs and outputs before any work: no verb writes over its own input.

:func:`check_outputs_spare_inputs` compares resolved paths (symlinks followed, ``~`` expanded, the same
file under two names caught by ``os.path.samefile``): an output that IS one of the inputs, or an output
folder that holds one (the verb writes into, and may empty, that folder), is refused with a one-line
``ConfigError`` (the command line exits 2) naming both, before a model loads or a file is opened for
writing. ``polyret mine --train p.jsonl --output p.jsonl`` once replaced a 400-row training file with a
20-row one and exited 0.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path

from polyret.errors import ConfigError

__all__ = ["check_outputs_spare_inputs", "same_path"]

PathLike = str | os.PathLike


def _resolved(path: PathLike) -> Path:
    return Path(path).expanduser().resolve()


def same_path(a: PathLike, b: PathLike) -> bool:
    """True when ``a`` and ``b`` name one file or folder (resolved paths, or one inode under two names).

    Args:
        a, b: paths, existing or not.
    """
    if _resolved(a) == _resolved(b):
        return True
    try:
        return os.path.samefile(a, b)
    except OSError:  # one of them does not exist (yet): different
        return False


def _inside(child: Path, folder: Path) -> bool:
    return child != folder and folder in child.parents


def _items(named: Mapping[str, PathLike | Iterable[PathLike] | None]) -> list[tuple[str, PathLike]]:
    out: list[tuple[str, PathLike]] = []
    for name, value in named.items():
        if value is None:
            continue
        values = [value] if isinstance(value, (str, os.PathLike)) else list(value)
        out += [(name, v) for v in values if v is not None and str(v) != ""]
    return out


def check_outputs_spare_inputs(
    inputs: Mapping[str, PathLike | Iterable[PathLike] | None],
    outputs: Mapping[str, PathLike | Iterable[PathLike] | None],
    *,
    folders: Iterable[str] = (),
    error: type[Exception] = ConfigError,
) -> None:
    """Refuse an output that is one of the inputs, or an output folder that holds one.

    Only local paths are compared: a registry id (``xquad-r:train``, ``builtin:me5-small``, a Hub id) that is
    no existing path is skipped.

    Args:
        inputs: what the verb reads, by the option or key that names it (``{"--train": "p.jsonl"}``); a value
            may be a list of paths, or None (not given).
        outputs: what the verb writes, likewise (``{"--output": "p.jsonl"}``).
        folders: the keys of ``outputs`` that are folders the verb writes into: an input inside one is
            refused too.
        error: the exception raised (a ``ValueError`` subclass: the command line exits 2).

    Raises:
        ``error`` naming the output, the input and their keys.
    """
    folder_keys = set(folders)
    ins = [(k, v) for k, v in _items(inputs) if Path(v).expanduser().exists()]
    for out_key, out in _items(outputs):
        target = _resolved(out)
        for in_key, src in ins:
            source = _resolved(src)
            if same_path(out, src):
                raise error(
                    f"{out_key} {out} is the input {in_key} {src}: polyret never writes over its input; choose another {out_key}"
                )
            if out_key in folder_keys and _inside(source, target):
                raise error(
                    f"{out_key} {out} holds the input {in_key} {src}: polyret writes into (and may empty) that "
                    f"folder; choose an {out_key} outside it"
                )
