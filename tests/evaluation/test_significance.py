import numpy as np
import pytest

from polyret.evaluation import PerQuery
from polyret.evaluation.significance import align, paired_bootstrap, paired_randomization


def test_identical_systems():
    a = np.random.default_rng(0).random(200)
    res = paired_bootstrap(a, a.copy())
    assert res.diff == 0 and res.low <= 0 <= res.high and res.p == 1.0
    assert paired_randomization(a, a.copy()).p == 1.0


def test_noise_only_difference_is_not_significant():
    rng = np.random.default_rng(1)
    a = rng.random(300)
    b = a + rng.normal(0, 0.1, 300)
    b -= (b - a).mean()  # exactly the same mean
    boot = paired_bootstrap(a, b, seed=3)
    assert boot.low <= 0 <= boot.high and boot.p > 0.5
    assert paired_randomization(a, b, seed=3).p > 0.5


def test_clear_difference_is_significant():
    rng = np.random.default_rng(2)
    b = rng.random(150)
    a = b + 0.05 + rng.normal(0, 0.05, 150)
    boot = paired_bootstrap(a, b, n_resamples=2000, seed=0)
    assert boot.diff == pytest.approx((a - b).mean())
    assert 0 < boot.low < boot.diff < boot.high
    assert boot.p < 0.01
    perm = paired_randomization(a, b, n_resamples=2000, seed=0)
    assert perm.p < 0.01 and perm.p == pytest.approx(1 / 2001)


def test_deterministic_with_seed():
    rng = np.random.default_rng(3)
    a, b = rng.random(50), rng.random(50)
    assert paired_bootstrap(a, b, seed=5) == paired_bootstrap(a, b, seed=5)
    assert paired_randomization(a, b, seed=5) == paired_randomization(a, b, seed=5)
    assert paired_bootstrap(a, b, seed=5) != paired_bootstrap(a, b, seed=6)


def test_bad_input():
    with pytest.raises(ValueError):
        paired_bootstrap(np.ones(3), np.ones(4))
    with pytest.raises(ValueError):
        paired_randomization(np.array([]), np.array([]))
    with pytest.raises(ValueError):
        paired_bootstrap(np.ones(3), np.ones(3), confidence=1.5)


def test_align_matches_by_names():
    qa = PerQuery(["mono:en", "mono:en", "multi:en"], ["q0", "q1", "q2"], ["en"] * 3, values={"map": np.array([0.1, 0.2, 0.3])})
    qb = PerQuery(["mono:en", "multi:en", "mono:en"], ["q1", "q2", "q0"], ["en"] * 3, values={"map": np.array([0.5, 0.6, 0.7])})
    va, vb, keys = align(qa, qb, "map")
    assert keys.tolist() == ["mono:en/q0@en", "mono:en/q1@en", "multi:en/q2@en"]
    assert va.tolist() == [0.1, 0.2, 0.3] and vb.tolist() == [0.7, 0.5, 0.6]
    va, vb, _ = align(qa, qb, "map", settings=["mono:en"])
    assert len(va) == 2
    with pytest.raises(KeyError):
        align(qa, qb, "ndcg@10")
    with pytest.raises(ValueError):
        align(qa, qb, "map", settings=["cross:en-de"])
