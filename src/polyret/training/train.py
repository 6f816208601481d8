"""``train(config)``: hybrid-batch InfoNCE training on sentence-transformers' own trainer.

The trainer is used as is (optimizer, schedule, checkpoints, resume, DDP, progress bars); polyret adds
the batch sampler (which batch is mono or cross), the loss choice, held-out dev pairs, a per-step log
of the batches each process trained on, and a final model folder written atomically with a model card.

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

Distributed: ``torchrun --nproc_per_node N -m polyret.training.train --config run.yaml`` (or
``accelerate launch``) runs unchanged; the sampler deals one global stream so that every rank trains on
the same batch kind at every step.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import shutil
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from polyret.data.records import DataError, PairGroups
from polyret.paths import (
    COMPLETE_MARKER,
    atomic_write_text,
    check_writable,
    is_complete,
    mark_complete,
    share_mode,
)
from polyret.training.config import ConfigError, TrainConfig

logger = logging.getLogger(__name__)

RUN_CONFIG = "polyret_train.json"
MODEL_DIR = "model"
CHECKPOINT_DIR = "checkpoints"
# Keys that decide which batches a run sees: a resumed run must agree on them.
_RESUME_KEYS = ("model", "train", "languages", "data_dir", "max_groups", "strategy", "alpha", "batch_size",
                "seed", "hard_negatives", "negatives", "dev_pairs")  # fmt: skip


# ---------------------------------------------------------------------------------------- helpers
def resolve_precision(precision: str) -> str:
    """"auto": bf16 where the GPU has it, else fp16 on GPU, fp32 on CPU."""
    if precision != "auto":
        if precision == "fp16" and not torch.cuda.is_available():
            raise ConfigError("precision fp16 needs a CUDA device; use fp32 or bf16 on CPU")
        return precision
    if torch.cuda.is_available():
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    return "fp32"


def freeze_word_embeddings(model) -> int:
    """Freeze the token embedding matrix (most of me5-small's 118M parameters); returns the count frozen."""
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


def _load_model(config: TrainConfig):
    from polyret import models

    return models.load(config.model, max_seq_length=config.max_seq_length)


def num_negatives(config: TrainConfig) -> int:
    """Hard-negative columns per example: ``negatives``, else 1 with ``hard_negatives``, else 0."""
    return config.negatives or int(config.hard_negatives)


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


def _load_sources(config: TrainConfig) -> list[PairGroups]:
    from polyret.data.pairs import load_pairs

    sources = []
    for spec in config.train:
        pairs = load_pairs(spec, data_dir=config.data_dir, languages=config.languages, max_groups=config.max_groups,
                           seed=config.seed, hard_negatives=num_negatives(config) > 0)  # fmt: skip
        if not len(pairs):
            raise ConfigError(f"training source {spec!r} has no pairs (languages {config.languages})")
        sources.append(pairs)
    names = [s.name for s in sources]
    if len(set(names)) != len(names):
        raise ConfigError(f"training sources repeat: {names}")
    return sources


def split_dev(sources: Sequence[PairGroups], dev_pairs: int, seed: int) -> tuple[list[PairGroups], list[PairGroups]]:
    """Hold out ``dev_pairs`` parallel groups (all their languages), drawn across sources in proportion."""
    if dev_pairs <= 0:
        return list(sources), []
    total = sum(len(s) for s in sources)
    if dev_pairs >= total:
        raise ConfigError(f"dev_pairs={dev_pairs} leaves no training data ({total} groups in all)")
    rng = np.random.default_rng(np.random.SeedSequence([seed, 7]))
    keys = [(i, g) for i, s in enumerate(sources) for g in s.groups]
    held = {keys[j] for j in rng.choice(len(keys), size=dev_pairs, replace=False).tolist()}
    train, dev = [], []
    for i, s in enumerate(sources):
        t = {g: v for g, v in s.groups.items() if (i, g) not in held}
        d = {g: v for g, v in s.groups.items() if (i, g) in held}
        train.append(PairGroups(s.name, t))
        if d:
            dev.append(PairGroups(s.name, d))
    return train, dev


def _dev_dataset(dev_sources: list[PairGroups], config: TrainConfig):
    """Dev pairs in the batches the strategy would form (fixed seed), materialised as text rows.

    The dev loss is read in order, ``batch_size`` rows per batch, so each dev batch has the training
    batches' composition (one group at most once, mono/cross as the strategy says).
    """
    from datasets import Dataset

    from polyret.training.pairs_dataset import PairIndex
    from polyret.training.samplers import ParallelBatchSampler

    index = PairIndex(dev_sources, negatives=num_negatives(config))
    try:
        sampler = ParallelBatchSampler(index, config.batch_size, strategy=config.strategy, alpha=config.alpha,
                                       seed=config.seed + 1)  # fmt: skip
    except ValueError as error:
        raise ConfigError(f"dev_pairs={config.dev_pairs} is too small for batch_size {config.batch_size}: {error}") from None
    rows = [i for batch in sampler for i in batch]
    return Dataset.from_dict(index.texts(rows))


class _CallableEvaluator:
    """Adapts ``fn(model) -> float | dict`` to sentence-transformers' evaluator protocol."""

    def __new__(cls, fn: Callable, name: str = "dev", primary_metric: str | None = None):
        from sentence_transformers.base.evaluation import BaseEvaluator

        class CallableEvaluator(BaseEvaluator):
            def __init__(self) -> None:
                super().__init__()
                self.name = name
                self.primary_metric = primary_metric

            def __call__(self, model, output_path=None, epoch: int = -1, steps: int = -1):
                result = fn(model)
                if not isinstance(result, dict):
                    self.primary_metric = self.primary_metric or "score"
                    result = {self.primary_metric: float(result)}
                if self.primary_metric is None:
                    self.primary_metric = next(iter(result))
                metrics = self.prefix_name_to_metrics({k: float(v) for k, v in result.items()}, self.name)
                self.store_metrics_in_model_card_data(model, metrics, epoch, steps)
                return metrics

        return CallableEvaluator()


def _is_st_evaluator(evaluator) -> bool:
    from sentence_transformers.base.evaluation import BaseEvaluator

    return isinstance(evaluator, BaseEvaluator) or (
        isinstance(evaluator, list) and all(isinstance(e, BaseEvaluator) for e in evaluator)
    )


# ------------------------------------------------------------------------------------- batch log
class _BatchRecorder:
    """Records the language pairs of every training batch this process fetched, in fetch order.

    It sits in the dataset's transform, which the DataLoader calls once per batch it fetches (workers
    are off; the trainer's own reads of the dataset happen before ``enabled``), so the log shows what
    this rank actually trained on, not what a plan said. Each entry also holds the passage identity codes
    of its examples (``pos``, and ``neg`` with hard negatives; ``PairIndex.pair_positive/pair_negative``)
    so :func:`audit_batches` can check a finished run for false negatives, and, when ``sampler_factory``
    is set, how many groups the sampler deferred for a passage conflict while filling the batch
    (``deferred``, per global micro-batch).
    """

    def __init__(self, index, sampler_factory=None) -> None:
        self.index = index
        self.sampler_factory = sampler_factory
        self.enabled = False
        self.fetched: list[dict[str, Any]] = []

    def transform(self, batch: dict[str, list]) -> dict[str, list[str]]:
        if self.enabled:
            q = np.asarray(batch["q"], dtype=np.int64)
            s = np.asarray(batch["s"], dtype=np.int64)
            qrow, prow = self.index._rows(q, s)
            langs = self.index.languages
            qlang = [langs[i] for i in self.index.pair_lang[qrow].tolist()]
            plang = [langs[i] for i in self.index.pair_lang[prow].tolist()]
            groups = self.index.pair_group[qrow]
            sources = sorted({self.index.sources[i] for i in self.index.group_source[groups].tolist()})
            same = [a == b for a, b in zip(qlang, plang)]
            if all(same):
                kind = "mono" if len(set(qlang)) == 1 else "mixed"
            else:
                kind = "cross" if not any(same) else "other"
            pairs = Counter(f"{a}-{b}" for a, b in zip(qlang, plang))
            entry = {
                "kind": kind, "size": len(qlang), "sources": sources,
                "query_langs": sorted(set(qlang)), "passage_langs": sorted(set(plang)),
                "pairs": dict(sorted(pairs.items())), "distinct_groups": int(len(np.unique(groups))),
                "pos": self.index.pair_positive[prow].tolist(),
            }  # fmt: skip
            if self.index.has_negatives:
                neg = self.index.pair_negative[prow]  # one list per example with k > 1 negatives
                entry["neg"] = (neg[:, 0] if neg.shape[1] == 1 else neg).tolist()
            sampler = getattr(self.sampler_factory, "last", None)
            info = sampler.batch_info((s - q) * self.index.num_pairs + q) if sampler is not None else None
            if info is not None:
                entry["deferred"] = info.deferred
            self.fetched.append(entry)
        return self.index.transform(batch)


def _batch_log_callback(recorder: _BatchRecorder, path: Path, rank: int, world_size: int, accum: int):
    from transformers import TrainerCallback

    class BatchLogCallback(TrainerCallback):
        """Writes the batches of each optimizer step to a JSONL file as the step ends."""

        def __init__(self) -> None:
            self.start_step = 0
            self.written = 0

        def on_train_begin(self, args, state, control, **kwargs):
            self.start_step = state.global_step
            recorder.fetched.clear()
            self.written = 0
            _truncate_log(path, self.start_step)
            recorder.enabled = True

        def on_step_end(self, args, state, control, **kwargs):
            lines = []
            while self.written < len(recorder.fetched):
                step = self.start_step + self.written // accum + 1
                if step > state.global_step:
                    break  # prefetched for a later step
                entry = {"step": step, "rank": rank, "world_size": world_size, **recorder.fetched[self.written]}
                lines.append(json.dumps(entry, ensure_ascii=False))
                self.written += 1
            if lines:
                with open(path, "a", encoding="utf-8") as fh:
                    fh.write("\n".join(lines) + "\n")

        def on_train_end(self, args, state, control, **kwargs):
            recorder.enabled = False

    return BatchLogCallback()


def _truncate_log(path: Path, upto_step: int) -> None:
    """Keep the entries of steps <= ``upto_step`` (a resumed run rewrites the steps after its checkpoint)."""
    if not path.exists():
        return
    if upto_step == 0:
        path.unlink()
        return
    kept = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            entry = json.loads(line)
        except ValueError:  # the torn last line of a killed run (lines are appended as steps end)
            continue
        if isinstance(entry, dict) and entry.get("step", 0) <= upto_step:
            kept.append(line)
    atomic_write_text(path, "".join(line + "\n" for line in kept))


def batch_log_path(output_dir: str | os.PathLike, rank: int = 0) -> Path:
    name = "batches.jsonl" if rank == 0 else f"batches.rank{rank}.jsonl"
    return Path(output_dir) / name


def read_batch_log(path: str | os.PathLike) -> list[dict[str, Any]]:
    return [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]


@dataclass
class BatchAudit:
    """What :func:`audit_batches` found: false negatives per global micro-batch of a training run."""

    files: list[str]
    world_size: int
    global_batches: int = 0
    examples: int = 0
    repeated_positives: int = 0  # examples whose positive identity already appeared in the global batch
    negatives_are_positives: int = 0  # examples whose hard negative is another example's positive
    conflicting_batches: int = 0
    deferred: int | None = None  # groups the sampler deferred for a conflict (None: not logged)
    missing_ranks: list[int] = field(default_factory=list)  # rank logs absent: their batches are not audited
    problems: list[dict[str, int]] = field(default_factory=list)  # the first few offending batches

    @property
    def clean(self) -> bool:
        return self.conflicting_batches == 0

    def summary(self) -> str:
        text = (f"{self.global_batches} global batches ({self.examples} examples, world size {self.world_size}): "
                f"{self.conflicting_batches} with false negatives ({self.repeated_positives} repeated positives, "
                f"{self.negatives_are_positives} hard negatives that are another example's positive)")
        if self.deferred is not None:
            text += f"; {self.deferred} groups deferred by the sampler"
        if self.missing_ranks:
            text += f"; rank logs missing: {self.missing_ranks}"
        return text


def audit_batches(output_dir: str | os.PathLike, *, max_problems: int = 20) -> BatchAudit:
    """Check a training run's batch logs for false negatives (issue 9); works on any run that logged codes.

    The global batch of one micro-step is the entries of that (step, micro-batch) in every rank's log
    (``batches.jsonl``, ``batches.rank{r}.jsonl``), since in-batch negatives are gathered across devices.
    A false negative is an example whose positive's passage identity already occurs in the global batch,
    or whose hard negative is another example's positive. Identities are ``PairIndex`` codes: a passage
    and its translations share one when the loader knows passage ids (LAReQA, mMARCO); for pairs without
    ids only identical texts in one language are caught.

    Args:
        output_dir: the training ``output_dir`` or the final model folder (which holds rank 0's log only).
        max_problems: how many offending batches to list in ``problems``.

    Raises DataError (naming the file and line) for a missing log or a log without identity codes
    (written before polyret recorded them).
    """
    from polyret.data.records import DataError

    folder = Path(output_dir)
    first = batch_log_path(folder, 0)
    if not first.is_file():
        raise DataError(f"{first}: no batch log (is {folder} a training output or model folder?)")
    batches: dict[tuple[int, int], list[tuple[list[int], list[int] | None]]] = {}
    deferred: dict[tuple[int, int], int] = {}
    world_size, files, missing = 1, [], []
    rank = 0
    while True:
        path = batch_log_path(folder, rank)
        if not path.is_file():
            if rank >= world_size:
                break
            missing.append(rank)
            rank += 1
            continue
        files.append(str(path))
        micro: dict[int, int] = {}
        for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            try:
                entry = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DataError(f"{path}:{lineno}: not JSON ({exc.msg})") from exc
            if "pos" not in entry or "step" not in entry:
                raise DataError(f"{path}:{lineno}: no passage identity codes ('pos'); this log was written before "
                                f"polyret recorded them and cannot be audited")
            world_size = max(world_size, int(entry.get("world_size", 1)))
            step = int(entry["step"])
            k = micro.get(step, 0)
            micro[step] = k + 1
            batches.setdefault((step, k), []).append((entry["pos"], entry.get("neg")))
            if "deferred" in entry:
                deferred[(step, k)] = int(entry["deferred"])  # the same number in every rank's entry
        rank += 1
    audit = BatchAudit(files=files, world_size=world_size, missing_ranks=missing)
    audit.deferred = sum(deferred.values()) if deferred else None
    for (step, k), parts in sorted(batches.items()):
        pos = np.concatenate([np.asarray(p, dtype=np.int64) for p, _ in parts])
        # one row per example, one column per hard negative (a flat list: one negative each)
        width = max((np.asarray(n).reshape(len(p), -1).shape[1] for p, n in parts if n is not None and len(p)),
                    default=1)
        neg = np.concatenate([np.asarray(n, dtype=np.int64).reshape(len(p), -1) if n is not None
                              else np.full((len(p), width), -1, dtype=np.int64) for p, n in parts])
        repeated = len(pos) - len(np.unique(pos))
        # per example: does a positive in the batch, other than its own, equal one of its negatives
        order = np.sort(pos)
        hits = np.searchsorted(order, neg, side="right") - np.searchsorted(order, neg, side="left")
        bad_neg = int(((neg >= 0) & (hits - (neg == pos[:, None]) > 0)).any(axis=1).sum())
        audit.global_batches += 1
        audit.examples += len(pos)
        audit.repeated_positives += repeated
        audit.negatives_are_positives += bad_neg
        if repeated or bad_neg:
            audit.conflicting_batches += 1
            if len(audit.problems) < max_problems:
                audit.problems.append({"step": step, "micro_batch": k, "repeated_positives": repeated,
                                       "negatives_are_positives": bad_neg})
    return audit


# ------------------------------------------------------------------------------------ checkpoints
class TrainingDiverged(ConfigError):
    """The loss or the weights became non-finite (NaN / inf) at some optimizer step; no model is written."""


CHECKPOINT_STAGING = ".tmp-"  # a checkpoint being written: checkpoints/.tmp-checkpoint-<step>/
_CHECKPOINT_DELETING = ".del-"  # a checkpoint being removed (renamed first, so it vanishes at once)
_CHECKPOINT_RE = re.compile(r"^checkpoint-(\d+)$")
# Files a trainer checkpoint written before polyret had completion markers must hold (anywhere in the
# folder: a module may live in a subfolder) to be trusted on resume; trainer_state.json is written last.
_LEGACY_FILES = ("trainer_state.json", "optimizer.pt", "scheduler.pt", "modules.json", "tokenizer_config.json")


def _legacy_checkpoint_ok(folder: Path) -> bool:
    """A checkpoint without a completion marker (from a polyret before markers) is trusted when its trainer
    state (transformers writes it last) parses and names this step, the optimizer, scheduler, module list
    and tokenizer config are there and non-empty, and it has weights whose safetensors header parses."""
    match = _CHECKPOINT_RE.match(folder.name)
    try:
        state = json.loads((folder / "trainer_state.json").read_text(encoding="utf-8"))
        if not match or int(state.get("global_step", -1)) != int(match.group(1)):
            return False
        files = [p for p in folder.rglob("*") if p.is_file()]
        for name in _LEGACY_FILES:
            if not any(p.name == name and p.stat().st_size > 0 for p in files):
                return False
        weights = [p for p in files if p.suffix == ".safetensors"]
        if not weights:
            return any(p.name == "pytorch_model.bin" and p.stat().st_size > 0 for p in files)
        from safetensors import safe_open

        for path in weights:
            with safe_open(str(path), framework="pt") as fh:
                fh.keys()
        return True
    except Exception:  # missing file, truncated JSON or safetensors header: not a checkpoint to trust
        return False


def checkpoint_is_complete(folder: str | os.PathLike) -> bool:
    """True iff ``folder`` is a finished trainer checkpoint: its completion marker lists every file with
    its size (polyret's checkpoints), or, without a marker and with no marked sibling (a folder of an
    older polyret), it passes the legacy check above."""
    folder = Path(folder)
    if (folder / COMPLETE_MARKER).exists():
        return is_complete(folder)
    # a run of this polyret marks every checkpoint: a marker-less one beside marked ones lost its marker
    # while being deleted (rotation, or transformers removing non-best checkpoints at the end), not a legacy one
    if any((p / COMPLETE_MARKER).exists() for p in folder.parent.glob("checkpoint-*")):
        return False
    return _legacy_checkpoint_ok(folder)


def _checkpoints(folder: Path) -> list[tuple[int, Path]]:
    """Every ``checkpoint-<step>`` folder (complete or not), by step."""
    if not folder.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in folder.iterdir() if p.is_dir() and (m := _CHECKPOINT_RE.match(p.name))]
    return sorted(found)


def last_checkpoint(output_dir: str | os.PathLike) -> Path | None:
    """The newest COMPLETE trainer checkpoint under ``output_dir/checkpoints`` (None: none to resume from).

    A checkpoint killed while being saved never has the name ``checkpoint-<step>`` (it is written as
    ``.tmp-checkpoint-<step>`` and renamed when its completion marker is in), and a folder with a marker
    whose files are missing or of another size is skipped, so resume never loads a half-written one.
    """
    for _, path in reversed(_checkpoints(Path(output_dir) / CHECKPOINT_DIR)):
        if checkpoint_is_complete(path):
            return path
    return None


def _checkpoint_step(folder: Path) -> int:
    return int(_CHECKPOINT_RE.match(folder.name).group(1))


def _remove_tree(path: Path) -> None:
    """Rename ``path`` out of sight first, then delete it: a kill mid-way never leaves a half-deleted
    folder under its old name."""
    if not path.exists():
        return
    doomed = path.parent / f"{_CHECKPOINT_DELETING}{path.name}"
    if doomed.exists():
        shutil.rmtree(doomed, ignore_errors=True)
    os.replace(path, doomed)
    shutil.rmtree(doomed, ignore_errors=True)


def clean_checkpoints(output_dir: str | os.PathLike) -> list[str]:
    """Remove what an interrupted run left under ``output_dir/checkpoints``: staging and half-deleted
    folders, and ``checkpoint-<step>`` folders that are not complete. Returns the names removed."""
    folder = Path(output_dir) / CHECKPOINT_DIR
    if not folder.is_dir():
        return []
    removed = []
    for path in sorted(folder.iterdir()):
        if path.is_dir() and path.name.startswith((CHECKPOINT_STAGING, _CHECKPOINT_DELETING)):
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path.name)
    for _, path in _checkpoints(folder):
        if not checkpoint_is_complete(path):
            logger.warning("removing incomplete checkpoint %s (interrupted while being saved or deleted)", path)
            _remove_tree(path)
            removed.append(path.name)
    return removed


def _rotate(run_dir: Path, limit: int | None, best: str | None) -> None:
    """Keep the newest ``limit`` complete checkpoints (always the newest and the best), by step number."""
    if not limit:
        return
    found = [p for _, p in _checkpoints(run_dir)]
    protected = {found[-1]} if found else set()
    if best:
        protected.add(Path(best))
    keep = max(limit, len(protected))
    remaining = len(found)
    for path in found:
        if remaining <= keep:
            break
        if path not in protected:
            _remove_tree(path)
            remaining -= 1


def _save_checkpoint_atomically(trainer, trial) -> None:
    """What ``transformers.Trainer._save_checkpoint`` does, but into ``.tmp-checkpoint-<step>``, which gets
    its completion marker last and is then renamed to ``checkpoint-<step>``; then old ones are rotated."""
    from transformers.trainer_callback import ExportableState
    from transformers.trainer_utils import SaveStrategy

    args, state = trainer.args, trainer.state
    run_dir = Path(trainer._get_output_dir(trial=trial))
    name = f"checkpoint-{state.global_step}"
    final, staging = run_dir / name, run_dir / f"{CHECKPOINT_STAGING}{name}"
    if args.should_save and staging.exists():
        shutil.rmtree(staging)
    trainer.accelerator.wait_for_everyone()
    staging.mkdir(parents=True, exist_ok=True)
    if trainer.hp_search_backend is None and trial is None:
        trainer.store_flos()
    trainer.save_model(str(staging), _internal_call=True)
    if args.save_strategy in (SaveStrategy.STEPS, SaveStrategy.EPOCH, SaveStrategy.BEST) and state.best_global_step:
        best = run_dir / f"checkpoint-{state.best_global_step}"
        if best == final or best.exists():  # this very checkpoint: its final name, which it is about to get
            state.best_model_checkpoint = str(best)
    if not args.save_only_model:
        trainer._save_optimizer_and_scheduler(str(staging))
        trainer._save_scaler(str(staging))
        trainer._save_rng_state(str(staging))
    if args.should_save:
        for cb in [cb for cb in trainer.callback_handler.callbacks + [trainer.control] if isinstance(cb, ExportableState)]:
            cb_name, cb_state = cb.__class__.__name__, cb.state()
            if isinstance(state.stateful_callbacks[cb_name], list):
                state.stateful_callbacks[cb_name].append(cb_state)
            else:
                state.stateful_callbacks[cb_name] = cb_state
        state.save_to_json(str(staging / "trainer_state.json"))
    trainer.accelerator.wait_for_everyone()  # every rank's files (rng_state_<rank>.pth) are in
    if args.should_save:
        share_mode(staging)
        mark_complete(staging, step=state.global_step)
        if final.exists():  # e.g. a run restarted from an earlier step saves this step again
            _remove_tree(final)
        os.replace(staging, final)
        _rotate(run_dir, args.save_total_limit, state.best_model_checkpoint)
    trainer.accelerator.wait_for_everyone()


def _polyret_trainer_class():
    """sentence-transformers' trainer with atomic checkpoints and a per-step finiteness check."""
    from sentence_transformers import SentenceTransformerTrainer

    class PolyretTrainer(SentenceTransformerTrainer):
        step_loss_finite = True

        def training_step(self, model, inputs, num_items_in_batch=None):
            loss = super().training_step(model, inputs, num_items_in_batch)
            self.step_loss_finite = bool(torch.isfinite(loss.detach()).all())
            return loss

        def _save_checkpoint(self, model, trial) -> None:
            _save_checkpoint_atomically(self, trial)

        def _run_epoch(self, *args, **kwargs):
            # transformers trains one step past max_steps when resumed from the last step's checkpoint (the
            # epoch loop checks the step count only after a step): a run killed after its final checkpoint,
            # before the final model was written, would otherwise end one step later than a straight run
            if 0 < self.state.max_steps <= self.state.global_step:
                self.control.should_training_stop = True
                return None
            return super()._run_epoch(*args, **kwargs)

    return PolyretTrainer


def _divergence_guard(config: TrainConfig):
    """Stops training with :class:`TrainingDiverged` at the first step whose loss or trained weights are
    not finite; it runs before that step's checkpoint is saved, so no checkpoint holds such weights."""
    from transformers import TrainerCallback

    class DivergenceGuard(TrainerCallback):
        trainer = None

        def on_step_end(self, args, state, control, model=None, **kwargs):
            loss_ok = self.trainer is None or self.trainer.step_loss_finite
            if self.trainer is not None and args.world_size > 1:
                # the loss is per rank: decide together, or one rank raises while the others wait in the
                # next all-reduce (weights are the same on every rank after the synchronised step)
                flag = torch.tensor([0.0 if loss_ok else 1.0], device=args.device)
                loss_ok = bool(self.trainer.accelerator.reduce(flag, reduction="sum").item() == 0)
            bad = [] if loss_ok else ["the loss"]
            if model is not None:
                weights = [n for n, p in model.named_parameters() if p.requires_grad and not torch.isfinite(p).all()]
                if weights:
                    bad.append(f"{len(weights)} weight tensor(s) (e.g. {weights[0]})")
            if bad:
                raise TrainingDiverged(
                    f"training diverged at step {state.global_step}: {' and '.join(bad)} became NaN/inf "
                    f"(lr={config.lr:g}, temperature={config.temperature:g}, precision={config.precision}); "
                    "no model was written. Lower lr or raise temperature."
                )

    return DivergenceGuard()


def _check_resume(config: TrainConfig, output_dir: Path) -> None:
    saved_path = output_dir / RUN_CONFIG
    if not saved_path.exists():
        return
    saved = TrainConfig.from_file(saved_path)
    differ = [k for k in _RESUME_KEYS if getattr(saved, k) != getattr(config, k)]
    if differ:
        detail = ", ".join(f"{k}: {getattr(saved, k)!r} -> {getattr(config, k)!r}" for k in differ)
        raise ConfigError(f"cannot resume {output_dir}: the run was started with a different config ({detail})")


# ------------------------------------------------------------------------------------- final model
def _model_card(config: TrainConfig, info: dict[str, Any]) -> str:
    langs = ", ".join(info["languages"])
    lines = [
        "## polyret training",
        "",
        f"- strategy: **{config.strategy}**" + (f" (alpha = {config.alpha}: probability of a monolingual batch)"
                                                if config.strategy == "hybrid" else ""),
        f"- base model: `{config.model}`",
        f"- training data: {', '.join(f'`{s}`' for s in config.train)}"
        + (f" (max {config.max_groups} groups per source)" if config.max_groups else ""),
        f"- languages: {langs}",
        f"- parallel groups: {info['train_groups']} train, {info['dev_groups']} held out for dev loss",
        f"- steps: {info['global_step']} optimizer steps of {config.batch_size} pairs per device"
        f" x {info['world_size']} device(s)",
        f"- recipe: {config.recipe or 'custom'}; lr {config.lr}, AdamW weight decay {config.weight_decay}, "
        f"warmup ratio {config.warmup_ratio}, temperature {config.temperature}, precision {info['precision']}",
        f"- loss: InfoNCE with in-batch negatives ({info['loss']})"
        + (f", {num_negatives(config)} hard negative(s) per pair" if num_negatives(config) else ""),
        f"- frozen word embeddings: {'yes' if config.freeze_word_embeddings else 'no'}",
    ]
    if config.dev:
        lines.append(f"- dev benchmark: `{config.dev}`")
    if info.get("best_checkpoint"):
        lines.append(f"- best checkpoint: {info['best_checkpoint']} ({info['metric_for_best_model']} = "
                     f"{info['best_metric']:.4f})")
    lines += ["", "Full configuration: `polyret_train.json`; per-step batch kinds: `batches.jsonl`.", ""]
    return "\n".join(lines)


def _write_final_model(model, target: Path, config: TrainConfig, info: dict[str, Any], batch_log: Path) -> None:
    """Save into a temporary sibling folder, then swap it in: a crash never leaves a half-written model."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.parent / f".{target.name}.tmp-{os.getpid()}"
    old = target.parent / f".{target.name}.old-{os.getpid()}"
    for leftover in [tmp, old, *target.parent.glob(f".{target.name}.tmp-*"), *target.parent.glob(f".{target.name}.old-*")]:
        if leftover.exists():  # also what a killed earlier run (another pid) left behind
            shutil.rmtree(leftover)
    try:
        try:
            model.save(str(tmp), create_model_card=True)
        except Exception as error:  # the generated card is a nicety; never lose a trained model over it
            logger.warning("sentence-transformers model card failed (%s); writing polyret's card only", error)
            shutil.rmtree(tmp, ignore_errors=True)
            model.save(str(tmp), create_model_card=False)
        card = _model_card(config, info)
        readme = tmp / "README.md"
        if readme.exists():
            text = readme.read_text(encoding="utf-8")
            head, sep, body = text.partition("\n---\n") if text.startswith("---") else ("", "", text)
            readme.write_text(f"{head}{sep}\n{card}\n{body}", encoding="utf-8")
        else:
            readme.write_text(f"# polyret model\n\n{card}", encoding="utf-8")
        (tmp / RUN_CONFIG).write_text(json.dumps({"config": config.to_dict(), **info}, indent=2), encoding="utf-8")
        if batch_log.exists():
            shutil.copyfile(batch_log, tmp / batch_log.name)
        share_mode(tmp)
        mark_complete(tmp, global_step=info.get("global_step"))  # last: the folder is whole
        if target.exists():
            os.replace(target, old)
        os.replace(tmp, target)
    finally:
        for leftover in (tmp, old):
            if leftover.exists():
                shutil.rmtree(leftover, ignore_errors=True)


def build_dev_evaluator(config: TrainConfig):
    """polyret's dev evaluator (:class:`PolyretEvaluator`) for ``config.dev``, restricted to the training
    languages the benchmark has; an unknown benchmark id or missing file is a ``DataError`` now."""
    from polyret.data.registry import benchmark_info
    from polyret.evaluation.evaluator import PolyretEvaluator

    info = benchmark_info(config.dev)  # unknown id: fails before any file is read
    languages = None
    if config.languages:
        languages = [lang for lang in config.languages if lang in info.languages]
        if not languages:
            raise ConfigError(f"dev benchmark {config.dev!r} has none of the training languages {list(config.languages)} "
                              f"(it has {', '.join(info.languages)})")
    return PolyretEvaluator(config.dev, languages=languages, data_dir=config.data_dir)


def best_metric_name(config: TrainConfig, evaluator, *, has_eval_loss: bool) -> str | None:
    """The key the trainer will find in its evaluation metrics for ``metric_for_best_model``.

    Evaluator metrics reach the trainer as ``eval_<evaluator name>_<metric>`` (``eval_dev_map``); the dev
    loss as ``eval_loss``. ``metric_for_best_model`` may be given in any of the forms ``map``,
    ``dev_map`` or ``eval_dev_map``. An evaluator with ``metric_names()`` has the name checked here.

    Args:
        config: the run's config (``dev``, ``dev_pairs``, ``metric_for_best_model``).
        evaluator: the sentence-transformers evaluator scoring the dev set, or None.
        has_eval_loss: whether held-out dev pairs give an ``eval_loss``.
    """
    if not config.has_dev:
        return None
    name = getattr(evaluator, "name", "") or ""

    def prefixed(key: str) -> str:
        return key if not name or key.startswith(f"{name}_") else f"{name}_{key}"

    wanted = config.metric_for_best_model
    if wanted is None:
        if has_eval_loss:
            return "eval_loss"
        primary = getattr(evaluator, "primary_metric", None)
        if not primary:
            raise ConfigError("the evaluator has no primary_metric; set metric_for_best_model")
        return f"eval_{prefixed(primary)}"
    key = wanted.removeprefix("eval_")
    if key == "loss":
        if not has_eval_loss:
            raise ConfigError("metric_for_best_model=loss needs held-out dev pairs (dev_pairs > 0)")
        return "eval_loss"
    if evaluator is None:
        raise ConfigError(f"metric_for_best_model={wanted!r} needs a dev evaluator (set dev); with dev_pairs only, "
                          "the metric is the dev loss ('loss')")
    metric = f"eval_{prefixed(key)}"
    names = getattr(evaluator, "metric_names", None)
    if callable(names):
        known = sorted({f"eval_{n}" for n in names()} | ({"eval_loss"} if has_eval_loss else set()))
        if metric not in known:
            raise ConfigError(f"metric_for_best_model={wanted!r}: the dev evaluator reports no {metric!r}; "
                              f"known: {', '.join(known)}")
    return metric


# ------------------------------------------------------------------------------------------ train
def train(config: TrainConfig, *, evaluator=None, callbacks: Sequence | None = None) -> Path:
    """Train a bi-encoder as ``config`` says and return the final model folder (``output_dir/model``).

    ``evaluator``: a sentence-transformers evaluator, or any ``fn(model) -> float | dict`` (scored on
    ``config.dev``); when ``config.dev`` is set and none is given, polyret's ``PolyretEvaluator`` on that
    benchmark. A step whose loss or weights are not finite raises :class:`TrainingDiverged` and writes
    no final model. With a dev set the best checkpoint (by
    ``metric_for_best_model``, default: dev loss when ``dev_pairs`` > 0, else the evaluator's primary
    metric) becomes the final model. ``callbacks``: extra ``transformers.TrainerCallback`` objects.
    """
    from sentence_transformers import SentenceTransformerTrainingArguments
    from transformers.trainer_utils import set_seed

    from polyret.training.losses import build_loss
    from polyret.training.pairs_dataset import PairIndex
    from polyret.training.samplers import ParallelBatchSampler, SamplerEpochCallback

    # Everything a user can get wrong is checked here, before the model loads (seconds, not minutes).
    output_dir = Path(config.output_dir)
    if config.dev is not None and evaluator is None:
        evaluator = build_dev_evaluator(config)
    resume_from = None
    if config.resume:
        _check_resume(config, output_dir)
        resume_from = last_checkpoint(output_dir)
        if resume_from is None:
            logger.warning("resume: no checkpoint in %s; training from the start", output_dir / CHECKPOINT_DIR)
    elif (found := last_checkpoint(output_dir)) is not None:
        # a fresh run would mix its checkpoints with the earlier run's (rotation by step keeps the old
        # ones, and a later resume would load them)
        raise ConfigError(f"{output_dir} holds checkpoints of an earlier run ({found.name}); pass --resume "
                          "(resume=true) to continue it, or use a new output folder")
    check_writable(output_dir, what="output_dir", error=ConfigError)
    precision = resolve_precision(config.precision)

    sources = _load_sources(config)
    train_sources, dev_sources = split_dev(sources, config.dev_pairs, config.seed)
    index = PairIndex(train_sources, negatives=num_negatives(config))
    train_dataset = index.to_dataset()
    recorder = _BatchRecorder(index)
    train_dataset.set_transform(recorder.transform)
    eval_dataset = _dev_dataset(dev_sources, config) if dev_sources else None

    if evaluator is not None and not _is_st_evaluator(evaluator):
        if not callable(evaluator):
            raise TypeError(f"evaluator must be a sentence-transformers evaluator or fn(model) -> float | dict, "
                            f"got {type(evaluator).__name__}")
        metric = config.metric_for_best_model
        primary = None
        if metric is not None and metric.removeprefix("eval_") != "loss":
            primary = metric.removeprefix("eval_").removeprefix("dev_")
        elif metric is None and eval_dataset is None:
            raise ConfigError("a plain evaluator function needs metric_for_best_model (one of the keys it returns, "
                              "e.g. 'map') to pick the best checkpoint")
        st_evaluator = _CallableEvaluator(evaluator, "dev", primary)
    else:
        st_evaluator = evaluator
    metric = best_metric_name(config, st_evaluator, has_eval_loss=eval_dataset is not None)
    greater = None if metric is None else not metric.endswith("loss")

    set_seed(config.seed)
    model = _load_model(config)
    frozen = freeze_word_embeddings(model) if config.freeze_word_embeddings else 0

    sampler_factory = ParallelBatchSampler.factory(index, strategy=config.strategy, alpha=config.alpha,
                                                  seed=config.seed, grad_accum_steps=1)  # fmt: skip
    recorder.sampler_factory = sampler_factory  # the batch log records the sampler's deferred counts
    eval_every = config.eval_every if config.has_dev else None
    args = SentenceTransformerTrainingArguments(
        output_dir=str(output_dir / CHECKPOINT_DIR),
        per_device_train_batch_size=config.batch_size,
        per_device_eval_batch_size=config.batch_size,
        gradient_accumulation_steps=1,
        learning_rate=config.lr,
        weight_decay=config.weight_decay,
        warmup_steps=config.warmup_ratio,  # transformers 5: a float < 1 is a ratio of the total steps
        lr_scheduler_type="linear",
        optim="adamw_torch",
        max_steps=config.max_steps if config.max_steps is not None else -1,
        num_train_epochs=config.epochs,
        bf16=precision == "bf16",
        fp16=precision == "fp16",
        seed=config.seed,
        logging_steps=config.logging_steps,
        save_strategy="steps" if config.save_steps else "no",
        save_steps=config.save_steps or 500,
        save_total_limit=config.save_total_limit,
        eval_strategy="steps" if eval_every else "no",
        eval_steps=eval_every or None,
        load_best_model_at_end=bool(eval_every and config.save_steps),
        metric_for_best_model=metric,
        greater_is_better=greater,
        prompts=_column_prompts(model, index.num_negatives),
        batch_sampler=sampler_factory,
        dataloader_num_workers=0,
        dataloader_pin_memory=torch.cuda.is_available(),
        # without a GPU, say so: accelerate then runs torchrun processes as multi-CPU DDP over gloo
        use_cpu=not torch.cuda.is_available() and not torch.backends.mps.is_available(),  # the batch log sits in the dataset transform, in this process
        ddp_find_unused_parameters=True,  # e.g. BERT's pooler is unused by mean pooling
        report_to="none",
    )
    rank, world_size = args.process_index, args.world_size
    loss = build_loss(model, config)
    log_path = batch_log_path(output_dir, rank)
    trainer_callbacks = [SamplerEpochCallback(), _batch_log_callback(recorder, log_path, rank, world_size, 1)]
    guard = _divergence_guard(config)
    trainer_callbacks += [guard, *(callbacks or [])]
    if args.process_index == 0:
        for name in clean_checkpoints(output_dir):
            logger.info("removed %s/%s left by an interrupted run", CHECKPOINT_DIR, name)
    trainer = _polyret_trainer_class()(model=model, args=args, train_dataset=train_dataset,
                                         eval_dataset=eval_dataset, loss=loss, evaluator=st_evaluator,
                                         callbacks=trainer_callbacks)  # fmt: skip
    guard.trainer = trainer
    if trainer.is_world_process_zero():
        output_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(output_dir / RUN_CONFIG, json.dumps({"config": config.to_dict()}, indent=2))
    logger.info("training %s: %d groups, %d pairs, languages %s, strategy %s, %s, %d frozen parameters",
                config.model, index.num_groups, index.num_pairs, ",".join(index.languages), config.strategy,
                precision, frozen)  # fmt: skip

    started = time.time()
    resumed_step = _checkpoint_step(resume_from) if resume_from else 0
    result = trainer.train(resume_from_checkpoint=str(resume_from) if resume_from else None)
    state = trainer.state
    target = output_dir / MODEL_DIR
    if trainer.is_world_process_zero():
        info = {
            "global_step": state.global_step,
            "world_size": world_size,
            "precision": precision,
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
        _write_final_model(trainer.model, target, config, info, batch_log_path(output_dir, 0))
    trainer.accelerator.wait_for_everyone()
    return target


# ------------------------------------------------------------------------------------------- main
def main(argv: Sequence[str] | None = None) -> int:
    """``python -m polyret.training.train --config run.yaml [key=value ...]`` (also under torchrun)."""
    parser = argparse.ArgumentParser(prog="python -m polyret.training.train", description=main.__doc__)
    parser.add_argument("--config", help="YAML/JSON training config")
    parser.add_argument("--recipe", help="start from a named recipe (paper, cpu)")
    parser.add_argument("overrides", nargs="*", help="key=value overrides, e.g. alpha=0.3 languages=de,en")
    ns = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        if ns.config and ns.recipe:
            raise ConfigError("give --config or --recipe, not both (a config file may say `recipe: cpu`)")
        if ns.config:
            config = TrainConfig.from_file(ns.config)
        elif ns.recipe:
            config = TrainConfig.from_recipe(ns.recipe)
        else:
            config = TrainConfig()
        config = config.with_overrides(ns.overrides)
        path = train(config)
    except (ConfigError, DataError, OSError) as error:  # user errors (TrainingDiverged, a full disk too): exit 2
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
