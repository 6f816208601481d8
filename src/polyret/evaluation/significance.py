"""Paired significance tests for two systems scored on the same queries.

Both tests work on per-query differences d = a - b of one measure, so query difficulty cancels out.

* ``paired_bootstrap``: resample queries with replacement; percentile confidence interval of the mean
  difference, and a two-sided p-value from the bootstrap distribution shifted to the null (mean 0)
  (Efron & Tibshirani 1993, ch. 16; as used for IR by Sakai 2006).
* ``paired_randomization``: Fisher's randomization (sign-flip permutation) test of the mean
  difference (Smucker, Allan & Carterette 2007, "A comparison of statistical significance tests for
  information retrieval evaluation", CIKM).

p-values use the (count + 1) / (n_resamples + 1) convention so they are never exactly 0.

Ties: per-query differences no larger than ``TIE_TOLERANCE`` (1e-6, the resolution per-query values
are written with: ``per_query.csv.gz`` keeps 6 significant digits and a TREC file's scores round-trip
through text) are exact ties, set to 0 before any test. Two runs that differ only by float rounding
therefore get a mean difference of exactly 0, an interval of [0, 0] and p = 1, and :func:`verdict` never
calls either "better" (a mean difference of 0, or an interval of [0, 0], is never a win).

Several comparisons in one table: :func:`holm` gives Holm-Bonferroni adjusted p-values (Holm 1979,
"A simple sequentially rejective multiple test procedure", Scand. J. Statistics; what ranx's
``compare(..., correction="holm")`` applies), controlling the family-wise error rate of the table.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from polyret.evaluation.perquery import PerQuery

_BATCH = 256  # resamples drawn at once: bounds memory at _BATCH x n_queries
TIE_TOLERANCE = 1e-6  # |a - b| at or below this is a tie (the resolution of stored per-query values)
ALPHA = 0.05  # the level of a "better" verdict (two-sided, after Holm's correction)


def _untie(d: np.ndarray, tolerance: float = TIE_TOLERANCE) -> np.ndarray:
    """``d`` with every difference within ``tolerance`` of 0 set to exactly 0 (a tie)."""
    return np.where(np.abs(d) <= tolerance, 0.0, d)


def holm(p_values) -> list[float]:
    """Holm-Bonferroni adjusted p-values, in the order given (Holm 1979).

    The i-th smallest of m p-values is multiplied by (m - i + 1); the adjusted values are made
    monotone (running maximum in that order) and capped at 1. NaN/None entries are left out of m and
    returned as NaN.

    Args:
        p_values: the raw p-values of the comparisons of one table.
    """
    p = np.asarray([np.nan if v is None else float(v) for v in p_values], dtype=np.float64)
    out = np.full(len(p), np.nan)
    ok = np.flatnonzero(np.isfinite(p))
    m = len(ok)
    if m == 0:
        return out.tolist()
    order = ok[np.argsort(p[ok], kind="stable")]
    adjusted = np.minimum(1.0, np.maximum.accumulate(p[order] * (m - np.arange(m))))
    out[order] = adjusted
    return out.tolist()


def verdict(
    diff: float, low: float, high: float, p: float | None, *, alpha: float = ALPHA, tolerance: float = TIE_TOLERANCE
) -> bool:
    """True when a difference is a real one: its interval excludes 0, it is larger than a tie, and its
    (adjusted) p-value is below ``alpha``. A mean difference of 0 or an interval of [0, 0] never is.

    Args:
        diff: the mean difference.
        low, high: its confidence interval.
        p: its p-value (Holm-adjusted in a table of several comparisons); None: not used.
        alpha: the level.
        tolerance: differences within it of 0 are ties.
    """
    if not (math.isfinite(diff) and math.isfinite(low) and math.isfinite(high)) or abs(diff) <= tolerance:
        return False
    if not (low > 0 or high < 0):
        return False
    return p is None or (math.isfinite(p) and p < alpha)


class BootstrapResult(NamedTuple):
    """A paired bootstrap's outcome.

    Args:
        diff: mean(a - b).
        low, high: the percentile confidence interval of the mean difference.
        p: the two-sided p-value.
    """

    diff: float  # mean(a - b)
    low: float  # confidence interval of the mean difference
    high: float
    p: float  # two-sided


class RandomizationResult(NamedTuple):
    """A paired randomization test's outcome.

    Args:
        diff: mean(a - b).
        p: the two-sided p-value.
    """

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
    return _untie(a - b)


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
        means[lo : lo + m] = d[rng.integers(0, n, size=(m, n))].mean(axis=1)
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


def align(a: PerQuery, b: PerQuery, measure: str, settings: list[str] | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
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
        ma = np.asarray([s in wanted for s in a.setting], dtype=bool)
        mb = np.asarray([s in wanted for s in b.setting], dtype=bool)
    else:
        ma, mb = np.ones(len(ka), bool), np.ones(len(kb), bool)
    ia, ib = np.flatnonzero(ma), np.flatnonzero(mb)
    keys, ja, jb = np.intersect1d(ka[ia], kb[ib], assume_unique=True, return_indices=True)
    if len(keys) == 0:
        raise ValueError("the two score sets share no (setting, query) pair")
    return a.values[measure][ia[ja]], b.values[measure][ib[jb]], keys


# ---- macro means over settings, resampled by question (cluster) ---------------------------------------
#
# A family score (e.g. cross-lingual mAP) is a macro mean over settings, and the same question appears
# in every setting and language, so its per-setting values are not independent draws. Resampling rows
# would treat them as such and give intervals that are too narrow; instead the bootstrap resamples
# QUESTIONS (clusters; Field & Welsh 2007, "Bootstrapping clustered data", JRSS-B) and recomputes the
# macro mean on each resample, and the randomization test swaps the two systems' labels per question.


def cluster_matrix(
    settings: list[str] | np.ndarray,
    clusters: list[str] | np.ndarray,
    values: np.ndarray,
    *,
    setting_order: list[str] | None = None,
    cluster_order: list[str] | None = None,
) -> tuple[list[str], list[str], np.ndarray]:
    """Long rows (setting, cluster, value) -> settings x clusters matrix with NaN where a pair is missing.

    ``setting_order`` / ``cluster_order`` fix the axes (to line up two systems); rows outside them are
    dropped. A (setting, cluster) pair given twice is an error: each question counts once per setting.
    """
    s = np.asarray(settings, dtype=object)
    c = np.asarray(clusters, dtype=object)
    v = np.asarray(values, dtype=np.float64)
    if not (len(s) == len(c) == len(v)):
        raise ValueError(f"cluster_matrix: {len(s)} settings, {len(c)} clusters and {len(v)} values differ in length")
    s_axis = list(dict.fromkeys(s.tolist())) if setting_order is None else list(setting_order)
    c_axis = list(dict.fromkeys(c.tolist())) if cluster_order is None else list(cluster_order)
    s_idx = {name: i for i, name in enumerate(s_axis)}
    c_idx = {name: i for i, name in enumerate(c_axis)}
    si = np.fromiter((s_idx.get(x, -1) for x in s.tolist()), dtype=np.int64, count=len(s))
    ci = np.fromiter((c_idx.get(x, -1) for x in c.tolist()), dtype=np.int64, count=len(c))
    keep = (si >= 0) & (ci >= 0)
    si, ci, v = si[keep], ci[keep], v[keep]
    flat = si * max(len(c_axis), 1) + ci
    if len(np.unique(flat)) != len(flat):
        uniq, counts = np.unique(flat, return_counts=True)
        dup = int(uniq[counts > 1][0])
        raise ValueError(
            f"cluster_matrix: setting {s_axis[dup // len(c_axis)]!r} has question {c_axis[dup % len(c_axis)]!r} more than once"
        )
    out = np.full((len(s_axis), len(c_axis)), np.nan)
    out[si, ci] = v
    return s_axis, c_axis, out


def _cluster_diffs(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(d, m): differences with 0 where either side is missing, and the 0/1 mask; empty settings/clusters dropped."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 2:
        raise ValueError(f"cluster tests need two settings x clusters matrices of the same shape, got {a.shape} and {b.shape}")
    both = np.isfinite(a) & np.isfinite(b)
    if not both.any():
        raise ValueError("cluster tests: the two systems share no (setting, question) value")
    keep = np.ix_(both.any(axis=1), both.any(axis=0))
    d = _untie(np.where(both, a - b, 0.0))[keep]
    return d, both[keep].astype(np.float64)


def _macro_of(weights: np.ndarray, d: np.ndarray, m: np.ndarray) -> np.ndarray:
    """Macro mean over settings of the weighted per-setting means; settings a resample misses are left out."""
    s = d.shape[0]
    both = weights @ np.concatenate([d, m]).T  # one product: (B, 2S) = numerators | denominators
    num, den = both[:, :s], both[:, s:]
    has = den > 0
    per = np.divide(num, den, out=np.zeros_like(num), where=has)
    return per.sum(axis=1) / has.sum(axis=1)  # every drawn question is in some setting, so has.sum >= 1


def macro_mean(values: np.ndarray) -> float:
    """Macro mean over settings (rows) of the per-setting means over finite entries (what Results.macro holds)."""
    v = np.asarray(values, dtype=np.float64)
    zero = np.where(np.isfinite(v), 0.0, np.nan)
    d, m = _cluster_diffs(v, zero)
    return float(_macro_of(np.ones((1, d.shape[1])), d, m)[0])


def paired_cluster_bootstrap(
    a: np.ndarray, b: np.ndarray, n_resamples: int = 1000, seed: int = 0, confidence: float = 0.95
) -> BootstrapResult:
    """Macro-mean difference of a over b (settings x questions, NaN = missing), CI by resampling questions.

    Only (setting, question) pairs both systems have count. Each resample draws questions with
    replacement; a question drawn k times weighs k in every setting it appears in. CI and p-value as in
    ``paired_bootstrap``.
    """
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be >= 1, got {n_resamples}")
    d, m = _cluster_diffs(a, b)
    q = d.shape[1]
    observed = float(_macro_of(np.ones((1, q)), d, m)[0])
    rng = np.random.default_rng(seed)
    stats = np.empty(n_resamples)
    for lo in range(0, n_resamples, _BATCH):
        n = min(_BATCH, n_resamples - lo)
        idx = rng.integers(0, q, size=(n, q))
        flat = (np.arange(n)[:, None] * q + idx).ravel()
        weights = np.bincount(flat, minlength=n * q).reshape(n, q).astype(np.float64)
        stats[lo : lo + n] = _macro_of(weights, d, m)
    alpha = 1.0 - confidence
    low, high = np.quantile(stats, [alpha / 2, 1 - alpha / 2])
    extreme = np.count_nonzero(np.abs(stats - observed) >= abs(observed) - 1e-15)
    p = (extreme + 1) / (n_resamples + 1)
    return BootstrapResult(observed, float(low), float(high), float(min(1.0, p)))


def paired_cluster_randomization(a: np.ndarray, b: np.ndarray, n_resamples: int = 10000, seed: int = 0) -> RandomizationResult:
    """Two-sided randomization test of a macro-mean difference: swap the systems for whole questions."""
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be >= 1, got {n_resamples}")
    d, m = _cluster_diffs(a, b)
    q = d.shape[1]
    ones = np.ones((1, q))
    observed = float(_macro_of(ones, d, m)[0])
    den = (ones @ m.T)[0]
    rng = np.random.default_rng(seed)
    extreme = 0
    for lo in range(0, n_resamples, _BATCH):
        n = min(_BATCH, n_resamples - lo)
        signs = (rng.integers(0, 2, size=(n, q), dtype=np.int8) * 2 - 1).astype(np.float64)
        stats = ((signs @ d.T) / den).mean(axis=1)
        extreme += int(np.count_nonzero(np.abs(stats) >= abs(observed) - 1e-15))
    return RandomizationResult(observed, float((extreme + 1) / (n_resamples + 1)))
