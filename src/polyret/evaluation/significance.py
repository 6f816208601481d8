"""Paired significance tests for two systems scored on the same queries.

Both tests work on per-query differences d = a - b of one measure, so query difficulty cancels out.

* ``paired_bootstrap``: resample queries with replacement; percentile confidence interval of the mean
  difference, and a two-sided p-value from the bootstrap distribution shifted to the null (mean 0)
  (Efron & Tibshirani 1993, ch. 16; as used for IR by Sakai 2006).
* ``paired_randomization``: Fisher's randomization (sign-flip permutation) test of the mean
  difference (Smucker, Allan & Carterette 2007, "A comparison of statistical significance tests for
  information retrieval evaluation", CIKM).

p-values use the (count + 1) / (n_resamples + 1) convention so they are never exactly 0.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from polyret.evaluation.metrics import QueryScores

_BATCH = 256  # resamples drawn at once: bounds memory at _BATCH x n_queries


class BootstrapResult(NamedTuple):
    diff: float  # mean(a - b)
    low: float  # confidence interval of the mean difference
    high: float
    p: float  # two-sided


class RandomizationResult(NamedTuple):
    diff: float
    p: float  # two-sided


def _diffs(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"paired tests need two 1-d arrays of the same length, got {a.shape} and {b.shape}")
    if len(a) == 0:
        raise ValueError("paired tests need at least one query")
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        raise ValueError("paired tests got NaN or infinite per-query values")
    return a - b


def paired_bootstrap(
    a: np.ndarray, b: np.ndarray, n_resamples: int = 1000, seed: int = 0, confidence: float = 0.95
) -> BootstrapResult:
    """Mean difference of a over b, its percentile bootstrap CI and a two-sided bootstrap p-value."""
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be >= 1, got {n_resamples}")
    d = _diffs(a, b)
    n = len(d)
    rng = np.random.default_rng(seed)
    means = np.empty(n_resamples)
    for lo in range(0, n_resamples, _BATCH):
        m = min(_BATCH, n_resamples - lo)
        means[lo:lo + m] = d[rng.integers(0, n, size=(m, n))].mean(axis=1)
    observed = float(d.mean())
    alpha = 1.0 - confidence
    low, high = np.quantile(means, [alpha / 2, 1 - alpha / 2])
    extreme = np.count_nonzero(np.abs(means - observed) >= abs(observed) - 1e-15)
    p = (extreme + 1) / (n_resamples + 1)
    return BootstrapResult(observed, float(low), float(high), float(min(1.0, p)))


def paired_randomization(a: np.ndarray, b: np.ndarray, n_resamples: int = 10000, seed: int = 0) -> RandomizationResult:
    """Two-sided sign-flip randomization test of mean(a - b) == 0."""
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be >= 1, got {n_resamples}")
    d = _diffs(a, b)
    n = len(d)
    rng = np.random.default_rng(seed)
    observed = float(d.mean())
    extreme = 0
    for lo in range(0, n_resamples, _BATCH):
        m = min(_BATCH, n_resamples - lo)
        signs = rng.integers(0, 2, size=(m, n), dtype=np.int8) * 2 - 1
        means = (signs * d).mean(axis=1)
        extreme += int(np.count_nonzero(np.abs(means) >= abs(observed) - 1e-15))
    return RandomizationResult(observed, float((extreme + 1) / (n_resamples + 1)))


def align(
    a: QueryScores, b: QueryScores, measure: str, settings: list[str] | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Values of ``measure`` for the (setting, query) pairs both systems scored, in the same order.

    Pairs are matched by setting name, query id and query language (not by codes), so two runs over
    the same benchmark built separately line up. Returns (values_a, values_b, keys).
    """
    for name, qs in (("a", a), ("b", b)):
        if measure not in qs.values:
            raise KeyError(f"measure {measure!r} is not in scores {name} (it has {qs.measures})")
    ka, kb = a.keys(), b.keys()
    if settings is not None:
        wanted = set(settings)
        names_a = np.asarray([s.name for s in a.settings], dtype=str)[a.setting]
        names_b = np.asarray([s.name for s in b.settings], dtype=str)[b.setting]
        ma, mb = np.isin(names_a, list(wanted)), np.isin(names_b, list(wanted))
    else:
        ma, mb = np.ones(len(ka), bool), np.ones(len(kb), bool)
    ia, ib = np.flatnonzero(ma), np.flatnonzero(mb)
    keys, ja, jb = np.intersect1d(ka[ia], kb[ib], assume_unique=True, return_indices=True)
    if len(keys) == 0:
        raise ValueError("the two score sets share no (setting, query) pair")
    return a.values[measure][ia[ja]], b.values[measure][ib[jb]], keys
