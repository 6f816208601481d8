"""Differences between two trained systems with ONE interval for both sources of noise: training seeds
and questions.

A system's score on a benchmark varies with its training seed (a retrained model is another model)
and with the sample of questions (another sample of questions is another benchmark). The paired
cluster bootstrap of :mod:`polyret.evaluation.significance` covers the questions only; the spread over
seeds is reported beside it. Here both are resampled together.

Design: the values are ``score[system][seed][setting, question]``. Questions are crossed with seeds
(every seed of every system answers the same questions), and the seeds of two systems are not paired
(seed 3 of mono and seed 3 of hybrid share nothing but a number). So each resample draws, independently,

* the questions with replacement (one draw shared by both systems: the comparison stays paired over
  questions, as in ``paired_cluster_bootstrap``), and
* each system's seeds with replacement,

and recomputes the difference of the two seed-means of the macro mean over settings. This is the
two-way "pigeonhole" bootstrap for crossed random effects (Owen 2007, "The pigeonhole bootstrap",
Annals of Applied Statistics 1(2)), restricted to one crossed factor shared by both systems. With few
seeds a plain bootstrap of seeds underestimates their variance by a factor ``(n - 1) / n``; the
per-seed values are therefore spread by ``sqrt(n / (n - 1))`` around their mean before they are drawn
(Davison & Hinkley 1997, "Bootstrap methods and their application", sec. 3.3, adjusted residuals).
With one seed for a system its seed noise cannot be estimated: the result says so (``seed_noise_covered``).

:func:`seeds_to_resolve` turns the variance components into the number of seeds per system that
would make an interval of the observed difference exclude a given boundary.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .significance import _macro_of

_BATCH = 128  # resamples at once


@dataclass(frozen=True)
class HierarchicalResult:
    """The outcome of :func:`hierarchical_bootstrap`.

    Args:
        diff: observed difference a - b of the seed means of the macro-mean scores.
        low: lower end of the percentile interval.
        high: upper end.
        p: two-sided bootstrap p-value ((count + 1) / (n + 1) convention).
        n_seeds_a: seeds of a.
        n_seeds_b: seeds of b.
        n_questions: questions both systems share.
        seed_noise_covered: both systems have at least two seeds, so the interval includes seed noise.
        var_questions: variance of the difference due to questions alone (seed means held fixed).
        var_seed_a: between-seed variance of a's macro score (None with one seed).
        var_seed_b: between-seed variance of b's macro score (None with one seed).
        confidence: the interval's confidence level.
    """

    diff: float
    low: float
    high: float
    p: float
    n_seeds_a: int
    n_seeds_b: int
    n_questions: int
    seed_noise_covered: bool
    var_questions: float
    var_seed_a: float | None
    var_seed_b: float | None
    confidence: float = 0.95


def _common(a: Sequence[np.ndarray], b: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(A, B, mask): seeds x settings x questions arrays with 0 outside ``mask`` (cells every seed of
    both systems has), empty settings and questions dropped."""
    if len(a) == 0 or len(b) == 0:
        raise ValueError("hierarchical_bootstrap needs at least one seed per system")
    mats = [np.asarray(m, dtype=np.float64) for m in (*a, *b)]
    shape = mats[0].shape
    if len(shape) != 2 or any(m.shape != shape for m in mats):
        raise ValueError(
            f"hierarchical_bootstrap needs settings x questions matrices of one shape, got {[m.shape for m in mats]}"
        )
    mask = np.logical_and.reduce([np.isfinite(m) for m in mats])
    if not mask.any():
        raise ValueError("hierarchical_bootstrap: the seeds of the two systems share no (setting, question) value")
    rows, cols = mask.any(axis=1), mask.any(axis=0)
    mask = mask[np.ix_(rows, cols)]
    stack = np.stack([np.where(mask, m[np.ix_(rows, cols)], 0.0) for m in mats])
    return stack[: len(a)], stack[len(a) :], mask


def _per_seed_macro(weights: np.ndarray, mats: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """(n_resamples, n_seeds) macro means of each seed's matrix under each row of question weights."""
    m = mask.astype(np.float64)
    return np.stack([_macro_of(weights, x, m) for x in mats], axis=1)


def _draw_seed_means(per_seed: np.ndarray, rng: np.random.Generator, spread: float) -> np.ndarray:
    """Seed-resampled means (one per row), per-seed values spread by ``spread`` around the row mean."""
    n_res, n = per_seed.shape
    centre = per_seed.mean(axis=1, keepdims=True)
    if n < 2:
        return centre[:, 0]
    adjusted = centre + (per_seed - centre) * spread
    idx = rng.integers(0, n, size=(n_res, n))
    return np.take_along_axis(adjusted, idx, axis=1).mean(axis=1)


def hierarchical_bootstrap(
    a: Sequence[np.ndarray],
    b: Sequence[np.ndarray],
    *,
    n_resamples: int = 2000,
    seed: int = 0,
    confidence: float = 0.95,
) -> HierarchicalResult:
    """Difference a - b of two systems' seed-mean macro scores, with an interval over seeds AND questions.

    Args:
        a: one settings x questions matrix per seed of system a (NaN = missing; the same axes for all).
        b: the same for system b (its seeds are not paired with a's).
        n_resamples: bootstrap resamples.
        seed: the resampling seed (results are deterministic for a given seed).
        confidence: the interval's level.

    Returns:
        A :class:`HierarchicalResult`. Only (setting, question) cells present in every seed of both
        systems count.

    Raises:
        ValueError: no seeds, matrices of different shapes, no shared cell, or bad parameters.
    """
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be >= 1, got {n_resamples}")
    A, B, mask = _common(a, b)
    q = mask.shape[1]
    ones = np.ones((1, q))
    obs_a, obs_b = _per_seed_macro(ones, A, mask)[0], _per_seed_macro(ones, B, mask)[0]
    observed = float(obs_a.mean() - obs_b.mean())
    rng = np.random.default_rng(seed)
    pa, pb = np.empty((n_resamples, len(A))), np.empty((n_resamples, len(B)))
    for lo in range(0, n_resamples, _BATCH):
        n = min(_BATCH, n_resamples - lo)
        idx = rng.integers(0, q, size=(n, q))
        flat = (np.arange(n)[:, None] * q + idx).ravel()
        weights = np.bincount(flat, minlength=n * q).reshape(n, q).astype(np.float64)
        pa[lo : lo + n], pb[lo : lo + n] = _per_seed_macro(weights, A, mask), _per_seed_macro(weights, B, mask)
    q_only = pa.mean(axis=1) - pb.mean(axis=1)
    var_a, seed_var_a = _seed_variance(obs_a, pa)
    var_b, seed_var_b = _seed_variance(obs_b, pb)
    small = _small_sample_factor(seed_var_a, len(obs_a), seed_var_b, len(obs_b), confidence)
    spread_a = _spread(var_a, seed_var_a, len(obs_a)) * small
    spread_b = _spread(var_b, seed_var_b, len(obs_b)) * small
    stats = _draw_seed_means(pa, rng, spread_a) - _draw_seed_means(pb, rng, spread_b)
    alpha = 1.0 - confidence
    low, high = np.quantile(stats, [alpha / 2, 1 - alpha / 2])
    extreme = np.count_nonzero(np.abs(stats - observed) >= abs(observed) - 1e-15)
    p = min(1.0, (extreme + 1) / (n_resamples + 1))
    return HierarchicalResult(
        diff=observed,
        low=float(low),
        high=float(high),
        p=float(p),
        n_seeds_a=len(A),
        n_seeds_b=len(B),
        n_questions=q,
        seed_noise_covered=len(A) > 1 and len(B) > 1,
        var_questions=float(np.var(q_only, ddof=1)) if n_resamples > 1 else 0.0,
        var_seed_a=seed_var_a,
        var_seed_b=seed_var_b,
        confidence=confidence,
    )


def seeds_to_resolve(result: HierarchicalResult, boundary: float = 0.0, *, max_seeds: int = 1000) -> int | None:
    """Seeds per system (more than now) at which the observed difference's interval would exclude ``boundary``.

    The variance of the difference is modelled as ``var_questions + (var_seed_a + var_seed_b) / n``
    (question noise does not shrink with seeds; the questions are fixed by the benchmark), and the
    interval half-width as ``t_df * sqrt(var)`` with the Welch-Satterthwaite df of n seeds each. The answer
    assumes the observed difference and variances stay as measured, which is what "the observed
    variance says" means: a planning figure, not a promise.

    Args:
        result: a :class:`HierarchicalResult` with seed variances for both systems.
        boundary: the value the interval must exclude (0 for "differs"; ``-margin`` for non-inferiority).
        max_seeds: answers above this are reported as None.

    Returns:
        The smallest n above the current seed counts that resolves it, or None when seeds alone cannot
        (the question noise alone already spans the boundary, the gap is 0, the seed variances are
        unknown, or more than ``max_seeds`` would be needed).
    """
    if result.var_seed_a is None or result.var_seed_b is None:
        return None
    gap = abs(result.diff - boundary)
    if gap == 0 or _z(result.confidence) ** 2 * result.var_questions >= gap**2:
        return None
    for n in range(max(result.n_seeds_a, result.n_seeds_b) + 1, max_seeds + 1):
        small = _small_sample_factor(result.var_seed_a, n, result.var_seed_b, n, result.confidence)
        var = result.var_questions + (result.var_seed_a + result.var_seed_b) / n
        if (small * _z(result.confidence)) ** 2 * var < gap**2:
            return n
    return None


def _seed_variance(observed: np.ndarray, per_resample: np.ndarray) -> tuple[float | None, float | None]:
    """(between-seed variance of the macro score, its part due to the seed itself), None with one seed.

    Seeds answer the same questions, but each seed's per-question errors are its own (a seed x question
    interaction), so the between-seed variance of the macro score holds that interaction once more,
    and the question resampling (which sees the seed mean) already holds it divided by n. A
    method-of-moments correction removes it: for n seeds, the question-resampling variance of one seed
    is V1 = Q + I and of the seed mean Vn = Q + I / n, so I = (V1 - Vn) n / (n - 1), and the seed part is
    the between-seed variance minus I (at least 0).
    """
    n = len(observed)
    if n < 2:
        return None, None
    total = float(np.var(observed, ddof=1))
    if len(per_resample) < 2:
        return total, total
    v1 = float(np.var(per_resample, axis=0, ddof=1).mean())
    vn = float(np.var(per_resample.mean(axis=1), ddof=1))
    interaction = max(0.0, (v1 - vn) * n / (n - 1))
    return total, max(0.0, total - interaction)


def _spread(total: float | None, seed_part: float | None, n: int) -> float:
    """Factor for the per-seed deviations: sqrt(n / (n - 1)) (bias of a bootstrap of n values) times
    sqrt(seed part / total) (leave the interaction to the question level)."""
    if total is None or seed_part is None or n < 2 or total <= 0:
        return 0.0
    return math.sqrt(n / (n - 1)) * math.sqrt(seed_part / total)


def _small_sample_factor(var_a: float | None, n_a: int, var_b: float | None, n_b: int, confidence: float) -> float:
    """t / z for the Welch-Satterthwaite degrees of freedom of the seed part of the difference.

    A mean of n seeds has a Student-t, not a normal, spread around its truth when the seed variance is
    estimated from those n seeds; drawing seeds again cannot know that, so with 2-5 seeds the seed part
    of the bootstrap distribution is widened by t_df / z (1.0 once df is large). Systems with one seed
    contribute no seed variance (and no degrees of freedom).
    """
    parts = [(v / n, n - 1) for v, n in ((var_a, n_a), (var_b, n_b)) if v is not None and n > 1]
    total = sum(p for p, _ in parts)
    if not parts or total <= 0:
        return 1.0
    df = total**2 / sum(p**2 / d for p, d in parts)
    from scipy.special import stdtrit  # scipy.stats.t.ppf(p, df), without importing scipy.stats (~0.6 s)

    return float(stdtrit(df, 0.5 + confidence / 2) / _z(confidence))


def _z(confidence: float) -> float:
    from statistics import NormalDist

    return NormalDist().inv_cdf(0.5 + confidence / 2)
