"""What polyret's own processes set before numpy loads; importing this module is the act.

Imported first by the ``polyret`` command (:mod:`polyret.cli`) and by torchrun's entry
(``python -m polyret.training``), never by ``import polyret``: a library does not change numpy's process-wide
defaults for its caller.

**Transparent huge pages.** numpy advises the kernel to back every array of 4 MiB or more with 2 MiB pages
(``madvise(MADV_HUGEPAGE)``). Under the kernel's common THP setting (``defrag: madvise``), the first touch of
such memory then waits for the kernel to compact memory into free 2 MiB blocks, synchronously. polyret makes
large fresh arrays all the time (score blocks, the run table's columns, embedding windows), and on the
machines measured that wait costs more than the huge pages save: a cached full XQuAD-R ``polyret evaluate``
spent 2.7 s in the kernel with the advice and 0.8 s without, 10.0 s against 8.85 s wall; the run table of
``bench/bench_scoring.py`` 0.3-1.7 s of system time against 0.2 s (bench/RESULTS.md, issue 22). So the
advice is off (``NUMPY_MADVISE_HUGEPAGE=0``, numpy's documented switch) unless the environment already sets
the variable: ``NUMPY_MADVISE_HUGEPAGE=1 polyret ...`` keeps numpy's default.
"""

from __future__ import annotations

import os
import sys

HUGEPAGE_ENV = "NUMPY_MADVISE_HUGEPAGE"

if "numpy" not in sys.modules:  # numpy reads the variable once, when it loads
    os.environ.setdefault(HUGEPAGE_ENV, "0")
