"""``polyret experiment --dry-run``: the whole plan of an experiment, resolved without training.

Every system's training plan (:func:`polyret.training.plan.dry_run`: data sizes, steps per epoch, global
and per-device batch, eval/save steps, the memory estimate) at the launcher's world size or a simulated
one, plus the evaluations the experiment would run. The training sources are read once; no model weights
are loaded and nothing is written.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..configs import thaw
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
        missing: every input that is not on disk (training sources, benchmark files), one line each.
        reused: the trainings and evaluations already finished in the output folder (kept, not redone).
        keep_models: whether the trained models' weights stay (False: removed once each is evaluated).
        eval_options: the experiment's ``eval_overrides`` (key, value), given to every evaluation.
    """

    world_size: int
    runs: tuple[tuple[str, tuple[int, ...], Any], ...]
    benchmarks: tuple[tuple[str, tuple[str, ...] | None], ...]
    precision: str = ""
    missing: tuple[str, ...] = ()
    reused: tuple[str, ...] = ()
    keep_models: bool = True
    eval_options: tuple[tuple[str, Any], ...] = ()

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
            "missing": list(self.missing),
            "reused": list(self.reused),
            "keep_models": self.keep_models,
            "eval_options": {key: thaw(value) for key, value in self.eval_options},
        }

    def lines(self) -> list[str]:
        """The plan as readable lines (the command line prints them)."""
        trained = sum(1 for r in self.reused if r.startswith("train "))
        evaluated = len(self.reused) - trained
        out = [
            f"{self.trainings} training run(s) on {self.world_size} process(es), {self.evaluations} evaluation(s)"
            + (
                f": {trained} training(s) and {evaluated} evaluation(s) already finished here are reused, "
                f"{self.trainings - trained} training(s) and {self.evaluations - evaluated} evaluation(s) will run"
                if self.reused
                else ""
            )
        ]
        for name, seeds, plan in self.runs:
            out.append(f"system {name} (seeds {', '.join(map(str, seeds))}):")
            out += [f"  {line}" for line in plan.lines()]
        for bench, langs in self.benchmarks:
            out.append(f"evaluate on {bench}" + (f" ({','.join(langs)})" if langs else " (all its languages)"))
        if self.reused:
            out.append("reused (finished): " + "; ".join(self.reused))
        if self.missing:
            out.append(f"not on disk ({len(self.missing)}; downloaded when the run starts online, else it stops):")
            out += [f"  {m}" for m in self.missing]
        if self.eval_options:
            out.append("evaluation options: " + ", ".join(f"{key}={_shown(value)}" for key, value in self.eval_options))
        if self.precision:
            out.append(f"evaluation precision: {self.precision}")
        if not self.keep_models:
            out.append(
                "trained models: their weights are removed once each is evaluated (keep_models false; records and "
                "evaluations stay); --keep-models keeps them"
            )
        return out


def _shown(value: Any) -> str:
    return ",".join(map(str, value)) if isinstance(value, (list, tuple)) else str(value)


def _hub_mmarco(source: str) -> bool:
    """Whether training source ``source`` is mMARCO from the Hugging Face hub (by the one spec parser)."""
    from ..data.pairs import parse_source_spec
    from ..data.records import DataError

    try:
        spec = parse_source_spec(source)
    except DataError:
        return False
    return spec.kind == "mmarco" and spec.path is None


def _missing_source(source: str, languages) -> str | None:
    """Why training source ``source`` is not on disk (None: it is; hub mMARCO counts when its files are cached)."""
    from ..data.mmarco import MMARCO_LANGUAGES, mmarco_hub_cached
    from ..data.records import DataError
    from .inputs import check_train_source

    if _hub_mmarco(source):
        langs = tuple(languages or MMARCO_LANGUAGES)
        if not mmarco_hub_cached(langs):
            return f"training source mmarco: unicamp-dl/mmarco on the Hugging Face hub ({len(langs)} languages, GBs each)"
        return None
    try:
        check_train_source(source, languages)
    except DataError as error:
        return str(error)
    return None


def _reused(config: ExperimentConfig, runs) -> list[str]:
    """The trainings and evaluations finished in ``config.output``: what the runner reuses (the same tests:
    a final model's ``polyret_train.json``, an evaluation's completion marker)."""
    from pathlib import Path

    from ..evaluation.results import is_done
    from ..models import weights_pruned
    from ..vocabulary import BASELINE
    from . import layout

    out = Path(config.output)
    if not out.is_dir():
        return []
    found = [f"eval {BASELINE} {b}" for b in config.benchmarks if is_done(layout.eval_dir(out, BASELINE, None, b))]
    for name, seeds, _ in runs:
        system = next(s for s in config.systems() if s.name == name)
        for seed in seeds:
            final = layout.final_model_dir(layout.model_dir(out, system.name, seed))
            evals = [f"eval {name} seed {seed} {b}" for b in config.benchmarks
                     if is_done(layout.eval_dir(out, system.name, seed, b))]  # fmt: skip
            # a model whose weights were removed once evaluated is reused while no evaluation needs them
            remedies = [layout.eval_dir(out, r, seed, b) for r, s, _ in config.remedy_systems() if s == name
                        for b in config.benchmarks]  # fmt: skip
            needed = weights_pruned(final) is not None and (
                config.keep_models or len(evals) < len(config.benchmarks) or not all(map(is_done, remedies))
            )
            if (final / "polyret_train.json").exists() and not needed:
                found.append(f"train {name} seed {seed}")
            found += evals
    return found


def plan_experiment(config: ExperimentConfig, *, world_size: int | None = None) -> ExperimentPlan:
    """Resolve ``config``'s plan without training, downloading or writing anything.

    Training sources on disk are read (their sizes, the sampler's checks); a source that is not (hub mMARCO
    not in the Hub cache) is planned from its recorded size. Every input not on disk is listed
    (``ExperimentPlan.missing``), all at once, and what the output folder already holds is listed as reused.

    Args:
        config: the experiment.
        world_size: training processes to plan for (None: the launcher's ``WORLD_SIZE``, else 1).

    Raises:
        ValueError / ConfigError / DataError: what the real run would stop with at start-up.
    """
    from ..data.download import missing_files
    from ..data.mmarco import MMARCO_LANGUAGES, mmarco_recorded_groups
    from ..training.pair_sources import load_training_sources
    from ..training.plan import dry_run, estimate_plan, launch_world_size
    from .inputs import check_model_spec

    config.validate()
    check_model_spec(config.model)
    world_size = world_size or launch_world_size()
    base = config.base_train_config()
    missing = [m for m in (_missing_source(s, config.languages) for s in config.train) if m]
    for bench in config.benchmarks:
        langs = config.eval_languages.get(bench) or config.languages
        missing += [f"{bench}: {f.relpath} ({f.web_url})" for f in missing_files(bench, langs, data_dir=config.data_dir)]
    seeds = tuple(config.seed_values())
    runs = []
    if not any(m.startswith("training source") for m in missing):
        sources = load_training_sources(base)  # once for every system: the data is the experiment's
        for system in config.systems():
            tcfg = base.replace(strategy=system.strategy, alpha=system.alpha, seed=seeds[0])
            runs.append((system.name, seeds, dry_run(tcfg, world_size=world_size, sources=sources)))
    else:  # from sizes: sources on disk counted, hub mMARCO from its recorded size, a missing file left out
        sizes = []
        for source in config.train:
            if _hub_mmarco(source):
                langs = tuple(config.languages or MMARCO_LANGUAGES)
                sizes.append((source, mmarco_recorded_groups(base.max_triples_per_query), langs))
            elif _missing_source(source, config.languages) is None:
                loaded = load_training_sources(base.replace(train=(source,)))[0]
                sizes.append((loaded.name, len(loaded), tuple(loaded.languages)))
        if not sizes:
            raise ValueError("no training source is on disk or has a recorded size: " + "; ".join(missing))
        for system in config.systems():
            tcfg = base.replace(strategy=system.strategy, alpha=system.alpha, seed=seeds[0])
            runs.append((system.name, seeds, estimate_plan(tcfg, sizes, world_size=world_size)))
    benchmarks = tuple((b, tuple(config.eval_languages.get(b) or config.languages or ()) or None) for b in config.benchmarks)
    from .runner import evaluation_precision

    try:
        precision = evaluation_precision(config).describe()
    except ValueError:  # e.g. fp16 planned here for a GPU machine, as the trainings' plans say
        precision = f"{base.precision} (needs a CUDA device: not this machine)"
    return ExperimentPlan(
        world_size,
        tuple(runs),
        benchmarks,
        precision=precision,
        missing=tuple(missing),
        reused=tuple(_reused(config, runs)),
        keep_models=config.keep_models,
        eval_options=tuple(config.eval_overrides.items()),
    )
