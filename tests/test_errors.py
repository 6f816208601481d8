"""The error family: one base class, defined once, re-exported where the errors were first defined."""

from __future__ import annotations

import pytest

import polyret
from polyret import errors


def test_every_user_error_is_a_polyret_error_and_a_value_error():
    for name in errors.__all__:
        cls = getattr(errors, name)
        assert issubclass(cls, errors.PolyretError) and issubclass(cls, ValueError), name


def test_training_diverged_is_not_a_config_error():
    assert not issubclass(errors.TrainingDiverged, errors.ConfigError)


@pytest.mark.parametrize(
    "module, name",
    [
        ("polyret.data.records", "DataError"),
        ("polyret.training.config", "ConfigError"),
        ("polyret.training", "TrainingDiverged"),
        ("polyret.models", "ModelError"),
        ("polyret.encode", "StoreError"),
        ("polyret.encode", "CacheShardError"),
        ("polyret.encode.tokens", "EncodeError"),
    ],
)
def test_old_import_paths_name_the_same_class(module, name):
    import importlib

    assert getattr(importlib.import_module(module), name) is getattr(errors, name)


def test_the_package_exports_the_family():
    assert polyret.PolyretError is errors.PolyretError and polyret.ConfigError is errors.ConfigError
