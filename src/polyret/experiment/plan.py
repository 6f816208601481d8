"""``polyret experiment --dry-run``: the whole plan of an experiment, resolved without training.

Every system's training plan (:func:`polyret.training.plan.dry_run`: data sizes, steps per epoch, global
and per-device batch, eval/save steps, the memory estimate) at the launcher's world size or a simulated
one, plus the evaluations the experiment would run. The training sources are read once; no model weights
are loaded and nothing is written.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .config import ExperimentConfig

__all__ = ["ExperimentPlan", "plan_experiment"]


@dataclass(frozen=True)
class ExperimentPlan:
    """What ``run_experiment`` would do.

    Args:
        world_size: the training processes planned for.
        runs: per system, its name, its seeds and its training plan (first seed).
        benchmarks: per benchmark, the languages it is evaluated in (None: all).
        precision: the evaluations' precision and why (``bf16 (auto: CPU has AMX)``), the trainings' too.
    """

    world_size: int
    runs: tuple[tuple[str, tuple[int, ...], Any], ...]
    benchmarks: tuple[tuple[str, tuple[str, ...] | None], ...]
    precision: str = ""

    @property
    def trainings(self) -> int:
        return sum(len(seeds) for _, seeds, _ in self.runs)

    @property
    def evaluations(self) -> int:
        return (1 + self.trainings) * len(self.benchmarks)  # the base model and every trained one

    def to_dict(self) -> dict[str, Any]:
        return {
            "world_size": self.world_size,
            "runs": [{"system": name, "seeds": list(seeds), "plan": plan.to_dict()} for name, seeds, plan in self.runs],
            "benchmarks": [{"id": b, "languages": list(langs) if langs else None} for b, langs in self.benchmarks],
            "trainings": self.trainings,
            "evaluations": self.evaluations,
            "precision": self.precision,
        }

    def lines(self) -> list[str]:
        """The plan as readable lines (the command line prints them)."""
        out = [f"{self.trainings} training run(s) on {self.world_size} process(es), {self.evaluations} evaluation(s)"]
        for name, seeds, plan in self.runs:
            out.append(f"system {name} (seeds {', '.join(map(str, seeds))}):")
            out += [f"  {line}" for line in plan.lines()]
        for bench, langs in self.benchmarks:
            out.append(f"evaluate on {bench}" + (f" ({','.join(langs)})" if langs else " (all its languages)"))
        if self.precision:
            out.append(f"evaluation precision: {self.precision}")
        return out


def plan_experiment(config: ExperimentConfig, *, world_size: int | None = None) -> ExperimentPlan:
    """Resolve ``config``'s plan without training or writing anything.

    Args:
        config: the experiment.
        world_size: training processes to plan for (None: the launcher's ``WORLD_SIZE``, else 1).

    Raises:
        ValueError / ConfigError / DataError: what the real run would stop with at start-up.
    """
    from ..training.plan import dry_run, launch_world_size
    from ..training.trainer import _load_sources
    from .inputs import check_model_spec, check_train_source

    config.validate()
    check_model_spec(config.model)
    for source in config.train:
        check_train_source(source, config.languages)
    world_size = world_size or launch_world_size()
    base = config.base_train_config()
    sources = _load_sources(base)  # once for every system: the data is the experiment's
    seeds = tuple(config.seed_values())
    runs = []
    for system in config.systems():
        tcfg = base.replace(strategy=system.strategy, alpha=system.alpha, seed=seeds[0])
        runs.append((system.name, seeds, dry_run(tcfg, world_size=world_size, sources=sources)))
    benchmarks = tuple((b, tuple(config.eval_languages.get(b) or config.languages or ()) or None) for b in config.benchmarks)
    from .runner import experiment_precision

    try:
        precision = experiment_precision(config).describe()
    except ValueError:  # e.g. fp16 planned here for a GPU machine, as the trainings' plans say
        precision = f"{base.precision} (needs a CUDA device: not this machine)"
    return ExperimentPlan(world_size, tuple(runs), benchmarks, precision)
