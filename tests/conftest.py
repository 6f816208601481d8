"""Shared fixtures: a tiny random BERT, the converted builtin me5-small, and no network for any test."""

from __future__ import annotations

import os

import pytest

from tests.helpers.models import build_tiny_model

_OFFLINE = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}


@pytest.fixture(scope="session", autouse=True)
def _offline_hub():
    """No test may touch the network: the hub is unreachable here and tests must not depend on it."""
    saved = {k: os.environ.get(k) for k in _OFFLINE}
    os.environ.update(_OFFLINE)
    try:  # huggingface_hub reads the variable once, at import
        from huggingface_hub import constants
    except ImportError:
        constants = None
    saved_const = getattr(constants, "HF_HUB_OFFLINE", None)
    if constants is not None:
        constants.HF_HUB_OFFLINE = True
    yield
    if constants is not None:
        constants.HF_HUB_OFFLINE = saved_const
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture(scope="session", autouse=True)
def _cpu_without_bf16():
    """Every test, and every process a test starts (torchrun, the command line), sees a CPU without native
    bf16 (``POLYRET_CPU_BF16=0``), so precision ``auto`` means fp32 on any machine: numbers and cache
    folders do not depend on where the suite runs. Tests of ``auto`` itself (tests/test_precision.py)
    drop the variable and patch the capabilities they need."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("POLYRET_CPU_BF16", "0")
        yield


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> str:
    """Path (str) of a tiny random sentence-transformers model: hidden 32, 2 layers, vocab ~600."""
    return str(build_tiny_model(tmp_path_factory.mktemp("tiny-model") / "tiny-bert"))


@pytest.fixture(scope="session")
def me5_small_dir(tmp_path_factory) -> str:
    """Path (str) of builtin:me5-small converted into a test-private cache (not the user cache)."""
    from polyret.me5_convert import me5_small_dir as build

    return str(build(tmp_path_factory.mktemp("polyret-cache")))
