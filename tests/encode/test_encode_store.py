"""The memory-mapped, checksummed embedding store: streamed writes, resume, corruption, dtypes, identity."""

from __future__ import annotations

import json

import numpy as np
import pytest

from polyret.encode import EmbeddingStore, StoreError, corpus_fingerprint, encode, encode_to_store
from polyret.encode.store import DATA_FILE, MANIFEST


class StandIn:
    """Deterministic vectors from (prompt, text); records every text it encodes; can fail on demand."""

    prompts = {"query": "query: ", "passage": "passage: "}

    def __init__(self, fail_after: int | None = None, dim: int = 8):
        self.seen: list[str] = []
        self.calls = 0
        self.fail_after = fail_after
        self.dim = dim

    def get_sentence_embedding_dimension(self):
        return self.dim

    def encode(self, texts, prompt_name=None, batch_size=32, **kwargs):
        self.calls += 1
        if self.fail_after is not None and self.calls > self.fail_after:
            raise KeyboardInterrupt("interrupted")  # like a Ctrl-C or a killed job mid-encode
        prefix = self.prompts[prompt_name] if prompt_name else ""
        self.seen.extend(texts)
        rows = []
        for t in texts:
            seed = int.from_bytes((prefix + t).encode()[:8].ljust(8, b"\0"), "little") ^ len(t)
            rows.append(np.random.default_rng(seed).normal(size=self.dim))
        emb = np.array(rows, dtype=np.float32)
        return emb / np.linalg.norm(emb, axis=1, keepdims=True)


TEXTS = [f"passage number {i} " + "x" * (i % 7) for i in range(23)]


def _store_of(tmp_path, texts=TEXTS, chunk_rows=5, dtype="float32", dim=8):
    model_cache = tmp_path / "cache" / "fp"
    return EmbeddingStore.for_corpus(
        model_cache, corpus=corpus_fingerprint(texts, "passage: "), n=len(texts), dim=dim, dtype=dtype, chunk_rows=chunk_rows
    )


def _truth(texts=TEXTS):
    return encode(StandIn(), texts, kind="passage")


def test_store_rows_equal_the_plain_encoder_and_a_warm_run_encodes_nothing(tmp_path):
    model = StandIn()
    got = encode_to_store(model, TEXTS, model_cache=tmp_path / "cache" / "fp", chunk_rows=5, batch_size=4)
    assert isinstance(got, np.memmap) and got.shape == (23, 8) and got.dtype == np.float32
    np.testing.assert_allclose(got, _truth(), rtol=1e-6, atol=1e-7)
    assert sorted(model.seen) == sorted(TEXTS)
    store = _store_of(tmp_path)
    assert store.is_complete() and store.n_chunks == 5
    assert sorted(p.name for p in store.root.iterdir()) == sorted(
        [DATA_FILE, MANIFEST] + [f"chunk-{i:06d}.json" for i in range(5)]
    )  # no temp file left behind
    warm = StandIn()
    again = encode_to_store(warm, TEXTS, model_cache=tmp_path / "cache" / "fp", chunk_rows=5)
    assert warm.seen == [] and np.array_equal(np.asarray(again), np.asarray(got))


def test_an_interrupted_encode_resumes_at_the_first_missing_chunk(tmp_path):
    with pytest.raises(KeyboardInterrupt):  # batches of 5 = one chunk each: dies in the third chunk
        encode_to_store(StandIn(fail_after=2), TEXTS, model_cache=tmp_path / "cache" / "fp", chunk_rows=5, batch_size=5)
    store = _store_of(tmp_path)
    assert not store.is_complete()
    assert [store.record_path(i).exists() for i in range(5)] == [True, True, False, False, False]
    model = StandIn()
    got = encode_to_store(model, TEXTS, model_cache=tmp_path / "cache" / "fp", chunk_rows=5, batch_size=5)
    assert sorted(model.seen) == sorted(TEXTS[10:])  # only the chunks not recorded
    np.testing.assert_allclose(got, _truth(), rtol=1e-6, atol=1e-7)


def _flip_byte(store, i):
    start, _ = store.chunk_range(i)
    with open(store.data_path, "r+b") as fh:
        fh.seek(start * store.dim * 4 + 3)
        b = fh.read(1)
        fh.seek(start * store.dim * 4 + 3)
        fh.write(bytes([b[0] ^ 0x40]))


def _wrong_rows(store, i):
    path = store.record_path(i)
    record = json.loads(path.read_text())
    record["rows"] = [0, 2]
    path.write_text(json.dumps(record))


def _other_store(store, i):
    path = store.record_path(i)
    record = json.loads(path.read_text())
    record["identity"]["owner"] = "another-model"
    path.write_text(json.dumps(record))


def _garbage_record(store, i):
    store.record_path(i).write_text("{not json")


CHUNK_DAMAGE = {
    "flipped byte": (_flip_byte, "checksum mismatch"),
    "wrong shape": (_wrong_rows, "wrong shape"),
    "another store's record": (_other_store, "another store"),
    "unreadable record": (_garbage_record, "unreadable"),
}


@pytest.mark.parametrize("name", list(CHUNK_DAMAGE))
def test_a_damaged_chunk_is_detected_set_aside_and_re_encoded(tmp_path, caplog, name):
    damage, reason = CHUNK_DAMAGE[name]
    encode_to_store(StandIn(), TEXTS, model_cache=tmp_path / "cache" / "fp", chunk_rows=5)
    store = _store_of(tmp_path)
    damage(store, 2)
    model = StandIn()
    with caplog.at_level("WARNING", logger="polyret.encode"):
        got = encode_to_store(model, TEXTS, model_cache=tmp_path / "cache" / "fp", chunk_rows=5)
    messages = [r.getMessage() for r in caplog.records]
    assert any("chunk-000002.json" in m and reason in m for m in messages), messages
    assert store.record_path(2).with_name("chunk-000002.json.corrupt").exists()
    assert sorted(model.seen) == sorted(TEXTS[10:15])  # exactly that chunk again
    np.testing.assert_allclose(got, _truth(), rtol=1e-6, atol=1e-7)
    assert store.is_complete() and store.open(verify=True) is not None


def test_open_never_returns_rows_that_fail_their_checksum(tmp_path):
    encode_to_store(StandIn(), TEXTS, model_cache=tmp_path / "cache" / "fp", chunk_rows=5)
    store = _store_of(tmp_path)
    _flip_byte(store, 4)
    assert store.open(verify=True) is None
    assert not store.is_complete()  # the manifest is set aside: the next encode repairs chunk 4


def test_a_data_file_of_the_wrong_size_or_an_older_format_is_set_aside_whole(tmp_path, caplog):
    encode_to_store(StandIn(), TEXTS, model_cache=tmp_path / "cache" / "fp", chunk_rows=5)
    store = _store_of(tmp_path)
    with open(store.data_path, "r+b") as fh:
        fh.truncate(store.nbytes - 4)
    model = StandIn()
    with caplog.at_level("WARNING", logger="polyret.encode"):
        got = encode_to_store(model, TEXTS, model_cache=tmp_path / "cache" / "fp", chunk_rows=5)
    assert any("wrong shape" in r.getMessage() for r in caplog.records)
    assert sorted(model.seen) == sorted(TEXTS)
    np.testing.assert_allclose(got, _truth(), rtol=1e-6, atol=1e-7)

    manifest = json.loads(store.manifest_path.read_text())
    manifest["identity"]["format"] = "polyret-store/0"
    store.manifest_path.write_text(json.dumps(manifest))
    caplog.clear()
    model = StandIn()
    with caplog.at_level("WARNING", logger="polyret.encode"):
        encode_to_store(model, TEXTS, model_cache=tmp_path / "cache" / "fp", chunk_rows=5)
    assert any("polyret-store/0" in r.getMessage() for r in caplog.records)
    assert sorted(model.seen) == sorted(TEXTS)


def test_float16_rows_and_float32_rows_are_separate_stores(tmp_path):
    f32 = encode_to_store(StandIn(), TEXTS, model_cache=tmp_path / "cache" / "fp", chunk_rows=5)
    f16 = encode_to_store(StandIn(), TEXTS, model_cache=tmp_path / "cache" / "fp", chunk_rows=5, store_dtype="float16")
    assert f16.dtype == np.float16 and f32.dtype == np.float32
    assert 0 < np.abs(f16.astype(np.float32) - f32).max() < 1e-3
    assert _store_of(tmp_path, dtype="float16").root != _store_of(tmp_path).root


def test_precision_is_part_of_the_store_identity(tmp_path):
    from polyret.encode import store_owner

    root = tmp_path / "cache" / "fp"
    assert store_owner(root, "fp32") == root and store_owner(root, "bf16").name == "fp@bf16"


def test_corpus_fingerprint_follows_order_texts_and_prompt():
    base = corpus_fingerprint(TEXTS, "passage: ")
    assert base == corpus_fingerprint(list(TEXTS), "passage: ", window=3)  # the window does not matter
    assert base != corpus_fingerprint(TEXTS[::-1], "passage: ")
    assert base != corpus_fingerprint(TEXTS, "")
    assert base != corpus_fingerprint(TEXTS[:-1] + [TEXTS[-1] + " "], "passage: ")
    assert corpus_fingerprint(["ab", "c"]) != corpus_fingerprint(["a", "bc"])


def test_tokenization_and_sorting_happen_in_bounded_windows(tmp_path, monkeypatch):
    import polyret.encode.stream as stream

    sizes: list[int] = []
    real = stream.token_lengths

    def recording(model, texts):
        sizes.append(len(texts))
        return real(model, texts)

    monkeypatch.setattr(stream, "token_lengths", recording)
    encode_to_store(StandIn(), TEXTS, model_cache=tmp_path / "cache" / "fp", chunk_rows=5)
    assert sizes == [5, 5, 5, 5, 3]
    sizes.clear()
    encode(StandIn(), TEXTS, kind="passage", window=7)
    assert sizes == [7, 7, 7, 2]


def test_finalize_refuses_a_store_with_a_missing_chunk(tmp_path):
    store = _store_of(tmp_path)
    store.prepare()
    store.write_chunk(0, np.eye(5, 8, dtype=np.float32))
    with pytest.raises(StoreError, match="chunk 1 was not written"):
        store.finalize()
    with pytest.raises(ValueError, match=r"chunk 1 needs \(5, 8\) rows"):
        store.write_chunk(1, np.eye(4, 8, dtype=np.float32))
