"""The report's Setup section: what produced the numbers (model, data, training, evaluation, software,
hardware, date), read from the experiment folder's own records, so two reports (or a report and a
``polyret evaluate``) that disagree can be told apart by their setup."""

from __future__ import annotations

import datetime
import json
import os
import platform
from pathlib import Path
from typing import Any

__all__ = ["collect_setup", "software_and_hardware"]


def _read(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _version(module: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(module)
    except PackageNotFoundError:
        return "not installed"


def software_and_hardware() -> dict[str, str]:
    """polyret, torch, transformers and sentence-transformers versions, Python, the machine."""
    import torch

    from ..version import __version__

    if torch.cuda.is_available():
        hardware = f"{torch.cuda.device_count()} x {torch.cuda.get_device_name(0)}"
    else:
        hardware = f"CPU only, {os.cpu_count()} cores ({platform.processor() or platform.machine()})"
    return {
        "software": (
            f"polyret {__version__}, torch {torch.__version__}, transformers {_version('transformers')}, "
            f"sentence-transformers {_version('sentence-transformers')}, Python {platform.python_version()}"
        ),
        "hardware": hardware,
    }


def collect_setup(folder: str | os.PathLike, config=None) -> dict[str, str]:
    """The Setup rows of an experiment folder: from its config (``experiment.json`` or ``config``), the
    trained models' ``polyret_train.json`` (steps, batch, learning rate, training precision) and the
    evaluations' ``results.json`` (the resolved inference precision under ``precision`` when recorded),
    plus :func:`software_and_hardware` and the date of the newest evaluation. A value the folder does not
    record is left out, never guessed.

    Args:
        folder: the experiment folder.
        config: its :class:`~polyret.experiment.ExperimentConfig` (None: read ``experiment.json``).
    """
    from . import layout

    out = Path(folder)
    cfg = config.to_dict() if config is not None else _read(layout.config_path(out))
    rows: dict[str, str] = {}
    if cfg:
        rows["model"] = str(cfg.get("model"))
        langs = cfg.get("languages")
        rows["training data"] = ", ".join(cfg.get("train") or []) + (f" ({', '.join(langs)})" if langs else " (all languages)")
        seeds, first = int(cfg.get("seeds") or 1), int(cfg.get("first_seed") or 0)
        rows["seeds"] = f"{seeds} ({', '.join(str(first + i) for i in range(seeds))})"
        alphas = [cfg.get("alpha")] + list(cfg.get("alpha_sweep") or [])
        rows["alpha (hybrid)"] = ", ".join(f"{a:g}" for a in alphas if a is not None)
        rows["evaluation max length"] = (
            f"{cfg['eval_max_seq_length']} tokens" if cfg.get("eval_max_seq_length") else "the model's own"
        )
        overrides = cfg.get("eval_overrides") or {}
        if overrides:  # the experiment's eval_overrides (an older experiment.json has none)
            rows["evaluation options"] = ", ".join(
                f"{key} {','.join(map(str, v)) if isinstance(v, (list, tuple)) else v}" for key, v in overrides.items()
            )
    trained = sorted(out.glob("models/*/seed*/model/polyret_train.json"))
    if trained:
        info = _read(trained[0])
        tcfg = info.get("config") or {}
        steps = {_read(p).get("global_step") for p in trained} - {None}
        rows["training steps"] = ", ".join(str(s) for s in sorted(steps)) or "?"
        if info.get("global_batch") is not None:
            rows["batch"] = f"{info['global_batch']} pairs per step ({tcfg.get('batch_scope', 'global')})"
        if tcfg.get("lr") is not None:
            rows["learning rate"] = f"{tcfg['lr']:g} (warmup ratio {tcfg.get('warmup_ratio', 0):g})"
        if info.get("precision"):
            rows["training precision"] = str(info["precision"])
    result_files = sorted(out.glob("evals/**/results.json"))
    records = [_read(path) for path in result_files]
    # the resolved inference precision (``precision``, where polyret records it), else the one asked for
    precisions = sorted({str(r.get("precision") or (r.get("config") or {}).get("precision") or "") for r in records} - {""})
    if precisions:
        rows["evaluation precision"] = ", ".join(precisions)
    lengths = sorted({str((r.get("config") or {}).get("max_seq_length")) for r in records if r.get("config")})
    if lengths:  # what the evaluations used (None: the model's own)
        rows["evaluation max length"] = ", ".join("the model's own" if v == "None" else f"{v} tokens" for v in lengths)
    rows.update(software_and_hardware())
    if result_files:  # when the numbers were made (not when the report was drawn: a redrawn report is the same)
        newest = max(p.stat().st_mtime for p in result_files)
        rows["date"] = (
            datetime.datetime.fromtimestamp(newest, datetime.timezone.utc).strftime("%Y-%m-%d") + " (newest evaluation)"
        )
    return rows
