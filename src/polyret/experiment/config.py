"""What an experiment compares: ``ExperimentConfig`` (validated, type-checked, read from YAML/JSON),
the ``System`` it trains per strategy, and the train overrides it refuses because it sets them per run.

Presets live in ``presets``, disk checks of the inputs in ``inputs``, the loop in ``runner``.
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..serialize import unique_json_keys, yaml_load_unique
from ..vocabulary import STRATEGIES, check_languages
from .inputs import check_model_spec, check_train_source


@dataclass(frozen=True)
class System:
    """One trained variant of an experiment: a strategy and, for hybrid, its alpha.

    Args:
        strategy: one of ``polyret.vocabulary.STRATEGIES``.
        alpha: hybrid's share of monolingual batches; part of the name when it is not 0.5.
    """

    strategy: str
    alpha: float = 0.5

    @property
    def name(self) -> str:
        if self.strategy == "hybrid" and abs(self.alpha - 0.5) > 1e-9:
            return f"hybrid-a{self.alpha:g}"
        return self.strategy


@dataclass
class ExperimentConfig:
    """What to compare. ``train_overrides`` are ``TrainConfig`` fields applied on top of ``recipe``.

    Args:
        model: the base model spec (``builtin:me5-small``, a folder, a Hub id).
        train: training sources (``xquad-r:train``, a ``.jsonl`` file, ``mmarco``...).
        benchmarks: benchmark ids every model is evaluated on.
        languages: training AND evaluation languages (None: all).
        strategies: the strategies trained (``polyret.vocabulary.STRATEGIES``).
        alpha: hybrid's alpha; ``alpha_sweep`` adds hybrid runs at other alphas.
        alpha_sweep: extra hybrid alphas.
        seeds: how many training seeds per system, from ``first_seed`` on.
        first_seed: the first training seed.
        recipe: the ``TrainConfig`` recipe (``polyret.training.config.RECIPES``).
        train_overrides: ``TrainConfig`` fields set for every run (not those in ``RESERVED_TRAIN_KEYS``).
        eval_batch_size: encoding batch size of the evaluations.
        eval_max_seq_length: token limit of the evaluations (None: the model's).
        eval_languages: per-benchmark language subsets (instead of ``languages``).
        data_dir: the data folder (None: the default / ``POLYRET_DATA_DIR``).
        output: the experiment folder (layout: ``polyret.experiment.layout``).
        preset: the preset this config started from, if any.
        keep_checkpoints: keep each training's ``checkpoints/`` (optimizer states) after its final model is
            complete (False: deleted then; ``TrainConfig.keep_checkpoints``).
        remedies: training-free remedies evaluated as systems of their own: ``"base+shift"`` (the base
            model's embeddings after Shift), ``"hybrid+leace"`` (every seed of hybrid), or a bare method
            (``"center"`` = ``"base+center"``); methods: ``polyret.evaluation.debias.METHODS``.
        remedy_fit: the benchmark every remedy is fitted on (never one of ``benchmarks``).
        remedy_fit_max_queries: how many parallel questions of ``remedy_fit`` are used (None: all).
    """

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
    keep_checkpoints: bool = False
    remedies: tuple[str, ...] = ()  # "<system>+<method>" (or "<method>" = base+<method>): polyret.evaluation.debias
    remedy_fit: str = "xquad-r:train"  # the benchmark every remedy is fitted on
    remedy_fit_max_queries: int | None = 300  # parallel questions of remedy_fit used

    def remedy_systems(self) -> list[tuple[str, str, str]]:
        """``(system name, trained system it applies to or "base", method)`` per entry of ``remedies``."""
        out = []
        for entry in self.remedies:
            system, plus, method = entry.rpartition("+")
            system = system if plus else "base"
            out.append((f"{system}+{method}", system, method))
        return out

    def systems(self) -> list[System]:
        out = [System(s, self.alpha) for s in self.strategies]
        out += [System("hybrid", a) for a in self.alpha_sweep if System("hybrid", a) not in out]
        return out

    def seed_values(self) -> list[int]:
        return [self.first_seed + i for i in range(self.seeds)]

    def replace(self, **overrides: Any) -> ExperimentConfig:
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
        from ..data.registry import benchmark_info
        from ..training.config import RECIPES
        from .presets import PRESETS

        _check_types(self)
        if self.seeds < 1:
            raise ValueError(f"seeds must be >= 1, got {self.seeds}")
        if self.first_seed < 0:
            raise ValueError(f"first_seed must be >= 0, got {self.first_seed}")
        if not self.strategies:
            raise ValueError(f"strategies is empty; choose from {', '.join(STRATEGIES)}")
        bad = [s for s in self.strategies if s not in STRATEGIES]
        if bad:
            raise ValueError(f"unknown strategies {bad}; choose from {', '.join(STRATEGIES)}")
        for key in ("strategies", "alpha_sweep", "benchmarks"):  # a system (or benchmark) twice: one folder, two entries
            values = getattr(self, key)
            twice = sorted({v for v in values if values.count(v) > 1}, key=str)
            if twice:
                raise ValueError(f"{key} names {', '.join(map(str, twice))} more than once; list each once")
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
            raise ValueError(f"eval_languages names {unknown}, which are not among the benchmarks {list(self.benchmarks)}")
        for bench in self.benchmarks:
            info = benchmark_info(bench)  # DataError naming the id and the known ones
            langs = self.eval_languages.get(bench) or self.languages
            if langs:
                key = f"eval_languages[{bench!r}]" if self.eval_languages.get(bench) else "languages"
                try:
                    check_languages(langs, info.languages, where=f"{key}: benchmark {bench}")
                except ValueError as exc:
                    raise ValueError(f"{exc}; give it its own subset in eval_languages") from None
        if self.remedies:
            from ..evaluation.debias import METHODS, check_debias_options

            names = {"base", *(s.name for s in self.systems())}
            for name, system, method in self.remedy_systems():
                if system not in names:
                    raise ValueError(
                        f"remedies: {name!r} names system {system!r}, which the experiment has not ({sorted(names)})"
                    )
                if method not in METHODS:
                    raise ValueError(f"remedies: {name!r}: unknown remedy {method!r}; choose from {', '.join(METHODS)}")
                for bench in self.benchmarks:
                    check_debias_options(method, self.remedy_fit, self.remedy_fit_max_queries, bench)
        check_train_overrides(self.train_overrides)
        base = self.base_train_config()
        for system in self.systems():
            base.replace(strategy=system.strategy, alpha=system.alpha, seed=self.first_seed)

    def base_train_config(self):
        """The recipe with the experiment's model, sources, languages and ``train_overrides`` applied."""
        from ..training.config import TrainConfig

        first = self.systems()[0]  # a strategy the experiment trains (the recipe's may not fit its languages)
        return TrainConfig.from_recipe(self.recipe).replace(
            model=self.model,
            train=tuple(self.train),
            languages=self.languages,
            data_dir=self.data_dir,
            strategy=first.strategy,
            alpha=first.alpha,
            keep_checkpoints=self.keep_checkpoints,
            **self.train_overrides,
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
        from ..paths import check_writable, data_dir, refuse_output_over_inputs

        # not /, not the home folder, not a folder above the model, the data or a training file
        refuse_output_over_inputs(self.output, [self.model, data_dir(self.data_dir), *self.train], what="output")
        check_writable(self.output)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "<dict>") -> ExperimentConfig:
        """A config from a mapping (a parsed YAML/JSON file): its ``preset`` first, the other keys on top.

        Args:
            data: config keys (``-`` or ``_``) -> values in file shape (lists, comma strings, numbers).
            source: what ``data`` came from, named in every error.

        Raises:
            ValueError naming ``source`` and the key.
        """
        from .presets import PRESETS

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
    def from_file(cls, path: str | os.PathLike) -> ExperimentConfig:
        """A config from a YAML (``.yaml``/``.yml``) or JSON file; see ``from_dict``.

        Args:
            path: the config file.

        Raises:
            ValueError naming the file (and the key).
        """
        import yaml

        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError as exc:
            raise ValueError(f"{path}: not a UTF-8 text file: {exc}") from None
        try:
            if path.suffix.lower() in (".yaml", ".yml"):
                data = yaml_load_unique(text, source=str(path)) or {}
            else:
                data = json.loads(text, object_pairs_hook=unique_json_keys(path))
        except (yaml.YAMLError, json.JSONDecodeError) as exc:  # the file and the position, one line
            from ..serialize import yaml_error_line

            raise ValueError(f"{path}: cannot parse experiment config: {yaml_error_line(exc)}") from None
        if not isinstance(data, dict):
            raise ValueError(f"{path}: an experiment config must be a mapping")
        return cls.from_dict(data, source=str(path))


# TrainConfig fields the experiment sets itself for every run (see run_experiment): a train override of
# one of them would be overwritten silently (or break the run), so it is refused with the option to use.
RESERVED_TRAIN_KEYS: dict[str, str] = {
    "alpha": "alpha is set per system: use the experiment's `alpha` (config key) or --alpha-sweep",
    "seed": "seed is set per run: use the experiment's `first_seed` (config key) and `seeds` (--seeds)",
    "strategy": "strategy is set per system: use the experiment's `strategies` (--strategies)",
    "output_dir": "output_dir is set per run (<output>/models/<system>/seed<k>): use the experiment's `output` (--output)",
    "resume": "resume is decided per run: the experiment resumes an unfinished training by itself",
    "model": "model is the experiment's base model: use the experiment's `model` (--model)",
    "train": "train is the experiment's: use the experiment's `train` (config key)",
    "languages": "languages are the experiment's (training and evaluation): use `languages` (--languages)",
    "data_dir": "data_dir is the experiment's: use `data_dir` (--data-dir)",
    "recipe": "recipe is the experiment's: use the experiment's `recipe` (config key)",
    "dev": "dev needs an evaluator, which the experiment does not pass to training: use dev_groups for a dev "
    "loss; the experiment evaluates every trained model on its benchmarks",
    "keep_checkpoints": "keep_checkpoints is the experiment's: use `keep_checkpoints` (--keep-checkpoints)",
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


def _check_types(config: ExperimentConfig) -> None:
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
            value = tuple(float(v) if item is float and isinstance(v, int) and not isinstance(v, bool) else v for v in value)
    elif base is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    elif base is int and isinstance(value, float) and value.is_integer():
        value = int(value)
    elif key == "eval_languages" and isinstance(value, dict):
        try:
            value = {b: _from_file_value("languages", v) for b, v in value.items()}
        except ValueError as exc:  # it said "languages must be ...": name the key at fault
            raise ValueError(f"eval_languages: {exc}") from None
    if not _field_ok(hint, value):
        raise ValueError(f"{key} must be {_type_name(hint)}, got {value!r}")
    return value


# Fields that may change between runs in one folder: they add (or leave out of the report) systems,
# seeds and benchmarks without changing what an existing trained model or evaluation means.
EXTENDABLE = frozenset(
    {
        "seeds",
        "first_seed",
        "strategies",
        "alpha_sweep",
        "benchmarks",
        "output",
        "preset",
        "data_dir",
        "eval_batch_size",
        "keep_checkpoints",
        "remedies",
    }
)
