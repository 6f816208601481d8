"""Fixtures shared by the fault tests (one home: no test module imports another)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.helpers.lareqa import write_tiny_xquad


@pytest.fixture(scope="session")
def smoke_experiment(tmp_path_factory, tiny_model_dir) -> dict:
    """One finished 2-step ``polyret experiment --preset smoke`` (hybrid, de+en) of a private copy of the tiny
    model on the tiny XQuAD-R data dir. ``args`` reruns it (add ``--output``); ``env`` is its cache and data.
    Tests work on copies of ``exp``; one that edits ``base`` or ``data`` in place restores them."""
    from polyret.cli import app

    root = tmp_path_factory.mktemp("smoke-experiment")
    write_tiny_xquad(root / "data")
    base = Path(shutil.copytree(tiny_model_dir, root / "base"))
    # --keep-models: the smoke preset removes trained weights once evaluated, and these tests use them
    args = ["experiment", "--preset", "smoke", "--model", str(base), "--strategies", "hybrid", "--languages", "de,en",
            "--data-dir", str(root / "data"), "--set", "max_steps=2", "--set", "save_steps=1",
            "--keep-models"]  # fmt: skip
    env = {"POLYRET_CACHE_DIR": str(root / "cache"), "POLYRET_DATA_DIR": str(root / "data")}
    res = CliRunner().invoke(app, [*args, "--output", str(root / "exp")], env=env)
    assert res.exit_code == 0, res.output[-3000:]
    return {"root": root, "base": base, "data": root / "data", "exp": root / "exp", "args": args, "env": env}
