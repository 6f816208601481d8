import numpy as np
import pytest

from polyret.encode import EmbeddingCache, count_missing, encode


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
