"""The trainer's training sources: on-disk pair stores for files and mMARCO, and the dev hold-out over them.

:func:`load_training_sources` is what ``train()`` calls instead of materialising Pair objects: a JSONL /
TSV file or an mMARCO copy becomes a :class:`~polyret.data.pairstore.PairSource` (a view of integer rows
over a memory-mapped store, built once by local rank 0, mapped by every rank), an XQuAD-R / MLQA-R set
stays a :class:`~polyret.data.records.PairGroups`. :func:`split_dev_sources` holds out dev groups from
either kind (:func:`polyret.training.dev.split_dev` is this draw for in-memory sources); the held-out groups (a few
hundred) come back as PairGroups, so ``dev_dataset`` is unchanged.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np

from polyret.data.pairstore import PairSource, load_pair_source
from polyret.data.records import PairGroups
from polyret.training.config import ConfigError, TrainConfig

__all__ = ["load_training_sources", "split_dev_sources"]

Source = PairGroups | PairSource


def load_training_sources(config: TrainConfig, *, cache_dir: str | os.PathLike | None = None) -> list[Source]:
    """Every source of ``config.train``, big ones as on-disk views (see the module docstring).

    ``config.max_triples_per_query`` limits mMARCO's triples per query (None: all).

    Args:
        config: the run's config (``train``, ``data_dir``, ``languages``, ``max_groups``, ``seed``, negatives).
        cache_dir: where pair stores are built (default ``polyret.paths.cache_dir()``).

    Raises:
        ConfigError: a source with no pairs, the same source twice, or ``max_triples_per_query`` without mMARCO.
    """
    if config.max_triples_per_query is not None and not any(s.partition(":")[0] == "mmarco" for s in config.train):
        raise ConfigError(f"max_triples_per_query applies to mmarco sources only; train is {list(config.train)}")
    sources: list[Source] = []
    for spec in config.train:
        pairs = load_pair_source(
            spec, data_dir=config.data_dir, languages=config.languages, max_groups=config.max_groups,
            seed=config.seed, hard_negatives=config.num_negatives > 0,
            max_triples_per_query=config.max_triples_per_query, cache_dir=cache_dir,
        )  # fmt: skip
        if not len(pairs):
            raise ConfigError(f"training source {spec!r} has no pairs (languages {config.languages})")
        sources.append(pairs)
    names = [s.name for s in sources]
    if len(set(names)) != len(names):
        raise ConfigError(f"training sources repeat: {names}")
    return sources


def split_dev_sources(sources: Sequence[Source], dev_groups: int, seed: int) -> tuple[list[Source], list[PairGroups]]:
    """Hold out ``dev_groups`` parallel groups, drawn across sources in proportion (as ``split_dev``).

    Args:
        sources: the training sources (PairGroups or on-disk views, in any mix).
        dev_groups: how many parallel groups to hold out (0: none).
        seed: the run's seed (the draw is a function of it alone).

    Returns:
        (training sources without the held-out groups, of the same kinds; dev sources holding them as
        PairGroups; a source none of whose groups was drawn has no dev part).
    """
    if dev_groups <= 0:
        return list(sources), []
    sizes = np.asarray([len(s) for s in sources], dtype=np.int64)
    total = int(sizes.sum())
    if dev_groups >= total:
        raise ConfigError(f"dev_groups={dev_groups} leaves no training data ({total} groups in all)")
    rng = np.random.default_rng(np.random.SeedSequence([seed, 7]))
    held = rng.choice(total, size=dev_groups, replace=False)
    offsets = np.concatenate([[0], np.cumsum(sizes)])
    train: list[Source] = []
    dev: list[PairGroups] = []
    for i, s in enumerate(sources):
        mask = np.zeros(int(sizes[i]), dtype=bool)
        mask[held[(held >= offsets[i]) & (held < offsets[i + 1])] - offsets[i]] = True
        if isinstance(s, PairSource):
            train.append(s.select_groups(~mask))
            if mask.any():
                dev.append(s.select_groups(mask).to_pair_groups())
            continue
        items = list(s.groups.items())
        train.append(PairGroups(s.name, {g: v for j, (g, v) in enumerate(items) if not mask[j]}))
        if mask.any():
            dev.append(PairGroups(s.name, {g: v for j, (g, v) in enumerate(items) if mask[j]}))
    return train, dev
