"""A cached evaluation starts without loading its model: the load memo (polyret.models.LazyModel)."""

from __future__ import annotations

import json
import shutil

import pytest

import polyret.models as models
from polyret.data import load_benchmark
from polyret.data.records import Benchmark
from polyret.errors import ModelError
from polyret.evaluation import evaluate


@pytest.fixture
def small():
    bench = load_benchmark("xquad-r:test", languages=["de", "en"])
    keep = [q for q in bench.queries if int(q.id, 16) % 16 == 0]
    return Benchmark(bench.id, bench.languages, keep, bench.candidates, bench.qrels)


@pytest.fixture
def counted_loads(monkeypatch):
    calls = []
    real = models.load

    def load(*args, **kwargs):
        calls.append(args[0])
        return real(*args, **kwargs)

    monkeypatch.setattr(models, "load", load)
    return calls


def _memos(cache):
    return sorted((cache / "embeddings" / "load-memo").glob("*.json"))


def test_a_cached_rerun_does_not_load_the_model_and_gives_the_same_results(
    tmp_path, tiny_model_dir, small, monkeypatch, counted_loads
):
    cache = tmp_path / "cache"
    monkeypatch.setenv("POLYRET_CACHE_DIR", str(cache))
    first = evaluate(tiny_model_dir, small, progress=False)
    assert counted_loads == [tiny_model_dir] and len(_memos(cache)) == 1
    second = evaluate(tiny_model_dir, small, progress=False)
    assert counted_loads == [tiny_model_dir]  # every text cached: the model was never loaded
    assert second.macro == first.macro and second.fingerprint == first.fingerprint
    # a text that is not cached (a third language) loads it, once, and still matches a plain run
    wider = load_benchmark("xquad-r:test", languages=["de", "en", "zh"])
    lazy = evaluate(tiny_model_dir, wider, progress=False)
    assert counted_loads == [tiny_model_dir, tiny_model_dir]
    plain = evaluate(tiny_model_dir, wider, progress=False, cache=False)
    assert lazy.macro == plain.macro and lazy.fingerprint == plain.fingerprint


def test_the_memo_is_keyed_by_content_and_checked(tmp_path, tiny_model_dir, small, monkeypatch, counted_loads):
    cache = tmp_path / "cache"
    monkeypatch.setenv("POLYRET_CACHE_DIR", str(cache))
    model = tmp_path / "model"
    shutil.copytree(tiny_model_dir, model)
    evaluate(str(model), small, progress=False)
    (memo,) = _memos(cache)
    # a same-size edit of a model file: another content, another key: loaded again, a second memo
    cfg = model / "config.json"
    text = cfg.read_text()
    cfg.write_text(text.replace('"hidden_act": "gelu"', '"hidden_act": "relu"') if '"gelu"' in text else text + " ")
    evaluate(str(model), small, progress=False)
    assert len(counted_loads) == 2 and len(_memos(cache)) == 2
    cfg.write_text(text)
    # a damaged memo (its body edited, its sha256 not) is not trusted: the model loads
    record = json.loads(memo.read_text())
    record["memo"]["fingerprint"] = "0" * 16
    memo.write_text(json.dumps(record))
    evaluate(str(model), small, progress=False)
    assert len(counted_loads) == 3
    # different load arguments (another max_seq_length): another key
    evaluate(str(model), small, progress=False, max_seq_length=16)
    assert len(counted_loads) == 4


def test_a_memo_naming_another_fingerprint_is_refused_when_the_model_loads(tmp_path, tiny_model_dir, monkeypatch):
    source = models.resolve(tiny_model_dir)
    key = models.load_memo_key(source, spec=tiny_model_dir, device=None)
    body = models.write_memo(tmp_path, key, models.load(tiny_model_dir))
    lazy = models.load_cached(tiny_model_dir, memo_root=tmp_path, device=None)
    assert isinstance(lazy, models.LazyModel) and not lazy.loaded
    assert models.fingerprint(lazy) == body["fingerprint"] and lazy.prompts == body["prompts"]
    lazy.__dict__["polyret_fingerprint"] = "f" * 16  # as if the memo were stale
    with pytest.raises(ModelError, match="load memo"):
        lazy.encode(["x"])
    assert not models._memo_path(tmp_path, key).exists()


def test_a_cached_rerun_in_a_new_process_does_not_import_torch(tmp_path, tiny_model_dir, monkeypatch):
    """Importing torch (~1.5 s) is most of a cached evaluation's start-up: with every text cached, the
    precision resolved from the remembered CPU capabilities and no GPU device node, it is never imported."""
    import subprocess
    import sys

    from polyret import precision

    if precision.gpu_device_nodes():
        pytest.skip("a GPU device node is present: torch is asked whether CUDA is available")
    monkeypatch.setenv("POLYRET_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv(precision.CPU_BF16_ENV, raising=False)  # the CPU is asked (and remembered), as in a user's run
    script = f"""
import sys
from polyret.data import load_benchmark
from polyret.data.records import Benchmark
from polyret.evaluation import evaluate
bench = load_benchmark("xquad-r:test", languages=["de", "en"])
keep = [q for q in bench.queries if int(q.id, 16) % 16 == 0]
res = evaluate({str(tiny_model_dir)!r}, Benchmark(bench.id, bench.languages, keep, bench.candidates, bench.qrels), progress=False)
print("torch" in sys.modules, res.macro["mono"]["map"])
"""
    runs = [subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True) for _ in range(2)]
    first, second = (r.stdout.split() for r in runs)
    assert first[0] == "True"  # the first run encodes: it loads the model, so torch
    assert second == ["False", first[1]]  # the cached run: the same number, torch never imported
