"""``train(config)``: hybrid-batch InfoNCE training on sentence-transformers' own trainer.

The method is that of Elmahdy, Lin, Ahmad 2024 (arXiv 2408.10536): in-batch-negative InfoNCE where the
batch sampler decides per batch whether it is monolingual or cross-lingual (``hybrid``, ``alpha``).
The trainer is used as is (optimizer, schedule, checkpoints, resume, DDP, progress bars); polyret adds
the batch sampler (:mod:`polyret.training.samplers`), the loss choice (:mod:`~polyret.training.losses`),
a held-out dev set (:mod:`~polyret.training.dev`), a per-step log of the batches each process trained on
(:mod:`~polyret.batchlog`), atomic checkpoints (:mod:`~polyret.training.checkpoints`) and a
final model folder written atomically with a model card (:mod:`~polyret.training.card`).

Layout of ``config.output_dir``::

    polyret_train.json     the run's config (checked on resume)
    batches.jsonl          per optimizer step: batch kind and language pairs (rank r > 0: batches.rank{r}.jsonl)
    checkpoints/           trainer checkpoints (checkpoint-<step>/), resumable; each is written as
                           .tmp-checkpoint-<step>/, gets its .complete.json marker last and is then renamed,
                           so resume (last_checkpoint) and rotation only ever see complete ones
    model/                 the final sentence-transformers model (README.md model card, polyret_train.json,
                           .complete.json), swapped in whole from a temporary sibling

A step whose loss or trained weights are NaN/inf stops the run with :class:`TrainingDiverged` (a
``ConfigError``: the command lines exit 2) before that step is checkpointed; no final model is written.

Distributed: ``torchrun --nproc_per_node N -m polyret.training --config run.yaml`` (or
``accelerate launch``) runs unchanged; the sampler deals one global stream so that every rank trains on
the same batch kind at every step.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import time
from collections.abc import Sequence
from pathlib import Path

import torch

from polyret.batchlog import (
    BatchRecorder,
    batch_log_callback,
    batch_log_path,
    realized_mono_share,
    step_kinds,
)
from polyret.guards import check_outputs_spare_inputs
from polyret.paths import atomic_write_text, check_writable
from polyret.training.card import MODEL_DIR, RUN_CONFIG, write_final_model
from polyret.training.checkpoints import (
    CHECKPOINT_DIR,
    checkpoint_step,
    clean_checkpoints,
    divergence_guard,
    last_checkpoint,
    polyret_trainer_class,
    remove_checkpoints,
)
from polyret.training.config import ConfigError, TrainConfig, TrainingDiverged
from polyret.training.dev import (
    as_st_evaluator,
    best_metric_name,
    build_dev_evaluator,
    dev_dataset,
)
from polyret.training.lora import add_lora, merge_lora
from polyret.training.plan import resolve_training_precision

logger = logging.getLogger(__name__)

__all__ = [
    "TrainingDiverged",
    "add_lora",
    "find_unused_parameters",
    "freeze_word_embeddings",
    "merge_lora",
    "resolve_precision",
    "resolve_training_precision",
    "train",
]

# Keys that decide which batches a run sees: a resumed run must agree on them.
_RESUME_KEYS = ("model", "train", "languages", "data_dir", "max_groups", "max_triples_per_query", "strategy", "alpha",
                "alpha_schedule", "batch_size", "batch_scope", "batch_rounding", "grad_accum_steps", "seed",
                "hard_negatives", "negatives", "dev_groups", "lora_r", "lora_target_modules")  # fmt: skip


# ---------------------------------------------------------------------------------------- helpers
def resolve_precision(precision: str) -> str:
    """The precision to train in (:func:`polyret.precision.resolve`, the one meaning of "auto" for training
    and inference): "auto" is bf16 on a GPU that has it, else fp16; on CPU bf16 where the CPU has native
    bf16 (AMX, AVX512-BF16), else fp32.

    Args:
        precision: ``TrainConfig.precision`` (``auto``, ``fp32``, ``bf16``, ``fp16``).

    Raises:
        ConfigError: fp16 without CUDA, bf16 on a GPU without native bf16.
    """
    return resolve_training_precision(precision).precision


def freeze_word_embeddings(model) -> int:
    """Freeze the token embedding matrix (most of me5-small's 118M parameters); returns the count frozen.

    Args:
        model: a sentence-transformers model with at least one transformers backbone.
    """
    from transformers import PreTrainedModel

    frozen = 0
    seen: set[int] = set()
    for module in model.modules():
        if isinstance(module, PreTrainedModel) and id(module) not in seen:
            seen.add(id(module))
            embeddings = module.get_input_embeddings()
            for param in embeddings.parameters():
                if param.requires_grad:
                    param.requires_grad_(False)
                    frozen += param.numel()
    if not frozen and not seen:
        raise ConfigError("freeze_word_embeddings: the model has no transformers backbone with input embeddings")
    return frozen


def find_unused_parameters(model) -> list[str]:
    """Trainable parameters that get no gradient from the sentence embedding (e.g. a pooler that mean
    pooling never reads): one forward and backward of two short texts, gradients cleared after.

    Args:
        model: the sentence-transformers model to be trained.
    """
    features = model.preprocess(["query: a", "passage: b c"])
    device = next(model.parameters()).device
    features = {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in features.items()}
    was_training = model.training
    model.train()
    try:
        model(features)["sentence_embedding"].float().sum().backward()
        unused = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    finally:
        model.zero_grad(set_to_none=True)
        model.train(was_training)
    return unused


def _load_model(config: TrainConfig):
    from polyret import models

    return models.load(config.model, max_seq_length=config.max_seq_length)


def _column_prompts(model, negatives: int) -> dict[str, str] | None:
    """The model's query prompt on the anchor column, its passage prompt on positive and negatives."""
    from polyret.training.pairs_dataset import negative_columns

    prompts = getattr(model, "prompts", None) or {}
    query, passage = prompts.get("query", ""), prompts.get("passage", prompts.get("document", ""))
    if not query and not passage:
        return None
    out = {"anchor": query, "positive": passage}
    for column in negative_columns(negatives):
        out[column] = passage
    return out


def _training_inputs(config: TrainConfig) -> dict[str, str]:
    """The sha256 of every local file the run's sources read (remembered per file version: hashed once)."""
    from polyret.data.download import sources_identity

    return sources_identity(config.train, languages=config.languages, data_dir=config.data_dir)


def _check_resume(config: TrainConfig, output_dir: Path, world_size: int) -> None:
    saved_path = output_dir / RUN_CONFIG
    if not saved_path.exists():
        return
    saved = TrainConfig.from_file(saved_path)
    differ = [k for k in _RESUME_KEYS if getattr(saved, k) != getattr(config, k)]
    if differ:
        detail = ", ".join(f"{k}: {getattr(saved, k)!r} -> {getattr(config, k)!r}" for k in differ)
        raise ConfigError(f"cannot resume {output_dir}: the run was started with a different config ({detail})")
    try:
        record = json.loads(saved_path.read_text(encoding="utf-8"))
        started = record.get("plan", {}).get("batch", {}).get("world_size")
        inputs = record.get("inputs")
    except (OSError, ValueError, AttributeError):
        started, inputs = None, None
    if isinstance(inputs, dict):  # a run of an older polyret records none: its config decides
        now = _training_inputs(config)
        changed = sorted(k for k in set(inputs) | set(now) if inputs.get(k) != now.get(k))
        if changed:  # its checkpoints (and batches.jsonl) are of the old content: never continued on the new
            raise ConfigError(
                f"cannot resume {output_dir}: its training data changed since the run started ({', '.join(changed)}); "
                "restore it, or train into a new --output"
            )
    if started is not None and started != world_size:
        # the batch stream (which batch goes to which rank, where an epoch restarts) depends on it
        raise ConfigError(
            f"cannot resume {output_dir}: the run was started on {started} process(es), this is {world_size}; "
            f"resume with --nproc_per_node {started}"
        )


def _finished_step(model_dir: Path) -> int | None:
    """The global step of a complete final model folder (its completion marker matches), else None."""
    from polyret.paths import is_complete

    if not is_complete(model_dir):
        return None
    try:
        return int(json.loads((model_dir / RUN_CONFIG).read_text(encoding="utf-8"))["global_step"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


# ------------------------------------------------------------------------------------------ train
def train(config: TrainConfig, *, evaluator=None, callbacks: Sequence | None = None) -> Path:
    """Train a bi-encoder as ``config`` says and return the final model folder (``output_dir/model``).

    The output folder has one writer: rank 0 holds its lock (``paths.output_lock``) for the whole run,
    so a second ``train`` (or an experiment) writing the same folder stops at once with a ``FolderBusy``
    error naming the holder. An output that is the filesystem root, the home folder or a folder above
    an input is refused. See :func:`_train` for the rest.
    """
    from contextlib import nullcontext

    from polyret.paths import output_lock, refuse_output_over_inputs

    output_dir = Path(config.output_dir)
    # never over an input (the training files, the model), the filesystem root, the home folder or the data
    check_outputs_spare_inputs({"train": config.train, "model": config.model}, {"output_dir": output_dir}, folders=["output_dir"])
    refuse_output_over_inputs(output_dir, [config.data_dir], what="output_dir")
    check_writable(output_dir, what="output_dir", error=ConfigError)  # before the lock creates the folder
    rank0 = int(os.environ.get("RANK", "0")) == 0
    with output_lock(output_dir, "polyret train") if rank0 else nullcontext():
        return _train(config, evaluator=evaluator, callbacks=callbacks)


def _train(config: TrainConfig, *, evaluator=None, callbacks: Sequence | None = None) -> Path:
    """Train a bi-encoder as ``config`` says and return the final model folder (``output_dir/model``).

    Everything ``config`` names is built here: the sources, the held-out dev groups, the batch sampler,
    the loss and, when ``config.dev`` is set and no ``evaluator`` is given, polyret's ``PolyretEvaluator``
    on that benchmark (so ``python -m polyret.training`` and the CLI train alike). A step whose loss or
    weights are not finite raises :class:`TrainingDiverged` and writes no final model. With a dev set the
    best checkpoint (by ``metric_for_best_model``, default: dev loss when ``dev_groups`` > 0, else the
    evaluator's primary metric) becomes the final model.

    Args:
        config: the run (:class:`~polyret.training.config.TrainConfig`).
        evaluator: a sentence-transformers evaluator, or any ``fn(model) -> float | dict`` scored on the
            dev set (None: polyret's evaluator on ``config.dev`` if set).
        callbacks: extra ``transformers.TrainerCallback`` objects.

    Raises:
        ConfigError: a config value that cannot work (checked before the model loads where possible).
        DataError: a training source or dev benchmark that cannot be read.
        TrainingDiverged: the loss or the weights became NaN/inf.
    """
    from sentence_transformers import SentenceTransformerTrainingArguments
    from transformers.trainer_callback import PrinterCallback
    from transformers.trainer_utils import set_seed

    from polyret.interop.router import router_mapping
    from polyret.progress import train_progress_callback
    from polyret.training.index_cache import cached_pair_index
    from polyret.training.losses import build_loss
    from polyret.training.pair_sources import load_training_sources
    from polyret.training.pairs_dataset import negative_columns
    from polyret.training.plan import launch_world_size, resolve_plan, split_sources
    from polyret.training.samplers import ParallelBatchSampler, SamplerEpochCallback

    # Everything a user can get wrong is checked here, before the model loads (seconds, not minutes).
    output_dir = Path(config.output_dir)
    world_size = launch_world_size()
    if config.dev is not None and evaluator is None:
        evaluator = build_dev_evaluator(config)
    resume_from = None
    if config.resume:
        _check_resume(config, output_dir, world_size)
        resume_from = last_checkpoint(output_dir)
        finished = _finished_step(output_dir / MODEL_DIR)
        if resume_from is None and finished is not None:
            # the run finished and its checkpoints were removed (keep_checkpoints=false): nothing to resume
            if config.max_steps is None or config.max_steps == finished:
                logger.warning("resume: %s is already finished (step %d); nothing to do", output_dir / MODEL_DIR, finished)
                return output_dir / MODEL_DIR
            raise ConfigError(
                f"cannot resume {output_dir}: its model is finished at step {finished} and its checkpoints were "
                f"removed (keep_checkpoints=true keeps them); to train further, start a new run from it: "
                f"--model {output_dir / MODEL_DIR} --output <new folder>"
            )
        if resume_from is None:
            logger.warning("resume: no checkpoint in %s; training from the start", output_dir / CHECKPOINT_DIR)
    elif (found := last_checkpoint(output_dir)) is not None:
        # a fresh run would mix its checkpoints with the earlier run's (rotation by step keeps the old
        # ones, and a later resume would load them)
        raise ConfigError(
            f"{output_dir} holds checkpoints of an earlier run ({found.name}); pass --resume "
            "(resume=true) to continue it, or use a new output folder"
        )
    check_writable(output_dir, what="output_dir", error=ConfigError)
    resolved = resolve_training_precision(config.precision)
    precision = resolved.precision  # never "auto": what polyret_train.json and the card record

    train_sources, dev_sources = split_sources(config, load_training_sources(config), world_size)
    # on-disk sources: the integer index is built once (local rank 0) and memory-mapped by every rank
    index = cached_pair_index(train_sources, negatives=config.num_negatives)
    del train_sources  # the views' row arrays: the index holds what it needs
    plan = resolve_plan(config, index, world_size=world_size, dev_groups=sum(len(s) for s in dev_sources),
                        precision=precision,
                        precision_reason=("auto: " if config.precision == "auto" else "") + resolved.reason)  # fmt: skip
    for warning in plan.warnings:
        logger.warning("%s", warning)
    batch = plan.batch
    train_dataset = index.to_dataset()
    eval_dataset = None
    if dev_sources:
        eval_dataset = dev_dataset(dev_sources, config, per_device=plan.dev_per_device, world_size=world_size)

    st_evaluator = as_st_evaluator(evaluator, config, has_eval_loss=eval_dataset is not None)
    metric = best_metric_name(config, st_evaluator, has_eval_loss=eval_dataset is not None)
    greater = None if metric is None else not metric.endswith("loss")

    set_seed(config.seed)
    model = _load_model(config)
    frozen = freeze_word_embeddings(model) if config.freeze_word_embeddings else 0
    adapter = add_lora(model, config) if config.lora_r else 0
    unused_frozen = 0
    find_unused = config.ddp_find_unused_parameters
    if find_unused is None:
        find_unused = False
        if world_size > 1:
            # DDP waits for every trainable parameter's gradient; one that never gets one (a pooler mean
            # pooling does not read) is frozen instead: the same training (AdamW skips a parameter without a
            # gradient, weight decay too) without find_unused_parameters' extra graph traversal every step
            named = dict(model.named_parameters())
            for name in find_unused_parameters(model):
                named[name].requires_grad_(False)
                unused_frozen += named[name].numel()
                logger.info("frozen %s: it gets no gradient (DDP find_unused_parameters stays off)", name)
    plan = dataclasses.replace(plan, find_unused_parameters=find_unused)

    sampler_factory = ParallelBatchSampler.factory(index, strategy=config.strategy, alpha=config.alpha,
                                                  seed=config.seed, world_size=world_size,
                                                  grad_accum_steps=batch.grad_accum_steps,
                                                  alpha_schedule=config.alpha_schedule,
                                                  total_steps=plan.total_steps)  # fmt: skip
    recorder = BatchRecorder(index, sampler_factory)  # the batch log: what the trainer's sampler yielded per step
    args = SentenceTransformerTrainingArguments(
        output_dir=str(output_dir / CHECKPOINT_DIR),
        per_device_train_batch_size=batch.per_device,
        per_device_eval_batch_size=plan.dev_per_device or batch.per_device,
        gradient_accumulation_steps=batch.grad_accum_steps,
        learning_rate=config.lr,
        weight_decay=config.weight_decay,
        warmup_steps=config.warmup_ratio,  # transformers 5: a float < 1 is a ratio of the total steps
        lr_scheduler_type="linear",
        optim="adamw_torch",
        max_steps=plan.total_steps,  # the plan's count (epochs x the sampler's steps, or max_steps)
        bf16=precision == "bf16",
        fp16=precision == "fp16",
        seed=config.seed,
        logging_steps=config.logging_steps,
        save_strategy="steps" if plan.save_steps else "no",
        save_steps=plan.save_steps or 500,
        save_total_limit=config.save_total_limit,
        eval_strategy="steps" if plan.eval_steps else "no",
        eval_steps=plan.eval_steps,
        load_best_model_at_end=bool(plan.eval_steps and plan.save_steps),
        metric_for_best_model=metric,
        greater_is_better=greater,
        prompts=_column_prompts(model, index.num_negatives),
        router_mapping=router_mapping(model, negative_columns(index.num_negatives)),  # Router: query/document routes
        batch_sampler=sampler_factory,
        dataloader_num_workers=config.dataloader_num_workers,
        dataloader_pin_memory=torch.cuda.is_available(),
        activation_checkpointing=config.gradient_checkpointing,
        # non-reentrant: works with DDP, find_unused_parameters and frozen inputs (LoRA)
        activation_checkpointing_kwargs={"use_reentrant": False} if config.gradient_checkpointing else None,
        # without a GPU, say so: accelerate then runs torchrun processes as multi-CPU DDP over gloo
        use_cpu=not torch.cuda.is_available() and not torch.backends.mps.is_available(),
        ddp_find_unused_parameters=find_unused,
        disable_tqdm=True,  # progress goes to polyret's one display (polyret.progress), not tqdm
        **config.trainer_arguments(),  # trainer_args passed through (report_to="none" unless it names one)
    )
    rank = args.process_index
    if args.world_size != world_size:
        raise ConfigError(f"the launcher's WORLD_SIZE is {world_size} but the trainer sees {args.world_size} processes")
    loss = build_loss(model, config, gather=batch.gather)
    log_path = batch_log_path(output_dir, rank)
    trainer_callbacks = [SamplerEpochCallback(),
                         batch_log_callback(recorder, log_path, rank, world_size, batch.grad_accum_steps)]  # fmt: skip
    guard = divergence_guard(config)
    trainer_callbacks += [guard, train_progress_callback(), *(callbacks or [])]
    if args.process_index == 0:
        for name in clean_checkpoints(output_dir):
            logger.info("removed %s/%s left by an interrupted run", CHECKPOINT_DIR, name)
    trainer = polyret_trainer_class()(model=model, args=args, train_dataset=train_dataset,
                                         eval_dataset=eval_dataset, loss=loss, evaluator=st_evaluator,
                                         callbacks=trainer_callbacks)  # fmt: skip
    guard.trainer = trainer
    trainer.remove_callback(PrinterCallback)  # its printed log dicts: the progress display shows the loss
    if trainer.is_world_process_zero():
        output_dir.mkdir(parents=True, exist_ok=True)
        record = {"config": config.to_dict(), "plan": plan.to_dict(), "inputs": _training_inputs(config)}
        atomic_write_text(output_dir / RUN_CONFIG, json.dumps(record, indent=2))
    logger.info("training %s: %d groups, %d pairs, languages %s, strategy %s, %s, %d frozen parameters",
                config.model, index.num_groups, index.num_pairs, ",".join(index.languages), config.strategy,
                precision, frozen)  # fmt: skip
    for line in plan.lines():
        logger.info("plan: %s", line)

    started = time.time()
    resumed_step = checkpoint_step(resume_from) if resume_from else 0
    result = trainer.train(resume_from_checkpoint=str(resume_from) if resume_from else None)
    state = trainer.state
    target = output_dir / MODEL_DIR
    if trainer.is_world_process_zero():
        if config.lora_r:
            merge_lora(trainer.model)  # the final model is plain weights: loadable without peft
        info = {
            "global_step": state.global_step,
            "world_size": world_size,
            "precision": precision,
            "precision_reason": plan.precision_reason,
            "batch_scope": config.batch_scope,
            "global_batch": batch.global_batch,
            "per_device_batch": batch.per_device,
            "grad_accum_steps": batch.grad_accum_steps,
            "gather_across_devices": batch.gather,
            "in_batch_negatives": batch.negatives_batch - 1,
            "ddp_find_unused_parameters": find_unused,
            "unused_parameters_frozen": unused_frozen,
            "eval_steps": plan.eval_steps,
            "save_steps": plan.save_steps,
            "gradient_checkpointing": config.gradient_checkpointing,
            "lora_parameters": adapter,
            "languages": list(index.languages),
            "train_groups": index.num_groups,
            "train_pairs": index.num_pairs,
            "dev_groups": sum(len(s) for s in dev_sources),
            "loss": type(loss).__name__ + f"(scale={config.scale:g})",
            "frozen_parameters": frozen,
            "train_loss": float(result.training_loss) if state.global_step > resumed_step else None,
            "best_checkpoint": Path(state.best_model_checkpoint).name if state.best_model_checkpoint else None,
            "best_metric": state.best_metric,
            "metric_for_best_model": metric,
            "train_seconds": round(time.time() - started, 2),
            "resumed_from": resume_from.name if resume_from else None,
        }
        # what the run did, not only what alpha asked for: a 20-step draw at alpha .5 can be 3 mono steps
        kinds = step_kinds(batch_log_path(output_dir, 0))
        info["step_kinds"] = kinds
        info["realized_mono_share"] = realized_mono_share(kinds)
        write_final_model(trainer.model, target, config, info, batch_log_path(output_dir, 0))
    trainer.accelerator.wait_for_everyone()
    if trainer.is_world_process_zero() and not config.keep_checkpoints:
        # the final model is complete (its marker is written): the optimizer states only served resuming
        freed = remove_checkpoints(output_dir)
        if freed:
            logger.info("removed %s (%.0f MB; keep_checkpoints=true keeps it)", output_dir / CHECKPOINT_DIR, freed / 1e6)
    return target
