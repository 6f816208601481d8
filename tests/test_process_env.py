"""polyret's own processes turn numpy's huge-page advice off (polyret.process_env), unless the user set it."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

PROBE = """
import {module}
try:
    from numpy._core.multiarray import _get_madvise_hugepage
except ImportError:  # numpy < 2
    from numpy.core.multiarray import _get_madvise_hugepage
print(_get_madvise_hugepage())
"""


def _advice(module: str, value: str | None) -> str:
    env = {k: v for k, v in os.environ.items() if k != "NUMPY_MADVISE_HUGEPAGE"}
    if value is not None:
        env["NUMPY_MADVISE_HUGEPAGE"] = value
    out = subprocess.run([sys.executable, "-c", PROBE.format(module=module)], env=env, capture_output=True, text=True, check=True)
    return out.stdout.strip()


@pytest.mark.parametrize("module", ["polyret.cli", "polyret.training.__main__"])
def test_polyrets_processes_turn_the_advice_off_unless_the_user_set_it(module):
    if not sys.platform.startswith("linux"):
        pytest.skip("numpy advises huge pages on Linux only")
    assert _advice(module, None) == "False"
    assert _advice(module, "1") == "True"  # the user's setting wins


def test_importing_polyret_changes_nothing():
    if not sys.platform.startswith("linux"):
        pytest.skip("numpy advises huge pages on Linux only")
    assert _advice("polyret, polyret.evaluation, polyret.data", None) == "True"  # numpy's own default
