"""Every cache is trusted by its content and provenance, never by existence or size (issue 21 §2).

Each case edits a cache file (or its source) in place keeping its size (and, for sources, its modification
time, as ``cp -p`` / ``rsync -t`` / ``tar`` do) and checks that the next reuse notices: a warning naming the
file and a rebuild from the source, never the edited bytes.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import numpy as np
import pytest

from polyret.data.miracl import read_corpus
from polyret.data.pairstore import pair_file_store
from polyret.integrity import folder_checksums, source_digest
from polyret.paths import COMPLETE_MARKER, mark_complete


def _rows(n: int = 6) -> list[dict]:
    return [
        {"id": f"g{g}", "lang": lang, "query": f"what river {g} {lang}", "positive": f"the garden {g} {lang}"}
        for g in range(n)
        for lang in ("de", "en")
    ]


def _jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def _edit_same_size(path: Path, old: bytes, new: bytes, *, keep_mtime: bool = False) -> None:
    assert len(old) == len(new)
    st = path.stat()
    data = path.read_bytes()
    assert old in data, f"{old!r} not in {path}"
    path.write_bytes(data.replace(old, new, 1))
    if keep_mtime:
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert path.stat().st_size == st.st_size


@pytest.fixture()
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("POLYRET_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


def _warned(caplog, *words: str) -> bool:
    return any(all(w in r.getMessage() for w in words) for r in caplog.records if r.levelno >= logging.WARNING)


# ------------------------------------------------------------------------------------ pair store
@pytest.mark.parametrize("target", ["texts-00000.arrow", "pos.npy", "meta.json"])
def test_a_same_size_edit_of_a_pair_store_file_is_caught_and_rebuilt(tmp_path, cache, caplog, target):
    src = _jsonl(tmp_path / "p.jsonl", _rows())
    store = pair_file_store(src)
    clean = store.table.column("positive").to_pylist()
    folder = store.folder
    del store
    path = folder / target
    if target == "pos.npy":
        arr = np.load(path)
        arr[0], arr[1] = arr[1], arr[0]
        np.save(path, arr)
    else:
        old, new = (b"garden 3", b"gardez 3") if target.endswith(".arrow") else (b'"de"', b'"xx"')
        _edit_same_size(path, old, new)
    caplog.set_level(logging.WARNING)
    again = pair_file_store(src)
    assert _warned(caplog, str(path)), [r.getMessage() for r in caplog.records]
    assert again.table.column("positive").to_pylist() == clean
    assert again.folder == folder and (folder / COMPLETE_MARKER).is_file()


def test_a_pair_store_from_before_checksums_or_of_another_source_is_rebuilt(tmp_path, cache, caplog):
    src = _jsonl(tmp_path / "p.jsonl", _rows())
    folder = pair_file_store(src).folder
    marker = json.loads((folder / COMPLETE_MARKER).read_text())
    assert set(marker["sha256"]) >= {"texts-00000.arrow", "meta.json", "pos.npy", "groups.arrow"}
    mark_complete(folder, name=marker["name"])  # sizes only, as an older polyret wrote it
    caplog.set_level(logging.WARNING)
    pair_file_store(src)
    assert _warned(caplog, "no content checksums recorded")
    caplog.clear()
    meta = json.loads((folder / "meta.json").read_text())  # provenance: a store whose key names other content
    meta["key"]["sha256"] = "0" * 64
    (folder / "meta.json").write_text(json.dumps(meta, indent=2))
    mark_complete(folder, name=marker["name"], sha256=folder_checksums(folder))  # checksums that match it
    pair_file_store(src)
    assert _warned(caplog, "built from another source or options")


def test_a_pair_file_edited_keeping_size_and_mtime_builds_a_new_store(tmp_path, cache):
    src = _jsonl(tmp_path / "p.jsonl", _rows())
    first = pair_file_store(src)
    _edit_same_size(src, b"garden 2 de", b"gardez 2 de", keep_mtime=True)  # as cp -p / rsync -t / tar leave it
    second = pair_file_store(src)
    assert second.folder != first.folder
    assert "the gardez 2 de" in second.table.column("positive").to_pylist()


def test_source_digest_is_remembered_and_redone_after_any_write(tmp_path, cache, monkeypatch):
    import polyret.integrity as integrity

    src = _jsonl(tmp_path / "p.jsonl", _rows(2))
    first = source_digest(src)
    calls = []
    real = integrity.file_sha256
    monkeypatch.setattr(integrity, "file_sha256", lambda p, **k: calls.append(p) or real(p, **k))
    assert source_digest(src) == first and calls == []  # remembered: not read again
    _edit_same_size(src, b"garden 1", b"gardez 1", keep_mtime=True)
    assert source_digest(src) != first and len(calls) == 1


# ------------------------------------------------------------------------------------ pair index cache
def test_a_same_size_edit_of_the_pair_index_cache_is_caught_and_rebuilt(tmp_path, cache, caplog):
    from polyret.training.index_cache import cached_pair_index, index_folder

    views = [pair_file_store(_jsonl(tmp_path / "p.jsonl", _rows(12))).view()]
    built = cached_pair_index(views, negatives=0)
    clean = {name: np.array(getattr(built, name)) for name in built.ARRAYS}
    folder = index_folder(views, 0)
    del built
    target = next(p for p in sorted(folder.glob("*.npy")) if not np.array_equal(np.load(p), np.load(p)[::-1]))
    arr = np.load(target)
    np.save(target, arr[::-1].copy())  # same size, other content
    caplog.set_level(logging.WARNING)
    again = cached_pair_index(views, negatives=0)
    assert _warned(caplog, str(target))
    for name, value in clean.items():
        assert np.array_equal(np.asarray(getattr(again, name)), value), name


# ------------------------------------------------------------------------------------ MIRACL corpus cache
def _corpus(path: Path) -> Path:
    return _jsonl(path, [{"docid": f"d{i}", "title": "", "text": f"the garden {i}"} for i in range(5)])


def test_a_same_size_edit_of_the_corpus_cache_is_caught(tmp_path, caplog):
    src, cache = _corpus(tmp_path / "sw.jsonl"), tmp_path / "corpora"
    read_corpus(src, "sw", cache=cache)
    (arrow,) = cache.glob("*.arrow")
    _edit_same_size(arrow, b"garden 3", b"gardez 3")  # the case: map changed silently
    caplog.set_level(logging.WARNING)
    table = read_corpus(src, "sw", cache=cache)
    assert _warned(caplog, str(arrow), "content changed")
    assert [c.text for c in table] == [f"the garden {i}" for i in range(5)]


def test_a_corpus_cache_without_its_checksum_record_is_not_trusted(tmp_path, caplog):
    src, cache = _corpus(tmp_path / "sw.jsonl"), tmp_path / "corpora"
    read_corpus(src, "sw", cache=cache)
    (record,) = cache.glob("*.arrow.json")
    assert json.loads(record.read_text())["source_sha256"] == source_digest(src, cache_dir=cache)
    record.unlink()
    caplog.set_level(logging.WARNING)
    assert [c.text for c in read_corpus(src, "sw", cache=cache)][0] == "the garden 0"
    assert _warned(caplog, "no readable checksum record") and record.is_file()


def test_a_corpus_edited_keeping_size_and_mtime_is_another_cache_key(tmp_path):
    src, cache = _corpus(tmp_path / "sw.jsonl"), tmp_path / "corpora"
    read_corpus(src, "sw", cache=cache)
    _edit_same_size(src, b"garden 3", b"gardez 3", keep_mtime=True)
    assert [c.text for c in read_corpus(src, "sw", cache=cache)][3] == "the gardez 3"
    assert len(list(cache.glob("*.arrow"))) == 2


def test_no_cache_means_no_corpus_cache_and_cache_dir_is_honoured(tmp_path, monkeypatch):
    import importlib

    from polyret.evaluation import EvalConfig

    ev = importlib.import_module("polyret.evaluation.pipeline")
    monkeypatch.setenv("POLYRET_CACHE_DIR", str(tmp_path / "env-cache"))
    assert ev._corpus_cache(EvalConfig(cache=False)) is False
    assert ev._corpus_cache(EvalConfig(cache_dir=str(tmp_path / "mine"))) == tmp_path / "mine" / "corpora"
    seen = {}
    import polyret.data

    def stop(*args, **kwargs):
        seen.update(kwargs)
        raise RuntimeError("stop")

    monkeypatch.setattr(polyret.data, "load_benchmark", stop)
    with pytest.raises(RuntimeError, match="stop"):
        ev.evaluate("builtin:me5-small", "miracl/sw", config=EvalConfig(cache=False))
    assert seen["corpus_cache"] is False


# ------------------------------------------------------------------------------------ checkpoints
def _checkpoint(run: Path, step: int, *, sha: bool = True) -> Path:
    folder = run / "checkpoints" / f"checkpoint-{step}"
    folder.mkdir(parents=True)
    (folder / "trainer_state.json").write_text(json.dumps({"global_step": step, "log_history": []}))
    (folder / "model.safetensors").write_bytes(bytes(range(256)) * 4)
    mark_complete(folder, step=step, **({"sha256": folder_checksums(folder)} if sha else {}))
    return folder


@pytest.mark.parametrize("sha", [True, False], ids=["checksums", "sizes-only marker"])
@pytest.mark.parametrize("damage", ["same-size edit", "garbage"])
def test_a_damaged_trainer_state_falls_back_to_the_previous_checkpoint(tmp_path, caplog, sha, damage):
    from polyret.training.checkpoints import clean_checkpoints, last_checkpoint

    _checkpoint(tmp_path, 2, sha=sha)
    newest = _checkpoint(tmp_path, 4, sha=sha)
    state = newest / "trainer_state.json"
    size = state.stat().st_size
    if damage == "garbage":
        state.write_bytes(b"\x00" * size)  # same size: the marker's sizes still match
    else:
        state.write_text(state.read_text().replace('"global_step": 4', '"global_step": 9'))
    assert state.stat().st_size == size
    caplog.set_level(logging.WARNING)
    assert last_checkpoint(tmp_path).name == "checkpoint-2"
    assert _warned(caplog, str(state))
    assert "checkpoint-4" in clean_checkpoints(tmp_path)  # removed at the next start, not resumed from


def test_a_same_size_weight_edit_in_a_checkpoint_is_caught(tmp_path, caplog):
    from polyret.training.checkpoints import last_checkpoint

    _checkpoint(tmp_path, 2)
    newest = _checkpoint(tmp_path, 4)
    assert last_checkpoint(tmp_path) == newest  # verified once, then remembered while nothing changes
    _edit_same_size(newest / "model.safetensors", bytes([1, 2, 3]), bytes([3, 2, 1]))
    caplog.set_level(logging.WARNING)
    assert last_checkpoint(tmp_path).name == "checkpoint-2"
    assert _warned(caplog, "model.safetensors", "content changed")
