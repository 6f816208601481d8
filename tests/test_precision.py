"""Precision ``auto`` (polyret.precision): one meaning for training and inference, CPU capabilities and CUDA
mocked both ways; the emulation warning; the resolved precision in what evaluation writes and caches."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
from typer.testing import CliRunner

from polyret import precision
from polyret.cli import app
from polyret.precision import EmulatedPrecisionWarning, resolve

AMX = {"amx_bf16": True, "amx_tile": True, "avx512_bf16": True, "avx512_f": True, "architecture": "x86_64"}
AVX512_BF16 = {"avx512_bf16": True, "avx512_f": True, "amx_bf16": False, "architecture": "x86_64"}
NO_BF16 = {"avx512_f": True, "avx2": True, "avx512_bf16": False, "amx_bf16": False, "architecture": "x86_64"}


def _cpu(monkeypatch, caps: dict) -> None:
    monkeypatch.delenv(precision.CPU_BF16_ENV, raising=False)  # conftest's pin: these tests set the CPU themselves
    monkeypatch.setattr(precision, "_cpu_capabilities", lambda: caps)


def _cuda(monkeypatch, *, available: bool, native_bf16: bool = False) -> None:
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: available)
    monkeypatch.setattr(precision, "cuda_native_bf16", lambda: native_bf16)


@pytest.mark.parametrize(
    ("caps", "feature"),
    [(AMX, "AMX"), (AVX512_BF16, "AVX512-BF16"), ({"bf16": True, "architecture": "aarch64"}, "Arm BF16")],
)
def test_auto_on_a_cpu_with_native_bf16_is_bf16(monkeypatch, caps, feature):
    _cpu(monkeypatch, caps)
    _cuda(monkeypatch, available=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no emulation warning: the CPU has it
        got = resolve("auto")
        assert resolve("bf16", "cpu").precision == "bf16"
    assert (got.precision, got.reason) == ("bf16", f"CPU has {feature}")
    assert got.describe() == f"bf16 (auto: CPU has {feature})"
    assert resolve("fp32", "cpu").precision == "fp32"  # the reference always works


def test_auto_on_a_cpu_without_native_bf16_is_fp32_and_bf16_asked_for_warns_that_it_is_emulated(monkeypatch):
    _cpu(monkeypatch, NO_BF16)
    _cuda(monkeypatch, available=False)
    got = resolve("auto")
    assert got.precision == "fp32" and "no native bf16" in got.reason
    with pytest.warns(EmulatedPrecisionWarning) as record:
        asked = resolve("bf16", "cpu")
    assert asked.precision == "bf16" and "emulated" in asked.reason
    (message,) = [str(w.message) for w in record]
    assert "emulated" in message and "\n" not in message  # one line, saying why and what to use
    assert resolve("fp16", "cpu").precision == "fp16"  # inference may ask; training may not (below)
    with pytest.raises(ValueError, match="fp16 needs a CUDA device"):
        resolve("fp16", "cpu", training=True)
    with pytest.raises(ValueError, match="unknown 'fp8'; choose from auto, fp32, bf16, fp16"):
        resolve("fp8")


@pytest.mark.parametrize(("native", "want"), [(True, "bf16"), (False, "fp16")])
def test_auto_on_cuda_is_bf16_where_the_gpu_has_it_else_fp16_whatever_the_cpu(monkeypatch, native, want):
    _cpu(monkeypatch, AMX if native else NO_BF16)  # the CPU does not matter on a GPU
    _cuda(monkeypatch, available=True, native_bf16=native)
    assert resolve("auto").precision == want  # None: where polyret puts a model, CUDA here
    assert resolve("auto", "cuda:1", training=True).precision == want
    assert resolve("auto", "cpu").precision == ("bf16" if native else "fp32")  # a model kept on the CPU
    if not native:
        monkeypatch.setattr("torch.cuda.get_device_name", lambda *a: "Tesla T4")
        with pytest.raises(ValueError, match="T4 has no native bf16"):
            resolve("bf16", "cuda", training=True)


def test_the_trainer_and_the_encoder_use_the_same_auto(monkeypatch, tiny_model_dir):
    from polyret.encode.stream import resolve_for
    from polyret.models import load
    from polyret.training.config import ConfigError
    from polyret.training.trainer import resolve_precision

    model = load(tiny_model_dir, device="cpu")
    _cuda(monkeypatch, available=False)
    for caps, want in ((AMX, "bf16"), (NO_BF16, "fp32")):
        _cpu(monkeypatch, caps)
        assert resolve_precision("auto") == resolve_for(model, "auto") == want
    with pytest.raises(ConfigError, match="fp16 needs a CUDA device"):
        resolve_precision("fp16")


def test_the_environment_overrides_the_detection(monkeypatch):
    _cpu(monkeypatch, AMX)
    monkeypatch.setenv(precision.CPU_BF16_ENV, "0")
    assert resolve("auto", "cpu").precision == "fp32"
    _cpu(monkeypatch, NO_BF16)
    monkeypatch.setenv(precision.CPU_BF16_ENV, "1")
    got = resolve("auto", "cpu")
    assert got.precision == "bf16" and "POLYRET_CPU_BF16=1" in got.reason


def test_cpuinfo_flags_are_the_fallback(tmp_path, monkeypatch):
    x86 = tmp_path / "x86"
    x86.write_text("processor\t: 0\nflags\t\t: fpu avx2 avx512f avx512_bf16 avx512_vnni\n\nprocessor\t: 1\n")
    arm = tmp_path / "arm"
    arm.write_text("processor\t: 0\nFeatures\t: fp asimd sve bf16 i8mm\n")
    old = tmp_path / "old"
    old.write_text("processor\t: 0\nflags\t\t: fpu avx2 avx512f\n")
    assert precision._proc_cpuinfo_flags(x86)["avx512_bf16"] is True
    for path, want in ((x86, "AVX512-BF16"), (arm, "Arm BF16"), (old, None), (tmp_path / "missing", None)):
        flags = precision._proc_cpuinfo_flags(path)
        _cpu(monkeypatch, flags)
        assert precision.cpu_native_bf16() == want, path.name


def _bench():
    from polyret.data.records import Benchmark, Candidate, Query

    texts = [f"the river {w} city {i}" for i, w in enumerate("king war music school water language history".split())]
    queries = [Query(f"q{i}", "en", f"what {t}") for i, t in enumerate(texts[:4])]
    cands = [Candidate(f"d{i}", "en", t) for i, t in enumerate(texts)]
    return Benchmark("tiny-precision", ("en",), queries, cands, {f"q{i}": {f"d{i}": 1} for i in range(4)})


def test_encode_auto_follows_the_cpu_and_caches_by_resolved_precision(monkeypatch, tiny_model_dir, tmp_path):
    from polyret.encode import EmbeddingCache, encode
    from polyret.models import load

    model = load(tiny_model_dir, device="cpu")
    texts = [c.text for c in _bench().candidates]
    _cpu(monkeypatch, AMX)
    auto = encode(model, texts, kind="passage", cache=EmbeddingCache(tmp_path / "fp"))
    assert (tmp_path / "fp@bf16").is_dir() and not (tmp_path / "fp@auto").exists()
    assert len(EmbeddingCache(tmp_path / "fp")) == 0 and len(EmbeddingCache(tmp_path / "fp@bf16")) == len(texts)
    np.testing.assert_array_equal(auto, encode(model, texts, kind="passage", precision="bf16"))
    _cpu(monkeypatch, NO_BF16)
    fp32 = encode(model, texts, kind="passage", cache=EmbeddingCache(tmp_path / "fp"))
    assert len(EmbeddingCache(tmp_path / "fp")) == len(texts)  # fp32 rows in the fp32 folder, apart
    np.testing.assert_array_equal(fp32, encode(model, texts, kind="passage", precision="fp32"))
    assert not np.array_equal(fp32, auto)


@pytest.mark.parametrize(("caps", "want", "why"), [(AMX, "bf16", "CPU has AMX"), (NO_BF16, "fp32", "no native bf16")])
def test_evaluate_records_the_resolved_precision(monkeypatch, tiny_model_dir, tmp_path, caps, want, why):
    from polyret.evaluation import evaluate
    from polyret.models import load

    _cpu(monkeypatch, caps)
    out = tmp_path / "out"
    model = load(tiny_model_dir, device="cpu")
    res = evaluate(model, _bench(), output=out, progress=False, cache_dir=str(tmp_path / "cache"))
    data = json.loads((out / "results.json").read_text())
    assert data["precision"] == data["config"]["precision"] == res.extra["precision"] == want
    assert why in data["precision_reason"]
    assert '"auto"' not in (out / "results.json").read_text()  # never recorded unresolved
    owners = [p.name for p in (tmp_path / "cache" / "embeddings").iterdir()]
    assert len(owners) == 1 and owners[0].endswith("@bf16") == (want == "bf16")


def test_cli_says_which_precision_runs_and_why(monkeypatch, tmp_path, tiny_model_dir):
    pairs = tmp_path / "pairs.jsonl"
    rows = [{"id": f"g{g}", "lang": lang, "query": f"q {g} {lang}", "positive": f"p {g} {lang}"}
            for g in range(16) for lang in ("de", "en")]  # fmt: skip
    pairs.write_text("".join(json.dumps(r) + "\n" for r in rows))
    base = ["train", "--model", tiny_model_dir, "--train", str(pairs), "--output", str(tmp_path / "run"),
            "--batch-size", "8", "--dry-run"]  # fmt: skip
    _cuda(monkeypatch, available=False)
    _cpu(monkeypatch, AMX)
    result = CliRunner().invoke(app, base)
    assert result.exit_code == 0, result.output
    assert "precision: bf16 (auto: CPU has AMX" in result.output
    _cpu(monkeypatch, NO_BF16)
    result = CliRunner().invoke(app, base)
    assert result.exit_code == 0, result.output
    assert "precision: fp32 (auto: CPU has no native bf16" in result.output
    result = CliRunner().invoke(app, [*base, "--set", "precision=fp32"])
    assert "precision: fp32 (requested)" in result.output


def test_the_command_line_prints_the_emulation_warning_on_one_line(monkeypatch):
    from polyret.cli import _one_line_warnings

    monkeypatch.setattr(warnings, "formatwarning", warnings.formatwarning)  # restored afterwards
    _one_line_warnings()
    text = warnings.formatwarning("precision bf16: ... emulated ...", EmulatedPrecisionWarning, "x.py", 1)
    assert text == "warning: precision bf16: ... emulated ...\n"
    assert "UserWarning" in warnings.formatwarning("other", UserWarning, "x.py", 1)  # others as Python prints them


def test_the_cpu_capabilities_are_remembered_per_cpu_and_torch_version(tmp_path, monkeypatch):
    memo = tmp_path / "cpu_capabilities.json"
    asked = []

    def ask():
        asked.append(1)
        return dict(AVX512_BF16)

    line = "flags\t\t: fpu avx512f avx512_bf16"
    assert precision.remembered_capabilities(memo, line, ask) == AVX512_BF16 and len(asked) == 1
    assert precision.remembered_capabilities(memo, line, ask) == AVX512_BF16 and len(asked) == 1  # remembered
    assert precision.remembered_capabilities(memo, line + " amx_bf16", ask) == AVX512_BF16 and len(asked) == 2  # another CPU
    monkeypatch.setattr(precision, "_torch_version", lambda: "9.9.9")
    precision.remembered_capabilities(memo, line + " amx_bf16", ask)
    assert len(asked) == 3  # another torch
    memo.write_text("{not json")
    assert precision.remembered_capabilities(memo, line, ask) == AVX512_BF16 and len(asked) == 4  # damaged: asked again
    assert json.loads(memo.read_text())["capabilities"] == AVX512_BF16  # and rewritten


def test_without_a_gpu_device_node_the_default_device_is_the_cpu_without_torch(monkeypatch):
    import sys

    monkeypatch.setattr(precision.os.path, "exists", lambda p: False)
    monkeypatch.setattr(precision.sys, "platform", "linux")
    monkeypatch.delitem(sys.modules, "torch")  # as in a fresh process (restored after the test)
    assert precision.gpu_device_nodes() == []
    assert precision._device_type(None) == "cpu"
    monkeypatch.setattr(precision.os.path, "exists", lambda p: p == "/dev/nvidiactl")
    assert precision.gpu_device_nodes() == ["/dev/nvidiactl"]
