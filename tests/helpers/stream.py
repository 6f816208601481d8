"""What a training run would train on, as plain JSON: the examples the trainer's sampler yields, the dev set.

:func:`training_stream` goes the trainer's way from a ``TrainConfig`` (``load_training_sources`` ->
``split_sources`` -> ``cached_pair_index`` -> ``resolve_plan`` -> the sampler at the plan's batch) without
a model, and records per batch its kind, language, sources, groups, languages and texts, and the held-out
dev groups with the dev batches' texts. ``tests/training/test_training_stream.py`` compares it with golden
files written before issue 20's restructure (one training-source path): the same config must give the same
stream, example for example.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from polyret.training.config import TrainConfig

SHOWN = 3  # batches recorded in full; the rest of the first ``batches`` as one digest


def _clean(value, tmp: str):
    if isinstance(value, str):
        return value.replace(tmp, "<tmp>")
    if isinstance(value, (list, tuple)):
        return [_clean(v, tmp) for v in value]
    if isinstance(value, dict):
        return {k: _clean(v, tmp) for k, v in value.items()}
    return value


def training_stream(config: TrainConfig, *, batches: int = 20, tmp: str = "", texts: bool = True) -> dict:
    """The first ``batches`` batches the trainer's sampler yields for ``config`` (one process), and its dev set.

    Args:
        config: the run's config (its sources must be on disk).
        batches: batches recorded (the first :data:`SHOWN` in full, then a digest of all of them).
        tmp: a temporary folder path replaced by ``<tmp>`` in what is recorded (source names are paths).
        texts: record the first batches' texts (False: digests only, for data that must not be copied).
    """
    from polyret.training.dev import dev_dataset
    from polyret.training.index_cache import cached_pair_index
    from polyret.training.pair_sources import load_training_sources
    from polyret.training.plan import resolve_plan, split_sources
    from polyret.training.samplers import ParallelBatchSampler

    sources = load_training_sources(config)
    train_sources, dev_sources = split_sources(config, sources, 1)
    index = cached_pair_index(train_sources, negatives=config.num_negatives)
    plan = resolve_plan(config, index, world_size=1, dev_groups=sum(len(s) for s in dev_sources), precision="fp32")
    sampler = ParallelBatchSampler(index, plan.batch.per_device, strategy=config.strategy, alpha=config.alpha,
                                   alpha_schedule=config.alpha_schedule, total_steps=plan.total_steps,
                                   seed=config.seed, world_size=1, grad_accum_steps=plan.batch.grad_accum_steps)  # fmt: skip
    out: dict = {
        "languages": list(index.languages),
        "sources": list(index.sources),
        "groups": index.num_groups,
        "pairs": index.num_pairs,
        "identities": index.num_identities,
        "negatives": index.num_negatives,
        "steps_per_epoch": plan.steps_per_epoch,
        "total_steps": plan.total_steps,
        "batches": [],
    }
    digest = hashlib.sha256()
    for n, batch in enumerate(sampler):
        if n >= batches:
            break
        info = sampler.log[-1]
        view = sampler.describe(batch)
        rows = index.decode(batch).passage_row
        codes = {"pos": index.pair_positive[rows].tolist(), "neg": index.pair_negative[rows].tolist()}
        record = {"kind": info.kind, "language": info.language, "source": info.source, "groups": list(view.groups),
                  "query_langs": list(view.query_langs), "passage_langs": list(view.passage_langs),
                  "deferred": info.deferred, **codes, **index.texts(batch)}  # fmt: skip
        record = _clean(record, tmp)
        digest.update(json.dumps(record, sort_keys=True, ensure_ascii=False).encode())
        if n < SHOWN:
            out["batches"].append(record if texts else hashlib.sha256(json.dumps(record, sort_keys=True).encode()).hexdigest())
    out["stream_sha256"] = digest.hexdigest()
    out["dev"] = {"sources": [], "sha256": None}
    if dev_sources:
        from polyret.training.pairs_dataset import PairIndex

        dev_index = PairIndex(dev_sources)
        out["dev"]["sources"] = [{"name": s.name, "groups": len(s)} for s in dev_sources]
        ids = list(dev_index.group_ids)
        out["dev"]["group_ids"] = ids if texts else hashlib.sha256(json.dumps(ids).encode()).hexdigest()
        rows = dev_dataset(dev_sources, config, per_device=plan.dev_per_device, world_size=1)
        dev_rows = _clean(rows.to_dict(), tmp)
        out["dev"]["sha256"] = hashlib.sha256(json.dumps(dev_rows, sort_keys=True, ensure_ascii=False).encode()).hexdigest()
        out["dev"]["first_rows"] = {k: v[:4] for k, v in dev_rows.items()} if texts else None
    return _clean(out, tmp)


def write_golden(path: Path, streams: dict) -> None:
    """Write ``streams`` (name -> :func:`training_stream`) as indented JSON."""
    path.write_text(json.dumps(streams, indent=1, ensure_ascii=False, sort_keys=True) + "\n", encoding="utf-8")
