"""Issue 9, visibility: the batch log records passage identities and deferrals; audit_batches flags false negatives."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest

from polyret.batchlog import BatchRecorder, batch_log_path
from polyret.data.records import DataError, Pair, PairGroups
from polyret.training import audit_batches
from polyret.training.pairs_dataset import PairIndex
from polyret.training.samplers import ParallelBatchSampler

LANGS = ("de", "en", "fr")


def shared_source(n_groups: int = 120) -> PairGroups:
    """Groups g and g + n/2 share one passage (id P<g mod n/2>), in every language; negatives are others' passages."""
    half = n_groups // 2
    groups = {}
    for g in range(n_groups):
        pid, neg = g % half, (g * 7 + 3) % half
        groups[f"g{g}"] = {
            lang: Pair(f"g{g}", lang, f"q{g}{lang}", f"p{pid}{lang}", f"p{neg}{lang}", "s",
                       positive_id=f"P{pid}", negative_id=f"P{neg}")
            for lang in LANGS
        }  # fmt: skip
    return PairGroups("s", groups)


def write_log(out: Path, index: PairIndex, sampler: ParallelBatchSampler, *, with_factory: bool = True) -> None:
    """What train() logs, without a trainer: each yielded batch becomes an entry of its rank's log."""
    out.mkdir(parents=True, exist_ok=True)
    w, accum = sampler.world_size, sampler.grad_accum_steps
    recorder = BatchRecorder(index)
    lines: list[list[str]] = [[] for _ in range(w)]
    for b, batch in enumerate(sampler):
        entry = recorder.entry(batch, sampler.batch_info(batch) if with_factory else None)
        step = b // (w * accum) + 1
        lines[b % w].append(json.dumps({"step": step, "rank": b % w, "world_size": w, **entry}))
    for rank in range(w):
        batch_log_path(out, rank).write_text("".join(line + "\n" for line in lines[rank]), encoding="utf-8")


def group_only(index: PairIndex) -> PairIndex:
    """The old behaviour: the same index with every passage distinct, so only groups are kept apart."""
    old = PairIndex.__new__(PairIndex)
    old.__dict__.update(index.__dict__)
    old.pair_positive = np.arange(index.num_pairs, dtype=np.int32)
    old.pair_negative = np.arange(index.num_pairs, 2 * index.num_pairs, dtype=np.int32)[:, None]
    old.num_identities = 2 * index.num_pairs
    return old


@pytest.mark.parametrize("world_size", [1, 2])
def test_old_sampler_logs_are_flagged_and_new_ones_are_clean(tmp_path, world_size):
    index = PairIndex([shared_source()])
    old = ParallelBatchSampler(group_only(index), 16 // world_size, strategy="hybrid", seed=0, world_size=world_size)
    write_log(tmp_path / "old", index, old, with_factory=False)
    report = audit_batches(tmp_path / "old")
    assert report.world_size == world_size and report.global_batches == len(old) // world_size
    assert not report.clean and report.conflicting_batches > 0 and report.repeated_positives > 0
    assert report.negatives_are_positives > 0 and report.problems and report.deferred is None
    assert "with false negatives" in report.summary()

    new = ParallelBatchSampler(index, 16 // world_size, strategy="hybrid", seed=0, world_size=world_size)
    write_log(tmp_path / "new", index, new)
    report = audit_batches(tmp_path / "new")
    assert report.clean and report.global_batches == len(new) // world_size and report.examples == 16 * report.global_batches
    assert report.deferred is not None and report.deferred > 0
    lines = [json.loads(x) for x in batch_log_path(tmp_path / "new").read_text().splitlines()]
    assert all(len(e["pos"]) == len(e["neg"]) == 16 // world_size and "deferred" in e for e in lines)


def test_a_conflict_across_ranks_is_a_conflict(tmp_path):
    """Each rank's batch alone is clean; together (negatives are gathered across devices) they are not."""
    out = tmp_path / "run"
    out.mkdir()
    for rank, pos in enumerate(([1, 2, 3], [4, 5, 1])):
        entry = {"step": 1, "rank": rank, "world_size": 2, "kind": "mono", "size": 3, "pos": pos}
        batch_log_path(out, rank).write_text(json.dumps(entry) + "\n", encoding="utf-8")
    report = audit_batches(out)
    assert report.global_batches == 1 and report.repeated_positives == 1 and not report.clean
    batch_log_path(out, 1).unlink()
    report = audit_batches(out)
    assert report.clean and report.missing_ranks == [1]
    assert "rank logs missing: [1]" in report.summary()


def test_logs_that_cannot_be_audited_are_plain_errors(tmp_path):
    with pytest.raises(DataError, match=r"batches\.jsonl: no batch log"):
        audit_batches(tmp_path)
    batch_log_path(tmp_path).write_text('{"step": 1, "kind": "mono"}\n', encoding="utf-8")
    with pytest.raises(DataError, match=r"batches\.jsonl:1: no passage identity codes"):
        audit_batches(tmp_path)
    batch_log_path(tmp_path).write_text('{"step": 1, "pos": [1]}\n{oops\n', encoding="utf-8")
    with pytest.raises(DataError, match=r"batches\.jsonl:2: not JSON"):
        audit_batches(tmp_path)


def test_a_training_run_logs_identities_and_audits_clean(tiny_model_dir, tmp_path):
    from polyret.training import train
    from polyret.training.config import TrainConfig

    # groups g and g+20 have the same positive text in every language (no ids: the exact-text fallback)
    rng = random.Random(0)
    words = "the capital city of river mountain country der die stadt fluss la ciudad rio".split()
    path = tmp_path / "pairs.jsonl"
    with open(path, "w", encoding="utf-8") as fh:
        for g in range(40):
            for lang in LANGS:
                positive = f"{lang} passage {g % 20} " + " ".join(words[(g % 20 + i) % len(words)] for i in range(4))
                row = {"id": f"g{g}", "lang": lang, "query": f"{lang} {rng.choice(words)} {g}", "positive": positive}
                fh.write(json.dumps(row) + "\n")
    config = TrainConfig(model=tiny_model_dir, train=[str(path)], output_dir=str(tmp_path / "run"), batch_size=8,
                         lr=5e-4, warmup_ratio=0.0, max_steps=4, logging_steps=2, precision="fp32", seed=3,
                         dev_groups=0)  # fmt: skip
    model = train(config)
    report = audit_batches(tmp_path / "run")
    assert report.clean and report.global_batches == 4 and report.examples == 32
    assert report.deferred is not None and report.deferred > 0  # the duplicates were there and avoided
    assert audit_batches(model).clean  # the model folder carries rank 0's log
