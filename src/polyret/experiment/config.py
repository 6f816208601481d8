"""What an experiment compares: ``ExperimentConfig`` (frozen, validated and type-checked on construction,
read from YAML/JSON through :class:`polyret.configs.ConfigBase`), the ``System`` it trains per strategy,
and the train and evaluation overrides it refuses because it sets them per run.

Presets live in ``presets``, disk checks of the inputs in ``inputs``, the loop in ``runner``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from ..configs import ConfigBase, FrozenDict
from ..errors import ConfigError
from ..vocabulary import STRATEGIES, check_languages
from .inputs import check_model_spec, check_train_source
from .presets import PRESET_SETTINGS


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


@dataclass(frozen=True)
class ExperimentConfig(ConfigBase):
    """What to compare. ``train_overrides`` are ``TrainConfig`` fields applied on top of ``recipe``.

    Args:
        model: the base model spec (``builtin:me5-small``, a folder, a Hub id).
        train: training sources (``xquad-r:train``, a ``.jsonl`` file, ``mmarco``...).
        benchmarks: benchmark ids every model is evaluated on.
        languages: training AND evaluation languages (None: all).
        strategies: the strategies trained (:data:`polyret.vocabulary.STRATEGIES`).
        alpha: hybrid's alpha; ``alpha_sweep`` adds hybrid runs at other alphas.
        alpha_sweep: extra hybrid runs at these alphas.
        seeds: how many training seeds per system, from ``first_seed`` on.
        first_seed: the first training seed.
        recipe: the ``TrainConfig`` recipe (``polyret.training.config.RECIPES``).
        train_overrides: ``TrainConfig`` fields set for every run (not those in ``RESERVED_TRAIN_KEYS``).
        eval_batch_size: encoding batch size of the evaluations.
        eval_max_seq_length: token limit of the evaluations (None: the model's).
        eval_languages: per-benchmark language subsets (instead of ``languages``).
        data_dir: the data folder (None: the default / ``POLYRET_DATA_DIR``).
        output: the experiment folder (see :mod:`polyret.report.layout`).
        preset: the preset the experiment starts from, if any (:data:`polyret.experiment.PRESETS`).
        keep_checkpoints: keep each training's ``checkpoints/`` (optimizer states) after its final model is
            complete (False: deleted then; see :attr:`TrainConfig.keep_checkpoints`).
        keep_models: keep each trained model's weights (False: once every evaluation of a model is
            finished, its weight files are removed; its folder keeps polyret_train.json, batches.jsonl, the
            card and a completion marker recording the removed weights' sha256, so a rerun reuses its
            evaluations, and one that needs the weights again, a missing or changed evaluation, trains
            it again). True for every preset but smoke.
        remedies: training-free remedies evaluated as systems of their own: ``"base+shift"`` (the base
            model's embeddings after Shift), ``"hybrid+leace"`` (every seed of hybrid), or a bare method
            (``"center"`` = ``"base+center"``); methods: :data:`polyret.evaluation.debias.METHODS`.
        remedy_fit: the benchmark every remedy is fitted on (never one of ``benchmarks``).
        remedy_fit_max_queries: how many parallel questions of ``remedy_fit`` are used (None: all).
        eval_overrides: ``EvalConfig`` fields set for every evaluation the experiment runs (``backend``,
            ``precision``, ``store_dtype``, ``measures``, ``k``, ``families``, ``store_threshold``...; not those
            in ``RESERVED_EVAL_KEYS``, which the experiment sets itself), checked as an ``EvalConfig`` on
            construction and recorded in ``experiment.json``. ``precision`` here sets the evaluations'
            precision apart from the trainings' (default: the trainings', resolved).

    Frozen and validated on construction: ``replace`` (or ``from_dict``) makes a changed copy.
    """

    KIND: ClassVar[str] = "experiment"

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
    train_overrides: Mapping[str, Any] = field(default_factory=FrozenDict)
    eval_batch_size: int = 32
    eval_max_seq_length: int | None = 256
    eval_languages: Mapping[str, tuple[str, ...]] = field(default_factory=FrozenDict)  # per-benchmark language subsets
    data_dir: str | None = None
    output: str = "runs/experiment"
    preset: str | None = None
    keep_checkpoints: bool = False
    keep_models: bool = True  # False: a trained model's weights are removed once it is evaluated (smoke)
    remedies: tuple[str, ...] = ()  # "<system>+<method>" (or "<method>" = base+<method>): polyret.evaluation.debias
    remedy_fit: str = "xquad-r:train"  # the benchmark every remedy is fitted on
    remedy_fit_max_queries: int | None = 300  # parallel questions of remedy_fit used
    eval_overrides: Mapping[str, Any] = field(default_factory=FrozenDict)  # EvalConfig fields of every evaluation

    def __post_init__(self) -> None:
        self._prepare()  # lists and comma strings -> tuples, mappings read-only; a wrong type named
        self.validate()

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

    def validate(self) -> None:
        """Check every value without touching the disk: types, ranges, benchmark ids and their languages,
        and the training configuration each system will get (so a typo fails before any work starts).

        Raises:
            ``ConfigError`` (a ``ValueError``) naming the key.
        """
        from ..data.registry import benchmark_info
        from ..training.config import RECIPES

        def need(ok: bool, message: str) -> None:
            if not ok:
                raise self._error(message)

        need(self.seeds >= 1, f"seeds must be >= 1, got {self.seeds}")
        need(self.first_seed >= 0, f"first_seed must be >= 0, got {self.first_seed}")
        need(bool(self.strategies), f"strategies is empty; choose from {', '.join(STRATEGIES)}")
        bad = [s for s in self.strategies if s not in STRATEGIES]
        need(not bad, f"strategies: unknown strategies {bad}; choose from {', '.join(STRATEGIES)}")
        for key in ("strategies", "alpha_sweep", "benchmarks"):  # a system (or benchmark) twice: one folder, two entries
            values = list(getattr(self, key))
            twice = sorted({v for v in values if values.count(v) > 1}, key=str)
            need(not twice, f"{key} names {', '.join(map(str, twice))} more than once; list each once")
        need(self.recipe in RECIPES, f"recipe: unknown training recipe {self.recipe!r}; known: {sorted(RECIPES)}")
        need(0.0 <= self.alpha <= 1.0, f"alpha must be in [0, 1], got {self.alpha}")
        for a in self.alpha_sweep:
            need(0.0 <= a <= 1.0, f"alpha_sweep: alpha must be in [0, 1], got {a}")
        need(bool(self.benchmarks), "benchmarks: an experiment needs at least one benchmark")
        need(bool(self.model), "model is empty")
        need(bool(self.output), "output is empty")
        need(self.eval_batch_size >= 1, f"eval_batch_size must be >= 1, got {self.eval_batch_size}")
        need(
            self.eval_max_seq_length is None or self.eval_max_seq_length >= 1,
            f"eval_max_seq_length must be >= 1 (or null), got {self.eval_max_seq_length}",
        )
        known = ", ".join(PRESET_SETTINGS)
        need(self.preset is None or self.preset in PRESET_SETTINGS, f"preset: unknown preset {self.preset!r}; known: {known}")
        unknown = [b for b in self.eval_languages if b not in self.benchmarks]
        need(not unknown, f"eval_languages names {unknown}, which are not among the benchmarks {list(self.benchmarks)}")
        for bench in self.benchmarks:
            try:
                info = benchmark_info(bench)
            except ValueError as exc:  # DataError naming the id and the known ones: a bad value of this key
                raise self._error(f"benchmarks: {exc}") from None
            langs = self.eval_languages.get(bench) or self.languages
            if langs:
                key = f"eval_languages[{bench!r}]" if self.eval_languages.get(bench) else "languages"
                try:
                    check_languages(langs, info.languages, where=f"{key}: benchmark {bench}", error=ConfigError)
                except ValueError as exc:
                    raise self._error(f"{exc}; give it its own subset in eval_languages") from None
        if self.remedies:
            from ..evaluation.debias import METHODS, check_debias_options

            names = {"base", *(s.name for s in self.systems())}
            for name, system, method in self.remedy_systems():
                need(
                    system in names,
                    f"remedies: {name!r} names system {system!r}, which the experiment has not ({sorted(names)})",
                )
                need(method in METHODS, f"remedies: {name!r}: unknown remedy {method!r}; choose from {', '.join(METHODS)}")
                for bench in self.benchmarks:
                    check_debias_options(method, self.remedy_fit, self.remedy_fit_max_queries, bench)
        self._check_train_overrides()
        self._check_eval_overrides()
        base = self.base_train_config()
        for system in self.systems():
            base.replace(strategy=system.strategy, alpha=system.alpha, seed=self.first_seed)

    def _check_train_overrides(self) -> None:
        """``train_overrides`` under ``TrainConfig``'s own names (``learning_rate`` is ``lr``), the keys the
        experiment sets itself refused; the values are checked by :meth:`base_train_config`."""
        from ..training.config import TrainConfig

        try:
            canonical = TrainConfig.canonical_keys(self.train_overrides)
        except ConfigError as exc:
            raise self._error(f"train_overrides: {exc}") from None
        check_train_overrides(canonical)
        object.__setattr__(self, "train_overrides", FrozenDict(canonical))

    def _check_eval_overrides(self) -> None:
        """``eval_overrides`` as an ``EvalConfig`` would take them (keys, types, ranges; measures in their
        stable names), the keys the experiment sets itself refused naming the option to use."""
        if not self.eval_overrides:
            return
        from ..evaluation.config import EvalConfig

        try:
            overrides = EvalConfig.canonical_keys(self.eval_overrides)  # store-dtype is store_dtype; unknown keys
        except ConfigError as exc:
            raise self._error(f"eval_overrides: {exc}") from None
        for key in overrides:
            if key in RESERVED_EVAL_KEYS:
                raise self._error(f"eval_overrides: {key!r} is not allowed: {RESERVED_EVAL_KEYS[key]}")
        try:
            evaluation = EvalConfig().replace(**overrides)
        except ValueError as exc:  # the evaluation's key, without its own "invalid evaluation config" prefix
            key = getattr(exc, "key", None)
            raise self._error(f"eval_overrides: {key}{exc.detail}" if key else f"eval_overrides: {exc}") from None
        object.__setattr__(self, "eval_overrides", FrozenDict({k: getattr(evaluation, k) for k in overrides}))

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

    @classmethod
    def start(cls, data: dict[str, Any], source: str) -> ExperimentConfig:
        """A ``preset`` key starts from that preset; the other keys override it (``train_overrides`` and
        ``eval_overrides`` on top of the preset's own, as ``--set`` does: naming max_steps keeps its save_steps)."""
        preset = data.pop("preset", None)
        if preset is not None and (not isinstance(preset, str) or preset not in PRESETS):
            raise ConfigError(f"unknown preset {preset!r}; known: {', '.join(PRESETS)}")
        base = PRESETS[preset] if preset else cls()
        from ..evaluation.config import EvalConfig
        from ..training.config import TrainConfig

        for key, fields in (("train_overrides", TrainConfig), ("eval_overrides", EvalConfig)):
            if isinstance(data.get(key), Mapping):  # in the fields' own names (learning_rate is lr) before the merge
                try:
                    data[key] = {**getattr(base, key), **fields.canonical_keys(data[key])}
                except ConfigError as exc:
                    raise ConfigError(f"{key}: {exc}") from None
        return base


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


# EvalConfig fields the experiment sets itself for every evaluation: an eval override of one is refused
# with the option to use.
RESERVED_EVAL_KEYS: dict[str, str] = {
    "model": "the experiment evaluates its base model and every trained one: use `model` (--model)",
    "benchmark": "use the experiment's `benchmarks` (config key)",
    "languages": "use the experiment's `languages` (--languages) or `eval_languages` per benchmark",
    "data_dir": "use the experiment's `data_dir` (--data-dir)",
    "batch_size": "use the experiment's `eval_batch_size` (config key)",
    "max_seq_length": "use the experiment's `eval_max_seq_length` (config key)",
    "corpus": "an experiment evaluates the data folder's corpora",
    "debias": "remedies are systems of their own: use the experiment's `remedies` (--remedies)",
    "debias_fit": "use the experiment's `remedy_fit` (--remedy-fit)",
    "debias_fit_max_queries": "use the experiment's `remedy_fit_max_queries` (config key)",
}


def check_train_overrides(overrides: Mapping[str, Any]) -> None:
    """Refuse ``train_overrides`` keys the experiment sets per run (``RESERVED_TRAIN_KEYS``).

    Args:
        overrides: TrainConfig field name -> value (from ``--set`` or a config file).

    Raises:
        ConfigError naming the key and the experiment option to use instead.
    """
    for key in overrides:
        name = str(key).replace("-", "_")
        if name in RESERVED_TRAIN_KEYS:
            raise ConfigError(f"train override {key!r} is not allowed: {RESERVED_TRAIN_KEYS[name]}")


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
        "keep_models",
        "remedies",
    }
)


# The named setups as frozen, validated configs (the settings live in .presets); read-only:
# PRESETS["cpu"].replace(seeds=3) makes a changed copy, nothing changes a preset.
PRESETS: Mapping[str, ExperimentConfig] = FrozenDict(
    {name: ExperimentConfig(preset=name, **settings) for name, settings in PRESET_SETTINGS.items()}
)
