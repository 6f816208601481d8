"""The seed-and-question bootstrap: coverage against a simulation with a known effect."""

import numpy as np
import pytest

from polyret.evaluation.hierarchical import hierarchical_bootstrap, seeds_to_resolve
from polyret.evaluation.significance import paired_cluster_bootstrap


def simulate(rng, n_seeds, *, delta=0.02, seed_sd=0.01, noise=0.05, questions=80, settings=3):
    """Two systems, true difference ``delta``: shared question effects, a random effect per training
    seed, and per-(seed, setting, question) noise."""
    q_effect = rng.normal(0, 0.1, questions)

    def system(mu):
        return [
            mu + rng.normal(0, seed_sd) + q_effect[None, :] + rng.normal(0, noise, (settings, questions)) for _ in range(n_seeds)
        ]

    return system(0.5 + delta), system(0.5)


def coverage(n_seeds, sims, **kw):
    rng = np.random.default_rng(12345)
    hit_h = hit_q = 0
    for i in range(sims):
        a, b = simulate(rng, n_seeds, **kw)
        delta = kw.get("delta", 0.02)
        h = hierarchical_bootstrap(a, b, n_resamples=300, seed=i)
        q = paired_cluster_bootstrap(np.mean(a, 0), np.mean(b, 0), n_resamples=300, seed=i)
        hit_h += h.low <= delta <= h.high
        hit_q += q.low <= delta <= q.high
    return hit_h / sims, hit_q / sims


def test_interval_covers_the_true_difference_when_seeds_matter():
    h, q = coverage(3, 150)
    # nominal 95%: the question-only interval misses seed noise and covers far less
    assert 0.90 <= h <= 0.995, h
    assert q < 0.75, q


def test_interval_is_not_inflated_without_seed_noise():
    h, q = coverage(3, 150, seed_sd=0.0, noise=0.1)
    assert 0.90 <= h <= 0.995, h
    assert abs(h - q) <= 0.06, (h, q)  # nothing to add beyond the questions


def test_observed_difference_and_components():
    rng = np.random.default_rng(0)
    a, b = simulate(rng, 4, delta=0.1, seed_sd=0.02)
    r = hierarchical_bootstrap(a, b, n_resamples=500, seed=1)
    means_a = [np.nanmean(m, axis=1).mean() for m in a]
    means_b = [np.nanmean(m, axis=1).mean() for m in b]
    assert r.diff == pytest.approx(np.mean(means_a) - np.mean(means_b))
    assert r.low < r.diff < r.high and r.low > 0  # a real, large effect is resolved
    assert r.seed_noise_covered and r.n_seeds_a == 4 and r.n_questions == 80
    assert r.var_seed_a is not None and r.var_seed_a <= np.var(means_a, ddof=1) + 1e-12
    again = hierarchical_bootstrap(a, b, n_resamples=500, seed=1)
    assert again == r  # deterministic for a seed


def test_one_seed_is_flagged_and_not_resolvable_by_formula():
    rng = np.random.default_rng(3)
    a, b = simulate(rng, 1)
    r = hierarchical_bootstrap(a, b, n_resamples=200, seed=0)
    assert not r.seed_noise_covered and r.var_seed_a is None
    assert seeds_to_resolve(r) is None


def test_missing_cells_are_left_out_and_shapes_checked():
    rng = np.random.default_rng(4)
    a, b = simulate(rng, 2)
    a[0][0, :10] = np.nan
    r = hierarchical_bootstrap(a, b, n_resamples=100, seed=0)
    assert np.isfinite(r.diff)
    with pytest.raises(ValueError, match="one shape"):
        hierarchical_bootstrap(a, [m[:, :5] for m in b])
    with pytest.raises(ValueError, match="at least one seed"):
        hierarchical_bootstrap([], b)


def test_seeds_to_resolve_grows_as_the_gap_shrinks():
    rng = np.random.default_rng(5)
    a, b = simulate(rng, 3, delta=0.02, seed_sd=0.004, noise=0.01)
    r = hierarchical_bootstrap(a, b, n_resamples=400, seed=0)
    n0 = seeds_to_resolve(r, 0.0)
    n_half = seeds_to_resolve(r, r.diff / 2)
    assert r.diff > 0.01
    assert n0 is not None and n_half is not None and n_half > n0 >= 2
    assert seeds_to_resolve(r, r.diff) is None  # a boundary at the estimate is never excluded
