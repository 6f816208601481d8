"""The encode options of an evaluation (precision, store dtype and threshold, devices, max_tokens) and
``--corpus`` reach the encoder, from the API and from the command line; bad values exit 2 naming the key."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

import polyret.models
from polyret.cli import app
from polyret.evaluation import EvalConfig, evaluate
from polyret.training.config import ConfigError
from tests.helpers.miracl import write_corpus as _corpus
from tests.helpers.miracl import write_miracl_dir as _tiny

WORDS = "city river capital country year people war king church music school water language history".split()


def _docs(n: int, seed: int, prefix: str) -> list[dict]:
    rng = np.random.default_rng(seed)
    texts = [" ".join(rng.choice(WORDS, int(rng.integers(2, 9)))) for _ in range(n)]
    return [{"docid": f"{prefix}{i}", "title": "", "text": t} for i, t in enumerate(texts)]


@pytest.fixture()
def miracl_data(tmp_path, monkeypatch):
    """A data dir with 6 sw topics, qrels and a 30-passage corpus, and a user corpus of 40 other passages
    (``own``, relevant docids o0..o5) elsewhere."""
    monkeypatch.setenv("POLYRET_CACHE_DIR", str(tmp_path / "cache"))
    topics = "".join(f"{i}\t{' '.join(WORDS[i : i + 3])}\n" for i in range(6))
    qrels = "".join(f"{i} Q0 o{i} 1\n{i} Q0 d{i} 1\n" for i in range(6))
    corpus = "".join(json.dumps(d) + "\n" for d in _docs(30, 0, "d"))
    data = _tiny(tmp_path, topics, qrels, corpus)
    own = _corpus(tmp_path / "mine" / "own.jsonl.gz", _docs(40, 1, "o"), gz=True)
    return data, own


class BatchSpy:
    """Wraps the real ``polyret.models.encode_batch``: records each passage batch and the autocast state."""

    def __init__(self, monkeypatch):
        import torch

        self.batches: list[tuple[list[str], bool, object]] = []
        real = polyret.models.encode_batch

        def spy(model, texts, *, kind, **kw):
            if kind == "passage":
                on = torch.is_autocast_enabled("cpu")
                self.batches.append((list(texts), on, torch.get_autocast_dtype("cpu") if on else None))
            return real(model, texts, kind=kind, **kw)

        monkeypatch.setattr(polyret.models, "encode_batch", spy)


def _store(cache: Path, precision: str, dtype: str) -> Path:
    (manifest,) = (cache / "embeddings").glob(f"*@{precision}/stores/*-{dtype}/manifest.json")
    return manifest.parent


def _check_run(out: Path, cache: Path, spy: BatchSpy, tiny_model_dir: str) -> None:
    import torch

    from polyret.encode import model_dim, prompt_of, token_lengths
    from polyret.models import load

    data = json.loads((out / "results.json").read_text())
    cfg = data["config"]
    assert (cfg["precision"], cfg["store_dtype"], cfg["store_threshold"], cfg["max_tokens"]) == ("bf16", "float16", 10, 24)
    assert cfg["corpus"].endswith("own.jsonl.gz") and data["n_candidates"] == 40  # the user's corpus, not the data dir's 30
    assert data["unretrievable_relevant"] == 6 * 1  # d0..d5 are not in the user's corpus: misses
    # the store: float16 rows on disk, under the bf16 owner, one row per passage of the user's corpus
    store = _store(cache, "bf16", "float16")
    model = load(tiny_model_dir, device="cpu")
    dim = model_dim(model)
    assert (store / "embeddings.bin").stat().st_size == 40 * dim * 2
    rows = np.fromfile(store / "embeddings.bin", dtype=np.float16).reshape(40, dim).astype(np.float32)
    texts = [d["text"] for d in _docs(40, 1, "o")]
    want = model.encode_document(texts, normalize_embeddings=True, convert_to_numpy=True)
    assert np.min(np.sum(rows * want, axis=1)) > 0.99  # bf16 inference, float16 storage, the same texts in order
    # every passage batch ran under bf16 autocast and within 24 padded tokens
    assert spy.batches and all(on and dtype == torch.bfloat16 for _, on, dtype in spy.batches)
    prompt = prompt_of(model, "passage")
    for batch, _, _ in spy.batches:
        assert len(batch) * int(token_lengths(model, [prompt + t for t in batch]).max()) <= 24
    assert sorted(t for b, _, _ in spy.batches for t in b) == sorted(texts)


def test_api_encode_options_and_corpus_reach_the_store(miracl_data, tiny_model_dir, tmp_path, monkeypatch):
    data, own = miracl_data
    spy = BatchSpy(monkeypatch)
    out = tmp_path / "out"
    res = evaluate(
        tiny_model_dir,
        "miracl/sw",
        data_dir=str(data),
        corpus=str(own),
        precision="bf16",
        store_dtype="float16",
        store_threshold=10,
        max_tokens=24,
        batch_size=64,
        output=out,
        progress=False,
        device="cpu",
    )
    assert res.extra["config"]["corpus"] == str(own)
    _check_run(out, tmp_path / "cache", spy, tiny_model_dir)


def test_cli_encode_options_and_corpus_reach_the_store(miracl_data, tiny_model_dir, tmp_path, monkeypatch):
    data, own = miracl_data
    spy = BatchSpy(monkeypatch)
    out = tmp_path / "out"
    args = ["evaluate", "--model", tiny_model_dir, "--benchmark", "miracl/sw", "--data-dir", str(data), "--corpus", str(own),
            "--precision", "bf16", "--store-dtype", "float16", "--store-threshold", "10", "--max-tokens", "24",
            "--batch-size", "64", "--device", "cpu", "--output", str(out)]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    _check_run(out, tmp_path / "cache", spy, tiny_model_dir)


def test_below_the_threshold_the_per_text_cache_is_used(miracl_data, tiny_model_dir, tmp_path):
    data, own = miracl_data
    evaluate(tiny_model_dir, "miracl/sw", data_dir=str(data), corpus=str(own), store_threshold=41, progress=False)
    assert not list((tmp_path / "cache" / "embeddings").glob("*/stores"))
    assert list((tmp_path / "cache" / "embeddings").rglob("shard-*.npz"))


@pytest.mark.parametrize(
    "key, value, named",
    [
        ("precision", "fp8", "precision: unknown 'fp8'"),
        ("store_dtype", "int8", "store_dtype: unknown 'int8'"),
        ("store_threshold", -1, "store_threshold must be an integer >= 0"),
        ("max_tokens", 0, "max_tokens must be an integer >= 1"),
        ("max_tokens", 2.5, "max_tokens must be an integer"),
        ("devices", [], "devices must be a non-empty list"),
        ("devices", ["cuda:0", "gpu 1"], "devices: 'gpu 1' is not a device name"),
    ],
)
def test_bad_encode_option_is_a_config_error_naming_the_key_before_anything_loads(monkeypatch, key, value, named):
    import polyret.data

    monkeypatch.setattr(polyret.models, "load", lambda *a, **k: pytest.fail("model loaded before the check"))
    monkeypatch.setattr(polyret.data, "load_benchmark", lambda *a, **k: pytest.fail("data loaded before the check"))
    with pytest.raises(ConfigError, match="invalid evaluation config: " + named.replace("(", r"\(")):
        EvalConfig(**{key: value})
    with pytest.raises(ConfigError, match=named.replace("(", r"\(")):
        evaluate("builtin:me5-small", "miracl/sw", progress=False, **{key: value})


def _two_gpus(monkeypatch) -> None:
    """Pretend this machine has two CUDA devices: the checks below are about the option, not the hardware."""
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)


def test_devices_under_a_launcher_is_refused_before_anything_loads(monkeypatch):
    import polyret.data

    _two_gpus(monkeypatch)

    monkeypatch.setenv("WORLD_SIZE", "2")  # as torchrun / accelerate launch set it
    monkeypatch.setattr(polyret.models, "load", lambda *a, **k: pytest.fail("model loaded before the check"))
    monkeypatch.setattr(polyret.data, "load_benchmark", lambda *a, **k: pytest.fail("data loaded before the check"))
    with pytest.raises(ConfigError, match="devices: a device pool is for one process without a launcher"):
        EvalConfig(devices=["cuda:0", "cuda:1"])
    monkeypatch.setenv("WORLD_SIZE", "1")
    assert EvalConfig(devices=["cuda:0", "cuda:1"]).devices == ("cuda:0", "cuda:1")  # frozen: a tuple


def test_devices_string_is_split_and_corpus_needs_a_miracl_id(miracl_data, tmp_path, monkeypatch):
    from polyret.data import DataError, load_benchmark

    _two_gpus(monkeypatch)

    data, own = miracl_data
    assert EvalConfig(devices="cuda:0, cuda:1").devices == ("cuda:0", "cuda:1")
    with pytest.raises(DataError, match="corpus: only a MIRACL-format benchmark"):
        load_benchmark("xquad-r:test", corpus=own)
    with pytest.raises(DataError, match="corpus: no corpus file at"):
        load_benchmark("miracl/sw", data_dir=data, corpus=tmp_path / "none.jsonl")
    bench = load_benchmark("miracl/sw", data_dir=data, corpus=own, download=False)
    assert len(bench.candidates) == 40 and str(own) in bench.provenance


@pytest.mark.distributed
def test_devices_run_a_pool_and_give_the_rows_of_one_process(miracl_data, tiny_model_dir, tmp_path, monkeypatch):
    """``devices=["cpu", "cpu"]``: two worker processes encode; the store's rows and the numbers match one process."""
    import sys as _sys

    data, own = miracl_data
    ev = _sys.modules["polyret.evaluation.encoding"]
    entered = []
    real = ev.device_pool

    def recording(model, devices, precision="fp32"):
        entered.append(list(devices))
        return real(model, devices, precision)

    monkeypatch.setattr(ev, "device_pool", recording)
    common = {"data_dir": str(data), "corpus": str(own), "store_threshold": 10, "progress": False, "device": "cpu"}
    pooled = evaluate(tiny_model_dir, "miracl/sw", devices=["cpu", "cpu"], cache_dir=str(tmp_path / "c1"), **common)
    solo = evaluate(tiny_model_dir, "miracl/sw", cache_dir=str(tmp_path / "c2"), **common)
    assert entered == [["cpu", "cpu"]]
    assert pooled.per_setting == solo.per_setting
    (a,) = (tmp_path / "c1" / "embeddings").glob("*/stores/*/embeddings.bin")
    (b,) = (tmp_path / "c2" / "embeddings").glob("*/stores/*/embeddings.bin")
    np.testing.assert_allclose(np.fromfile(a, dtype=np.float32), np.fromfile(b, dtype=np.float32), atol=2e-6)
