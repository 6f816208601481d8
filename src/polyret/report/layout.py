"""The one owner of an experiment folder's layout: every path below an experiment root comes from here.

::

    experiment.json                         the resolved configuration (``config_path``)
    models/<system>/seed<k>/                training output: checkpoints/, model/ (``model_dir``); with
                                            keep_models false, model/ keeps its records, not its weights,
                                            once evaluated (its marker's ``weights_pruned``)
    evals/base/<benchmark slug>/            results of an untrained model, seed None (``eval_dir``)
    evals/<system>/seed<k>/<benchmark slug>/  results of each trained model
    report/                                 report.md, report.json, figures/ (``report_dir``)

The benchmark slug is the benchmark id with ":" and "/" replaced by "_" (``benchmark_slug``); the id
itself is read back from results.json. ``find_evals`` walks ``evals/`` the way the report reads it.
Pure path arithmetic: nothing here reads a results file or imports the layers above.
"""

from __future__ import annotations

import re
from pathlib import Path

from ..errors import DataError

__all__ = [
    "CONFIG_FILE",
    "EVALS",
    "FINAL_MODEL",
    "MODELS",
    "REPORT",
    "_SEED_DIR",
    "_system_part",
    "benchmark_slug",
    "config_path",
    "eval_dir",
    "evals_dir",
    "evals_root",
    "final_model_dir",
    "find_evals",
    "model_dir",
    "report_dir",
]

CONFIG_FILE = "experiment.json"
MODELS = "models"
EVALS = "evals"
REPORT = "report"
FINAL_MODEL = "model"  # the trained model inside a run folder (its marker: polyret_train.json)
_SEED_DIR = re.compile(r"seed\d+")


def benchmark_slug(benchmark: str) -> str:
    """A benchmark id as a folder name.

    Args:
        benchmark: e.g. ``"xquad-r:test"`` (-> ``"xquad-r_test"``) or ``"miracl/de"`` (-> ``"miracl_de"``).
    """
    return benchmark.replace(":", "_").replace("/", "_")


def _system_part(system: str) -> str:
    if not system or "/" in system or system.startswith("."):
        raise ValueError(f"system name {system!r} cannot be a folder name")
    return system


def config_path(experiment: str | Path) -> Path:
    """``<experiment>/experiment.json``: the resolved configuration of the experiment.

    Args:
        experiment: the experiment folder.
    """
    return Path(experiment) / CONFIG_FILE


def model_dir(experiment: str | Path, system: str, seed: int) -> Path:
    """``<experiment>/models/<system>/seed<k>``: the training output folder of one system and seed.

    Args:
        experiment: the experiment folder.
        system: the system name (``"mono"``, ``"hybrid-a0.3"``, ...).
        seed: the training seed.
    """
    return Path(experiment) / MODELS / _system_part(system) / f"seed{int(seed)}"


def final_model_dir(run_dir: str | Path) -> Path:
    """The trained model inside a run folder (``model_dir(...)/model``).

    Args:
        run_dir: a folder from ``model_dir``.
    """
    return Path(run_dir) / FINAL_MODEL


def evals_dir(experiment: str | Path) -> Path:
    """``<experiment>/evals``: every evaluation of the experiment.

    Args:
        experiment: the experiment folder.
    """
    return Path(experiment) / EVALS


def eval_dir(experiment: str | Path, system: str, seed: int | None, benchmark: str) -> Path:
    """Where the evaluation of ``system`` (trained with ``seed``; None = untrained) on ``benchmark`` lives.

    Args:
        experiment: the experiment folder.
        system: the system name; ``"base"`` for the untrained model.
        seed: the training seed, or None for an untrained model (no ``seed<k>`` level).
        benchmark: the benchmark id (its slug names the folder).

    Raises:
        ValueError: ``system`` cannot be a folder name.
    """
    root = evals_dir(experiment) / _system_part(system)
    if seed is not None:
        root = root / f"seed{int(seed)}"
    return root / benchmark_slug(benchmark)


def report_dir(experiment: str | Path) -> Path:
    """``<experiment>/report``: where the experiment writes its report.

    Args:
        experiment: the experiment folder.
    """
    return Path(experiment) / REPORT


def evals_root(folder: str | Path) -> Path:
    """``<folder>/evals`` when it exists, else ``folder`` itself (given the evals folder directly).

    Args:
        folder: an experiment folder or its evals folder.

    Raises:
        DataError: there is no evals folder.
    """
    root = Path(folder)
    evals = evals_dir(root) if evals_dir(root).is_dir() else root
    if not evals.is_dir():
        raise DataError(f"{root}: no evals folder (expected {evals_dir(root)}/<system>/[seed<k>/]<benchmark>/results.json)")
    return evals


def find_evals(folder: str | Path) -> list[tuple[str, int | None, Path]]:
    """Every evaluation folder under ``<folder>/evals`` (or ``folder`` itself when it is the evals folder),
    as (system, seed, folder), systems sorted by name, then seeds (None first), then benchmark folders.

    A system folder holds either ``seed<k>/<benchmark>/`` folders (trained systems) or ``<benchmark>/``
    folders directly (an untrained model such as base, seed None). Whether a folder is complete is the
    reader's question (``polyret.evaluation.results.is_done``).

    Args:
        folder: an experiment folder or its evals folder.

    Raises:
        DataError: there is no evals folder.
    """
    evals = evals_root(folder)
    found: list[tuple[str, int | None, Path]] = []
    for system_dir in sorted(p for p in evals.iterdir() if p.is_dir() and not p.name.startswith(".")):
        seeded = [p for p in system_dir.iterdir() if p.is_dir() and _SEED_DIR.fullmatch(p.name)]
        if seeded:
            places = [(int(p.name[4:]), b) for p in seeded for b in sorted(p.iterdir()) if b.is_dir()]
        else:
            places = [(None, b) for b in sorted(system_dir.iterdir()) if b.is_dir()]
        for seed, bench_dir in sorted(places, key=lambda t: (-1 if t[0] is None else t[0], t[1].name)):
            found.append((system_dir.name, seed, bench_dir))
    return found
