"""``polyret experiment``: train each strategy, evaluate base and trained models everywhere, report.

Only a loop over the data flow (DESIGN.md). Every step leaves a completion marker that is written last
(a trained model folder with ``polyret_train.json``, an evaluation folder with ``.complete.json``), so
running the same command again skips finished work and resumes an interrupted training run from its
last checkpoint.

Layout of an experiment folder::

    experiment.json                         the resolved configuration
    models/<system>/seed<k>/                training output (checkpoints/, model/)
    evals/base/<benchmark>/                 results of the base model
    evals/<system>/seed<k>/<benchmark>/     results of each trained model
    report/                                 report.md, report.json, figures
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from .evaluation.results import is_done as eval_done
from .paths import atomic_write_text
from .report import build_report, eval_dir, load_entries

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class System:
    """One trained variant: a strategy and, for hybrid, its alpha."""

    strategy: str
    alpha: float = 0.5

    @property
    def name(self) -> str:
        if self.strategy == "hybrid" and abs(self.alpha - 0.5) > 1e-9:
            return f"hybrid-a{self.alpha:g}"
        return self.strategy


@dataclass
class ExperimentConfig:
    """What to compare. ``train_overrides`` are ``TrainConfig`` fields applied on top of ``recipe``."""

    model: str = "builtin:me5-small"
    train: tuple[str, ...] = ("xquad-r:train",)
    benchmarks: tuple[str, ...] = ("xquad-r:test",)
    languages: tuple[str, ...] | None = None  # training AND evaluation languages (None: all)
    strategies: tuple[str, ...] = ("mono", "cross", "hybrid")
    alpha: float = 0.5
    alpha_sweep: tuple[float, ...] = ()  # extra hybrid runs at these alphas
    seeds: int = 1
    first_seed: int = 0
    recipe: str = "cpu"
    train_overrides: dict[str, Any] = field(default_factory=dict)
    eval_batch_size: int = 32
    eval_max_seq_length: int | None = 256
    eval_languages: dict[str, tuple[str, ...]] = field(default_factory=dict)  # per-benchmark language subsets
    data_dir: str | None = None
    output: str = "runs/experiment"
    preset: str | None = None

    def systems(self) -> list[System]:
        out = [System(s, self.alpha) for s in self.strategies]
        out += [System("hybrid", a) for a in self.alpha_sweep if System("hybrid", a) not in out]
        return out

    def seed_values(self) -> list[int]:
        return [self.first_seed + i for i in range(self.seeds)]

    def replace(self, **overrides: Any) -> "ExperimentConfig":
        known = {f.name for f in dataclasses.fields(self)}
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise ValueError(f"unknown experiment config key(s) {unknown}; known: {sorted(known)}")
        out = dataclasses.replace(self, **overrides)
        out.validate()
        return out

    def validate(self) -> None:
        from .training.config import RECIPES

        if self.seeds < 1:
            raise ValueError(f"seeds must be >= 1, got {self.seeds}")
        bad = [s for s in self.strategies if s not in ("mono", "cross", "hybrid", "mixed")]
        if bad:
            raise ValueError(f"unknown strategies {bad}; choose from mono, cross, hybrid, mixed")
        if self.recipe not in RECIPES:
            raise ValueError(f"unknown training recipe {self.recipe!r}; known: {sorted(RECIPES)}")
        for a in (self.alpha, *self.alpha_sweep):
            if not 0.0 <= a <= 1.0:
                raise ValueError(f"alpha must be in [0, 1], got {a}")
        if not self.benchmarks:
            raise ValueError("an experiment needs at least one benchmark")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "<dict>") -> "ExperimentConfig":
        data = {str(k).replace("-", "_"): v for k, v in data.items()}
        base = PRESETS[data.pop("preset")] if data.get("preset") else cls()
        for key in ("train", "benchmarks", "languages", "strategies", "alpha_sweep"):
            if isinstance(data.get(key), str):
                data[key] = tuple(v.strip() for v in data[key].split(",") if v.strip())
            elif isinstance(data.get(key), list):
                data[key] = tuple(data[key])
        if "eval_languages" in data:
            data["eval_languages"] = {k: tuple(v) for k, v in data["eval_languages"].items()}
        if isinstance(data.get("train_overrides"), dict):
            # on top of the preset's own overrides, as --set does: naming max_steps keeps its save_steps
            data["train_overrides"] = {**base.train_overrides, **data["train_overrides"]}
        try:
            return base.replace(**data)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{source}: {exc}") from None

    @classmethod
    def from_file(cls, path: str | os.PathLike) -> "ExperimentConfig":
        path = Path(path)
        text = path.read_text(encoding="utf-8")
        try:
            if path.suffix in (".yaml", ".yml"):
                import yaml

                data = yaml.safe_load(text) or {}
            else:
                data = json.loads(text)
        except Exception as exc:
            raise ValueError(f"{path}: cannot parse experiment config: {exc}") from None
        if not isinstance(data, dict):
            raise ValueError(f"{path}: an experiment config must be a mapping")
        return cls.from_dict(data, source=str(path))


# Fields that may change between runs in one folder: they add (or leave out of the report) systems,
# seeds and benchmarks without changing what an existing trained model or evaluation means.
EXTENDABLE = frozenset({"seeds", "first_seed", "strategies", "alpha_sweep", "benchmarks", "output", "preset",
                        "data_dir", "eval_batch_size"})


PRESETS: dict[str, ExperimentConfig] = {
    # The README's main job: about 20 minutes on 2 CPU cores (see bench/RESULTS.md).
    # Measured on 2 AMD EPYC cores (no AVX-512, ~115 GFLOPS fp32 GEMM): each evaluation of xquad-r:test
    # (12.5k texts, 132 settings) takes ~3.7 min of encoding, so the four evaluations the issue asks
    # for use ~15 of the 20 minutes; training gets the rest at ~0.28 s per pair. 20 steps of 16 pairs
    # per strategy (20 hybrid batch draws, not 10) at lr 5e-5: 8e-5 cost .03 more mono/cross mAP in a
    # 4-language check, 3e-5 (published) moves too little in so few steps.
    "cpu": ExperimentConfig(
        preset="cpu",
        recipe="cpu",
        train_overrides={"max_steps": 20, "batch_size": 16, "lr": 5e-5, "save_steps": 10, "dev_pairs": 0},
        eval_max_seq_length=128,
        output="runs/experiment-cpu",
    ),
    # Seconds, for tests: two languages, a handful of steps on small batches.
    "smoke": ExperimentConfig(
        preset="smoke",
        recipe="cpu",
        languages=("de", "en"),
        train_overrides={"max_steps": 4, "batch_size": 8, "save_steps": 2, "save_total_limit": 2, "dev_pairs": 0,
                         "max_groups": 64,
                         "logging_steps": 1, "warmup_ratio": 0.0, "lr": 1e-4},
        eval_max_seq_length=64,
        output="runs/experiment-smoke",
    ),
    # The published setup, for a GPU (one, or several under torchrun).
    "paper": ExperimentConfig(
        preset="paper",
        model="FacebookAI/xlm-roberta-large",
        recipe="paper",
        train=("xquad-r:train", "mlqa-r:train"),
        benchmarks=("xquad-r:test", "mlqa-r:test", "miracl/ar", "miracl/de", "miracl/en", "miracl/es",
                    "miracl/hi", "miracl/ru", "miracl/th", "miracl/zh"),
        strategies=("mono", "cross", "hybrid", "mixed"),
        alpha_sweep=(0.4, 0.6),
        seeds=3,
        eval_batch_size=256,
        eval_max_seq_length=512,
        output="runs/experiment-paper",
    ),
}


def _progress(msg: str, echo: Callable[[str], None] | None) -> None:
    logger.info(msg)
    if echo is not None:
        echo(msg)


def run_experiment(config: ExperimentConfig, *, echo: Callable[[str], None] | None = None,
                   progress: bool = True) -> dict[str, Any]:
    """Run (or continue) the experiment; returns paths of the report files and what was (re)done."""
    from .evaluation import evaluate
    from .models import load
    from .training.config import TrainConfig
    from .training.train import train
    from .training.train import last_checkpoint

    config.validate()
    out = Path(config.output)
    out.mkdir(parents=True, exist_ok=True)
    saved = out / "experiment.json"
    if saved.exists():
        previous = json.loads(saved.read_text(encoding="utf-8"))
        current = json.loads(json.dumps(config.to_dict()))
        changed = sorted(k for k in set(previous) | set(current)
                         if k not in EXTENDABLE and previous.get(k) != current.get(k))
        if changed:
            raise ValueError(
                f"{out} holds an experiment with a different configuration ({saved}: {', '.join(changed)} "
                "differ); use another --output or delete that folder. More seeds, strategies, alphas or "
                "benchmarks may be added to it."
            )
    rank, world_size = _launch_rank()
    if rank == 0:
        atomic_write_text(saved, json.dumps(config.to_dict(), indent=2))

    done: dict[str, list[str]] = {"trained": [], "evaluated": [], "reused": []}
    started = time.perf_counter()

    def eval_into(model_obj_or_path, target: Path, bench: str, label: str) -> None:
        if eval_done(target):  # its completion marker, written last; a folder without one is redone
            done["reused"].append(f"eval {label} {bench}")
            return
        _progress(f"evaluating {label} on {bench}", echo)
        langs = config.eval_languages.get(bench) or config.languages
        evaluate(model_obj_or_path, bench, output=target, progress=progress, languages=list(langs) if langs else None,
                 data_dir=config.data_dir, batch_size=config.eval_batch_size,
                 max_seq_length=config.eval_max_seq_length)
        done["evaluated"].append(f"{label} {bench}")

    if rank != 0:
        echo = None  # rank 0 speaks for the run

    def base_evals() -> None:
        """The base model, loaded once for all benchmarks."""
        base_targets = {b: eval_dir(out, "base", None, b) for b in config.benchmarks}
        if any(not eval_done(t) for t in base_targets.values()):
            base = load(config.model, max_seq_length=config.eval_max_seq_length)
            base.polyret_spec = config.model
            for bench, target in base_targets.items():
                eval_into(base, target, bench, "base")
            del base
        else:
            done["reused"] += [f"eval base {b}" for b in config.benchmarks]

    def train_one(system: System, seed: int) -> Path:
        """Train (or resume, or reuse) one system; returns its final model folder."""
        label = f"{system.name} seed {seed}"
        run_dir = out / "models" / system.name / f"seed{seed}"
        final = run_dir / "model"
        if not (final / "polyret_train.json").exists():
            resume = last_checkpoint(run_dir) is not None
            _progress(f"training {label}" + (" (resuming)" if resume else ""), echo)
            tcfg = base_train.replace(strategy=system.strategy, alpha=system.alpha, seed=seed,
                                      output_dir=str(run_dir), resume=resume)
            train(tcfg)
            done["trained"].append(label)
        else:
            done["reused"].append(f"train {label}")
        return final

    def system_evals(system: System, seed: int, final: Path) -> None:
        for bench in config.benchmarks:
            eval_into(str(final), eval_dir(out, system.name, seed, bench), bench, f"{system.name} seed {seed}")

    base_train = TrainConfig.from_recipe(config.recipe).replace(
        model=config.model, train=tuple(config.train), languages=config.languages, data_dir=config.data_dir,
        **config.train_overrides,
    )
    runs = [(system, seed) for system in config.systems() for seed in config.seed_values()]
    if world_size == 1:
        # base first, then each system x seed trained and evaluated at once: early results
        base_evals()
        for system, seed in runs:
            system_evals(system, seed, train_one(system, seed))
    else:
        # under torchrun every process trains every system together (DDP); rank 0 alone then
        # evaluates and reports while the others exit, so no process waits at a collective for
        # evaluations that may take longer than the process group's timeout
        finals = [train_one(system, seed) for system, seed in runs]
        if rank != 0:
            return {"report": {}, "done": done, "seconds": time.perf_counter() - started, "output": out,
                    "rank": rank}
        base_evals()
        for (system, seed), final in zip(runs, finals):
            system_evals(system, seed, final)

    # 3. the report
    _progress("writing the report", echo)
    wanted = {("base", None)} | {(system.name, seed) for system, seed in runs}
    entries = [e for e in load_entries(out) if (e.system, e.seed) in wanted and e.benchmark in config.benchmarks]
    files = build_report(entries, out / "report",
                         title=f"polyret experiment: {config.model}, trained on {', '.join(config.train)}")
    return {"report": files, "done": done, "seconds": time.perf_counter() - started, "output": out, "rank": rank}


def _launch_rank() -> tuple[int, int]:
    """(rank, world size) as set by torchrun / accelerate launch; (0, 1) for a plain process."""
    return int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))
