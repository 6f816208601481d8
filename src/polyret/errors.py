"""polyret's error family: one base class, so callers and the command line catch user errors in one place.

Every error a user can cause (a bad option, a bad file, a model that cannot be found, a damaged store)
is a :class:`PolyretError`; its message names the file, record or key. ``PolyretError`` subclasses
``ValueError`` so code written against the earlier ``ValueError``-based errors keeps working. The
command lines turn a ``PolyretError`` into one line on stderr and exit status 2; anything else is an
internal error (exit 1).

The classes are defined here, at the bottom of the import graph, and re-exported where they were
first defined (``polyret.data.records.DataError``, ``polyret.training.config.ConfigError``,
``polyret.models.ModelError``, ``polyret.encode.StoreError`` ...).
"""

from __future__ import annotations

__all__ = [
    "CacheShardError",
    "ConfigError",
    "DataError",
    "EncodeError",
    "LegacyShard",
    "ModelError",
    "PolyretError",
    "StoreError",
    "TrainingDiverged",
]


class PolyretError(ValueError):
    """Base of every error a user can cause; the message names the file, record or key."""


class ConfigError(PolyretError):
    """A configuration value (training, experiment or evaluation) is missing, unknown or out of range.

    ``key``: the config field the message is about, when it is one (``detail``: the message after the
    key), so a command line can name its own option instead (``--batch-size must be >= 1``).
    """

    key: str | None = None
    detail: str | None = None


class DataError(PolyretError):
    """Bad input data: the message names the file and the record."""


class ModelError(PolyretError):
    """A model spec that cannot be resolved: unknown builtin, missing folder, unreachable hub id."""


class EncodeError(ConfigError):
    """A bad encoding option (precision, store dtype, devices, sizes): the message names the option."""


class CacheShardError(PolyretError):
    """A cache shard failed its integrity checks (the message names the file and the reason)."""


class LegacyShard(CacheShardError):
    """A shard of a polyret before checksums: not damaged, but it cannot be verified."""


class StoreError(CacheShardError):
    """An embedding store (or one of its chunks) failed its checks; the message names the file."""


class TrainingDiverged(PolyretError):
    """The loss or the weights became non-finite (NaN / inf) at some optimizer step; no model is written.

    Not a configuration error as such, but the usual fix is a config change (lower ``lr``, raise
    ``temperature``, ``precision=fp32``), so the command lines exit 2 with the message.
    """
