"""The resolved plan of a training run: batch per device and per step, steps, schedule, memory.

One function decides what a :class:`~polyret.training.config.TrainConfig` means on ``world_size``
devices, so that :func:`polyret.training.train` and ``polyret train --dry-run`` (``--world-size N`` to
simulate a node) agree by construction:

* **batch**: ``batch_scope="global"`` (default; the paper's 100 is the whole step's batch at any world
  size) splits ``batch_size`` over ``world_size x grad_accum_steps`` micro-batches; it must divide
  (``batch_rounding="error"``: a ConfigError naming the sizes that work) or is rounded to the nearest
  multiple (``batch_rounding="nearest"``, ties up). ``batch_scope="per_device"``: ``batch_size`` is each
  device's micro-batch and the step's batch grows with the world size.
* **negatives**: ``gather_across_devices`` (None: on when ``world_size > 1``) makes a micro-step's
  in-batch negatives its whole global micro-batch, as on one device.
* **steps**: the sampler's optimizer steps per epoch (one source per step, see
  :mod:`polyret.training.samplers`) times ``epochs``, or ``max_steps``; the source-size checks of the
  sampler run at the resolved world size and say what to change.
* **schedule**: with a dev set, ``eval_steps`` / ``save_steps`` left unset are derived from the run
  length (``eval_points`` evaluations, each with a checkpoint), so early stopping has candidates.
* **memory**: :mod:`polyret.training.memory`'s per-device estimate.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from polyret.training.config import ConfigError, TrainConfig

__all__ = ["BatchPlan", "TrainPlan", "dry_run", "estimate_plan", "launch_world_size", "resolve_batch", "resolve_plan"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class BatchPlan:
    """What ``batch_size`` means on ``world_size`` devices.

    Args:
        requested: ``config.batch_size``.
        scope: ``config.batch_scope``.
        world_size, grad_accum_steps: devices and micro-steps per optimizer step.
        per_device: examples per device per micro-step (the trainer's per-device batch).
        global_batch: examples per optimizer step, all devices and micro-steps together.
        rounded: the global batch was rounded to a multiple of ``world_size x grad_accum_steps``.
        gather: in-batch negatives gathered across devices.
    """

    requested: int
    scope: str
    world_size: int
    grad_accum_steps: int
    per_device: int
    global_batch: int
    rounded: bool
    gather: bool

    @property
    def micro_batch(self) -> int:
        """Examples per micro-step over all devices (the sampler's global micro-batch)."""
        return self.per_device * self.world_size

    @property
    def negatives_batch(self) -> int:
        """Examples whose positives are one query's in-batch candidates."""
        return self.micro_batch if self.gather else self.per_device


def _divisors(n: int, limit: int = 64) -> list[int]:
    return [d for d in range(1, min(n, limit) + 1) if n % d == 0]


def resolve_batch(config: TrainConfig, world_size: int) -> BatchPlan:
    """Resolve ``config.batch_size`` on ``world_size`` devices (module docstring).

    Args:
        config: the run's config (``batch_size``, ``batch_scope``, ``batch_rounding``,
            ``grad_accum_steps``, ``gather_across_devices``).
        world_size: the number of training processes.

    Raises:
        ConfigError: a global batch that does not split evenly (with ``batch_rounding="error"``) or
            leaves a device less than one example, naming what to change.
    """
    if world_size < 1:
        raise ConfigError(f"world size must be >= 1, got {world_size}")
    accum = config.grad_accum_steps
    shards = world_size * accum
    gather = config.gather_across_devices if config.gather_across_devices is not None else world_size > 1
    if config.batch_scope == "per_device":
        per_device, rounded = config.batch_size, False
    else:
        if config.batch_size < shards and config.batch_rounding == "error":
            raise ConfigError(
                f"the global batch_size {config.batch_size} is smaller than world_size {world_size} x "
                f"grad_accum_steps {accum}: raise batch_size to a multiple of {shards} or use fewer devices"
            )
        per_device, rest = divmod(config.batch_size, shards)
        rounded = rest != 0
        if rounded:
            low, high = per_device * shards, (per_device + 1) * shards
            if config.batch_rounding == "error":
                options = " or ".join(f"batch_size={b} ({b // shards} per device)" for b in (low, high) if b >= 2)
                raise ConfigError(
                    f"the global batch_size {config.batch_size} does not divide by world_size {world_size} x "
                    f"grad_accum_steps {accum} = {shards}: set {options}, set batch_rounding=nearest, or run "
                    f"on a number of devices that divides {config.batch_size} "
                    f"({', '.join(map(str, _divisors(config.batch_size)))})"
                )
            per_device = high if (config.batch_size - low) >= (high - config.batch_size) or low == 0 else low
            per_device //= shards
    plan = BatchPlan(config.batch_size, config.batch_scope, world_size, accum, per_device,
                     per_device * shards, rounded, bool(gather))  # fmt: skip
    if plan.negatives_batch < 2:
        raise ConfigError(
            f"{plan.per_device} example per device without gather_across_devices leaves no in-batch negative: "
            "raise batch_size or set gather_across_devices=true"
        )
    return plan


@dataclass(frozen=True)
class SourcePlan:
    """One training source as the plan sees it.

    Args:
        name: the source's name.
        groups, pairs: parallel groups and pairs used for training (after the dev split).
        languages: its languages.
        steps_per_epoch: optimizer steps it gets per epoch.
    """

    name: str
    groups: int
    pairs: int
    languages: tuple[str, ...]
    steps_per_epoch: int


@dataclass(frozen=True)
class TrainPlan:
    """Everything a run resolves before it trains (see the module docstring).

    Args:
        batch: the resolved batch (:class:`BatchPlan`).
        sources: per training source, its size and steps.
        dev_groups: parallel groups held out for the dev loss.
        dev_per_device: examples per device of a dev-loss batch (0 without dev groups).
        steps_per_epoch: optimizer steps per epoch.
        total_steps: optimizer steps of the run.
        warmup_steps: linear warmup steps (``ceil(warmup_ratio x total_steps)``).
        eval_steps, save_steps: evaluation / checkpoint interval (None: never).
        precision: the precision the run trains in (resolved: never "auto"; what it asks for when planned
            for a GPU on a machine without one).
        find_unused_parameters: DDP's ``find_unused_parameters`` (None: decided by a probe at training time).
        memory: the per-device memory estimate, or None when the model's shape is unreachable.
        warnings: things that will run but may not be what was meant.
        precision_reason: why that precision (``"auto: CPU has AMX"``).
    """

    batch: BatchPlan
    sources: tuple[SourcePlan, ...]
    dev_groups: int
    dev_per_device: int
    steps_per_epoch: int
    total_steps: int
    warmup_steps: int
    eval_steps: int | None
    save_steps: int | None
    precision: str
    find_unused_parameters: bool | None = None
    memory: Any = None
    warnings: tuple[str, ...] = field(default_factory=tuple)
    precision_reason: str = ""

    @property
    def train_groups(self) -> int:
        return sum(s.groups for s in self.sources)

    @property
    def train_pairs(self) -> int:
        return sum(s.pairs for s in self.sources)

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["memory"] = self.memory.to_dict() if self.memory is not None else None
        out["batch"]["negatives_batch"] = self.batch.negatives_batch
        out["train_groups"], out["train_pairs"] = self.train_groups, self.train_pairs
        return out

    def lines(self) -> list[str]:
        """The plan as a few readable lines (``--dry-run`` prints them)."""
        b = self.batch
        batch = (
            f"batch: {b.global_batch} pairs per optimizer step = {b.per_device} per device x {b.world_size} device(s)"
            f" x {b.grad_accum_steps} micro-step(s) (batch_size {b.requested}, scope {b.scope}"
            + (", rounded to a multiple of the devices x micro-steps" if b.rounded else "")
            + f"); in-batch negatives per query: {b.negatives_batch - 1}"
            + (" (gathered across devices)" if b.gather and b.world_size > 1 else "")
        )
        out = [batch]
        for s in self.sources:
            out.append(f"source {s.name}: {s.groups} groups, {s.pairs} pairs, languages {','.join(s.languages)}, "
                       f"{s.steps_per_epoch} steps per epoch")  # fmt: skip
        out.append(
            f"steps: {self.steps_per_epoch} per epoch, {self.total_steps} in all, {self.warmup_steps} warmup; "
            f"eval every {self.eval_steps or '-'} steps, save every {self.save_steps or '-'} steps"
        )
        dev = f", {self.dev_per_device} per device per dev batch" if self.dev_groups else ""
        out.append(f"dev: {self.dev_groups} held-out groups{dev}")
        unused = {None: "off (a probe backward at start freezes parameters that get no gradient)", True: "on",
                  False: "off"}[self.find_unused_parameters]  # fmt: skip
        why = f" ({self.precision_reason})" if self.precision_reason else ""
        out.append(f"precision: {self.precision}{why}; DDP find_unused_parameters: {unused}")
        memory = self.memory.summary() if self.memory is not None else "unknown (the model's config is not reachable)"
        out.append(f"memory: {memory}")
        out += [f"warning: {w}" for w in self.warnings]
        return out


def launch_world_size() -> int:
    """The world size torchrun / accelerate launch set for this process (1 for a plain process)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def _schedule(config: TrainConfig, total: int) -> tuple[int | None, int | None, list[str]]:
    from polyret.training.config import RECIPES

    warnings: list[str] = []
    eval_steps, save_steps = config.eval_steps, config.save_steps
    recipe = RECIPES.get(config.recipe) if config.recipe else None
    if recipe is not None and save_steps is not None and save_steps == recipe.save_steps and save_steps > total:
        # the recipe's interval, not the user's, is longer than this run: derive it (dev set) or save none,
        # without a warning about a value the user never set
        save_steps = None
        if config.has_dev and eval_steps is not None and eval_steps > total:
            eval_steps = None
    if config.has_dev:
        if eval_steps is None and save_steps is None:
            eval_steps = save_steps = max(1, math.ceil(total / config.eval_points))
        elif save_steps is None:
            save_steps = eval_steps
        elif eval_steps is None:
            eval_steps = save_steps
        if save_steps > total:
            warnings.append(
                f"save_steps {save_steps} never fires in a run of {total} steps: early stopping has no checkpoint "
                f"to choose (leave save_steps unset to derive it, or set it below {total})"
            )
    elif save_steps is not None and save_steps > total:
        warnings.append(f"save_steps {save_steps} never fires in a run of {total} steps (no checkpoint to resume from)")
    return (eval_steps if config.has_dev else None), save_steps, warnings


def resolve_plan(
    config: TrainConfig,
    index,
    *,
    world_size: int,
    dev_groups: int = 0,
    precision: str | None = None,
    memory: Any = None,
    find_unused_parameters: bool | None = None,
    precision_reason: str = "",
) -> TrainPlan:
    """The plan of ``config`` over the training pairs ``index`` on ``world_size`` devices.

    Builds the run's batch sampler (no model, no texts read), so its source-size checks run at this world
    size; their errors come back as ConfigError saying what to change.

    Args:
        config: the run's config.
        index: the training pairs (:class:`~polyret.training.pairs_dataset.PairIndex`), dev groups removed.
        world_size: training processes.
        dev_groups: groups held out for the dev loss.
        precision: the resolved precision (None: ``config.precision``).
        memory: a :class:`~polyret.training.memory.MemoryEstimate`, if known.
        find_unused_parameters: DDP's setting if already decided.
        precision_reason: why that precision (the plan's line says it).

    Raises:
        ConfigError: a batch that cannot be formed at this world size.
    """
    from polyret.training.samplers import ParallelBatchSampler

    batch = resolve_batch(config, world_size)
    try:
        sampler = ParallelBatchSampler(index, batch.per_device, strategy=config.strategy, alpha=config.alpha,
                                       seed=config.seed, world_size=world_size, alpha_schedule=config.alpha_schedule,
                                       grad_accum_steps=batch.grad_accum_steps, log_size=1)  # fmt: skip
    except ValueError as error:
        hint = (
            "batch_scope=global keeps the batch at batch_size pairs at any world size"
            if config.batch_scope == "per_device" and world_size > 1
            else "lower batch_size, add groups (more data, max_groups unset, more languages) or use fewer devices"
        )
        raise ConfigError(
            f"at world size {world_size} (global batch {batch.global_batch} = {batch.per_device} per device): {error}; {hint}"
        ) from None
    steps = sampler.steps_per_epoch
    total = config.max_steps if config.max_steps is not None else max(1, math.ceil(config.epochs * steps))
    try:
        drawn = draw_batches(sampler, total)
    except ValueError as error:
        raise ConfigError(
            f"at world size {world_size} (global batch {batch.global_batch} = {batch.per_device} per device), "
            f"a batch of the run cannot be formed: {error}"
        ) from None
    eval_steps, save_steps, warnings = _schedule(config, total)
    sources = tuple(
        SourcePlan(
            name,
            len(index.source_groups(s)),
            _source_pairs(index, s),
            tuple(index.languages[i] for i in index.source_languages(s)),
            blocks,
        )  # fmt: skip
        for s, (name, blocks) in enumerate(zip(index.sources, sampler.blocks_per_source))
    )
    if drawn < total:
        warnings.append(f"batches drawn ahead to check they can be formed: the first {drawn} of {total} steps")
    for name in sampler.mono_only_sources:
        warnings.append(f"source {name!r} can only form monolingual batches at this batch size: its hybrid steps are all mono")
    if batch.rounded:
        warnings.append(
            f"global batch rounded from {config.batch_size} to {batch.global_batch} "
            f"({batch.per_device} per device x {world_size} x {batch.grad_accum_steps})"
        )
    return TrainPlan(
        batch=batch,
        sources=sources,
        dev_groups=dev_groups,
        dev_per_device=dev_per_device(config, batch, dev_groups),
        steps_per_epoch=steps,
        total_steps=total,
        warmup_steps=math.ceil(config.warmup_ratio * total),
        eval_steps=eval_steps,
        save_steps=save_steps,
        precision=precision or config.precision,
        find_unused_parameters=find_unused_parameters,
        memory=memory,
        warnings=tuple(warnings),
        precision_reason=precision_reason,
    )


# optimizer steps whose batches the plan draws ahead (the run's and the dry run's check alike); beyond it a
# batch that cannot be formed still stops the run when it comes (mMARCO-size runs have ~400k steps)
DRAW_AHEAD_STEPS = 5000


def draw_batches(sampler, total: int, limit: int = DRAW_AHEAD_STEPS) -> int:
    """Draw the batches of the run's first ``min(total, limit)`` optimizer steps from ``sampler`` without
    training, as the trainer will (same seed, epochs and conflict rules), so a batch that cannot be formed
    (too few distinct passages once hard negatives may not be another example's positive) stops the plan,
    before a model loads, instead of the run at that step. Returns the steps drawn.

    Args:
        sampler: the run's :class:`~polyret.training.samplers.ParallelBatchSampler`.
        total: the run's optimizer steps.
        limit: the most steps drawn.

    Raises:
        ValueError: the sampler's message for the batch that cannot be formed.
    """
    want = min(total, limit)
    if sampler.steps_per_epoch <= 0:
        return 0
    drawn, epoch = 0, 0
    while drawn < want:
        remaining = want - drawn
        for info, _ in sampler._generate(epoch):
            if info.step >= remaining:
                break
        drawn += min(remaining, sampler.steps_per_epoch)
        epoch += 1
    return drawn


def dev_per_device(config: TrainConfig, batch: BatchPlan, dev_groups: int) -> int:
    """Examples per device of a dev-loss batch: the training micro-batch, so dev batches have the training
    batches' size and composition; ``dev_groups`` must fill at least one global micro-batch.

    Args:
        config: the run's config.
        batch: the resolved training batch.
        dev_groups: the held-out groups.
    """
    if dev_groups <= 0:
        return 0
    if dev_groups < batch.micro_batch:
        raise ConfigError(
            f"dev_groups={dev_groups} is too small for one dev batch of {batch.micro_batch} groups "
            f"({batch.per_device} per device x {batch.world_size} device(s)): raise dev_groups to at least "
            f"{batch.micro_batch}, or set dev_groups=0"
        )
    return batch.per_device


def split_sources(config: TrainConfig, sources: list, world_size: int) -> tuple[list, list]:
    """The run's training and dev sources: ``dev_groups`` held out
    (:func:`~polyret.training.pair_sources.split_dev_sources`); a source whose dev part is too small for
    one dev batch trains whole instead (``split_dev_sources`` draws across sources in proportion to their size, so
    a translated QA file next to mMARCO may get fewer dev groups than one dev batch, which draws from one
    source).

    Args:
        config: the run's config.
        sources: the loaded training sources.
        world_size: training processes (a dev batch spans them all).
    """
    from polyret.training.pair_sources import split_dev_sources

    train_sources, dev_sources = split_dev_sources(sources, config.dev_groups, config.seed)
    if not dev_sources:
        return train_sources, dev_sources
    batch_groups = resolve_batch(config, world_size).micro_batch
    small = {d.name: len(d) for d in dev_sources if len(d) < batch_groups}
    if small:  # their held-out groups cannot fill a dev batch: the whole source trains instead
        for name, n in small.items():
            logger.warning(
                "source %r: its %d dev groups cannot fill a dev batch of %d; they train instead", name, n, batch_groups
            )
        train_sources = [orig if orig.name in small else t for t, orig in zip(train_sources, sources)]
        dev_sources = [d for d in dev_sources if d.name not in small]
    if not dev_sources:
        raise ConfigError(
            f"dev_groups={config.dev_groups} is too small for one dev batch of "
            f"{resolve_batch(config, world_size).micro_batch} groups from any source: raise dev_groups or set dev_groups=0"
        )
    return train_sources, dev_sources


def _source_pairs(index, s: int) -> int:
    rows = index.source_pair_rows(s)
    return int(rows.stop - rows.start)


def dry_run(config: TrainConfig, *, world_size: int | None = None, sources: list | None = None) -> TrainPlan:
    """Resolve the whole plan of ``config`` without training: the sources are read (sizes, languages,
    the dev split), the sampler is built at ``world_size`` and the memory is estimated; no model weights
    are loaded and nothing is written.

    Args:
        config: the run's config.
        world_size: devices to plan for (None: the launcher's, else 1); simulated, no processes start.
        sources: the training sources already loaded for ``config`` (None: load them).

    Raises:
        ConfigError / DataError: what a real run would stop with at start-up.
    """
    from polyret.training.index_cache import cached_pair_index
    from polyret.training.pair_sources import load_training_sources

    world_size = world_size or launch_world_size()
    precision, reason = _planned_precision(config)
    if sources is None:
        sources = load_training_sources(config)
    train_sources, dev_sources = split_sources(config, sources, world_size)
    # as the run builds it: on-disk sources get their index built once into the cache and mapped (at
    # mMARCO size a PairIndex in memory is ~150 B per pair; the run then maps what the dry run left)
    index = cached_pair_index(train_sources, negatives=config.num_negatives)
    plan = resolve_plan(config, index, world_size=world_size, dev_groups=sum(len(s) for s in dev_sources),
                        precision=precision, find_unused_parameters=config.ddp_find_unused_parameters,
                        precision_reason=reason)  # fmt: skip
    return _with_memory(plan, config, index.num_negatives)


def estimate_plan(
    config: TrainConfig, sources: Sequence[tuple[str, int, tuple[str, ...]]], *, world_size: int | None = None
) -> TrainPlan:
    """The plan of ``config`` from source sizes alone (a source not on disk: the registry's recorded size),
    without reading or downloading data: batch, steps (each source's groups / the global micro-batch, as
    the sampler deals them when every group fits a batch), schedule and memory. The sampler's own checks
    run when the data is there (:func:`dry_run`).

    Args:
        config: the run's config.
        sources: per source its name, parallel groups and languages.
        world_size: devices to plan for (None: the launcher's, else 1).
    """
    world_size = world_size or launch_world_size()
    precision, reason = _planned_precision(config)
    batch = resolve_batch(config, world_size)
    total_groups = sum(g for _, g, _ in sources) or 1
    dev = config.dev_groups if config.dev_groups and config.dev_groups < total_groups else 0
    plans = []
    for name, groups, langs in sources:
        train_groups = groups - round(dev * groups / total_groups)
        steps = train_groups // (batch.micro_batch * batch.grad_accum_steps)
        plans.append(SourcePlan(name, train_groups, train_groups * len(langs), tuple(langs), steps))
    steps = sum(p.steps_per_epoch for p in plans)
    if steps < 1:
        raise ConfigError(f"the training sources ({total_groups} groups) cannot fill one batch of {batch.global_batch}")
    total = config.max_steps if config.max_steps is not None else max(1, math.ceil(config.epochs * steps))
    eval_steps, save_steps, warnings = _schedule(config, total)
    plan = TrainPlan(
        batch=batch,
        sources=tuple(plans),
        dev_groups=dev,
        dev_per_device=dev_per_device(config, batch, dev),
        steps_per_epoch=steps,
        total_steps=total,
        warmup_steps=math.ceil(config.warmup_ratio * total),
        eval_steps=eval_steps,
        save_steps=save_steps,
        precision=precision,
        precision_reason=reason,
        find_unused_parameters=config.ddp_find_unused_parameters,
        warnings=(*warnings, "sizes from recorded metadata, not counted from the data: steps are estimates"),
    )
    return _with_memory(plan, config, config.num_negatives)


def _planned_precision(config: TrainConfig) -> tuple[str, str]:
    """The precision a run of ``config`` resolves to on this machine, and why (the plan's line says it)."""
    import torch

    try:
        resolved = resolve_training_precision(config.precision)
        precision = resolved.precision
        reason = ("auto: " if config.precision == "auto" else "") + resolved.reason
    except ConfigError:  # e.g. fp16 planned on a machine without CUDA: the plan is for the GPU machine
        precision, reason = config.precision, "needs a CUDA device: not this machine"
    if config.precision == "auto" and not torch.cuda.is_available():  # planned here, run on a GPU machine perhaps
        reason += "; on a GPU: bf16, or fp16 where it has no bf16"
    return precision, reason


def _with_memory(plan: TrainPlan, config: TrainConfig, negatives: int) -> TrainPlan:
    """``plan`` with the per-device memory estimate of ``config``'s model (unchanged when its shape is unknown)."""
    from polyret.training.memory import estimate_memory, lora_parameters, model_shape

    precision = plan.precision
    shape = model_shape(config.model)
    if shape is None:
        return plan
    trainable = shape.parameters
    if config.lora_r:
        trainable = lora_parameters(shape, config.lora_r, len(config.lora_target_modules or ("query", "value")))
    elif config.freeze_word_embeddings:
        trainable -= shape.embedding_parameters
    seq = min(config.max_seq_length or 512, shape.max_positions)
    memory = estimate_memory(
        shape,
        per_device_batch=plan.batch.per_device,
        columns=2 + negatives,
        seq_length=seq,
        precision="bf16" if config.precision == "auto" else precision,  # auto: as on a GPU with bf16
        cached_loss=config.cached_loss,
        mini_batch_size=config.mini_batch_size,
        gradient_checkpointing=config.gradient_checkpointing,
        trainable_parameters=trainable,
    )
    return dataclasses.replace(plan, memory=memory)


def resolve_training_precision(precision: str):
    """:func:`polyret.precision.resolve` for training, with its reason (``"CPU has AMX"``), for the plan's
    line; an unusable request is a :class:`ConfigError`.

    Args:
        precision: ``TrainConfig.precision``.
    """
    from polyret.precision import resolve

    try:
        return resolve(precision, training=True)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
