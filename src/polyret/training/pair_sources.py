"""The trainer's training sources, and the dev hold-out over them.

:func:`load_training_sources` is what ``train()`` (and the dry run) calls: every source of the config,
whatever its kind (XQuAD-R / MLQA-R, a JSONL / TSV file, mMARCO), becomes a
:class:`~polyret.data.pairstore.PairSource`, a view of integer rows over a memory-mapped pair store built
once by local rank 0 and mapped by every rank (:func:`polyret.data.pairs.load_pair_source`).
:func:`split_dev_sources` holds out dev groups from those views; the held-out groups are views too.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np

from polyret.data.pairs import load_pair_source, parse_source_spec
from polyret.data.pairstore import PairSource
from polyret.training.config import ConfigError, TrainConfig

__all__ = ["load_training_sources", "split_dev_sources"]


def load_training_sources(config: TrainConfig, *, cache_dir: str | os.PathLike | None = None) -> list[PairSource]:
    """Every source of ``config.train`` as an on-disk view (see the module docstring).

    ``config.max_triples_per_query`` limits mMARCO's triples per query (None: all).

    Args:
        config: the run's config (``train``, ``data_dir``, ``languages``, ``max_groups``, ``seed``, negatives).
        cache_dir: where pair stores are built (default ``polyret.paths.cache_dir()``).

    Raises:
        ConfigError: a source with no pairs, the same source twice, or ``max_triples_per_query`` without mMARCO.
    """
    if config.max_triples_per_query is not None and not any(parse_source_spec(s).kind == "mmarco" for s in config.train):
        raise ConfigError(f"max_triples_per_query applies to mmarco sources only; train is {list(config.train)}")
    sources: list[PairSource] = []
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


def split_dev_sources(sources: Sequence[PairSource], dev_groups: int, seed: int) -> tuple[list[PairSource], list[PairSource]]:
    """Hold out ``dev_groups`` parallel groups (all their languages), drawn across sources in proportion.

    Args:
        sources: the training sources.
        dev_groups: how many parallel groups to hold out (0: none).
        seed: the run's seed (the draw is a function of it alone).

    Returns:
        (training sources without the held-out groups; dev sources holding them, a source none of whose
        groups was drawn has no dev part).
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
    train: list[PairSource] = []
    dev: list[PairSource] = []
    for i, s in enumerate(sources):
        mask = np.zeros(int(sizes[i]), dtype=bool)
        mask[held[(held >= offsets[i]) & (held < offsets[i + 1])] - offsets[i]] = True
        train.append(s.select_groups(~mask))
        if mask.any():
            dev.append(s.select_groups(mask))
    return train, dev
