"""Integer-array helpers for arrays with one entry per training pair (millions to hundreds of millions).

``np.unique`` of numpy 2.x finds the distinct values of an integer array with a hash table whose memory
the C allocator keeps after the call: about 115 MB stays private per call on 10M values (measured,
``bench/RESULTS.md``), so a rank that calls it a few times at start-up holds hundreds of MB it no longer
uses. These helpers sort instead (numpy's own buffers, returned to the OS when freed).
"""

from __future__ import annotations

import numpy as np

__all__ = ["count_distinct", "distinct"]


def distinct(values: np.ndarray) -> np.ndarray:
    """The sorted distinct values of a 1-D array (``np.unique(values)``, by sorting).

    Args:
        values: a 1-D array (a memory map is read, not modified).
    """
    ordered = np.sort(np.asarray(values).ravel())
    if len(ordered) < 2:
        return ordered
    keep = np.empty(len(ordered), dtype=bool)
    keep[0] = True
    np.not_equal(ordered[1:], ordered[:-1], out=keep[1:])
    return ordered[keep]


def count_distinct(values: np.ndarray) -> int:
    """How many distinct values a 1-D array holds (``len(np.unique(values))``, by sorting).

    Args:
        values: a 1-D array.
    """
    ordered = np.sort(np.asarray(values).ravel())
    return int(len(ordered) and 1 + np.count_nonzero(ordered[1:] != ordered[:-1]))
