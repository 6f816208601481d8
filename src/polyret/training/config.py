"""Training configuration: one dataclass, named recipes, file loading and ``key=value`` overrides.

Everything a run needs is in :class:`TrainConfig`, so a run is reproducible from its ``polyret_train.json``.
Validation happens on construction and on every :meth:`TrainConfig.replace`, so a bad value fails before
any model is loaded. The shared behaviour (coercion, files, unknown keys, ``to_dict``) is
:class:`polyret.configs.ConfigBase`'s.

**Other libraries' names.** Where transformers / sentence-transformers name the same concept, their key is
accepted in a config file, ``from_dict``, ``replace`` and ``--set`` (:data:`TrainConfig.ALIASES`):
``learning_rate`` -> ``lr``, ``num_train_epochs`` -> ``epochs``, ``gradient_accumulation_steps`` ->
``grad_accum_steps``, ``model_name_or_path`` -> ``model``, and ``per_device_train_batch_size: N`` ->
``batch_size: N`` with ``batch_scope: per_device``. Keys of the same name (``max_steps``, ``weight_decay``,
``warmup_ratio``, ``seed``, ``logging_steps``, ``save_steps``, ``eval_steps``, ``save_total_limit``,
``gradient_checkpointing``, ``dataloader_num_workers``, ``metric_for_best_model``) mean the same. Any other
``SentenceTransformerTrainingArguments`` field goes in ``trainer_args`` and is passed through.
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from polyret.configs import ConfigBase, FrozenDict, parse_overrides  # noqa: F401  (parse_overrides: re-exported)
from polyret.errors import ConfigError, TrainingDiverged  # noqa: F401  (re-exported: defined once, in polyret.errors)
from polyret.vocabulary import STRATEGIES, check_languages

PRECISIONS = ("auto", "fp32", "bf16", "fp16")
BATCH_SCOPES = ("global", "per_device")
BATCH_ROUNDINGS = ("error", "nearest")
ALPHA_SCHEDULES = ("draw", "balanced")  # hybrid: each step's type drawn with probability alpha, or exactly alpha x steps
# Config keys that were renamed: old name -> new name (an old config file fails with the new name).
RENAMED = {"dev_pairs": "dev_groups"}
# transformers / sentence-transformers names of TrainConfig keys (per_device_train_batch_size: see TrainConfig)
ALIASES: Mapping[str, str] = FrozenDict(
    {
        "learning_rate": "lr",
        "num_train_epochs": "epochs",
        "gradient_accumulation_steps": "grad_accum_steps",
        "model_name_or_path": "model",
    }
)
# The trainer's arguments polyret sets from a TrainConfig key (or its plan): a ``trainer_args`` entry for one
# of them is refused, naming the key to set instead (None: derived by polyret, no key sets it).
TRAINER_ARGS_SET_BY_POLYRET: Mapping[str, str | None] = FrozenDict(
    {
        "output_dir": "output_dir",
        "per_device_train_batch_size": "batch_size",
        "per_device_eval_batch_size": "batch_size",
        "gradient_accumulation_steps": "grad_accum_steps",
        "learning_rate": "lr",
        "weight_decay": "weight_decay",
        "warmup_steps": "warmup_ratio",
        "warmup_ratio": "warmup_ratio",
        "lr_scheduler_type": None,
        "optim": None,
        "max_steps": "max_steps",
        "num_train_epochs": "epochs",
        "bf16": "precision",
        "fp16": "precision",
        "seed": "seed",
        "logging_steps": "logging_steps",
        "save_strategy": "save_steps",
        "save_steps": "save_steps",
        "save_total_limit": "save_total_limit",
        "eval_strategy": "eval_steps",
        "eval_steps": "eval_steps",
        "load_best_model_at_end": "eval_steps",
        "metric_for_best_model": "metric_for_best_model",
        "greater_is_better": "metric_for_best_model",
        "prompts": None,
        "router_mapping": None,
        "batch_sampler": "strategy",
        "dataloader_num_workers": "dataloader_num_workers",
        "dataloader_pin_memory": None,
        "activation_checkpointing": "gradient_checkpointing",
        "activation_checkpointing_kwargs": "gradient_checkpointing",
        "gradient_checkpointing": "gradient_checkpointing",
        "use_cpu": None,
        "ddp_find_unused_parameters": "ddp_find_unused_parameters",
        "disable_tqdm": None,
        "resume_from_checkpoint": "resume",
    }
)
# The trainer's arguments polyret passes unless ``trainer_args`` names them (polyret reports nothing to
# an experiment tracker by default: ``trainer_args: {report_to: wandb}`` turns one on)
TRAINER_ARG_DEFAULTS: Mapping[str, Any] = FrozenDict({"report_to": "none"})


def trainer_argument_names() -> frozenset[str]:
    """The fields of sentence-transformers' ``SentenceTransformerTrainingArguments`` (transformers'
    ``TrainingArguments`` and its own): what ``trainer_args`` may name. Imports sentence-transformers."""
    try:
        from sentence_transformers import SentenceTransformerTrainingArguments as arguments
    except ImportError:  # pragma: no cover - sentence-transformers is a dependency
        from transformers import TrainingArguments as arguments
    return frozenset(f.name for f in dataclasses.fields(arguments) if f.init)


def upgrade_keys(record: dict[str, Any], *, complete: bool = True) -> dict[str, Any]:
    """A config record that polyret itself wrote (``polyret_train.json``, an experiment's
    ``train_overrides``) with keys of older versions renamed (``RENAMED``); user-written configs and
    ``--set`` are refused the old keys instead, with the new name. ``complete``: the record holds every
    key of a run (a ``polyret_train.json``), so a missing ``batch_scope`` means an older run's
    per-device batch; overrides (``complete=False``) only get renamed keys."""
    out = {RENAMED.get(k, k): v for k, v in record.items()}
    if complete and "batch_scope" not in out:  # before 0.3 batch_size was always per device
        out["batch_scope"] = "per_device"
    if not out.get("cached_loss") and "mini_batch_size" in out and "embed_chunk_size" not in out:
        # before 0.2 mini_batch_size also set the plain loss's chunk: it moves to its own key
        out["embed_chunk_size"] = out["mini_batch_size"]
        out["mini_batch_size"] = 32
    return out


@dataclass(frozen=True)
class TrainConfig(ConfigBase):
    """One training run: what to train, on what, how, and where to write it.

    ``temperature`` is InfoNCE's tau (the loss scale is ``1 / temperature``). The batch strategies
    (``mono``, ``cross``, ``hybrid`` with ``alpha``, ``mixed``) are those of Elmahdy, Lin, Ahmad 2024,
    "Synergistic Approach for Simultaneous Optimization of Monolingual, Cross-lingual, and Multilingual
    Information Retrieval" (arXiv 2408.10536); the ``paper`` recipe holds its hyperparameters.

    Args:
        model: the base model: a Hub id, a folder or ``builtin:me5-small`` (:func:`polyret.models.load`).
        train: training sources: registry ids (``xquad-r:train``, ``mlqa-r:train``), JSONL paths, ``mmarco``.
        output_dir: the run folder (config, batch log, checkpoints, final ``model/``).
        languages: the languages to train on (None: every language the sources have).
        data_dir: where registry datasets live (None: ``POLYRET_DATA_DIR`` or the default).
        max_groups: per source, a seeded subsample of this many parallel groups (quick runs).
        max_triples_per_query: mMARCO sources: the first this many training triples of each query (None:
            every triple, as the paper trains); only valid with an ``mmarco`` source.
        strategy: the batch strategy (:data:`polyret.vocabulary.STRATEGIES`).
        alpha: probability of a monolingual batch under ``hybrid``.
        alpha_schedule: how ``hybrid`` turns alpha into step types: ``draw`` (the paper's: each optimizer
            step is mono with probability alpha, independently; over a short run the realized share can be
            far from alpha, e.g. 3 of 20) or ``balanced`` (exactly round(alpha x steps) mono steps, rounded
            half up, in a seeded shuffled order: the same on every rank and on resume). The realized
            share is recorded either way (``polyret_train.json`` ``realized_mono_share``, the card).
        batch_size: pairs per optimizer step: the whole step's (``batch_scope="global"``, the paper's 100
            at any world size) or each device's (``batch_scope="per_device"``).
        batch_scope: ``global`` (default) or ``per_device``: what ``batch_size`` counts.
        batch_rounding: a global batch that does not divide by ``world_size x grad_accum_steps``: ``error``
            (default: stop, naming the batch sizes and world sizes that work) or ``nearest`` (round to the
            nearest multiple, ties up; the resolved batch is in the plan, ``polyret_train.json`` and the card).
        grad_accum_steps: micro-steps per optimizer step (in-batch negatives are then each micro-batch's;
            use ``cached_loss`` for a large batch in little memory with the whole batch as negatives).
        lr, weight_decay, warmup_ratio: AdamW and its linear schedule.
        max_steps: optimizer steps; wins over ``epochs`` when set.
        epochs: passes over the data when ``max_steps`` is None.
        temperature: InfoNCE's tau.
        hard_negatives: train with one hard negative per pair from the source.
        negatives: hard negatives per pair, one loss column each (0: 1 if ``hard_negatives``).
        cached_loss: GradCache (large batches in constant memory).
        mini_batch_size: GradCache's mini-batch size (with ``cached_loss``).
        length_sorted: embed each column in length-sorted, padding-trimmed chunks.
        embed_chunk_size: rows per chunk of the plain length-sorted loss (without ``cached_loss``).
        gather_across_devices: in-batch negatives from every device (None: on when world size > 1, so a
            step's negatives are its whole batch).
        ddp_find_unused_parameters: DDP's ``find_unused_parameters`` (None: off; under DDP a probe backward
            finds the trainable parameters that get no gradient, e.g. a pooler mean pooling never reads, and
            freezes them, which trains the same since AdamW skips a parameter without a gradient).
        dataloader_num_workers: DataLoader worker processes fetching the texts (0: in the main process); the
            batch log ``batches.jsonl`` comes from the sampler in the main process either way.
        gradient_checkpointing: recompute activations in backward (transformers' gradient checkpointing,
            non-reentrant): activation memory of one layer instead of all, about a third more compute.
        lora_r: LoRA rank (0: train every weight); the adapter goes in through sentence-transformers'
            PEFT support (``model.add_adapter``) and is merged into the weights of the final model.
        lora_alpha, lora_dropout: LoRA's scaling numerator and dropout.
        lora_target_modules: module names the adapter wraps (None: peft's default for the architecture).
        freeze_word_embeddings: freeze the token embedding matrix.
        max_seq_length: truncate texts to this many tokens (None: the model's).
        precision: ``auto``, ``fp32``, ``bf16`` or ``fp16``.
        seed: the one seed of the run (batches, weights init of heads, shuffles).
        logging_steps, save_steps, save_total_limit: trainer logging and checkpointing.
        eval_steps: evaluate every this many steps (None: at every save; both None with a dev set: derived
            from the run length, ``eval_points`` evaluations per run).
        eval_points: evaluations (and checkpoints) per run when eval_steps and save_steps are derived.
        dev: a dev benchmark id scored during training by polyret's evaluator (or the one passed to
            ``train()``); the best checkpoint by it is kept.
        dev_groups: parallel groups held out of the training data for a dev loss.
        metric_for_best_model: which dev metric picks the best checkpoint (None: dev loss, else the
            evaluator's primary metric).
        resume: continue the run in ``output_dir`` from its last complete checkpoint.
        keep_checkpoints: keep ``checkpoints/`` (optimizer states: about 3x the model's size) once the
            final model's completion marker is written (False: they are deleted then).
        recipe: the named recipe (:data:`RECIPES`) the run starts from (the model card names it).
        trainer_args: further ``SentenceTransformerTrainingArguments`` (transformers' ``TrainingArguments``)
            passed through as they are, e.g. ``{report_to: wandb, max_grad_norm: 0.5}``; default
            ``report_to: none`` (:data:`TRAINER_ARG_DEFAULTS`). An unknown name, or one polyret sets from
            its own key (:data:`TRAINER_ARGS_SET_BY_POLYRET`: ``learning_rate`` is ``lr``), is refused.

    Other libraries' names of the same keys are accepted (``ALIASES``, the module docstring):
    ``learning_rate``, ``num_train_epochs``, ``gradient_accumulation_steps``, ``per_device_train_batch_size``.
    """

    KIND: ClassVar[str] = "training"
    ALIASES: ClassVar[Mapping[str, str]] = ALIASES

    model: str = "builtin:me5-small"
    train: tuple[str, ...] = ("xquad-r:train",)  # training sources: registry ids or JSONL paths
    output_dir: str = "runs/train"
    languages: tuple[str, ...] | None = None  # None: every language the sources have
    data_dir: str | None = None
    max_groups: int | None = None  # per source: a seeded subsample of parallel groups (quick runs)
    max_triples_per_query: int | None = None  # mMARCO: triples kept per query (None: all)
    strategy: str = "hybrid"
    alpha: float = 0.5  # probability of a monolingual batch (hybrid)
    alpha_schedule: str = "draw"  # hybrid: "draw" each step's type (the paper) | "balanced": exactly round(alpha x steps)
    batch_size: int = 100  # pairs per optimizer step: the whole step's (batch_scope=global) or each device's
    batch_scope: str = "global"  # what batch_size counts: "global" (all devices together) or "per_device"
    batch_rounding: str = "error"  # global batch not divisible by world_size x grad_accum_steps: "error" | "nearest"
    grad_accum_steps: int = 1
    lr: float = 3e-5
    weight_decay: float = 0.01
    warmup_ratio: float = 0.1
    max_steps: int | None = None  # wins over epochs when set
    epochs: float = 1.0
    temperature: float = 0.05
    hard_negatives: bool = False
    negatives: int = 0  # hard negatives per example, one loss column each (e.g. a `polyret mine` file); 0: 1 if hard_negatives
    cached_loss: bool = False  # GradCache: large batches in constant memory
    mini_batch_size: int = 32  # GradCache's mini-batch (cached_loss=True): rows embedded per chunk
    length_sorted: bool = True  # embed each column in length-sorted chunks (less padding)
    embed_chunk_size: int = 32  # rows per forward pass of the plain length-sorted loss (cached_loss=False)
    gather_across_devices: bool | None = None  # None: True when world size > 1
    ddp_find_unused_parameters: bool | None = None  # None: off, parameters a probe finds unused are frozen
    dataloader_num_workers: int = 0
    gradient_checkpointing: bool = False
    lora_r: int = 0  # 0: full fine-tuning
    lora_alpha: float = 16.0
    lora_dropout: float = 0.05
    lora_target_modules: tuple[str, ...] | None = None  # None: peft's default for the architecture
    freeze_word_embeddings: bool = False
    max_seq_length: int | None = None
    precision: str = "auto"
    seed: int = 42
    logging_steps: int = 10
    save_steps: int | None = None  # None: only the final model
    save_total_limit: int | None = 2
    eval_steps: int | None = None  # None: save_steps (evaluate at every save when a dev set is given)
    eval_points: int = 10  # evaluations per run when eval_steps and save_steps are both None (derived)
    dev: str | None = None  # dev benchmark id, scored by the evaluator passed to train()
    dev_groups: int = 0  # parallel groups (all their languages) held out of the training data for a dev loss
    metric_for_best_model: str | None = None  # None: eval loss, or the evaluator's primary metric
    resume: bool = False
    keep_checkpoints: bool = False  # False: checkpoints/ is deleted once model/ is complete
    recipe: str | None = None  # the named recipe this config started from, for the model card
    trainer_args: Mapping[str, Any] = field(default_factory=FrozenDict)  # passed to the trainer's arguments

    def __post_init__(self) -> None:
        self._prepare()  # lists -> tuples, "de,en" -> ("de", "en"), mappings read-only; a wrong type named
        self.validate()

    # ------------------------------------------------------------------ validation
    def validate(self) -> None:
        def need(ok: bool, message: str) -> None:
            if not ok:
                raise self._error(message)

        for f in dataclasses.fields(self):  # inf / nan pass every range check below, and train NaN weights
            value = getattr(self, f.name)
            if isinstance(value, float) and not math.isfinite(value):
                need(False, f"{f.name} must be a finite number, got {value}")
        need(bool(self.model), "model is empty")
        need(bool(self.train), "train needs at least one source (e.g. 'xquad-r:train' or a .jsonl file)")
        need(all(isinstance(s, str) and s for s in self.train), f"train sources must be strings, got {self.train!r}")
        need(bool(self.output_dir), "output_dir is empty")
        for key in ("languages", "lora_target_modules"):  # [[1]] was an unhashable-type crash / accepted
            values = getattr(self, key)
            need(values is None or all(isinstance(v, str) for v in values), f"{key} must be a list of strings, got {values!r}")
        if self.languages is not None:
            need(len(self.languages) >= 1, "languages is empty (leave it unset for all languages)")
            need(len(set(self.languages)) == len(self.languages), f"languages has duplicates: {self.languages}")
            # codes are canonical (lower case, no spaces); which ones the sources have is checked on loading
            canonical = tuple(str(lang).strip().lower() for lang in self.languages)
            check_languages(self.languages, canonical, where="invalid training config: languages", error=ConfigError)
            if self.strategy in ("cross", "hybrid", "mixed"):
                need(len(self.languages) >= 2, f"strategy {self.strategy!r} needs at least 2 languages")
        need(self.strategy in STRATEGIES, f"strategy must be one of {STRATEGIES}, got {self.strategy!r}")
        need(0.0 <= self.alpha <= 1.0, f"alpha must be in [0, 1], got {self.alpha}")
        need(
            self.alpha_schedule in ALPHA_SCHEDULES,
            f"alpha_schedule must be one of {ALPHA_SCHEDULES}, got {self.alpha_schedule!r}",
        )
        need(self.batch_size >= 2, f"batch_size must be >= 2 (in-batch negatives), got {self.batch_size}")
        need(self.batch_scope in BATCH_SCOPES, f"batch_scope must be one of {BATCH_SCOPES}, got {self.batch_scope!r}")
        need(
            self.batch_rounding in BATCH_ROUNDINGS,
            f"batch_rounding must be one of {BATCH_ROUNDINGS}, got {self.batch_rounding!r}",
        )
        need(self.grad_accum_steps >= 1, f"grad_accum_steps must be >= 1, got {self.grad_accum_steps}")
        need(
            self.dataloader_num_workers >= 0,
            f"dataloader_num_workers must be >= 0, got {self.dataloader_num_workers}",
        )
        need(self.lora_r >= 0, f"lora_r must be >= 0 (0: no LoRA), got {self.lora_r}")
        need(self.lora_alpha > 0, f"lora_alpha must be > 0, got {self.lora_alpha}")
        need(0.0 <= self.lora_dropout < 1.0, f"lora_dropout must be in [0, 1), got {self.lora_dropout}")
        need(
            self.lora_target_modules is None or len(self.lora_target_modules) >= 1,
            "lora_target_modules is empty (leave it unset for peft's default)",
        )
        need(
            not (self.lora_r and self.freeze_word_embeddings),
            "lora_r and freeze_word_embeddings together: LoRA already trains only the adapter; drop freeze_word_embeddings",
        )
        need(self.eval_points >= 1, f"eval_points must be >= 1, got {self.eval_points}")
        need(self.lr > 0, f"lr must be > 0, got {self.lr}")
        need(self.weight_decay >= 0, f"weight_decay must be >= 0, got {self.weight_decay}")
        need(0.0 <= self.warmup_ratio < 1.0, f"warmup_ratio must be in [0, 1), got {self.warmup_ratio}")
        need(self.max_steps is None or self.max_steps >= 1, f"max_steps must be >= 1, got {self.max_steps}")
        need(self.epochs > 0 and math.isfinite(self.epochs), f"epochs must be > 0, got {self.epochs}")
        need(self.temperature > 0, f"temperature must be > 0, got {self.temperature}")
        need(self.negatives >= 0, f"negatives must be >= 0, got {self.negatives}")
        need(self.mini_batch_size >= 1, f"mini_batch_size must be >= 1, got {self.mini_batch_size}")
        need(self.embed_chunk_size >= 1, f"embed_chunk_size must be >= 1, got {self.embed_chunk_size}")
        need(
            # the old meaning (chunk the plain loss) is clear when embed_chunk_size is left at its default
            self.cached_loss or self.mini_batch_size == 32 or self.embed_chunk_size != 32,
            f"mini_batch_size={self.mini_batch_size} applies only with cached_loss=true (GradCache); the plain "
            "loss's rows per forward pass are embed_chunk_size (mini_batch_size set both before polyret 0.2)",
        )
        need(self.max_seq_length is None or self.max_seq_length >= 8, f"max_seq_length must be >= 8, got {self.max_seq_length}")
        need(isinstance(self.seed, int) and self.seed >= 0, f"seed must be an integer >= 0, got {self.seed!r}")
        need(self.precision in PRECISIONS, f"precision must be one of {PRECISIONS}, got {self.precision!r}")
        need(self.logging_steps >= 1, f"logging_steps must be >= 1, got {self.logging_steps}")
        need(self.save_steps is None or self.save_steps >= 1, f"save_steps must be >= 1, got {self.save_steps}")
        need(
            self.save_total_limit is None or self.save_total_limit >= 1,
            f"save_total_limit must be >= 1, got {self.save_total_limit}",
        )
        need(self.eval_steps is None or self.eval_steps >= 1, f"eval_steps must be >= 1, got {self.eval_steps}")
        need(self.dev_groups >= 0, f"dev_groups must be >= 0, got {self.dev_groups}")
        need(self.max_groups is None or self.max_groups >= 1, f"max_groups must be >= 1, got {self.max_groups}")
        need(
            self.max_triples_per_query is None or self.max_triples_per_query >= 1,
            f"max_triples_per_query must be >= 1 (unset: every triple), got {self.max_triples_per_query}",
        )
        if self.has_dev and self.save_steps is not None:  # unset: derived from the run length (plan)
            need(
                self.save_steps % self.eval_every == 0,
                f"save_steps ({self.save_steps}) must be a multiple of eval_steps ({self.eval_every}) so the "
                "best checkpoint can be kept",
            )
        known_recipe = self.recipe is None or (isinstance(self.recipe, str) and self.recipe in RECIPES)
        need(known_recipe, f"unknown recipe {self.recipe!r}; known: {sorted(RECIPES)}")
        self._check_trainer_args()

    def _check_trainer_args(self) -> None:
        """``trainer_args`` names arguments of the trainer that polyret does not set itself (checked against
        the arguments dataclass only when there are any: that imports sentence-transformers)."""
        if not self.trainer_args:
            return
        from polyret.configs import did_you_mean

        for key in self.trainer_args:
            if key in TRAINER_ARGS_SET_BY_POLYRET:
                ours = TRAINER_ARGS_SET_BY_POLYRET[key]
                raise self._error(
                    f"trainer_args: {key!r} is set by polyret "
                    + (f"from its {ours!r} key: set {ours} instead" if ours else "itself (it cannot be passed through)")
                )
        names = trainer_argument_names()
        for key in self.trainer_args:
            if key not in names:
                raise self._error(
                    f"trainer_args: {key!r} is not an argument of SentenceTransformerTrainingArguments{did_you_mean(key, names)}"
                )
        try:
            import json

            json.dumps(self.to_dict()["trainer_args"])
        except (TypeError, ValueError):
            raise self._error(
                f"trainer_args must hold plain values (numbers, strings, lists, mappings), got {dict(self.trainer_args)!r}"
            ) from None

    def trainer_arguments(self) -> dict[str, Any]:
        """The arguments ``trainer_args`` passes through, on top of :data:`TRAINER_ARG_DEFAULTS`."""
        from polyret.configs import thaw

        return {**TRAINER_ARG_DEFAULTS, **thaw(self.trainer_args)}

    # ------------------------------------------------------------------ derived values
    @property
    def scale(self) -> float:
        """The MultipleNegativesRankingLoss scale (1 / temperature)."""
        return 1.0 / self.temperature

    @property
    def num_negatives(self) -> int:
        """Hard-negative columns per example: ``negatives``, else 1 with ``hard_negatives``, else 0."""
        return self.negatives or int(self.hard_negatives)

    @property
    def has_dev(self) -> bool:
        return self.dev is not None or self.dev_groups > 0

    @property
    def eval_every(self) -> int:
        return self.eval_steps or self.save_steps or 0

    # ------------------------------------------------------------------ construction
    @classmethod
    def canonical_keys(cls, data: Mapping[str, Any]) -> dict[str, Any]:
        """As :meth:`ConfigBase.canonical_keys`, with renamed keys refused (naming the new one) and
        ``per_device_train_batch_size: N`` read as ``batch_size: N`` + ``batch_scope: per_device``."""
        data = {str(k).replace("-", "_"): v for k, v in data.items()}
        renamed = sorted(set(data) & set(RENAMED))
        if renamed:
            raise ConfigError(
                "; ".join(
                    f"training config key {old!r} was renamed to {RENAMED[old]!r} (it counts "
                    f"parallel groups, not pairs): write {RENAMED[old]}=..."
                    for old in renamed
                )
            )
        if "per_device_train_batch_size" in data:
            if "batch_size" in data:
                raise ConfigError("training config key 'batch_size' is given twice (as 'batch_size' and "
                                  "'per_device_train_batch_size'); keep one")  # fmt: skip
            if str(data.get("batch_scope", "per_device")) != "per_device":
                raise ConfigError("per_device_train_batch_size counts each device's pairs: it cannot go with "
                                  f"batch_scope={data['batch_scope']!r} (write batch_size instead)")  # fmt: skip
            data["batch_size"] = data.pop("per_device_train_batch_size")
            data["batch_scope"] = "per_device"
        return super().canonical_keys(data)

    @classmethod
    def from_recipe(cls, name: str, **overrides: Any) -> TrainConfig:
        if not isinstance(name, str) or name not in RECIPES:  # a mapping or list was an unhashable-type crash
            raise ConfigError(f"unknown recipe {name!r}; known: {sorted(RECIPES)}")
        return RECIPES[name].replace(**overrides)

    @classmethod
    def start(cls, data: dict[str, Any], source: str) -> TrainConfig:
        """A ``recipe`` key starts from that recipe; the other keys override it."""
        recipe = data.get("recipe")
        return cls.from_recipe(recipe) if recipe else cls()

    @classmethod
    def record(cls, data: Any, path: Path) -> Any:
        if isinstance(data, dict) and isinstance(data.get("config"), dict):  # polyret_train.json wraps it
            # a record polyret wrote (an older version's keys are upgraded, not refused: the run resumes)
            return upgrade_keys(data["config"])
        return data

    @classmethod
    def from_file(cls, path: str | os.PathLike) -> TrainConfig:
        """Load YAML (``.yaml``/``.yml``) or JSON; ``polyret_train.json`` from a trained model works too."""
        path = Path(path)
        if path.is_dir():
            path = path / "polyret_train.json"
        return super().from_file(path)


# ---------------------------------------------------------------------- named recipes
_recipes: dict[str, TrainConfig] = {}
RECIPES: Mapping[str, TrainConfig] = _recipes  # read-only once built (below)
_recipes["paper"] = TrainConfig(
    recipe=None,  # set below, once the name exists
    lr=3e-5,
    weight_decay=0.01,
    batch_size=100,  # the paper's batch: the whole step's, whatever the number of devices
    batch_scope="global",
    batch_rounding="nearest",  # 8 GPUs: 104 (13 per device); 1, 2, 4, 5 GPUs: exactly 100
    alpha=0.5,
    alpha_schedule="draw",  # the paper's per-step draw; over thousands of steps its share is within ~.01 of alpha
    strategy="hybrid",
    temperature=0.05,
    warmup_ratio=0.1,
    epochs=1.0,
    save_steps=None,  # derived: eval_points evaluations and checkpoints per run, whatever its length
    eval_points=10,
    # early stopping on dev loss, as in the paper: held-out groups for two dev batches of 100 (one of 104 on 8 GPUs)
    dev_groups=208,
    save_total_limit=2,
    cached_loss=True,  # GradCache (same loss and gradients): batch 100 of XLM-R large in one GPU's memory
)
_recipes["cpu"] = TrainConfig(
    recipe=None,
    lr=3e-5,
    weight_decay=0.01,
    batch_size=32,
    alpha=0.5,
    strategy="hybrid",
    temperature=0.05,
    warmup_ratio=0.1,
    max_steps=50,
    max_seq_length=128,
    freeze_word_embeddings=True,
    logging_steps=5,
    save_steps=25,
    dev_groups=64,
    save_total_limit=1,
)
for _name in list(_recipes):
    _recipes[_name] = dataclasses.replace(_recipes[_name], recipe=_name)
RECIPES = FrozenDict(_recipes)  # frozen configs in a read-only mapping: .replace(...) makes a changed one
del _recipes, _name
