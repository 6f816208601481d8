"""The batch log: which batches each process trained on, per optimizer step, and its false-negative audit.

``batches.jsonl`` (rank r > 0: ``batches.rank{r}.jsonl``) in a run's ``output_dir`` holds one JSON line
per micro-batch: the step, the batch kind (mono / cross / mixed), its language pairs, sources, distinct
groups, and the passage identity codes of its examples. :class:`BatchRecorder` fills it from the
dataset transform (what the DataLoader really fetched, not a plan); :func:`batch_log_callback` writes the
entries of each step as it ends; :func:`audit_batches` checks a finished run for false negatives.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from polyret.paths import atomic_write_text


class BatchRecorder:
    """Records the language pairs of every training batch this process fetched, in fetch order.

    It sits in the dataset's transform, which the DataLoader calls once per batch it fetches (workers
    are off; the trainer's own reads of the dataset happen before ``enabled``), so the log shows what
    this rank actually trained on, not what a plan said. Each entry also holds the passage identity codes
    of its examples (``pos``, and ``neg`` with hard negatives; ``PairIndex.pair_positive/pair_negative``)
    so :func:`audit_batches` can check a finished run for false negatives, and, when ``sampler_factory``
    is set, how many groups the sampler deferred for a passage conflict while filling the batch
    (``deferred``, per global micro-batch).

    Args:
        index: the training pairs the dataset views.
        sampler_factory: the trainer's ``SamplerFactory`` (its ``last`` sampler knows the deferred counts),
            or None.
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


def batch_log_callback(recorder: BatchRecorder, path: Path, rank: int, world_size: int, accum: int):
    """A trainer callback that appends each optimizer step's entries of ``recorder`` to ``path``.

    Args:
        recorder: the dataset transform's :class:`BatchRecorder`.
        path: this rank's log (:func:`batch_log_path`).
        rank, world_size: this process's rank and the number of processes, written into each entry.
        accum: micro-batches per optimizer step.
    """
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
            truncate_log(path, self.start_step)
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


@dataclass
class BatchAudit:
    """What :func:`audit_batches` found: false negatives per global micro-batch of a training run.

    Args:
        files: the rank logs read.
        world_size: the run's process count.
        global_batches, examples: what was audited.
        repeated_positives, negatives_are_positives, conflicting_batches: false negatives found.
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
            f"{self.negatives_are_positives} hard negatives that are another example's positive)"
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
        audit.global_batches += 1
        audit.examples += len(pos)
        audit.repeated_positives += repeated
        audit.negatives_are_positives += bad_neg
        if repeated or bad_neg:
            audit.conflicting_batches += 1
            if len(audit.problems) < max_problems:
                audit.problems.append(
                    {"step": step, "micro_batch": k, "repeated_positives": repeated, "negatives_are_positives": bad_neg}
                )
    return audit
