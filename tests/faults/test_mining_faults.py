"""Faults around ``polyret mine``: a crash while encoding or writing, and a cut-off mined file."""

from __future__ import annotations

import json

import pytest

from polyret.data.pairs import load_pairs
from polyret.data.records import DataError, Pair, PairGroups
from polyret.training import mining
from polyret.training.mining import mine, stats_path, write_mined_jsonl

WORDS = "city river capital country year people war king church music school water".split()


def small_source(path):
    groups = {f"g{g}": {lang: Pair(f"g{g}", lang, f"what {WORDS[g]} {lang}", f"the {WORDS[g]} {WORDS[g + 1]} {lang}",
                                   positive_id=f"P{g}") for lang in ("de", "en")} for g in range(6)}  # fmt: skip
    write_mined_jsonl(path, PairGroups("s", groups))
    return path


class Boom(RuntimeError):
    pass


@pytest.fixture(scope="module")
def model(tiny_model_dir):
    from polyret import models

    return models.load(tiny_model_dir)


def test_crash_while_writing_keeps_the_previous_output(model, tmp_path, monkeypatch):
    src, out = small_source(tmp_path / "src.jsonl"), tmp_path / "mined.jsonl"
    kw = dict(model=model, k=2, relative_margin=None, cache=False)
    mine(str(src), out, **kw)
    before = out.read_bytes()
    calls = {"n": 0}
    real_dumps = json.dumps

    def dumps_then_crash(obj, **kwargs):
        calls["n"] += isinstance(obj, dict) and "query" in obj  # rows of the output (json.dumps serves the pair store too)
        if calls["n"] == 5:  # mid-file
            raise Boom("disk gone")
        return real_dumps(obj, **kwargs)

    monkeypatch.setattr(mining.json, "dumps", dumps_then_crash)
    with pytest.raises(Boom):
        mine(str(src), out, **{**kw, "k": 3})
    monkeypatch.undo()
    assert out.read_bytes() == before  # the old file, whole
    assert not stats_path(out).exists()  # its stats were dropped first: none rather than the wrong ones
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mined.jsonl", "src.jsonl"]  # no temp files
    mine(str(src), out, **{**kw, "k": 3})  # the next run recovers
    assert all(len(p.negatives) == 3 for by in load_pairs(str(out)).groups.values() for p in by.values())
    assert json.loads(stats_path(out).read_text())["k"] == 3


def test_crash_while_encoding_then_rerun_gives_the_clean_result(model, tmp_path, monkeypatch):
    from polyret.encode import EmbeddingCache

    src = small_source(tmp_path / "src.jsonl")
    clean = tmp_path / "clean.jsonl"
    mine(str(src), clean, model=model, k=2, relative_margin=None, cache=False)
    monkeypatch.setenv("POLYRET_CACHE_DIR", str(tmp_path / "cache"))
    real_encode = model.encode
    calls = {"n": 0}

    def encode_then_crash(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:  # after the first language's queries and passages are cached
            raise Boom("killed")
        return real_encode(*args, **kwargs)

    out = tmp_path / "mined.jsonl"
    monkeypatch.setattr(model, "encode", encode_then_crash)
    with pytest.raises(Boom):
        mine(str(src), out, model=model, k=2, relative_margin=None)
    monkeypatch.setattr(model, "encode", real_encode)
    assert not out.exists()
    shards = list((tmp_path / "cache" / "embeddings").glob("*/shard-*.npz"))
    assert shards and len(EmbeddingCache(shards[0].parent)) > 0  # the work done so far is kept
    mine(str(src), out, model=model, k=2, relative_margin=None)
    assert out.read_text() == clean.read_text()  # cached and fresh embeddings give the same negatives


def test_cut_off_mined_file_is_a_data_error_with_line(tmp_path):
    path = small_source(tmp_path / "m.jsonl")
    text = path.read_text()
    path.write_text(text[: len(text) - 20])  # a copy cut short by another tool
    with pytest.raises(DataError, match=r"m\.jsonl:12:\d+: malformed JSON"):
        load_pairs(str(path))
