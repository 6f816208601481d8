"""PairIndex over on-disk pair stores: a pair file's view and the same pairs as Pair objects (written to their
own store) give the same arrays, texts and batches; identity codes as the definition says."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from polyret.data.pairs import load_pair_source
from polyret.data.pairstore import PairSource
from polyret.data.records import DataError, PairGroups
from polyret.training.config import ConfigError
from polyret.training.pair_sources import split_dev_sources
from polyret.training.pairs_dataset import PairIndex, build_pairs_dataset
from polyret.training.samplers import ParallelBatchSampler
from tests.helpers.pairs import reference_identity_codes, reference_pairs, synthetic_rows

ARRAYS = ("pair_positive", "pair_negative", "pair_lang", "pair_group", "group_start", "group_nlang", "group_source",
          "source_group_start", "lang_slot")  # fmt: skip


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("POLYRET_CACHE_DIR", str(tmp_path / "cache"))


def _file(tmp_path: Path, name: str, rows: list[dict]) -> str:
    path = tmp_path / name
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return str(path)


def assert_same_index(a: PairIndex, b: PairIndex) -> None:
    for name in ARRAYS:
        x, y = getattr(a, name), getattr(b, name)
        assert x.dtype == y.dtype and np.array_equal(x, y), name
    for name in ("sources", "languages", "num_pairs", "num_identities", "num_negatives", "negative_columns", "num_slots"):
        assert getattr(a, name) == getattr(b, name), name
    assert list(a.group_ids) == list(b.group_ids)
    everything = np.arange(a.num_rows)
    assert a.texts(everything) == b.texts(everything)


@pytest.mark.parametrize("negatives", [None, 0, 1])
def test_store_index_equals_the_pair_object_index(tmp_path, negatives):
    rows = [r | {"negative": r.get("negative") or f"fill {r['lang']}"} for r in synthetic_rows(120)]
    path = _file(tmp_path, "a.jsonl", rows)
    reference = reference_pairs(path, max_groups=90, seed=1)
    memory = PairIndex([reference], negatives=negatives)
    disk = PairIndex([load_pair_source(path, max_groups=90, seed=1)], negatives=negatives)
    assert_same_index(memory, disk)
    assert disk.ref(5) == memory.ref(5)
    pos, neg = reference_identity_codes([reference], disk.num_negatives)
    assert np.array_equal(disk.pair_positive, pos) and np.array_equal(disk.pair_negative, neg)


def test_mixed_sources_and_the_sampler_sees_the_same_batches(tmp_path):
    a = _file(tmp_path, "a.jsonl", synthetic_rows(150, seed=1))
    b = _file(tmp_path, "b.jsonl", synthetic_rows(90, langs=("en", "es"), seed=2))
    memory = PairIndex([reference_pairs(a), reference_pairs(b)])
    mixed = PairIndex([load_pair_source(a), reference_pairs(b)])
    disk = PairIndex([load_pair_source(a), load_pair_source(b)])
    assert_same_index(memory, mixed)
    assert_same_index(memory, disk)
    for strategy in ("hybrid", "cross", "mixed"):
        batches = [
            list(ParallelBatchSampler(ix, 6, strategy=strategy, seed=4, world_size=2, grad_accum_steps=2))
            for ix in (memory, disk)
        ]
        assert batches[0] == batches[1] and len(batches[0]) > 4
        assert [memory.texts(x) for x in batches[0][:6]] == [disk.texts(x) for x in batches[1][:6]]
    cross_source = [0, disk.num_pairs - 1, disk.num_pairs * 2 - 1]  # rows of both sources in one fetch
    assert disk.texts(cross_source) == memory.texts(cross_source)


def test_the_dataset_view_reads_texts_from_the_store(tmp_path):
    rows = [{k: v for k, v in r.items() if k != "negative_id"} | {"negative": ["x " + r["lang"], "y " + r["lang"]]}
            for r in synthetic_rows(30)]  # fmt: skip
    src = load_pair_source(_file(tmp_path, "a.jsonl", rows))
    dataset, index = build_pairs_dataset(src, negatives=2)
    assert len(dataset) == index.num_rows
    row = dataset[index.encode_langs([0], [index.lang_slot[0].argmax()], [index.lang_slot[0].argmax()])[0]]
    assert set(row) == {"anchor", "positive", "negative_1", "negative_2"} and row["negative_2"].startswith("y ")
    with pytest.raises(DataError, match=r"negatives=3 but a pair has only 2 \(source '.*a\.jsonl': group"):
        PairIndex([src], negatives=3)


def test_dev_split_over_store_views_draws_groups_in_proportion(tmp_path):
    a = _file(tmp_path, "a.jsonl", synthetic_rows(60, seed=5))
    b = _file(tmp_path, "b.jsonl", synthetic_rows(40, seed=6))
    memory = [reference_pairs(a), reference_pairs(b)]
    disk = [load_pair_source(a), load_pair_source(b)]
    got_train, got_dev = split_dev_sources(disk, 17, seed=9)
    assert all(isinstance(s, PairSource) for s in got_train + got_dev)
    # the draw, by its definition: 17 of all the groups (sources in order), seeded by (seed, 7)
    ids = [(s.name, g) for s in memory for g in s.groups]
    held = np.random.default_rng(np.random.SeedSequence([9, 7])).choice(len(ids), size=17, replace=False)
    want_dev = [PairGroups(s.name, {g: v for g, v in s.groups.items() if ids.index((s.name, g)) in held}) for s in memory]
    want_train = [PairGroups(s.name, {g: v for g, v in s.groups.items() if ids.index((s.name, g)) not in held})
                  for s in memory]  # fmt: skip
    assert [(d.name, d.to_pair_groups().groups) for d in got_dev] == [(d.name, d.groups) for d in want_dev if d.groups]
    assert_same_index(PairIndex(want_train), PairIndex(got_train))
    assert split_dev_sources(disk, 0, seed=9) == (disk, [])
    with pytest.raises(ConfigError, match="leaves no training data"):
        split_dev_sources(disk, 100, seed=9)


def test_per_pair_memory_is_integer_arrays(tmp_path):
    src = load_pair_source(_file(tmp_path, "a.jsonl", synthetic_rows(400)))
    index = PairIndex([src])
    assert not hasattr(index, "_queries") and type(index.group_ids).__name__ == "GroupIds"
    texts = index._parts_texts[0]
    assert type(texts).__name__ == "_StoreTexts"  # texts stay in the memory-mapped Arrow table
    held = sum(getattr(index, n).nbytes for n in ARRAYS)
    assert held < 80 * index.num_pairs  # O(1) integers per pair


def test_the_dataset_view_is_fingerprinted_without_pickling_the_index(tmp_path, monkeypatch):
    """datasets hashes a transform by pickling it: for the index that was ~600 B per pair of transient memory."""
    from polyret.training.conflicts import Conflicts

    path = _file(tmp_path, "a.jsonl", synthetic_rows(60))
    index = PairIndex([load_pair_source(path)])
    pickled = []

    def refuse(self, protocol):
        pickled.append(protocol)
        raise AssertionError("the PairIndex was pickled")

    monkeypatch.setattr(PairIndex, "__reduce_ex__", refuse)
    dataset = index.to_dataset()
    assert not pickled
    assert dataset[0].keys() >= {"anchor", "positive"} and dataset[0]["anchor"] == index.texts([0])["anchor"][0]
    other = PairIndex([load_pair_source(path, max_groups=30, seed=1)])
    assert other.fingerprint() != index.fingerprint() and other.fingerprint() == PairIndex(
        [load_pair_source(path, max_groups=30, seed=1)]).fingerprint()  # fmt: skip
    # every sampler over one index shares one Conflicts (the plan's, the trainer's)
    a = ParallelBatchSampler(index, 4, strategy="hybrid", seed=0)
    b = ParallelBatchSampler(index, 2, strategy="mono", seed=1)
    assert a._conflicts is b._conflicts is Conflicts.of(index)


def test_the_index_is_built_once_and_memory_mapped(tmp_path, monkeypatch):
    from polyret.paths import COMPLETE_MARKER
    from polyret.training.conflicts import Conflicts
    from polyret.training.index_cache import cached_pair_index, index_folder

    a = _file(tmp_path, "a.jsonl", synthetic_rows(150, seed=1))
    b = _file(tmp_path, "b.jsonl", synthetic_rows(90, langs=("en", "es"), seed=2))
    views = [load_pair_source(a, max_groups=100, seed=3), load_pair_source(b)]
    built = PairIndex(views, negatives=0)
    cached = cached_pair_index(views, negatives=0)
    assert_same_index(built, cached)
    assert all(not getattr(cached, name).flags.writeable for name in ARRAYS)  # read-only maps of the files
    for name in Conflicts.ARRAYS:
        assert np.array_equal(getattr(Conflicts(built), name), getattr(Conflicts.of(cached), name)), name
    one = [list(x) for x in ParallelBatchSampler(built, 8, strategy="hybrid", seed=4, world_size=2)]
    assert one == [list(x) for x in ParallelBatchSampler(cached, 8, strategy="hybrid", seed=4, world_size=2)]
    assert cached.ref(7) == built.ref(7) and cached.to_dataset()[3] == built.to_dataset()[3]

    folder = index_folder(views, 0)
    assert (folder / COMPLETE_MARKER).is_file()
    with monkeypatch.context() as patch:
        patch.setattr(PairIndex, "__init__", lambda *a, **k: (_ for _ in ()).throw(AssertionError("rebuilt")))
        assert_same_index(built, cached_pair_index(views, negatives=0))  # the second run maps the files
    other = [load_pair_source(a, max_groups=100, seed=4), load_pair_source(b)]  # another view: another folder
    assert index_folder(other, 0) != folder and index_folder(views, None) != folder
    (folder / COMPLETE_MARKER).unlink()  # an interrupted build is never read: it is built again
    assert_same_index(built, cached_pair_index(views, negatives=0))
    assert (folder / COMPLETE_MARKER).is_file()
    memory = reference_pairs(a)  # Pair objects: written to their store, and their index cached as any other
    before = sorted((tmp_path / "cache" / "pairindex").iterdir())
    assert_same_index(PairIndex([load_pair_source(a)]), cached_pair_index([memory]))
    assert len(sorted((tmp_path / "cache" / "pairindex").iterdir())) == len(before) + 1


def test_a_large_index_is_built_in_a_child_process(tmp_path, monkeypatch):
    """From CHILD_BUILD_MIN_PAIRS pairs the index is built in a spawned child (the trainer's own peak then
    holds none of the build's temporaries, bench/bench_pair_index_reuse.py): the same arrays as in
    process, and the child's errors reach the caller as the same DataError."""
    import polyret.training.index_cache as index_cache
    from polyret.training.conflicts import Conflicts

    monkeypatch.setattr(index_cache, "CHILD_BUILD_MIN_PAIRS", 1)

    def not_here(*args, **kwargs):
        raise AssertionError("the index was written in the trainer's process")

    monkeypatch.setattr(index_cache, "_write", not_here)  # the spawned child imports the module afresh
    a = _file(tmp_path, "a.jsonl", synthetic_rows(120, seed=7))
    views = [load_pair_source(a, seed=3)]
    built = PairIndex(views, negatives=0)
    cached = index_cache.cached_pair_index(views, negatives=0)
    assert_same_index(built, cached)
    for name in Conflicts.ARRAYS:
        assert np.array_equal(getattr(Conflicts(built), name), getattr(Conflicts.of(cached), name)), name
    with pytest.raises(DataError):  # no hard negatives in these rows: the child's DataError, re-raised here
        index_cache.cached_pair_index(views, negatives=3)
