"""Batch samplers for parallel-pair InfoNCE training: ``mono``, ``cross``, ``hybrid`` and ``mixed`` batches.

In-batch negatives make the batch the experiment: a monolingual batch (all queries and passages in ONE
language) teaches language-internal ranking, a cross-lingual batch (every query in a different language
from its passage) teaches language-agnostic matching, and ``hybrid`` mixes the two per batch: the
hybrid batch sampling of Elmahdy, Lin, Ahmad 2024, "Synergistic Approach for Simultaneous Optimization
of Monolingual, Cross-lingual, and Multilingual Information Retrieval" (arXiv 2408.10536).

=========  ==========================================================================================
strategy   every batch ...
=========  ==========================================================================================
mono       one language L for queries and passages; L uniform per micro-step among the source's
           languages that have enough groups and distinct passages (X-X-mono)
cross      per example, query language != passage language, both drawn uniformly from the group's
           languages (X-Y); groups with one language are never used
hybrid     per optimizer step: a mono step with probability ``alpha``, else a cross step (``alpha_schedule=
           "draw"``, the paper's); or exactly round(alpha x steps) mono steps in a seeded shuffled order
           (``"balanced"``: a short run's share is alpha, not a noisy draw of it)
mixed      per example, query language == passage language, drawn uniformly per example (LAReQA X-X)
=========  ==========================================================================================

Every batch holds each parallel group at most once (a translation of the positive must never be an
in-batch negative), and every optimizer step draws from ONE source, chosen in proportion to source size
(blocks per epoch = eligible groups // groups per step; the block order is shuffled per epoch).

**Passage identity.** No global batch of one micro-step holds two groups whose passages (or their
translations, or a hard negative and another example's positive) are the same: see
:mod:`polyret.training.conflicts`, which fills each batch and counts the groups it deferred.

**Epoch.** Each source's eligible groups are consumed in a fresh random order, each about once per epoch;
a source that runs short of groups fitting a batch's constraint (e.g. "has language L") starts a new
pass, so groups may repeat across batches, never within one. ``len(sampler)`` = batches per epoch.

**Distributed and accumulation.** The sampler generates one global stream in which optimizer step ``t``
is the ``grad_accum_steps * world_size`` consecutive batches ``[t*a*w, (t+1)*a*w)``, micro-step ``m``
is batches ``[m*w, (m+1)*w)``, and batch ``m*w + r`` belongs to rank ``r``: exactly how accelerate's
``BatchSamplerShard`` (used by the HF/ST trainer under DDP) deals batches to ranks. Step type and source
come from (seed, epoch, step) only and group draws from (seed, epoch) only, so every rank computes the
same stream; the ``w`` batches of a micro-step are disjoint in groups and share type, source and (mono)
language, so negatives gathered across devices never mix types. ``rank=None`` (default) yields the
whole stream, which is what the trainer needs; ``rank=r`` yields only rank r's batches, for loops that
do not shard themselves (do NOT combine with accelerate sharding).

**Resume.** Batches are a pure function of (config, seed, epoch, position). The ST/HF trainer resumes
by replaying the sampler and dropping the first ``k`` batches (``accelerate.skip_first_batches``); that
gives exactly the uninterrupted batches with no extra work. With ``ignore_data_skip=True`` or a custom
loop, save :meth:`state_dict` and call :meth:`load_state_dict` before iterating: the next ``__iter__``
of that epoch then starts at the saved position (using both would skip twice). Under multi-process
resume inside epoch e > 0, accelerate/transformers do not forward ``set_epoch`` through the
``SkipBatchSampler(BatchSamplerShard(...))`` wrappers; add :class:`SamplerEpochCallback` to the trainer.

Plugging into sentence-transformers' trainer (``ParallelBatchSampler.factory`` and
:class:`SamplerEpochCallback`): see :mod:`polyret.training.sampler_hooks`.

This module is over 400 lines because it is one algorithm: the docstring above is the sampling
specification, and :class:`ParallelBatchSampler`'s validation, plan, resume state and inspection share
one set of per-source arrays (the passage-conflict logic and the trainer plumbing live next door).
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections import OrderedDict, deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
from torch.utils.data import BatchSampler

from polyret.training.config import ALPHA_SCHEDULES
from polyret.training.conflicts import Conflicts, SourcePool
from polyret.training.pairs_dataset import PairIndex
from polyret.training.sampler_hooks import SamplerEpochCallback, SamplerFactory, find_sampler
from polyret.vocabulary import STRATEGIES

logger = logging.getLogger(__name__)

_STATE_VERSION = 1
_RECENT = 4096  # yielded batches remembered for yielded() / batch_info() (prefetch depth is far smaller)


@dataclass(frozen=True)
class BatchInfo:
    """What the sampler decided for one batch it yielded.

    Args:
        epoch, batch, step, micro_step, rank: where the batch sits (see the field comments).
        source: the training source of the step.
        kind: ``mono``, ``cross`` or ``mixed``.
        language: the language of a mono batch (None otherwise).
        deferred: groups deferred for a passage conflict while filling the micro-step's global batch.
    """

    epoch: int
    batch: int  # position in the global stream of this epoch
    step: int  # optimizer step within the epoch (same for all ranks and accumulated micro-batches)
    micro_step: int  # global micro-step within the epoch
    rank: int  # batch % world_size: the rank this batch is meant for
    source: str
    kind: str  # "mono" | "cross" | "mixed"
    language: str | None  # the language of a mono batch
    deferred: int = 0  # groups skipped (deferred) while filling this micro-step's global batch: passage conflicts


@dataclass(frozen=True)
class BatchView:
    """A batch decoded from its dataset indices alone (works wherever the PairIndex is).

    Args:
        sources, groups, query_langs, passage_langs: per example, its source, group id and languages.
    """

    sources: tuple[str, ...]
    groups: tuple[str, ...]
    query_langs: tuple[str, ...]
    passage_langs: tuple[str, ...]

    @property
    def kind(self) -> str:
        """Inferred from content: "mono", "cross", "mixed" (q==p, several languages) or "other"."""
        same = [q == p for q, p in zip(self.query_langs, self.passage_langs)]
        if all(same):
            return "mono" if len(set(self.query_langs)) == 1 else "mixed"
        return "cross" if not any(same) else "other"


class ParallelBatchSampler(BatchSampler):
    """Seeded, resumable, distributed-consistent batch sampler over a :class:`PairIndex` (see module doc).

    ``batch_size`` is per device. Raises ValueError for an unknown strategy, ``alpha`` outside [0, 1],
    a batch (``batch_size * world_size`` groups) larger than a source's usable groups or distinct passages
    (iteration raises it too when hard negatives leave too few mutually compatible groups), or — with
    ``strategy="cross"`` — a source whose pairs cannot form a cross-lingual batch (e.g. one language only:
    drop it from the sources or train it with mono/hybrid; silently excluding it would change the data
    mix). Sources limited to monolingual batches are listed in ``mono_only_sources`` and logged as a
    warning; under ``hybrid`` their steps are mono whatever the coin says (recorded in ``log``).

    The strategies are the batch types of Elmahdy, Lin, Ahmad 2024 (arXiv 2408.10536): ``hybrid`` draws
    each optimizer step's type, mono with probability ``alpha``, else cross.

    Args:
        index: the training pairs (:class:`~polyret.training.pairs_dataset.PairIndex`).
        batch_size: examples per batch, per device.
        strategy: one of :data:`polyret.vocabulary.STRATEGIES`.
        alpha: probability of a monolingual step under ``hybrid``.
        alpha_schedule: ``draw`` (each step mono with probability alpha) or ``balanced`` (exactly
            round(alpha x total_steps) mono steps, rounded half up, at seeded shuffled positions of the run;
            without ``total_steps``, of each epoch). A source that can only form mono batches still makes
            its steps mono under either (the realized share is in the batch log and the card).
        total_steps: the optimizer steps of the run (``balanced`` spreads its mono steps over them).
        seed: the seed every decision derives from (non-negative).
        world_size: devices sharing one global batch per micro-step.
        grad_accum_steps: micro-steps per optimizer step (all of one type and source).
        rank: yield only this rank's batches (None: the whole global stream, what the trainer needs).
        log_size: decisions kept in ``log`` (:class:`BatchInfo` per yielded batch).
    """

    is_polyret_sampler = True  # how sampler_hooks.find_sampler knows it without importing this module

    def __init__(
        self,
        index: PairIndex,
        batch_size: int,
        *,
        strategy: str = "hybrid",
        alpha: float = 0.5,
        alpha_schedule: str = "draw",
        total_steps: int | None = None,
        seed: int = 0,
        world_size: int = 1,
        grad_accum_steps: int = 1,
        rank: int | None = None,
        log_size: int = 100_000,
    ) -> None:
        self.check_arguments(strategy=strategy, alpha=alpha, batch_size=batch_size, world_size=world_size,
                             grad_accum_steps=grad_accum_steps, rank=rank, seed=seed,
                             alpha_schedule=alpha_schedule, total_steps=total_steps)  # fmt: skip
        super().__init__(range(0), batch_size=int(batch_size), drop_last=True)
        self.index = index
        self.strategy = strategy
        self.alpha = float(alpha)
        self.alpha_schedule = alpha_schedule
        self.total_steps = None if total_steps is None else int(total_steps)
        self._balanced_run: np.ndarray | None = None
        self.seed = int(seed)
        self.world_size = int(world_size)
        self.grad_accum_steps = int(grad_accum_steps)
        self.rank = rank
        self.epoch = 0
        self.log: deque[BatchInfo] = deque(maxlen=log_size)
        self._position = 0  # batches of this sampler's own stream consumed in the current epoch
        self._resume: tuple[int, int] | None = None
        # the last yielded batches by (epoch, position in the global stream), for yielded() and batch_info()
        self._recent: OrderedDict[tuple[int, int], tuple[BatchInfo, np.ndarray]] = OrderedDict()
        self._setup_sources()

    # ------------------------------------------------------------ validation
    @staticmethod
    def check_arguments(
        *,
        strategy: str,
        alpha: float,
        batch_size: int = 1,
        world_size: int = 1,
        grad_accum_steps: int = 1,
        rank: int | None = None,
        seed: int = 0,
        alpha_schedule: str = "draw",
        total_steps: int | None = None,
    ) -> None:
        """ValueError for an argument no data can make work (the checks that read no arrays).

        Args:
            strategy, alpha, batch_size, world_size, grad_accum_steps, rank, seed: as for the sampler.
            alpha_schedule, total_steps: as for the sampler.
        """
        if strategy not in STRATEGIES:
            raise ValueError(f"unknown strategy {strategy!r}; expected one of {STRATEGIES}")
        if not (isinstance(alpha, (int, float)) and 0.0 <= float(alpha) <= 1.0):
            raise ValueError(f"alpha must be in [0, 1], got {alpha!r}")
        if alpha_schedule not in ALPHA_SCHEDULES:
            raise ValueError(f"unknown alpha_schedule {alpha_schedule!r}; expected one of {ALPHA_SCHEDULES}")
        if total_steps is not None and (not isinstance(total_steps, (int, np.integer)) or total_steps < 1):
            raise ValueError(f"total_steps must be a positive integer or None, got {total_steps!r}")
        sizes = (("batch_size", batch_size), ("world_size", world_size), ("grad_accum_steps", grad_accum_steps))
        for name, value in sizes:
            if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if rank is not None and not 0 <= rank < world_size:
            raise ValueError(f"rank must be in [0, {world_size}), got {rank}")
        if not isinstance(seed, (int, np.integer)) or seed < 0:
            raise ValueError(f"seed must be a non-negative integer, got {seed!r}")

    def _setup_sources(self) -> None:
        ix, need = self.index, self.batch_size * self.world_size
        step_groups = need * self.grad_accum_steps
        self._conflicts = conflicts = Conflicts.of(ix)  # shared by every sampler over this index
        batch_words = f"batch_size {self.batch_size} x world_size {self.world_size}"
        self._multi: list[np.ndarray] = []  # local eligibility for cross batches
        self._has_lang: list[np.ndarray] = []  # local groups x languages
        self._mono_langs: list[np.ndarray] = []  # language codes usable for a mono batch
        self._can_cross: list[bool] = []
        blocks: list[int] = []
        mono_only: list[str] = []
        single_lang: list[str] = []
        for s, name in enumerate(ix.sources):
            groups = ix.source_groups(s)
            nlang = ix.group_nlang[groups]
            has_lang = ix.lang_slot[groups] >= 0
            multi = nlang >= 2
            # a language (or the cross pool) needs ``need`` groups AND ``need`` distinct passages
            lang_passages, cross_passages = conflicts.source_passages(s, groups, has_lang, multi)
            mono_langs = np.flatnonzero((has_lang.sum(axis=0) >= need) & (lang_passages >= need))
            can_cross = int(multi.sum()) >= need and cross_passages >= need
            self._multi.append(multi)
            self._has_lang.append(has_lang)
            self._mono_langs.append(mono_langs)
            self._can_cross.append(can_cross)
            if len(ix.source_languages(s)) == 1:
                single_lang.append(name)
            if self.strategy == "cross":
                if not can_cross:
                    if name in single_lang:
                        why = "its pairs exist in one language only"
                    elif int(multi.sum()) < need:
                        why = (
                            f"only {int(multi.sum())} of its groups have 2+ languages, fewer than the "
                            f"{need} groups of a batch ({batch_words})"
                        )
                    else:
                        why = (
                            f"its {int(multi.sum())} groups with 2+ languages hold only {cross_passages} distinct "
                            f"passages (a passage and its translations count once), fewer than the {need} groups "
                            f"of a batch ({batch_words})"
                        )
                    raise ValueError(
                        f"source {name!r} cannot yield cross-lingual batches: {why}; remove it from the "
                        f"cross-strategy sources or use strategy 'mono'/'hybrid'"
                    )
                pool = int(multi.sum())
            elif self.strategy == "mixed":
                pool = len(groups)
                passages = conflicts.distinct_passages(groups)
                if pool < need or passages < need:
                    raise ValueError(
                        f"batch of {need} groups ({batch_words}) is larger than source {name!r}'s {pool} groups "
                        f"holding {passages} distinct passages (a passage and its translations count once)"
                    )
            else:  # mono, hybrid
                pool = len(groups)
                if len(mono_langs) == 0:
                    raise ValueError(
                        f"batch of {need} groups ({batch_words}) is larger than the groups (or distinct passages) "
                        f"of every language of source {name!r} ({len(groups)} groups in all; at most "
                        f"{int(lang_passages.max()) if len(lang_passages) else 0} distinct passages in one language)"
                    )
                if not can_cross:
                    mono_only.append(name)
            blocks.append(max(1, pool // step_groups))
        self.single_language_sources: tuple[str, ...] = tuple(single_lang)
        self.mono_only_sources: tuple[str, ...] = tuple(mono_only) if self.strategy == "hybrid" else ()
        for name in self.mono_only_sources:
            logger.warning(
                "source %r can only yield monolingual batches (%s); under strategy 'hybrid' all its steps are "
                "mono, lowering the cross share below 1 - alpha",
                name,
                "pairs in one language only" if name in single_lang else "too few groups with 2+ languages",
            )
        self.blocks_per_source: tuple[int, ...] = tuple(blocks)
        self.steps_per_epoch: int = int(sum(blocks))

    # ---------------------------------------------------------------- sizes
    def __len__(self) -> int:
        per_step = self.grad_accum_steps * (self.world_size if self.rank is None else 1)
        return self.steps_per_epoch * per_step

    def set_epoch(self, epoch: int) -> None:
        if epoch != self.epoch:
            self._position = 0
        self.epoch = int(epoch)

    # ------------------------------------------------------------- the plan
    def _rng(self, epoch: int, *key: int) -> np.random.Generator:
        return np.random.default_rng(np.random.SeedSequence([self.seed, epoch, *key]))

    def step_plan(self, epoch: int) -> tuple[np.ndarray, np.ndarray]:
        """(source number, is-mono flag) per optimizer step of ``epoch``: a function of (seed, epoch) only."""
        sources = np.repeat(np.arange(len(self.index.sources)), self.blocks_per_source)
        sources = sources[self._rng(epoch, 1).permutation(len(sources))]
        if self.strategy == "hybrid":
            if self.alpha_schedule == "balanced":
                mono = self._balanced(epoch, len(sources))
            else:
                mono = self._rng(epoch, 2).random(len(sources)) < self.alpha
            mono |= ~np.asarray(self._can_cross)[sources]
        else:
            mono = np.full(len(sources), self.strategy == "mono")
        return sources, mono

    def _balanced_flags(self, n: int, *key: int) -> np.ndarray:
        """``n`` step flags, exactly floor(alpha x n + 0.5) of them True, at seeded shuffled positions."""
        flags = np.zeros(n, dtype=bool)
        order = np.random.default_rng(np.random.SeedSequence([self.seed, 5, *key])).permutation(n)
        flags[order[: mono_steps(self.alpha, n)]] = True
        return flags

    def _balanced(self, epoch: int, n: int) -> np.ndarray:
        """The mono flags of ``epoch``'s ``n`` steps under the balanced schedule: the run's flags (a function of
        seed, alpha and total_steps only, so every rank and every resume sees them) at the epoch's global
        steps; steps past ``total_steps`` (or every step without it) balanced within their epoch."""
        if self.total_steps is None:
            return self._balanced_flags(n, epoch)
        if self._balanced_run is None:
            self._balanced_run = self._balanced_flags(self.total_steps)
        run = self._balanced_run
        steps = epoch * n + np.arange(n)
        inside = steps < len(run)
        if inside.all():
            return run[steps]
        out = self._balanced_flags(n, epoch)
        out[inside] = run[steps[inside]]
        return out

    def _generate(self, epoch: int) -> Iterator[tuple[BatchInfo, list[int]]]:
        """The whole global stream of ``epoch`` with the decision behind each batch."""
        ix, bs, w, accum = self.index, self.batch_size, self.world_size, self.grad_accum_steps
        need = bs * w
        step_sources, step_mono = self.step_plan(epoch)
        pools: dict[int, SourcePool] = {}
        pick_rngs: dict[int, np.random.Generator] = {}
        batch_no = 0
        for step, (s, is_mono) in enumerate(zip(step_sources.tolist(), step_mono.tolist())):
            if s not in pools:
                pools[s] = SourcePool(ix.source_groups(s), self._rng(epoch, 3, s), self._conflicts, ix.sources[s])
                pick_rngs[s] = self._rng(epoch, 4, s)
            pool, rng = pools[s], pick_rngs[s]
            kind = "mono" if is_mono else ("cross" if self.strategy in ("cross", "hybrid") else "mixed")
            for micro in range(accum):
                lang: int | None = None
                if kind == "mono":
                    lang = int(self._mono_langs[s][rng.integers(len(self._mono_langs[s]))])
                    groups = pool.take(need, self._has_lang[s][:, lang])
                    q = p = ix.lang_slot[groups, lang].astype(np.int64)
                elif kind == "cross":
                    groups = pool.take(need, self._multi[s])
                    n = ix.group_nlang[groups]
                    u = rng.random((2, need))
                    q = (u[0] * n).astype(np.int64)
                    p = (u[1] * (n - 1)).astype(np.int64)
                    p += p >= q
                else:
                    groups = pool.take(need, np.ones(len(pool.groups), dtype=bool))
                    q = p = (rng.random(need) * ix.group_nlang[groups]).astype(np.int64)
                indices = ix.encode(groups, q, p).tolist()
                micro_step = step * accum + micro
                for r in range(w):
                    info = BatchInfo(
                        epoch=epoch,
                        batch=batch_no,
                        step=step,
                        micro_step=micro_step,
                        rank=r,
                        source=ix.sources[s],
                        kind=kind,
                        language=ix.languages[lang] if lang is not None else None,
                        deferred=pool.deferred,
                    )
                    yield info, indices[r * bs : (r + 1) * bs]
                    batch_no += 1

    def __iter__(self) -> Iterator[list[int]]:
        epoch = self.epoch
        skip = 0
        if self._resume is not None and self._resume[0] == epoch:
            skip = self._resume[1]
        self._resume = None
        own = 0  # position in this sampler's own stream
        self._position = skip
        for info, batch in self._generate(epoch):
            if self.rank is not None and info.rank != self.rank:
                continue
            own += 1
            if own <= skip:
                continue
            self._position = own
            self.log.append(info)
            self._recent[(epoch, info.batch)] = (info, np.asarray(batch, dtype=np.int64))
            while len(self._recent) > _RECENT:
                self._recent.popitem(last=False)
            yield batch

    def plan(self, epoch: int | None = None) -> list[BatchInfo]:
        """The decisions of every batch this sampler yields in ``epoch`` (default: current), without logging."""
        epoch = self.epoch if epoch is None else epoch
        return [i for i, _ in self._generate(epoch) if self.rank is None or i.rank == self.rank]

    # --------------------------------------------------------------- resume
    def _fingerprint(self) -> str:
        cfg = {
            "strategy": self.strategy,
            "alpha": self.alpha,
            **(
                {"alpha_schedule": self.alpha_schedule, "total_steps": self.total_steps} if self.alpha_schedule != "draw" else {}
            ),  # fmt: skip
            "seed": self.seed,
            "batch_size": self.batch_size,
            "world_size": self.world_size,
            "grad_accum_steps": self.grad_accum_steps,
            "rank": self.rank,
            "sources": list(self.index.sources),
            "groups": self.index.num_groups,
            "pairs": self.index.num_pairs,
            "identities": self.index.num_identities,  # batches keep passage identities apart (issue 9)
        }
        return hashlib.sha256(json.dumps(cfg, sort_keys=True).encode()).hexdigest()[:16]

    def state_dict(self, consumed: int | None = None) -> dict:
        """Where the sampler is: the epoch and how many of its batches that epoch has consumed.

        A DataLoader prefetches, so the sampler's own count runs ahead of training; a loop that knows how many
        batches it trained on in this epoch passes ``consumed``.
        """
        epoch, position = self.epoch, self._position if consumed is None else int(consumed)
        if position >= len(self):
            epoch, position = epoch + 1, 0  # a completed epoch resumes at the start of the next
        return {"version": _STATE_VERSION, "epoch": epoch, "position": position, "fingerprint": self._fingerprint()}

    def load_state_dict(self, state: dict) -> None:
        """Make the next ``__iter__`` continue where ``state`` was taken (same config and data required)."""
        if state.get("version") != _STATE_VERSION:
            raise ValueError(f"unsupported sampler state version {state.get('version')!r}")
        if state.get("fingerprint") != self._fingerprint():
            raise ValueError(
                "sampler state was saved with another configuration or data (strategy, alpha, seed, batch size, "
                "world size, accumulation, rank or sources differ)"
            )
        self.epoch = int(state["epoch"])
        self._position = int(state["position"])
        self._resume = (self.epoch, self._position)

    # -------------------------------------------------------------- inspect
    def yielded(self, epoch: int, batch: int) -> tuple[BatchInfo, np.ndarray] | None:
        """(decision, dataset indices) of the batch at position ``batch`` of ``epoch``'s global stream, if this
        sampler yielded it recently (the last few thousand), else None.

        Args:
            epoch: the epoch.
            batch: the position in that epoch's global stream (:attr:`BatchInfo.batch`).
        """
        return self._recent.get((int(epoch), int(batch)))

    def batch_info(self, batch: Sequence[int] | np.ndarray) -> BatchInfo | None:
        """The decision behind a batch this sampler yielded recently (the last few thousand), else None."""
        want = np.asarray(batch, dtype=np.int64)
        for info, indices in reversed(self._recent.values()):
            if np.array_equal(indices, want):
                return info
        return None

    def describe(self, batch: Sequence[int]) -> BatchView:
        d = self.index.decode(batch)
        ix = self.index
        return BatchView(
            tuple(ix.sources[i] for i in d.source.tolist()),
            tuple(ix.group_ids[i] for i in d.group.tolist()),
            tuple(ix.languages[i] for i in d.query_lang.tolist()),
            tuple(ix.languages[i] for i in d.passage_lang.tolist()),
        )

    # --------------------------------------------------------- ST plumbing
    @classmethod
    def factory(
        cls,
        index: PairIndex,
        *,
        strategy: str = "hybrid",
        alpha: float = 0.5,
        seed: int | None = None,
        world_size: int | None = None,
        grad_accum_steps: int = 1,
        log_size: int = 100_000,
        alpha_schedule: str = "draw",
        total_steps: int | None = None,
    ) -> SamplerFactory:
        """A callable for ``SentenceTransformerTrainingArguments(batch_sampler=...)`` (see module doc)."""
        return SamplerFactory(index, strategy, alpha, seed, world_size, grad_accum_steps, log_size,
                              alpha_schedule=alpha_schedule, total_steps=total_steps,
                              sampler_cls=ParallelBatchSampler)  # fmt: skip

    @staticmethod
    def find(obj) -> ParallelBatchSampler | None:
        """The ParallelBatchSampler inside a (prepared, skip-wrapped, sharded) DataLoader, if any."""
        return find_sampler(obj)


def mono_steps(alpha: float, steps: int) -> int:
    """The mono steps of a balanced hybrid schedule over ``steps`` steps: alpha x steps rounded half up.

    Args:
        alpha: the share of monolingual steps.
        steps: the optimizer steps.
    """
    return int(np.floor(alpha * steps + 0.5))


def batch_sampler_cost(sampler: ParallelBatchSampler, epochs: int = 1) -> float:
    """Seconds per batch to generate ``epochs`` epochs (for the <2%-of-a-step budget).

    Args:
        sampler: the sampler to time (its own state is not changed).
        epochs: epochs to generate.
    """
    import time

    start, n = time.perf_counter(), 0
    for e in range(epochs):
        for _ in sampler._generate(e):
            n += 1
    return (time.perf_counter() - start) / max(n, 1)


__all__ = [
    "STRATEGIES",
    "BatchInfo",
    "BatchView",
    "ParallelBatchSampler",
    "SamplerEpochCallback",
    "SamplerFactory",
    "batch_sampler_cost",
    "mono_steps",
]
