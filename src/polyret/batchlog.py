"""The batch log: which batches each process trained on, per optimizer step, and its false-negative audit.

``batches.jsonl`` (rank r > 0: ``batches.rank{r}.jsonl``) in a run's ``output_dir`` holds one JSON line
per micro-batch: the step, the batch kind (mono / cross / mixed), its language pairs, sources, distinct
groups, and the passage identity codes of its examples. :class:`BatchRecorder` builds the entries from
the batches the sampler yielded for each step (in the main process, so DataLoader workers change nothing);
:func:`batch_log_callback` writes the entries of each step as it ends; :func:`audit_batches` checks a
finished run for false negatives.
"""

from __future__ import annotations

import json
import logging
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from polyret.paths import atomic_write_text

logger = logging.getLogger(__name__)


class BatchRecorder:
    """Builds the batch log's entries: the batches this process trained on, per optimizer step.

    The entries come from the batch sampler in the main process: it remembers the batches it yielded by
    their position in the global stream (:meth:`ParallelBatchSampler.yielded`), and optimizer step ``t`` of
    rank ``r`` trained on micro-batches ``(t * accum + m) * world_size + r`` of that stream (how accelerate
    deals batches to ranks; a resume skips whole batches at the start). So the log is the same with
    DataLoader workers (which fetch the texts in other processes) as without, and it holds what was
    yielded for the step, not a replanned guess. Each entry holds the language pairs, sources and groups
    of its examples, their passage identity codes (``pos``, and ``neg`` with hard negatives;
    ``PairIndex.pair_positive/pair_negative``) so :func:`audit_batches` can check a finished run for false
    negatives, and how many groups the sampler deferred for a passage conflict while filling the global
    micro-batch (``deferred``).

    Args:
        index: the training pairs the dataset views.
        sampler_factory: the trainer's ``SamplerFactory`` (its ``last`` sampler is the trainer's), or None.
    """

    def __init__(self, index, sampler_factory=None) -> None:
        self.index = index
        self.sampler_factory = sampler_factory
        self._warned = False

    def entry(self, indices, info=None) -> dict[str, Any]:
        """The log entry of one micro-batch given by its dataset indices (and the sampler's decision).

        Args:
            indices: the batch's dataset indices, as the sampler yielded them.
            info: the sampler's :class:`~polyret.training.samplers.BatchInfo` of the batch (for ``deferred``).
        """
        ix = self.index
        d = ix.decode(indices)
        langs = ix.languages
        qlang = [langs[i] for i in d.query_lang.tolist()]
        plang = [langs[i] for i in d.passage_lang.tolist()]
        same = [a == b for a, b in zip(qlang, plang)]
        if all(same):
            kind = "mono" if len(set(qlang)) == 1 else "mixed"
        else:
            kind = "cross" if not any(same) else "other"
        pairs = Counter(f"{a}-{b}" for a, b in zip(qlang, plang))
        entry = {
            "kind": kind, "size": len(qlang), "sources": sorted({ix.sources[i] for i in d.source.tolist()}),
            "query_langs": sorted(set(qlang)), "passage_langs": sorted(set(plang)),
            "pairs": dict(sorted(pairs.items())), "distinct_groups": int(len(np.unique(d.group))),
            "pos": ix.pair_positive[d.passage_row].tolist(),
        }  # fmt: skip
        if ix.has_negatives:
            neg = ix.pair_negative[d.passage_row]  # one list per example with k > 1 negatives
            entry["neg"] = (neg[:, 0] if neg.shape[1] == 1 else neg).tolist()
        if info is not None:
            entry["deferred"] = info.deferred
        return entry

    def step_entries(self, step: int, rank: int, world_size: int, accum: int) -> list[dict[str, Any]]:
        """The entries of optimizer step ``step`` (1-based, as the trainer counts) on rank ``rank``.

        Args:
            step: the trainer's ``global_step`` after the step.
            rank, world_size: this process and the number of processes.
            accum: micro-batches per optimizer step.
        """
        sampler = getattr(self.sampler_factory, "last", None)
        if sampler is None:
            return []
        epoch, within = divmod(step - 1, sampler.steps_per_epoch)
        out = []
        for micro in range(accum):
            got = sampler.yielded(epoch, (within * accum + micro) * world_size + rank)
            if got is None:  # not yielded or no longer remembered: never guessed
                if not self._warned:
                    logger.warning("batch log: the sampler no longer holds the batches of step %d; not logged", step)
                    self._warned = True
                return []
            info, batch = got
            out.append(self.entry(batch, info))
        return out


def batch_log_callback(recorder: BatchRecorder, path: Path, rank: int, world_size: int, accum: int):
    """A trainer callback that appends each optimizer step's entries (:meth:`BatchRecorder.step_entries`) to ``path``.

    Args:
        recorder: the run's :class:`BatchRecorder`.
        path: this rank's log (:func:`batch_log_path`).
        rank, world_size: this process's rank and the number of processes, written into each entry.
        accum: micro-batches per optimizer step.
    """
    from transformers import TrainerCallback

    class BatchLogCallback(TrainerCallback):
        """Writes the batches of each optimizer step to a JSONL file as the step ends."""

        def on_train_begin(self, args, state, control, **kwargs):
            truncate_log(path, state.global_step)  # a resumed run rewrites the steps after its checkpoint

        def on_step_end(self, args, state, control, **kwargs):
            entries = recorder.step_entries(state.global_step, rank, world_size, accum)
            lines = [json.dumps({"step": state.global_step, "rank": rank, "world_size": world_size, **e},
                                ensure_ascii=False) for e in entries]  # fmt: skip
            if lines:
                with open(path, "a", encoding="utf-8") as fh:
                    fh.write("\n".join(lines) + "\n")

    return BatchLogCallback()


def truncate_log(path: Path, upto_step: int) -> None:
    """Keep the entries of steps <= ``upto_step`` (a resumed run rewrites the steps after its checkpoint).

    Args:
        path: a batch log.
        upto_step: the step the run resumes from (0: remove the log).
    """
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
    """Where rank ``rank`` logs its batches: ``batches.jsonl`` (rank 0) or ``batches.rank{r}.jsonl``.

    Args:
        output_dir: the training ``output_dir`` (or a final model folder, for rank 0).
        rank: the process rank.
    """
    name = "batches.jsonl" if rank == 0 else f"batches.rank{rank}.jsonl"
    return Path(output_dir) / name


def read_batch_log(path: str | os.PathLike) -> list[dict[str, Any]]:
    """The entries of a batch log, in order.

    Args:
        path: a ``batches.jsonl`` file (:func:`batch_log_path`).
    """
    return [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]


def step_kinds(path: str | os.PathLike) -> dict[str, int]:
    """How many optimizer steps of a batch log were of each kind (``mono``, ``cross``, ``mixed``, ``other``):
    what a run did, whatever its alpha said. A step's micro-batches share one kind; a step whose entries
    disagree counts as ``other``.

    Args:
        path: a batch log (``batches.jsonl``); missing: no steps.
    """
    path = Path(path)
    if not path.is_file():
        return {}
    kinds: dict[int, set[str]] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict) and "step" in entry:
            kinds.setdefault(int(entry["step"]), set()).add(str(entry.get("kind")))
    counts = Counter(next(iter(k)) if len(k) == 1 else "other" for k in kinds.values())
    return dict(sorted(counts.items()))


def realized_mono_share(kinds: dict[str, int]) -> float | None:
    """The share of optimizer steps that were monolingual (None without steps).

    Args:
        kinds: :func:`step_kinds` of a run.
    """
    total = sum(kinds.values())
    return kinds.get("mono", 0) / total if total else None


@dataclass
class BatchAudit:
    """What :func:`audit_batches` found: false negatives per global micro-batch of a training run.

    Args:
        files: the rank logs read.
        world_size: the run's process count.
        global_batches, examples: what was audited.
        repeated_positives, negatives_are_positives, conflicting_batches: false negatives found.
        negatives_are_own_positive: examples whose hard negative is their own positive's passage.
        deferred: groups the sampler deferred for a conflict (None: not logged).
        missing_ranks: rank logs absent (their batches are not audited).
        problems: the first few offending batches.
    """

    files: list[str]
    world_size: int
    global_batches: int = 0
    examples: int = 0
    repeated_positives: int = 0  # examples whose positive identity already appeared in the global batch
    negatives_are_positives: int = 0  # examples whose hard negative is another example's positive
    negatives_are_own_positive: int = 0  # examples whose hard negative is their own positive (same passage)
    conflicting_batches: int = 0
    deferred: int | None = None  # groups the sampler deferred for a conflict (None: not logged)
    missing_ranks: list[int] = field(default_factory=list)  # rank logs absent: their batches are not audited
    problems: list[dict[str, int]] = field(default_factory=list)  # the first few offending batches

    @property
    def clean(self) -> bool:
        return self.conflicting_batches == 0

    def summary(self) -> str:
        text = (
            f"{self.global_batches} global batches ({self.examples} examples, world size {self.world_size}): "
            f"{self.conflicting_batches} with false negatives ({self.repeated_positives} repeated positives, "
            f"{self.negatives_are_positives} hard negatives that are another example's positive, "
            f"{self.negatives_are_own_positive} that are their own positive)"
        )
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
    or whose hard negative is another example's positive or its own. Identities are ``PairIndex`` codes: a passage
    and its translations share one when the loader knows passage ids (LAReQA, mMARCO); for pairs without
    ids only identical texts in one language are caught.

    Args:
        output_dir: the training ``output_dir`` or the final model folder (which holds rank 0's log only).
        max_problems: how many offending batches to list in ``problems``.

    Raises DataError (naming the file and line) for a missing log or a log without identity codes
    (written before polyret recorded them).
    """
    from polyret.errors import DataError

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
                raise DataError(
                    f"{path}:{lineno}: no passage identity codes ('pos'); this log was written before "
                    f"polyret recorded them and cannot be audited"
                )
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
        width = max((np.asarray(n).reshape(len(p), -1).shape[1] for p, n in parts if n is not None and len(p)), default=1)
        neg = np.concatenate(
            [
                np.asarray(n, dtype=np.int64).reshape(len(p), -1)
                if n is not None
                else np.full((len(p), width), -1, dtype=np.int64)
                for p, n in parts
            ]
        )
        repeated = len(pos) - len(np.unique(pos))
        # per example: does a positive in the batch, other than its own, equal one of its negatives
        order = np.sort(pos)
        hits = np.searchsorted(order, neg, side="right") - np.searchsorted(order, neg, side="left")
        bad_neg = int(((neg >= 0) & (hits - (neg == pos[:, None]) > 0)).any(axis=1).sum())
        own = int(((neg >= 0) & (neg == pos[:, None])).any(axis=1).sum())
        audit.global_batches += 1
        audit.examples += len(pos)
        audit.repeated_positives += repeated
        audit.negatives_are_positives += bad_neg
        audit.negatives_are_own_positive += own
        if repeated or bad_neg or own:
            audit.conflicting_batches += 1
            if len(audit.problems) < max_problems:
                audit.problems.append(
                    {
                        "step": step,
                        "micro_batch": k,
                        "repeated_positives": repeated,
                        "negatives_are_positives": bad_neg,
                        "negatives_are_own_positive": own,
                    }
                )
    return audit
