"""Encoding with real (tiny) sentence-transformers models: StaticEmbedding, precision, devices, the
store path of ``encode_benchmark``."""

from __future__ import annotations

import numpy as np
import pytest

from polyret.data.records import Benchmark, Candidate, Query
from polyret.encode import EmbeddingCache, EncodeError, encode, token_lengths
from polyret.evaluation.encoding import encode_benchmark

WORDS = "the a river city capital king war music school water language history science world".split()


def _texts(n: int, seed: int = 0) -> list[str]:
    rng = np.random.default_rng(seed)
    return [" ".join(rng.choice(WORDS, size=int(rng.integers(2, 30)))) for _ in range(n)]


@pytest.fixture(scope="module")
def tiny(tiny_model_dir):
    import torch

    from polyret.models import load

    torch.manual_seed(0)
    return load(tiny_model_dir, device="cpu")


def _static_model():
    import torch
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import StaticEmbedding
    from tokenizers import Tokenizer, models, pre_tokenizers

    vocab = {w: i for i, w in enumerate(["[UNK]", "passage", "query", ":", *WORDS])}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    torch.manual_seed(0)
    static = StaticEmbedding(tok, embedding_dim=16)
    return SentenceTransformer(modules=[static], prompts={"query": "query : ", "passage": "passage : "}, device="cpu")


def test_a_static_embedding_model_encodes(tmp_path):
    model = _static_model()
    texts = _texts(40)
    lengths = token_lengths(model, texts)  # a raw tokenizers.Tokenizer, max_seq_length = inf: crashed before
    assert lengths.tolist() == [len(t.split()) for t in texts]
    got = encode(model, texts, kind="passage", batch_size=8, cache=EmbeddingCache(tmp_path / "static"))
    want = model.encode(texts, prompt_name="passage", normalize_embeddings=True, convert_to_numpy=True)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    again = encode(model, texts, kind="passage", cache=EmbeddingCache(tmp_path / "static"))
    np.testing.assert_allclose(again, got, rtol=1e-6)


def test_bf16_inference_is_close_to_fp32_but_not_the_same_rows_and_cached_apart(tiny, tmp_path):
    texts = _texts(30)
    cache = EmbeddingCache(tmp_path / "fp")
    fp32 = encode(tiny, texts, kind="passage", cache=cache)
    bf16 = encode(tiny, texts, kind="passage", cache=cache, precision="bf16")
    assert not np.array_equal(fp32, bf16)  # autocast really ran in bfloat16
    cos = (fp32 * bf16).sum(axis=1)
    assert cos.min() > 0.99
    assert (tmp_path / "fp@bf16").is_dir() and len(EmbeddingCache(tmp_path / "fp")) == 30
    np.testing.assert_array_equal(encode(tiny, texts, kind="passage", cache=cache), fp32)  # fp32 rows untouched
    with pytest.raises(EncodeError, match="precision: unknown 'fp8'"):
        encode(tiny, texts, kind="passage", precision="fp8")


def test_max_tokens_is_an_option_that_changes_only_the_batches(tiny, monkeypatch):
    import polyret.models

    sizes: list[int] = []
    real = polyret.models.encode_batch

    def recording(model, texts, **kw):
        sizes.append(len(texts))
        return real(model, texts, **kw)

    monkeypatch.setattr(polyret.models, "encode_batch", recording)
    texts = _texts(40)
    wide = encode(tiny, texts, kind="passage", batch_size=64, max_tokens=100_000)
    assert sizes == [40]
    sizes.clear()
    narrow = encode(tiny, texts, kind="passage", batch_size=64, max_tokens=64)
    assert len(sizes) > 5 and sum(sizes) == 40
    np.testing.assert_allclose(narrow, wide, atol=2e-6)


def _benchmark(n: int) -> Benchmark:
    texts = _texts(n, seed=1)
    queries = [Query(f"q{i}", "en", f"what {texts[i]}") for i in range(5)]
    cands = [Candidate(f"d{i}", "en", t) for i, t in enumerate(texts)]
    return Benchmark("tiny-store", ("en",), queries, cands, {f"q{i}": {f"d{i}": 1} for i in range(5)})


def test_encode_benchmark_puts_a_large_candidate_set_in_the_store(tiny, tmp_path):
    bench = _benchmark(50)
    cache = EmbeddingCache(tmp_path / "cache" / "fp")
    q_small, c_small = encode_benchmark(tiny, bench, cache=cache, progress=False)
    assert not isinstance(c_small, np.memmap) and not (tmp_path / "cache" / "fp" / "stores").exists()
    q_big, c_big = encode_benchmark(tiny, bench, cache=cache, progress=True, store_threshold=10, chunk_rows=16)
    assert isinstance(c_big, np.memmap) and (tmp_path / "cache" / "fp" / "stores").is_dir()
    np.testing.assert_allclose(c_big, c_small, atol=2e-6)
    np.testing.assert_array_equal(q_big, q_small)
    _, c_f16 = encode_benchmark(tiny, bench, cache=cache, progress=False, store_threshold=10, store_dtype="float16")
    assert c_f16.dtype == np.float16 and np.abs(c_f16.astype(np.float32) - c_small).max() < 1e-3
    _, c_nocache = encode_benchmark(tiny, bench, cache=None, progress=False, store_threshold=10)
    np.testing.assert_allclose(c_nocache, c_small, atol=2e-6)
    with pytest.raises(EncodeError, match="store_dtype"):
        encode_benchmark(tiny, bench, cache=cache, progress=False, store_dtype="int8")


@pytest.mark.distributed
def test_two_cpu_devices_give_the_rows_of_one_process(tiny, tmp_path):
    """sentence-transformers' multi-process pool (``devices=["cpu", "cpu"]``) through polyret."""
    from polyret.encode import device_pool, encode_to_store

    texts = _texts(60, seed=2)
    want = encode(tiny, texts, kind="passage", batch_size=8)
    with device_pool(tiny, ["cpu", "cpu"]) as pool:
        got = encode(tiny, texts, kind="passage", batch_size=8, pool=pool)
        stored = encode_to_store(tiny, texts, model_cache=tmp_path / "fp", batch_size=8, chunk_rows=25, pool=pool)
    np.testing.assert_allclose(got, want, atol=2e-6)
    np.testing.assert_allclose(stored, want, atol=2e-6)
    assert str(tiny.device) == "cpu"


def test_one_autocast_region_per_window_gives_the_rows_of_one_region_per_batch(tiny, monkeypatch):
    """encode_window holds one bf16 autocast region over its batches (torch then casts each weight once per
    window, not per batch): the rows are those of a region per batch, bit for bit."""
    import polyret.models
    from polyret.encode.stream import encode_window, inference_precision

    texts = _texts(40, seed=3)
    batches: list[list[str]] = []
    real = polyret.models.encode_batch

    def recording(model, batch, **kw):
        batches.append(list(batch))
        return real(model, batch, **kw)

    monkeypatch.setattr(polyret.models, "encode_batch", recording)
    window = encode_window(tiny, texts, kind="passage", batch_size=8, precision="bf16")
    monkeypatch.setattr(polyret.models, "encode_batch", real)
    assert len(batches) > 2
    position = {t: i for i, t in enumerate(texts)}
    for batch in batches:
        with inference_precision(tiny, "bf16"):
            rows = np.asarray(real(tiny, batch, kind="passage", batch_size=8), dtype=np.float32)
        np.testing.assert_array_equal(window[[position[t] for t in batch]], rows)
