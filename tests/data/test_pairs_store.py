"""The on-disk pair store: the pairs of an in-memory reading of the file, built once per fingerprint, never half-trusted."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from polyret.data import pairstore
from polyret.data.pairs import load_pair_source, load_pairs
from polyret.data.pairstore import PairSource, pair_file_store
from polyret.data.records import DataError
from polyret.paths import COMPLETE_MARKER
from tests.helpers.pairs import reference_pairs, synthetic_rows


def _write(path: Path, rows: list) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.fixture()
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("POLYRET_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


def _stores(cache: Path) -> list[Path]:
    return sorted(p for p in (cache / "pairs").iterdir() if not p.name.startswith("."))


@pytest.mark.parametrize("languages, max_groups", [(None, None), (["fr", "de"], None), (None, 25), (["en"], 10)])
def test_store_view_gives_the_pairs_of_the_jsonl_loader(tmp_path, cache, languages, max_groups):
    path = _write(tmp_path / "pairs.jsonl", synthetic_rows(80))
    want = reference_pairs(path, languages=languages, max_groups=max_groups, seed=3)
    view = load_pair_source(str(path), languages=languages, max_groups=max_groups, seed=3)
    assert isinstance(view, PairSource) and view.name == want.name and len(view) == len(want)
    got = view.to_pair_groups()
    assert list(got.groups) == list(want.groups)
    for gid, by_lang in want.groups.items():
        assert got.groups[gid] == by_lang  # every field of every Pair, and language order
    assert view.languages == want.languages


def test_second_open_maps_the_finished_store_and_an_edit_builds_a_new_one(tmp_path, cache, monkeypatch):
    path = _write(tmp_path / "pairs.jsonl", synthetic_rows(20))
    first = pair_file_store(path)
    assert first.num_rows == sum(1 for _ in path.open()) and (first.folder / COMPLETE_MARKER).is_file()
    built = []
    real = pairstore._build
    monkeypatch.setattr(pairstore, "_build", lambda *a, **k: built.append(a) or real(*a, **k))
    again = pair_file_store(path)
    assert built == [] and again.folder == first.folder
    assert isinstance(again.group, np.memmap) and isinstance(again.pos, np.memmap)  # mapped, not read
    _write(path, synthetic_rows(21))
    edited = pair_file_store(path)
    assert len(built) == 1 and edited.folder != first.folder and edited.num_rows != first.num_rows
    assert len(_stores(cache)) == 2


def test_an_interrupted_build_is_never_trusted(tmp_path, cache, monkeypatch):
    path = _write(tmp_path / "pairs.jsonl", synthetic_rows(20))
    real_finish = pairstore.StoreWriter.finish

    def crash(self, *a, **k):
        raise KeyboardInterrupt  # killed half way: texts written, arrays not

    monkeypatch.setattr(pairstore.StoreWriter, "finish", crash)
    with pytest.raises(KeyboardInterrupt):
        pair_file_store(path)
    assert not (cache / "pairs").exists() or _stores(cache) == []  # nothing at the final name
    monkeypatch.setattr(pairstore.StoreWriter, "finish", real_finish)
    store = pair_file_store(path)
    assert store.num_rows > 0
    (store.folder / COMPLETE_MARKER).unlink()  # a folder without its marker is rebuilt, not read
    with pytest.raises(DataError, match="not a complete pair store"):
        pairstore.PairStore(store.folder)
    assert pair_file_store(path).num_rows == store.num_rows and (store.folder / COMPLETE_MARKER).is_file()
    np.save(store.folder / "pos.npy", np.zeros(3))  # a file changed after the marker: not trusted either
    assert not pairstore.is_complete(store.folder)


def test_stale_temporary_folders_of_dead_builders_are_removed(tmp_path, cache):
    path = _write(tmp_path / "pairs.jsonl", synthetic_rows(5))
    store = pair_file_store(path)
    stale = store.folder.parent / f".tmp-{store.folder.name}-999999999"
    stale.mkdir()
    (store.folder / COMPLETE_MARKER).unlink()
    pair_file_store(path)
    assert not stale.exists()


def test_bad_rows_are_rejected_as_by_the_jsonl_loader(tmp_path, cache):
    rows = [
        {"id": "a", "lang": "en", "query": "q", "positive": "p"},
        {"id": "b", "lang": "en", "query": "q", "positive": "p"},
        {"id": "a", "lang": "de", "query": "q", "positive": "p"},
        {"id": "b", "lang": "en", "query": "q2", "positive": "p2"},
        {"id": "a", "lang": "de", "query": "q3", "positive": "p3"},
    ]
    path = _write(tmp_path / "dup.jsonl", rows)
    with pytest.raises(DataError) as api:
        load_pairs(str(path))
    with pytest.raises(DataError) as disk:
        pair_file_store(path)
    assert str(disk.value) == str(api.value) == f"{path}:4: duplicate (id, lang) = ('b', 'en') (first on line 2)"
    bad = _write(tmp_path / "bad.jsonl", [{"id": "a", "lang": "en", "query": "q", "positive": ""}])
    with pytest.raises(DataError, match=r"bad\.jsonl:1 \(id 'a'\): missing or empty 'positive'"):
        pair_file_store(bad)
    with pytest.raises(DataError, match="no pairs"):
        pair_file_store(_write(tmp_path / "empty.jsonl", [""]))
    with pytest.raises(DataError, match="no such file"):
        pair_file_store(tmp_path / "absent.jsonl")
    assert not [p for p in _stores(cache) if "dup" in p.name or "bad" in p.name]
    with pytest.raises(DataError, match=r"has no language xx"):
        pair_file_store(_write(tmp_path / "ok.jsonl", rows[:2])).view(languages=["xx"])


def test_tsv_pairs_with_a_header(tmp_path, cache):
    tsv = tmp_path / "pairs.tsv"
    tsv.write_text(
        "id\tlang\tquery\tpositive\tpositive_id\tnegative_1\tnegative_id_1\tnegative_2\n"
        "g1\ten\tq en\tp en\tP1\tn1 en\tP9\tn2 en\n"
        "g1\tde\tq de\tp de\tP1\tn1 de\t\t\n"
        "\n"
        "g2\ten\tq2\tp2\t\t\t\t\n",
        encoding="utf-8",
    )
    jsonl = _write(tmp_path / "same.jsonl", [
        {"id": "g1", "lang": "en", "query": "q en", "positive": "p en", "positive_id": "P1",
         "negative": ["n1 en", "n2 en"], "negative_id": ["P9", None]},
        {"id": "g1", "lang": "de", "query": "q de", "positive": "p de", "positive_id": "P1", "negative": "n1 de"},
        {"id": "g2", "lang": "en", "query": "q2", "positive": "p2"},
    ])  # fmt: skip
    got, want = load_pairs(str(tsv)).groups, reference_pairs(jsonl).groups
    assert list(got) == list(want)
    for gid in want:
        for lang, pair in want[gid].items():
            assert got[gid][lang].__dict__ | {"source": ""} == pair.__dict__ | {"source": ""}
    tsv.write_text("id\tlang\tquery\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"pairs\.tsv:1: the header must name the columns .* missing positive"):
        pair_file_store(tsv)
    tsv.write_text("id\tlang\tquery\tpositive\nx\ten\tq\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"pairs\.tsv:2: 3 tab-separated cells, the header has 4"):
        pair_file_store(tsv)


def test_lareqa_specs_are_pair_stores_keyed_by_their_files(tmp_path, cache):
    from tests.helpers.lareqa import write_tiny_xquad

    write_tiny_xquad(tmp_path / "data")
    src = load_pair_source("xquad-r:train", data_dir=tmp_path / "data", languages=["en", "de"], max_groups=5)
    assert isinstance(src, PairSource) and len(src) == 5 and src.languages == ("de", "en")
    assert src.store.meta["key"]["kind"] == "lareqa" and src.store.meta["languages"] == sorted(src.store.meta["key"]["files"])
    assert len(_stores(cache)) == 1
    again = load_pair_source("xquad-r:train", data_dir=tmp_path / "data", languages=["es", "en"])
    assert again.store.folder == src.store.folder  # another view of the one store: nothing is parsed again
    load_pair_source("xquad-r:train", data_dir=tmp_path / "data", hard_negatives=True, seed=1)
    assert len(_stores(cache)) == 2  # hard negatives (drawn with the seed) are another store
    en = tmp_path / "data" / "xquad-r" / "en.json"
    en.write_text(en.read_text(encoding="utf-8").replace("City", "Town"), encoding="utf-8")
    edited = load_pair_source("xquad-r:train", data_dir=tmp_path / "data", languages=["en", "de"], max_groups=5)
    assert edited.store.folder != src.store.folder and len(_stores(cache)) == 3  # an edited file: a new store


def test_store_files_are_readable_by_other_users(tmp_path, cache):
    store = pair_file_store(_write(tmp_path / "pairs.jsonl", synthetic_rows(3)))
    mask = os.umask(0)
    os.umask(mask)
    assert all((p.stat().st_mode & 0o777) == (0o666 & ~mask) for p in store.folder.iterdir() if p.is_file())


def test_a_parallel_build_equals_the_streamed_one(tmp_path, cache, monkeypatch):
    rows = synthetic_rows(300)
    path = _write(tmp_path / "pairs.jsonl", rows)
    one = pair_file_store(path, workers=1)
    monkeypatch.setattr(pairstore, "PARALLEL_MIN_BYTES", 0)
    monkeypatch.setenv("POLYRET_CACHE_DIR", str(tmp_path / "cache2"))
    many = pair_file_store(path, workers=3)
    assert len(many.meta["text_files"]) == 3 and len(one.meta["text_files"]) == 1
    for name in ("group", "lang", "pos", "neg_ptr", "neg", "line"):
        assert np.array_equal(getattr(one, name), getattr(many, name)), name
    assert one.table.to_pylist() == many.table.to_pylist()
    assert many.view(max_groups=7, seed=1).to_pair_groups() == one.view(max_groups=7, seed=1).to_pair_groups()
    from polyret.training.pairs_dataset import PairIndex

    a, b = PairIndex([one.view()]), PairIndex([many.view()])
    assert many.table.column("query").num_chunks == 3  # texts fetched across the workers' files
    everything = np.random.default_rng(0).permutation(a.num_rows)
    assert a.texts(everything) == b.texts(everything)
    lines = path.read_text(encoding="utf-8").splitlines()
    lines[250] = lines[250].replace('"query"', '"querx"')  # two bad lines in different ranges: the first wins
    lines[40] = "{not json"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"pairs\.jsonl:41:2: malformed JSON"):
        pair_file_store(path, workers=3)
    tsv = tmp_path / "p.tsv"
    tsv.write_text("\n\nid\tlang\tquery\tpositive\n" + "".join(f"g{i}\ten\tq{i}\tp{i}\n" for i in range(50)) + "g1\ten\tq\tp\n")
    with pytest.raises(DataError, match=r"p\.tsv:54: duplicate \(id, lang\) = \('g1', 'en'\) \(first on line 5\)"):
        pair_file_store(tsv, workers=4)
    with pytest.raises(DataError, match="build workers must be >= 1"):
        pair_file_store(tsv, workers=0)


def test_take_rows_reads_only_the_chunks_it_needs():
    import pyarrow as pa

    col = pa.chunked_array([pa.array([f"r{i}" for i in range(lo, lo + 7)]) for lo in range(0, 70, 7)])
    rows = np.array([69, 0, 13, 13, 7, 6, 42])
    assert pairstore.take_rows(col, rows).to_pylist() == [f"r{i}" for i in rows]
    assert pairstore.take_rows(col, np.array([], dtype=np.int64)).to_pylist() == []
    assert pairstore.take_rows(col.combine_chunks(), rows[:2]).to_pylist() == ["r69", "r0"]


def test_a_temporary_folder_of_another_host_is_left_alone(tmp_path, cache):
    """A cache shared by several nodes: another host's pid says nothing about its builder here."""
    path = _write(tmp_path / "pairs.jsonl", synthetic_rows(5))
    store = pair_file_store(path)
    other = store.folder.parent / f".tmp-{store.folder.name}-some_other_node@999999999"
    mine = store.folder.parent / f".tmp-{store.folder.name}-{pairstore._host()}@999999999"
    other.mkdir()
    mine.mkdir()
    (store.folder / COMPLETE_MARKER).unlink()
    pair_file_store(path)
    assert other.exists() and not mine.exists()


def test_a_failed_build_stops_the_waiting_ranks_with_its_message(tmp_path, monkeypatch):
    folder = tmp_path / "cache" / "thing-abc"
    monkeypatch.setenv("TORCHELASTIC_RUN_ID", "run-1")

    def broken(tmp):
        raise DataError("pairs.jsonl:3: no positive")

    monkeypatch.setenv("LOCAL_RANK", "0")  # the builder fails, and says so
    with pytest.raises(DataError, match="no positive"):
        pairstore.build_once(folder, broken, name="thing", source="pairs.jsonl")
    monkeypatch.setenv("LOCAL_RANK", "1")  # a waiting rank of the same launch stops at once, with the reason
    monkeypatch.setenv("POLYRET_STORE_WAIT_S", "30")
    with pytest.raises(DataError, match=r"local rank 0 failed .*pairs.jsonl:3: no positive"):
        pairstore.build_once(folder, broken, name="thing", source="pairs.jsonl")
    monkeypatch.setenv("TORCHELASTIC_RUN_ID", "run-2")  # a later launch does not trust run-1's failure
    monkeypatch.setenv("POLYRET_STORE_WAIT_S", "0.2")
    with pytest.raises(DataError, match="did not appear while local rank 0 was building it"):
        pairstore.build_once(folder, broken, name="thing", source="pairs.jsonl")
    monkeypatch.setenv("LOCAL_RANK", "0")  # the next build of rank 0 clears the old failure

    def fine(tmp):
        (tmp / "x.txt").write_text("ok")

    pairstore.build_once(folder, fine, name="thing", source="pairs.jsonl")
    assert (folder / "x.txt").read_text() == "ok" and pairstore._read_failure(folder) is None
