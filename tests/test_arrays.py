"""polyret.arrays: the sort-based distinct values equal np.unique's."""

from __future__ import annotations

import numpy as np
import pytest

from polyret.arrays import count_distinct, distinct


@pytest.mark.parametrize("n", [0, 1, 2, 1000])
@pytest.mark.parametrize("dtype", [np.int8, np.int32, np.int64])
def test_distinct_is_np_unique(n, dtype):
    low = -5 if dtype == np.int8 else -(10**6)
    values = np.random.default_rng(n).integers(low, 90, size=n).astype(dtype)
    before = values.copy()
    want = np.unique(values)
    got = distinct(values)
    assert got.dtype == values.dtype and np.array_equal(got, want)
    assert count_distinct(values) == len(want)
    assert np.array_equal(values, before)  # the input is not sorted in place
