"""How :class:`~polyret.training.samplers.ParallelBatchSampler` plugs into sentence-transformers' trainer.

Plugging into sentence-transformers 6.2 (its trainer calls ``args.batch_sampler(dataset, batch_size=,
drop_last=, valid_label_columns=, generator=, seed=)`` for any callable that is not a BatchSamplers enum)::

    from polyret.training.pairs_dataset import build_pairs_dataset
    from polyret.training.samplers import ParallelBatchSampler, SamplerEpochCallback

    train_dataset, index = build_pairs_dataset([xquad_train, mmarco])
    args = SentenceTransformerTrainingArguments(
        output_dir="out", per_device_train_batch_size=64, gradient_accumulation_steps=1, seed=42,
        batch_sampler=ParallelBatchSampler.factory(index, strategy="hybrid", alpha=0.5, grad_accum_steps=1),
    )
    trainer = SentenceTransformerTrainer(model=model, args=args, train_dataset=train_dataset,
                                         loss=MultipleNegativesRankingLoss(model),
                                         callbacks=[SamplerEpochCallback()])
    trainer.train()
    sampler = ParallelBatchSampler.find(trainer.get_train_dataloader())  # or keep factory.last

The per-device batch size is the trainer's; ``seed`` defaults to the trainer's ``args.seed``; the world
size defaults to accelerate's ``PartialState().num_processes``; pass ``grad_accum_steps`` equal to
``args.gradient_accumulation_steps``. ``drop_last`` and ``generator`` are ignored: every batch is full
and the sampler owns its randomness. Datasets that are not the index view (an ``eval_dataset``) get a
plain sequential batch sampler.
"""

from __future__ import annotations

import math

from torch.utils.data import BatchSampler, SequentialSampler

from polyret.training.pairs_dataset import is_index_dataset


class SamplerFactory:
    """Builds the sampler when the ST trainer asks (train) and a sequential sampler for other datasets.

    Made by :meth:`ParallelBatchSampler.factory`; ``last`` is the sampler it built last.

    Args:
        index: the training pairs.
        strategy, alpha, grad_accum_steps, log_size: as for ``ParallelBatchSampler``.
        alpha_schedule, total_steps: as for ``ParallelBatchSampler``.
        seed: the sampler's seed (None: the trainer's ``args.seed``).
        world_size: devices (None: accelerate's process count).
    """

    def __init__(
        self,
        index,
        strategy,
        alpha,
        seed,
        world_size,
        grad_accum_steps,
        log_size,
        alpha_schedule="draw",
        total_steps=None,
        *,
        sampler_cls,
    ) -> None:
        self.index = index
        self.kwargs = dict(strategy=strategy, alpha=alpha, grad_accum_steps=grad_accum_steps, log_size=log_size,
                           alpha_schedule=alpha_schedule, total_steps=total_steps)  # fmt: skip
        self.seed = seed
        self.world_size = world_size
        self.last = None  # the ParallelBatchSampler built last
        self.sampler_cls = sampler_cls  # ParallelBatchSampler (passed in: this module never imports samplers)

        # Validate now, so a bad strategy/alpha fails when the arguments are built, not inside the trainer
        # (the argument checks only: building a sampler here would sort the index's arrays once more).
        sampler_cls.check_arguments(strategy=strategy, alpha=alpha, grad_accum_steps=grad_accum_steps,
                                             alpha_schedule=alpha_schedule, total_steps=total_steps)  # fmt: skip

    def __call__(
        self,
        dataset,
        batch_size: int,
        drop_last: bool = True,
        valid_label_columns: list[str] | None = None,
        generator=None,
        seed: int | None = 0,
    ) -> BatchSampler:
        if not is_index_dataset(dataset, self.index):
            return BatchSampler(SequentialSampler(dataset), batch_size=batch_size, drop_last=drop_last)
        world_size = self.world_size
        if world_size is None:
            from accelerate.state import PartialState

            world_size = PartialState().num_processes if PartialState._shared_state else 1
        sampler = self.sampler_cls(
            self.index,
            batch_size,
            seed=self.seed if self.seed is not None else int(seed or 0),
            world_size=world_size,
            **self.kwargs,
        )
        self.last = sampler
        return sampler


try:  # the callback is optional plumbing; transformers is a hard dependency of the trainer anyway
    from transformers import TrainerCallback
except ImportError:  # pragma: no cover
    TrainerCallback = object  # type: ignore[assignment,misc]


class SamplerEpochCallback(TrainerCallback):
    """Sets the sampler's epoch at each epoch start, also through the wrappers of a multi-process resume.

    Takes no arguments: pass ``SamplerEpochCallback()`` in the trainer's ``callbacks``.
    """

    def on_epoch_begin(self, args, state, control, train_dataloader=None, **kwargs):
        sampler = find_sampler(train_dataloader)
        if sampler is not None and state.epoch is not None:
            sampler.set_epoch(int(math.floor(state.epoch + 1e-9)))
        return control


def find_sampler(obj):
    """The polyret batch sampler (a class with ``is_polyret_sampler``) inside a (prepared, skip-wrapped,
    sharded) DataLoader, if any."""
    seen: set[int] = set()
    todo = [obj]
    while todo:
        cur = todo.pop()
        if cur is None or id(cur) in seen:
            continue
        seen.add(id(cur))
        if getattr(type(cur), "is_polyret_sampler", False):
            return cur
        for attr in ("batch_sampler", "sampler", "base_dataloader", "_loader", "dataloader"):
            try:
                todo.append(getattr(cur, attr, None))
            except Exception:  # noqa: BLE001 - some wrappers raise on missing attributes
                continue
    return None
