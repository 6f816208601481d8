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
        """Check every value without touching the disk: types, ranges, benchmark ids and their languages,
        and the training configuration each system will get (so a typo fails before any work starts).

        Raises:
            ValueError (or its subclasses ``ConfigError`` / ``DataError``) naming the key.
        """
        from .data.registry import benchmark_info
        from .training.config import RECIPES

        _check_types(self)
        if self.seeds < 1:
            raise ValueError(f"seeds must be >= 1, got {self.seeds}")
        if self.first_seed < 0:
            raise ValueError(f"first_seed must be >= 0, got {self.first_seed}")
        if not self.strategies:
            raise ValueError("strategies is empty; choose from mono, cross, hybrid, mixed")
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
        if not self.model:
            raise ValueError("model is empty")
        if not self.output:
            raise ValueError("output is empty")
        if self.eval_batch_size < 1:
            raise ValueError(f"eval_batch_size must be >= 1, got {self.eval_batch_size}")
        if self.eval_max_seq_length is not None and self.eval_max_seq_length < 1:
            raise ValueError(f"eval_max_seq_length must be >= 1 (or null), got {self.eval_max_seq_length}")
        if self.preset is not None and self.preset not in PRESETS:
            raise ValueError(f"unknown preset {self.preset!r}; known: {', '.join(PRESETS)}")
        unknown = [b for b in self.eval_languages if b not in self.benchmarks]
        if unknown:
            raise ValueError(f"eval_languages names {unknown}, which are not among the benchmarks "
                             f"{list(self.benchmarks)}")
        for bench in self.benchmarks:
            info = benchmark_info(bench)  # DataError naming the id and the known ones
            langs = self.eval_languages.get(bench) or self.languages
            absent = [lang for lang in langs or () if lang not in info.languages]
            if absent:
                key = f"eval_languages[{bench!r}]" if self.eval_languages.get(bench) else "languages"
                raise ValueError(f"{key}: benchmark {bench} has no language {', '.join(absent)} (it has "
                                 f"{', '.join(info.languages)}); give it its own subset in eval_languages")
        check_train_overrides(self.train_overrides)
        base = self.base_train_config()
        for system in self.systems():
            base.replace(strategy=system.strategy, alpha=system.alpha, seed=self.first_seed)

    def base_train_config(self):
        """The recipe with the experiment's model, sources, languages and ``train_overrides`` applied."""
        from .training.config import TrainConfig

        first = self.systems()[0]  # a strategy the experiment trains (the recipe's may not fit its languages)
        return TrainConfig.from_recipe(self.recipe).replace(
            model=self.model, train=tuple(self.train), languages=self.languages, data_dir=self.data_dir,
            strategy=first.strategy, alpha=first.alpha, **self.train_overrides,
        )

    def check_inputs(self) -> None:
        """Check what ``validate`` cannot without the disk: the model spec, the training sources and that
        the output folder can be written. Cheap (no model is loaded, no data file is parsed).

        Raises:
            ValueError / ``ModelError`` / ``DataError`` naming the spec, source or folder.
        """
        check_model_spec(self.model)
        for source in self.train:
            check_train_source(source, self.languages)
        from .paths import check_writable

        check_writable(self.output)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "<dict>") -> "ExperimentConfig":
        data = {str(k).replace("-", "_"): v for k, v in data.items()}
        preset = data.pop("preset", None)
        if preset is not None and (not isinstance(preset, str) or preset not in PRESETS):
            raise ValueError(f"{source}: unknown preset {preset!r}; known: {', '.join(PRESETS)}")
        base = PRESETS[preset] if preset else cls()
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"{source}: unknown experiment config key(s) {unknown}; known: {sorted(known)}")
        try:
            data = {key: _from_file_value(key, value) for key, value in data.items()}
        except ValueError as exc:
            raise ValueError(f"{source}: {exc}") from None
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


# TrainConfig fields the experiment sets itself for every run (see run_experiment): a train override of
# one of them would be overwritten silently (or break the run), so it is refused with the option to use.
RESERVED_TRAIN_KEYS: dict[str, str] = {
    "alpha": "alpha is set per system: use the experiment's `alpha` (config key) or --alpha-sweep",
    "seed": "seed is set per run: use the experiment's `first_seed` (config key) and `seeds` (--seeds)",
    "strategy": "strategy is set per system: use the experiment's `strategies` (--strategies)",
    "output_dir": "output_dir is set per run (<output>/models/<system>/seed<k>): use the experiment's "
                  "`output` (--output)",
    "resume": "resume is decided per run: the experiment resumes an unfinished training by itself",
    "model": "model is the experiment's base model: use the experiment's `model` (--model)",
    "train": "train is the experiment's: use the experiment's `train` (config key)",
    "languages": "languages are the experiment's (training and evaluation): use `languages` (--languages)",
    "data_dir": "data_dir is the experiment's: use `data_dir` (--data-dir)",
    "recipe": "recipe is the experiment's: use the experiment's `recipe` (config key)",
    "dev": "dev needs an evaluator, which the experiment does not pass to training: use dev_groups for a dev "
           "loss; the experiment evaluates every trained model on its benchmarks",
}


def check_train_overrides(overrides: dict[str, Any]) -> None:
    """Refuse ``train_overrides`` keys the experiment sets per run (``RESERVED_TRAIN_KEYS``).

    Args:
        overrides: TrainConfig field name -> value (from ``--set`` or a config file).

    Raises:
        ValueError naming the key and the experiment option to use instead.
    """
    for key in overrides:
        name = str(key).replace("-", "_")
        if name in RESERVED_TRAIN_KEYS:
            raise ValueError(f"train override {key!r} is not allowed: {RESERVED_TRAIN_KEYS[name]}")


def _type_name(hint: Any) -> str:
    import typing

    args = [a for a in typing.get_args(hint) if a is not type(None)]
    optional = type(None) in typing.get_args(hint)
    base = args[0] if optional and len(args) == 1 else hint
    origin = typing.get_origin(base)
    if origin is tuple:
        name = f"a list of {typing.get_args(base)[0].__name__}"
    elif origin is dict:
        name = "a mapping"
    else:
        name = {"str": "a string", "int": "an integer", "float": "a number"}.get(base.__name__, base.__name__)
    return name + (" or null" if optional else "")


def _field_ok(hint: Any, value: Any) -> bool:
    import typing

    args = typing.get_args(hint)
    if type(None) in args:
        if value is None:
            return True
        hint = next(a for a in args if a is not type(None))
    origin = typing.get_origin(hint)
    if origin is tuple:
        item = typing.get_args(hint)[0]
        return isinstance(value, tuple) and all(_field_ok(item, v) for v in value)
    if origin is dict:
        return isinstance(value, dict)
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, hint)


def _hints() -> dict[str, Any]:
    import typing

    return typing.get_type_hints(ExperimentConfig)


def _check_types(config: "ExperimentConfig") -> None:
    hints = _hints()
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        if not _field_ok(hints[f.name], value):
            raise ValueError(f"{f.name} must be {_type_name(hints[f.name])}, got {value!r}")
    for bench, langs in config.eval_languages.items():
        if not isinstance(bench, str) or not _field_ok(tuple[str, ...], langs):
            raise ValueError(f"eval_languages must map benchmark ids to lists of languages, got {bench!r}: {langs!r}")


def _from_file_value(key: str, value: Any) -> Any:
    """A config-file value in the field's Python shape: comma strings and lists become tuples, whole
    floats ints; anything of the wrong type is a ValueError naming the key and the expected type."""
    import typing

    hint = _hints()[key]
    args = typing.get_args(hint)
    base = next(a for a in args if a is not type(None)) if type(None) in args else hint
    if value is None:
        return value
    if typing.get_origin(base) is tuple:
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        if isinstance(value, list):
            item = typing.get_args(base)[0]
            value = tuple(float(v) if item is float and isinstance(v, int) and not isinstance(v, bool) else v
                          for v in value)
    elif base is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    elif base is int and isinstance(value, float) and value.is_integer():
        value = int(value)
    elif key == "eval_languages" and isinstance(value, dict):
        value = {b: _from_file_value("languages", v) for b, v in value.items()}
    if not _field_ok(hint, value):
        raise ValueError(f"{key} must be {_type_name(hint)}, got {value!r}")
    return value


def check_model_spec(spec: str) -> None:
    """Refuse a model spec that cannot name a model, without loading (or building) it: an unknown
    ``builtin:``, a local path that does not exist or is a file. A plausible Hub id passes.

    Args:
        spec: ``builtin:<name>``, a model folder or a Hugging Face Hub id.

    Raises:
        ModelError (a ValueError) naming the spec.
    """
    from .models import BUILTIN, BUILTIN_PREFIX, resolve

    if spec.startswith(BUILTIN_PREFIX) and spec[len(BUILTIN_PREFIX):] in BUILTIN:
        return  # resolve() would build it
    resolve(spec)


def check_train_source(spec: str, languages: tuple[str, ...] | list[str] | None = None) -> None:
    """Refuse a training source ``load_pairs`` could not open, without reading it: an unknown id or split,
    a language the dataset lacks, a missing file or mMARCO folder.

    Args:
        spec: ``xquad-r:train``, ``mlqa-r[:split]``, ``file.jsonl``, ``mmarco`` or ``mmarco:<folder>``.
        languages: the training languages (None: all).

    Raises:
        DataError naming the source.
    """
    from .data.lareqa import LAREQA_LANGUAGES, SPLITS
    from .data.pairs import mmarco_local_files
    from .data.records import DataError

    dataset, _, split = spec.partition(":")
    if dataset in LAREQA_LANGUAGES:
        if split and split not in SPLITS:
            raise DataError(f"training source {spec!r}: unknown split {split!r}; known: {', '.join(SPLITS)}")
        absent = [lang for lang in languages or () if lang not in LAREQA_LANGUAGES[dataset]]
        if absent:
            raise DataError(f"training source {spec!r} has no language {', '.join(absent)}; "
                            f"it has {', '.join(LAREQA_LANGUAGES[dataset])}")
        return
    if dataset == "mmarco":
        if split:
            mmarco_local_files(split)
        elif languages is None:
            raise DataError(f"training source {spec!r}: mmarco from the Hugging Face hub needs an explicit "
                            "language list (set `languages`)")
        return
    path = Path(spec).expanduser()
    if path.is_file():
        return
    if spec.endswith(".jsonl"):
        raise DataError(f"training source {spec!r}: no such file" + (" (it is a folder)" if path.is_dir() else ""))
    raise DataError(f"unknown training source {spec!r}; use xquad-r:train, mlqa-r:train (or :test / whole), "
                    "a .jsonl file, mmarco (Hub) or mmarco:<local folder>")


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
        train_overrides={"max_steps": 20, "batch_size": 16, "lr": 5e-5, "save_steps": 10, "dev_groups": 0},
        eval_max_seq_length=128,
        output="runs/experiment-cpu",
    ),
    # Seconds, for tests: two languages, a handful of steps on small batches.
    "smoke": ExperimentConfig(
        preset="smoke",
        recipe="cpu",
        languages=("de", "en"),
        train_overrides={"max_steps": 4, "batch_size": 8, "save_steps": 2, "save_total_limit": 2, "dev_groups": 0,
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
    from .training import train
    from .training.checkpoints import last_checkpoint

    # everything is checked before the folder or experiment.json is written: a typo fixed in the next
    # run is then not "a different configuration"
    config.validate()
    config.check_inputs()
    out = Path(config.output)
    saved = out / "experiment.json"
    if saved.exists():
        try:
            previous = json.loads(saved.read_text(encoding="utf-8"))
            if not isinstance(previous, dict):
                raise ValueError("not a JSON object")
        except ValueError as exc:
            raise ValueError(f"{saved}: unreadable experiment record ({exc}); delete it to start this folder "
                             "afresh, or use another --output") from None
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
    out.mkdir(parents=True, exist_ok=True)
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

    base_train = config.base_train_config()
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
