"""Fixtures of the training tests: the tiny model and a 60-group parallel pairs file, built once per module."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers.models import build_tiny_model
from tests.helpers.pairs import write_pairs


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "model")


@pytest.fixture(scope="module")
def pairs_file(tmp_path_factory) -> Path:
    return write_pairs(tmp_path_factory.mktemp("pairs") / "pairs.jsonl", 60)
