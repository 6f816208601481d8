import numpy as np
import pytest

from polyret.encode import EmbeddingCache, count_missing, encode, text_key


class CountingModel:
    """A stand-in encoder: deterministic vectors from the text, and a log of what it was asked."""

    prompts = {"query": "query: ", "passage": "passage: "}

    def __init__(self):
        self.seen: list[str] = []

    def get_sentence_embedding_dimension(self):
        return 8

    def encode(self, texts, prompt_name=None, batch_size=32, **kwargs):
        prefix = self.prompts[prompt_name] if prompt_name else ""
        self.seen.extend(texts)
        rows = []
        for t in texts:
            rng = np.random.default_rng(abs(hash(prefix + t)) % 2**32)
            rows.append(rng.normal(size=8))
        emb = np.array(rows, dtype=np.float32)
        if kwargs.get("normalize_embeddings"):
            emb /= np.linalg.norm(emb, axis=1, keepdims=True)
        return emb


def test_encodes_each_distinct_text_once_and_reuses_cache(tmp_path):
    model = CountingModel()
    cache = EmbeddingCache(tmp_path / "m")
    texts = ["a", "bb", "a", "ccc"]
    first = encode(model, texts, kind="passage", cache=cache, batch_size=2)
    assert sorted(model.seen) == ["a", "bb", "ccc"]
    np.testing.assert_allclose(first[0], first[2])
    np.testing.assert_allclose(np.linalg.norm(first, axis=1), 1.0, rtol=1e-6)

    model.seen.clear()
    reopened = EmbeddingCache(tmp_path / "m")  # a new process sees the shards on disk
    assert len(reopened) == 3
    assert count_missing(model, texts + ["dddd"], kind="passage", cache=reopened) == 1
    second = encode(model, texts + ["dddd"], kind="passage", cache=reopened)
    assert model.seen == ["dddd"]
    np.testing.assert_allclose(second[:4], first, rtol=1e-6)


def test_prompt_is_part_of_the_key(tmp_path):
    model = CountingModel()
    cache = EmbeddingCache(tmp_path / "m")
    q = encode(model, ["same"], kind="query", cache=cache)
    p = encode(model, ["same"], kind="passage", cache=cache)
    assert model.seen == ["same", "same"]
    assert not np.allclose(q, p)


def test_no_temp_files_left_and_damaged_shard_ignored(tmp_path):
    model = CountingModel()
    cache = EmbeddingCache(tmp_path / "m")
    encode(model, ["x", "y"], kind="query", cache=cache)
    assert [p.suffix for p in (tmp_path / "m").iterdir()] == [".npz"]
    (tmp_path / "m" / "shard-broken.npz").write_bytes(b"not a zip")
    assert len(EmbeddingCache(tmp_path / "m")) == 2


def test_rejects_unknown_kind():
    with pytest.raises(ValueError, match="kind"):
        encode(CountingModel(), ["x"], kind="document")


def test_keys_ending_in_nul_bytes_survive_a_reload(tmp_path):
    cache = EmbeddingCache(tmp_path / "m")
    keys = [b"abc" + b"\x00" * 13, b"\x00" * 16, b"x" * 16]
    emb = np.eye(3, dtype=np.float32)
    cache.put(keys, emb)
    reopened = EmbeddingCache(tmp_path / "m")
    assert all(k in reopened for k in keys)
    got, missing = reopened.get(keys)
    assert missing == []
    np.testing.assert_array_equal(got, emb)


def test_token_budget_batches_cover_everything_within_limits():
    from polyret.encode import token_budget_batches

    lengths = np.array([400, 300, 120, 60, 60, 50, 40, 10, 10, 3])
    batches = token_budget_batches(lengths, batch_size=4, max_tokens=300)
    assert batches[0] == (0, 1) and batches[-1][1] == len(lengths)
    assert all(a == b for (_, a), (b, _) in zip(batches, batches[1:]))  # contiguous, no gaps
    for start, stop in batches:
        assert stop - start <= 4
        assert stop - start == 1 or (stop - start) * lengths[start] <= 300


# ------------------------------------------------------------------------------ cache integrity


def _write_shard(path, keys, emb, checksum=None, owner=None):
    """A shard laid out like ``EmbeddingCache.put`` writes one, with a checksum of our choosing."""
    from polyret.encode import shard_checksum

    keys = np.asarray(keys, dtype=np.uint8)
    emb = np.asarray(emb, dtype=np.float32)
    if checksum is None:
        checksum = shard_checksum(owner or path.parent.name, keys, emb)
    with open(path, "wb") as fh:
        np.savez(fh, keys=keys, emb=emb, checksum=np.asarray(checksum))


def _swap_rows(path):
    with np.load(path) as z:
        keys, emb, checksum = z["keys"], z["emb"].copy(), str(z["checksum"])
    emb[[0, 1]] = emb[[1, 0]]  # same layout, same checksum field, wrong rows
    _write_shard(path, keys, emb, checksum=checksum)


def _other_dim(path):
    with np.load(path) as z:
        keys, emb = z["keys"], z["emb"]
    small = emb[:, :4] / np.linalg.norm(emb[:, :4], axis=1, keepdims=True)
    _write_shard(path, keys, small)  # a correct checksum: only the dimension gives it away


def _nan_row(path):
    with np.load(path) as z:
        keys, emb = z["keys"], z["emb"].copy()
    emb[1] = np.nan
    _write_shard(path, keys, emb)


def _not_normalised(path):
    with np.load(path) as z:
        keys, emb = z["keys"], z["emb"] * 3.0
    _write_shard(path, keys, emb)


def _truncated(path):
    path.write_bytes(path.read_bytes()[:-40])


def _bad_checksum(path):
    with np.load(path) as z:
        keys, emb = z["keys"], z["emb"]
    _write_shard(path, keys, emb, checksum="0" * 64)


def _legacy_no_checksum(path):
    with np.load(path) as z:
        keys, emb = z["keys"], z["emb"]
    with open(path, "wb") as fh:
        np.savez(fh, keys=keys, emb=emb)  # the layout of polyret before checksums


def _other_model(path):
    with np.load(path) as z:
        keys, emb = z["keys"], z["emb"]
    _write_shard(path, keys, emb, owner="another-fingerprint")  # a shard copied from another model's folder


CORRUPTIONS = {
    "swapped rows": (_swap_rows, "checksum mismatch"),
    "other dim": (_other_dim, "dimension 4"),
    "nan row": (_nan_row, "row 1 is not finite"),
    "not normalised": (_not_normalised, "not normalised"),
    "truncated": (_truncated, "unreadable"),
    "bad checksum": (_bad_checksum, "checksum mismatch"),
    "no checksum (older polyret)": (_legacy_no_checksum, "have no checksum"),
    "another model's shard": (_other_model, "checksum mismatch"),
}


@pytest.mark.parametrize("name", list(CORRUPTIONS))
def test_a_bad_shard_is_set_aside_with_a_warning_and_re_encoded(tmp_path, caplog, name):
    corrupt, reason = CORRUPTIONS[name]
    model = CountingModel()
    texts = ["alpha", "beta", "gamma", "delta", "epsilon", "zeta"]
    cache = EmbeddingCache(tmp_path / "m")
    encode(model, texts[:3], kind="passage", cache=cache)  # shard 1 (the one we damage)
    encode(model, texts[3:], kind="passage", cache=cache)  # shard 2 (stays good)
    expected = encode(CountingModel(), texts, kind="passage")  # no cache: the truth
    first = sorted((tmp_path / "m").glob("shard-*.npz"), key=lambda p: p.stat().st_mtime_ns)[0]
    with np.load(first) as z:
        assert len(z["keys"]) == 3
    corrupt(first)

    model.seen.clear()
    with caplog.at_level("WARNING", logger="polyret.encode"):
        reopened = EmbeddingCache(tmp_path / "m")
        got = encode(model, texts, kind="passage", cache=reopened)
    messages = [r.getMessage() for r in caplog.records]
    assert any(first.name in m and reason in m for m in messages), messages
    suffix = ".legacy" if name.startswith("no checksum") else ".corrupt"  # old, not damaged
    assert not first.exists() and first.with_name(first.name + suffix).exists()  # never read again
    assert sorted(model.seen) == sorted(texts[:3])  # exactly the damaged shard's texts, encoded again
    np.testing.assert_allclose(got, expected, rtol=1e-6)
    # the next run reads only good shards and encodes nothing
    model.seen.clear()
    caplog.clear()
    with caplog.at_level("WARNING", logger="polyret.encode"):
        again = encode(model, texts, kind="passage", cache=EmbeddingCache(tmp_path / "m"))
    assert model.seen == [] and not caplog.records
    np.testing.assert_allclose(again, expected, rtol=1e-6)


def test_cached_dim_must_match_the_model(tmp_path, caplog):
    """A whole cache of another dimension (valid checksums) is set aside once the model says its dim."""
    model = CountingModel()
    root = tmp_path / "m"
    root.mkdir()
    keys = np.frombuffer(b"".join(text_key("passage: ", t) for t in ["a", "b"]), dtype=np.uint8).reshape(2, 16)
    emb = np.eye(2, 4, dtype=np.float32)
    _write_shard(root / "shard-old.npz", keys, emb)
    cache = EmbeddingCache(root)
    assert len(cache) == 2 and cache.dim == 4  # consistent on its own
    with caplog.at_level("WARNING", logger="polyret.encode"):
        got = encode(model, ["a", "b"], kind="passage", cache=cache)
    assert got.shape == (2, 8) and sorted(model.seen) == ["a", "b"]
    assert any("shard-old.npz" in r.getMessage() and "model produces 8" in r.getMessage() for r in caplog.records)
    assert (root / "shard-old.npz.corrupt").exists()


def test_shards_carry_a_checksum_over_keys_rows_and_owner(tmp_path):
    from polyret.encode import shard_checksum

    cache = EmbeddingCache(tmp_path / "fp123")
    encode(CountingModel(), ["x", "y"], kind="query", cache=cache)
    (shard,) = (tmp_path / "fp123").glob("shard-*.npz")
    with np.load(shard) as z:
        assert str(z["checksum"]) == shard_checksum("fp123", z["keys"], z["emb"])
        assert str(z["checksum"]) != shard_checksum("other", z["keys"], z["emb"])


def test_non_finite_embeddings_from_the_model_are_an_error_and_never_cached(tmp_path):
    class NaNModel(CountingModel):
        def encode(self, texts, **kwargs):
            emb = super().encode(texts, **kwargs)
            emb[[i for i, t in enumerate(texts) if t == "bad"]] = np.nan
            return emb

    cache = EmbeddingCache(tmp_path / "m")
    with pytest.raises(ValueError, match=r"non-finite embeddings for 1 of 3 passage texts \(e\.g\. 'bad'\)"):
        encode(NaNModel(), ["a", "bad", "c"], kind="passage", cache=cache, batch_size=8)
    assert len(EmbeddingCache(tmp_path / "m")) == 0 and not list((tmp_path / "m").glob("*.corrupt"))


def test_a_cache_of_an_older_polyret_is_one_warning_not_one_per_shard(tmp_path, caplog):
    model = CountingModel()
    texts = [f"text {i}" for i in range(6)]
    cache = EmbeddingCache(tmp_path / "m")
    for i in range(0, 6, 2):
        encode(model, texts[i : i + 2], kind="passage", cache=cache)
    shards = sorted((tmp_path / "m").glob("shard-*.npz"))
    assert len(shards) == 3
    for shard in shards:
        _legacy_no_checksum(shard)
    with caplog.at_level("WARNING", logger="polyret.encode"):
        reopened = EmbeddingCache(tmp_path / "m")
    assert len(reopened) == 0 and sorted((tmp_path / "m").glob("*.legacy")) == [s.with_name(s.name + ".legacy") for s in shards]
    (message,) = [r.getMessage() for r in caplog.records]
    assert "3 embedding cache shard(s) of an older polyret have no checksum" in message
