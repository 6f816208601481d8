"""Batch composition, statistics, determinism, resume, distribution and ST-trainer plumbing of the samplers."""

from __future__ import annotations

import itertools
import logging
import math

import numpy as np
import pytest

from polyret.data.records import DataError
from polyret.training.pairs_dataset import PairIndex, build_pairs_dataset
from polyret.training.samplers import ParallelBatchSampler, SamplerEpochCallback, batch_sampler_cost
from tests.helpers.pairs import make_source

LANGS = ("ar", "de", "en", "es", "zh")


@pytest.fixture(scope="module")
def index() -> PairIndex:
    return PairIndex([make_source("x", 400)])


def epoch_batches(sampler: ParallelBatchSampler, epoch: int = 0) -> list[list[int]]:
    sampler.set_epoch(epoch)
    return list(sampler)


# ------------------------------------------------------------------------------ dataset view
def test_dataset_view_round_trips_indices_to_texts():
    src = make_source("s", 10, ragged=True, negatives=True)
    ds, ix = build_pairs_dataset(src)
    assert ds.column_names == ["q", "s"] and len(ds) == ix.num_rows == ix.num_pairs * ix.num_slots
    groups = np.array([3, 4, 9])
    idx = ix.encode_langs(groups, np.array([0, 1, 3]), np.array([2, 1, 0]))  # ar->en, de->de, es->ar
    rows = ds.__getitems__(idx.tolist())
    assert [r["anchor"] for r in rows] == ["q|s|s3|ar", "q|s|s4|de", "q|s|s9|es"]
    assert [r["positive"] for r in rows] == ["p|s|s3|en", "p|s|s4|de", "p|s|s9|ar"]
    assert [r["negative"] for r in rows] == ["n|s|s3|en", "n|s|s4|de", "n|s|s9|ar"]  # negative in passage lang
    assert set(rows[0]) == {"anchor", "positive", "negative"}  # no id columns reach the collator
    assert ix.ref(int(idx[0])).__dict__ == {"source": "s", "group": "s3", "query_lang": "ar", "passage_lang": "en"}
    # Every padded row still reads (ST's model card scans the first rows).
    assert len(ds[: ix.num_rows]["anchor"]) == ix.num_rows
    with pytest.raises(KeyError):
        ix.encode_langs(np.array([0]), np.array([0]), np.array([2]))  # group s0 has only "ar"


def test_negative_column_policy():
    no_neg = make_source("a", 3)
    assert PairIndex([no_neg]).has_negatives is False
    assert "negative" not in build_pairs_dataset(no_neg)[0][0]
    with pytest.raises(DataError, match="group 'a0'"):
        PairIndex([no_neg], negatives=True)
    assert PairIndex([make_source("b", 3, negatives=True)], negatives=False).texts([0]).keys() == {"anchor", "positive"}


def test_index_memory_is_linear_in_pairs():
    ds, ix = build_pairs_dataset(make_source("m", 2000, langs=tuple("abcdefghijklmn")))
    assert ix.num_rows == 2000 * 14 * 14
    # Two zero-copy slices of one int64 array of num_pairs + num_slots values.
    buffers = {b.address for col in ds.data.table.columns for chunk in col.chunks for b in chunk.buffers() if b}
    assert len(buffers) == 1


# ------------------------------------------------------------------------- composition
def assert_no_dup_groups(sampler, batches):
    for b in batches:
        groups = sampler.describe(b).groups
        assert len(set(groups)) == len(groups) == sampler.batch_size


@pytest.mark.parametrize("strategy", ["mono", "cross", "hybrid", "mixed"])
def test_batch_composition(index, strategy):
    sampler = ParallelBatchSampler(index, 16, strategy=strategy, seed=3)
    batches = epoch_batches(sampler)
    assert len(batches) == len(sampler) == 400 // 16
    assert_no_dup_groups(sampler, batches)
    kinds = []
    for b, info in zip(batches, sampler.log):
        view = sampler.describe(b)
        if info.kind == "mono":
            assert set(view.query_langs) == set(view.passage_langs) == {info.language}
        elif info.kind == "cross":
            assert all(q != p for q, p in zip(view.query_langs, view.passage_langs))
        else:
            assert all(q == p for q, p in zip(view.query_langs, view.passage_langs))
            assert len(set(view.query_langs)) > 1  # language drawn per example
        assert view.kind == info.kind
        kinds.append(info.kind)
    expected = {"mono": {"mono"}, "cross": {"cross"}, "mixed": {"mixed"}, "hybrid": {"mono", "cross"}}[strategy]
    assert set(kinds) == expected
    if strategy == "mono":
        assert len({i.language for i in sampler.log}) > 2  # L varies across batches
    if strategy == "cross":  # both query and passage languages cover all languages
        views = [sampler.describe(b) for b in batches]
        assert set(itertools.chain(*(v.query_langs for v in views))) == set(LANGS)
        assert set(itertools.chain(*(v.passage_langs for v in views))) == set(LANGS)


def test_each_group_about_once_per_epoch(index):
    sampler = ParallelBatchSampler(index, 16, strategy="cross", seed=0)
    groups = [g for b in epoch_batches(sampler) for g in sampler.describe(b).groups]
    assert len(groups) == len(set(groups)) == 400  # full-language groups: exactly once


def test_mono_only_uses_groups_having_the_language():
    ragged = make_source("r", 300, ragged=True)  # group i has the first 1 + i % 5 languages
    sampler = ParallelBatchSampler(PairIndex([ragged]), 20, strategy="mono", seed=1)
    for _ in range(3):
        batches = epoch_batches(sampler, _)
        assert_no_dup_groups(sampler, batches)
        for b, info in zip(batches, list(sampler.log)[-len(batches) :]):
            assert info.epoch == _
            assert set(sampler.describe(b).query_langs) == {info.language}
    cross = ParallelBatchSampler(PairIndex([ragged]), 20, strategy="cross", seed=1)
    for b in epoch_batches(cross):
        assert all(int(g[1:]) % 5 >= 1 for g in cross.describe(b).groups)  # no single-language group


# -------------------------------------------------------------------------------- hybrid
@pytest.mark.parametrize("alpha", [0.3, 0.5])
def test_hybrid_alpha_ratio_within_binomial_bounds(alpha):
    ix = PairIndex([make_source("h", 2000)])
    sampler = ParallelBatchSampler(ix, 4, strategy="hybrid", alpha=alpha, seed=11)
    mono = sum(info.kind == "mono" for info in sampler.plan(0))
    n = len(sampler)
    assert n == 500
    n_total, mono_total = n, mono
    for epoch in range(1, 4):  # 2000 steps in all
        flags = sampler.step_plan(epoch)[1]
        mono_total += int(flags.sum())
        n_total += len(flags)
    sigma = math.sqrt(n_total * alpha * (1 - alpha))
    assert abs(mono_total - alpha * n_total) < 4 * sigma, (mono_total, n_total)


def test_hybrid_alpha_edges_are_pure(index):
    assert {i.kind for i in ParallelBatchSampler(index, 8, alpha=1.0).plan(0)} == {"mono"}
    assert {i.kind for i in ParallelBatchSampler(index, 8, alpha=0.0).plan(0)} == {"cross"}


# ----------------------------------------------------------------- determinism and resume
def test_same_seed_same_batches_other_seed_or_epoch_differs(index):
    a = epoch_batches(ParallelBatchSampler(index, 16, seed=5))
    b = epoch_batches(ParallelBatchSampler(index, 16, seed=5))
    c = epoch_batches(ParallelBatchSampler(index, 16, seed=6))
    d = epoch_batches(ParallelBatchSampler(index, 16, seed=5), epoch=1)
    assert a == b
    assert a != c and a != d


@pytest.mark.parametrize("k", [0, 1, 7, 24, 25])
def test_resume_equivalence(index, k):
    full = ParallelBatchSampler(index, 16, strategy="hybrid", seed=9)
    full.set_epoch(2)
    it = iter(full)
    head = [next(it) for _ in range(k)]
    state = full.state_dict()
    tail = list(it)
    assert state["epoch"] == (2 if k < 25 else 3)

    resumed = ParallelBatchSampler(index, 16, strategy="hybrid", seed=9)
    resumed.load_state_dict(state)
    resumed.set_epoch(state["epoch"])  # what the trainer does at epoch start: must not undo the resume
    assert list(resumed) == (tail if k < 25 else epoch_batches(full, 3))
    # Trainer-style resume (replay and drop the first k batches) gives the same batches.
    replay = ParallelBatchSampler(index, 16, strategy="hybrid", seed=9)
    replay.set_epoch(2)
    assert list(itertools.islice(iter(replay), k, None)) == tail
    assert head + tail == epoch_batches(ParallelBatchSampler(index, 16, strategy="hybrid", seed=9), 2)


def test_resume_with_accelerate_skip_first_batches(index):
    """The code path the HF trainer takes: accelerate wraps the sampler and skips k batches."""
    from accelerate.data_loader import SkipBatchSampler

    full = epoch_batches(ParallelBatchSampler(index, 16, seed=9), 1)
    fresh = ParallelBatchSampler(index, 16, seed=9)
    fresh.set_epoch(1)
    assert list(SkipBatchSampler(fresh, skip_batches=10)) == full[10:]


def test_state_dict_rejects_other_config(index):
    state = ParallelBatchSampler(index, 16, seed=1).state_dict()
    with pytest.raises(ValueError, match="another configuration"):
        ParallelBatchSampler(index, 16, seed=2).load_state_dict(state)


# ---------------------------------------------------------------------------- distributed
def test_distributed_consistency_world_size_2_with_accumulation(index):
    from accelerate.data_loader import BatchSamplerShard

    w, accum = 2, 2
    shards = []
    for rank in range(w):
        sampler = ParallelBatchSampler(index, 8, strategy="hybrid", seed=4, world_size=w, grad_accum_steps=accum)
        sampler.set_epoch(1)
        shard = BatchSamplerShard(sampler, num_processes=w, process_index=rank, split_batches=False)
        shards.append((sampler, list(shard)))
    (s0, b0), (s1, b1) = shards
    assert len(b0) == len(b1) == len(s0) // w == (400 // (8 * w * accum)) * accum
    info0 = [i for i in s0.log if i.rank == 0]
    info1 = [i for i in s1.log if i.rank == 1]
    assert len(info0) == len(b0)
    # The sampler's own rank view agrees with accelerate's sharding.
    own = ParallelBatchSampler(index, 8, strategy="hybrid", seed=4, world_size=w, grad_accum_steps=accum, rank=1)
    own.set_epoch(1)
    assert list(own) == b1 and len(own) == len(b1)
    for step_no in range(len(b0)):
        x, y = info0[step_no], info1[step_no]
        assert (x.kind, x.source, x.language, x.step) == (y.kind, y.source, y.language, y.step)
        assert not set(s0.describe(b0[step_no]).groups) & set(s1.describe(b1[step_no]).groups)
        assert s0.describe(b0[step_no]).kind == s1.describe(b1[step_no]).kind == x.kind
    # Type is fixed per optimizer step: the accumulated micro-batches of a step share it.
    by_step = {}
    for i in info0:
        by_step.setdefault(i.step, set()).add(i.kind)
    assert all(len(kinds) == 1 for kinds in by_step.values())
    assert {k for kinds in by_step.values() for k in kinds} == {"mono", "cross"}


# -------------------------------------------------------------------------- multi-source
def test_sources_in_proportion_to_size_and_single_language_source(caplog):
    big, small = make_source("big", 600), make_source("small", 200)
    en_only = make_source("en", 200, langs=("en",))
    ix = PairIndex([big, small, en_only])
    with caplog.at_level(logging.WARNING, logger="polyret.training.samplers"):
        sampler = ParallelBatchSampler(ix, 10, strategy="hybrid", seed=2)
    assert sampler.single_language_sources == ("en",)
    assert sampler.mono_only_sources == ("en",)
    assert any("'en'" in r.message and "monolingual" in r.message for r in caplog.records)
    batches = epoch_batches(sampler)
    counts = {name: sum(i.source == name for i in sampler.log) for name in ("big", "small", "en")}
    assert counts == {"big": 60, "small": 20, "en": 20}
    for b, info in zip(batches, sampler.log):
        view = sampler.describe(b)
        assert set(view.sources) == {info.source}  # one source per batch
        if info.source == "en":
            assert info.kind == "mono" and info.language == "en"
    # Source order is shuffled, not blocked.
    order = [i.source for i in sampler.log]
    assert order[:60] != ["big"] * 60
    with pytest.raises(ValueError, match="source 'en' cannot yield cross-lingual batches: its pairs exist in one"):
        ParallelBatchSampler(ix, 10, strategy="cross")
    assert ParallelBatchSampler(ix, 10, strategy="mono").mono_only_sources == ()


# ---------------------------------------------------------------------------- bad config
def test_bad_config_errors(index):
    with pytest.raises(ValueError, match="alpha"):
        ParallelBatchSampler(index, 8, alpha=1.5)
    with pytest.raises(ValueError, match="alpha"):
        ParallelBatchSampler(index, 8, alpha=-0.1)
    with pytest.raises(ValueError, match="unknown strategy"):
        ParallelBatchSampler(index, 8, strategy="bilingual")
    with pytest.raises(ValueError, match="larger than"):
        ParallelBatchSampler(index, 401, strategy="mono")
    with pytest.raises(ValueError, match="larger than"):
        ParallelBatchSampler(index, 201, strategy="mixed", world_size=2)
    with pytest.raises(ValueError, match="fewer than"):
        ParallelBatchSampler(index, 401, strategy="cross")
    with pytest.raises(ValueError, match="rank"):
        ParallelBatchSampler(index, 8, world_size=2, rank=2)
    with pytest.raises(ValueError, match="unknown strategy"):
        ParallelBatchSampler.factory(index, strategy="x")


def test_sampler_is_cheap(index):
    ix = PairIndex([make_source("c", 3000)])
    per_batch = batch_sampler_cost(ParallelBatchSampler(ix, 64, strategy="hybrid", seed=0), epochs=2)
    assert per_batch < 2e-3  # a training step is >= 100 ms; typical figure is ~0.1 ms


# ------------------------------------------------------------------------------ trainer
def test_sentence_transformers_trainer_sees_the_sampler_batches(tmp_path):
    import torch
    from sentence_transformers import SentenceTransformer, SentenceTransformerTrainer
    from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss
    from sentence_transformers.sentence_transformer.modules import StaticEmbedding
    from sentence_transformers.sentence_transformer.training_args import SentenceTransformerTrainingArguments
    from tokenizers import Tokenizer, models, pre_tokenizers

    torch.manual_seed(0)
    src = make_source("t", 48, negatives=True)
    train_dataset, ix = build_pairs_dataset(src)
    vocab = {"[UNK]": 0, "[PAD]": 1, "q": 2, "p": 3, "n": 4, "t": 5, "|": 6}
    vocab.update({lang: 7 + i for i, lang in enumerate(LANGS)})
    vocab.update({f"t{i}": len(vocab) + i for i in range(48)})
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Split("|", behavior="isolated")
    model = SentenceTransformer(modules=[StaticEmbedding(tok, embedding_dim=16)], device="cpu")

    factory = ParallelBatchSampler.factory(ix, strategy="hybrid", alpha=0.5)
    args = SentenceTransformerTrainingArguments(
        output_dir=str(tmp_path),
        per_device_train_batch_size=8,
        max_steps=3,
        seed=13,
        batch_sampler=factory,
        report_to="none",
        save_strategy="no",
        logging_steps=1,
        dataloader_num_workers=0,
        use_cpu=True,
    )
    trainer = SentenceTransformerTrainer(
        model=model,
        args=args,
        train_dataset=train_dataset,
        loss=MultipleNegativesRankingLoss(model),
        callbacks=[SamplerEpochCallback()],
    )
    seen: list[list[dict]] = []
    inner = trainer.data_collator

    class Recorder:
        def __getattr__(self, name):
            return getattr(inner, name)

        def __call__(self, features):
            seen.append(features)
            return inner(features)

    trainer.data_collator = Recorder()
    trainer.train()

    sampler = factory.last
    assert isinstance(sampler, ParallelBatchSampler) and sampler.seed == 13 and sampler.batch_size == 8
    assert len(seen) >= 3
    infos = list(sampler.log)[: len(seen)]
    for features, info in zip(seen[:3], infos):
        assert set(features[0]) == {"anchor", "positive", "negative"}
        parts = [(f["anchor"].split("|"), f["positive"].split("|"), f["negative"].split("|")) for f in features]
        groups = [q[2] for q, _, _ in parts]
        assert len(set(groups)) == len(groups) == 8
        assert all(q[2] == p[2] == n[2] and p[3] == n[3] for q, p, n in parts)
        qlangs, plangs = [q[3] for q, _, _ in parts], [p[3] for _, p, _ in parts]
        if info.kind == "mono":
            assert set(qlangs) == set(plangs) == {info.language}
        else:
            assert info.kind == "cross" and all(a != b for a, b in zip(qlangs, plangs))
    assert trainer.state.global_step == 3
    assert ParallelBatchSampler.find(trainer.get_train_dataloader()) is not None
