"""MIRACL corpora stream into a columnar CandidateTable; the Arrow cache is keyed by the file and never trusted blindly."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

import polyret.data.miracl as miracl
from polyret.data.miracl import read_corpus
from polyret.data.records import Benchmark, Candidate, CandidateTable, DataError, Query
from tests.helpers.miracl import write_corpus as _corpus


def _docs(n: int) -> list[dict]:
    return [{"docid": f"{i // 3}#{i % 3}", "title": f"T{i}" if i % 2 else "", "text": f"passage {i} ü"} for i in range(n)]


def test_corpus_is_columnar_and_streamed_in_batches(tmp_path, monkeypatch):
    monkeypatch.setattr(miracl, "_BATCH", 4)  # several Arrow batches, concatenated
    path = _corpus(tmp_path / "sw.jsonl.gz", _docs(11), gz=True)
    table = read_corpus(path, "sw")
    assert isinstance(table, CandidateTable) and len(table) == 11
    assert table.ids.type.equals(table.texts.type) and str(table.ids.type) == "large_string"
    assert table.lang_codes.dtype == np.int16 and table.lang_names == ("sw",)
    assert table.id_list() == [d["docid"] for d in _docs(11)]
    assert table[1] == Candidate("0#1", "sw", "T1 passage 1 ü") and table[0].text == "passage 0 ü"
    assert table[-1].id == "3#1" and [c.id for c in table[2:4]] == ["0#2", "1#0"]
    assert table.id_array().tolist() == table.id_list()


def test_duplicate_docid_names_the_line_across_batches(tmp_path, monkeypatch):
    monkeypatch.setattr(miracl, "_BATCH", 2)
    docs = _docs(7)
    docs.insert(5, {"docid": "0#1", "text": "again"})  # written on line 6 (a blank line below shifts it)
    path = _corpus(tmp_path / "c.jsonl", docs)
    lines = path.read_text().splitlines()
    path.write_text("\n".join(lines[:2] + [""] + lines[2:]) + "\n")
    with pytest.raises(DataError, match=r"c\.jsonl:7: duplicate docid '0#1'"):
        read_corpus(path, "sw")
    _corpus(path, [{"docid": "a", "text": "x"}, {"docid": "b"}])
    with pytest.raises(DataError, match=r"c\.jsonl:2 \(docid 'b'\): missing 'text'"):
        read_corpus(path, "sw")


def test_arrow_cache_is_reused_memory_mapped_and_invalidated_by_a_changed_file(tmp_path, monkeypatch):
    path = _corpus(tmp_path / "sw.jsonl.gz", _docs(9), gz=True)
    cache = tmp_path / "corpora"
    first = read_corpus(path, "sw", cache=cache)
    files = list(cache.glob("*.arrow"))
    assert len(files) == 1 and not list(cache.glob(".*tmp"))  # written atomically
    with monkeypatch.context() as m:  # the second read comes from the cache: the JSONL is not parsed
        m.setattr(miracl, "jsonl_objects", lambda *a: pytest.fail("parsed the corpus again"))
        before = pa.total_allocated_bytes()
        again = read_corpus(path, "sw", cache=cache)
        assert pa.total_allocated_bytes() - before < first.texts.nbytes / 2  # memory-mapped, not copied
    assert again == first
    # a different corpus at the same path (new size and mtime): another key, never the old columns
    _corpus(path, _docs(5), gz=True)
    os.utime(path, ns=(1, 1))
    changed = read_corpus(path, "sw", cache=cache)
    assert len(changed) == 5 and len(list(cache.glob("*.arrow"))) == 2


def test_damaged_cache_is_ignored_and_rebuilt(tmp_path, caplog):
    path = _corpus(tmp_path / "sw.jsonl.gz", _docs(6), gz=True)
    cache = tmp_path / "corpora"
    ref = CandidateTable.from_records(read_corpus(path, "sw", cache=cache))  # a copy: the file is damaged in place below
    (arrow,) = cache.glob("*.arrow")
    arrow.write_bytes(arrow.read_bytes()[:40])  # truncated
    back = read_corpus(path, "sw", cache=cache)
    assert back == ref
    assert any("unreadable corpus cache" in r.getMessage() for r in caplog.records)
    assert read_corpus(path, "sw", cache=cache) == ref  # rewritten, readable again


def test_candidate_table_as_a_sequence_and_benchmark_field():
    cands = [Candidate("a", "de", "x"), Candidate("b", "en", "y", "ctx"), Candidate("c", "de", "z")]
    bench = Benchmark("t", ("de", "en"), [Query("q", "de", "?")], cands, {"q": {"a": 1}})
    assert isinstance(bench.candidates, CandidateTable) and list(bench.candidates) == cands
    assert bench.candidates == cands and bench.candidates.context_list() == ["", "ctx", ""]
    assert [c.id for c in bench.candidates_in("de")] == ["a", "c"]
    assert bench.candidates.langs.tolist() == ["de", "en", "de"]
    assert bench.candidates.positions(["c", "zz", "a"]).tolist() == [2, -1, 0]
    bench.candidates = [c for c in bench.candidates if c.lang == "en"]  # assignment converts too
    assert isinstance(bench.candidates, CandidateTable) and bench.candidates[0].context == "ctx"
    dup = CandidateTable.from_records([Candidate("a", "de", "x"), Candidate("a", "de", "y")])
    assert dup.first_duplicate() == "a"
    with pytest.raises(IndexError):
        bench.candidates[5]
    wide = CandidateTable.from_records([Candidate("ä-1", "de", ""), Candidate("b", "de", "")])
    assert wide.id_array().tolist() == ["ä-1", "b"]  # non-ASCII ids: the list path


def _expected(docs: list[dict]) -> CandidateTable:
    """The table the in-memory path built (one Candidate per passage), to compare the streamed one with."""
    return CandidateTable.from_records(
        Candidate(d["docid"], "sw", f"{d['title']} {d['text']}".strip() if d.get("title") else d["text"]) for d in docs
    )


def test_cold_read_streams_batches_into_the_cache_file_and_maps_it(tmp_path, monkeypatch):
    monkeypatch.setattr(miracl, "_BATCH", 4)
    docs = _docs(11)
    path = _corpus(tmp_path / "sw.jsonl.gz", docs, gz=True)
    cache = tmp_path / "corpora"
    before = pa.total_allocated_bytes()
    cold = read_corpus(path, "sw", cache=cache)
    assert pa.total_allocated_bytes() - before < cold.texts.nbytes / 2  # the cold read maps the file, holds no copy
    assert cold == _expected(docs)  # the same content as the in-memory path
    (arrow,) = cache.glob("*.arrow")
    reader = pa.ipc.open_file(str(arrow))
    assert reader.num_record_batches == 3 and reader.read_all().num_rows == 11  # one batch per 4 passages
    assert isinstance(cold.texts, pa.ChunkedArray) and cold.texts.num_chunks == 3
    assert cold.id_array().tolist() == [d["docid"] for d in docs]
    assert cold.positions(["3#1", "0#0", "zz"]).tolist() == [10, 0, -1]
    assert cold.take(np.asarray([10, 1])).id_list() == ["3#1", "0#1"]
    warm = read_corpus(path, "sw", cache=cache)
    assert warm == cold and warm == _expected(docs)
    assert read_corpus(path, "sw") == _expected(docs)  # no cache: a temp file, mapped, the same content


def test_interrupted_cold_read_leaves_no_trusted_cache(tmp_path, monkeypatch):
    monkeypatch.setattr(miracl, "_BATCH", 2)
    docs = _docs(9)
    path = _corpus(tmp_path / "sw.jsonl", docs)
    cache = tmp_path / "corpora"
    real = miracl.jsonl_objects

    def interrupted(p):
        for i, item in enumerate(real(p)):
            if i == 5:  # two batches are already in the file
                raise KeyboardInterrupt
            yield item

    with monkeypatch.context() as m:
        m.setattr(miracl, "jsonl_objects", interrupted)
        with pytest.raises(KeyboardInterrupt):
            read_corpus(path, "sw", cache=cache)
    assert not list(cache.glob("*.arrow")) and not list(cache.glob(".*"))  # nothing kept, not even the temp file
    # a process killed mid-write leaves a temp file beside the cache name (with a footer, even): never read
    key = miracl._corpus_cache_file(path, "sw", cache)
    half = cache / f".{key.name}.abc123.tmp"
    miracl._write_columns(_corpus(tmp_path / "half.jsonl", docs[:3]), half)
    parsed = []
    with monkeypatch.context() as m:
        m.setattr(miracl, "jsonl_objects", lambda p: (parsed.append(p), real(p))[1])
        table = read_corpus(path, "sw", cache=cache)
    assert parsed == [path] and table == _expected(docs)  # parsed again, whole
    assert [f.name for f in cache.glob("*.arrow")] == [key.name]


def test_duplicate_docid_leaves_no_cache(tmp_path):
    path = _corpus(tmp_path / "sw.jsonl", [{"docid": "a", "text": "x"}, {"docid": "b", "text": "y"}, {"docid": "a", "text": "z"}])
    cache = tmp_path / "corpora"
    with pytest.raises(DataError, match=r"sw\.jsonl:3: duplicate docid 'a'"):
        read_corpus(path, "sw", cache=cache)
    assert not list(cache.glob("*.arrow")) and not list(cache.glob(".*"))


def _rss_file_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("RssFile:"):
            return int(line.split()[1])
    raise AssertionError("no RssFile in /proc/self/status")


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="needs Linux /proc")
def test_release_pages_drops_the_mapped_texts_from_rss_and_they_stay_readable(tmp_path):
    docs = [{"docid": f"d{i}", "title": "", "text": f"{i} " + "x" * 400} for i in range(20_000)]  # ~8 MB of text
    path = _corpus(tmp_path / "sw.jsonl", docs)
    table = read_corpus(path, "sw", cache=tmp_path / "corpora")
    assert sum(len(t) for t in table.texts.to_pylist()) > 8_000_000  # every text page touched
    before = _rss_file_kib()
    table.release_pages()
    dropped = before - _rss_file_kib()
    assert dropped * 1024 > table.texts.nbytes / 2, (before, dropped)
    assert table[19_999].text == docs[-1]["text"] and table == _expected(docs)  # read back from the file
    in_memory = _expected(docs[:3])
    in_memory.release_pages()  # not mapped: nothing happens
    assert in_memory[2].text == docs[2]["text"]
