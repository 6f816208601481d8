"""The test tree itself: every module runnable alone, helpers in one home (tests/helpers), never imported
from another test module."""

from __future__ import annotations

import ast
from pathlib import Path

TESTS = Path(__file__).resolve().parent


def _imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return names


def test_no_test_module_imports_another_or_conftest():
    offenders = {}
    for path in sorted(TESTS.rglob("*.py")):
        bad = {m for m in _imported_modules(path) if m.split(".")[-1].startswith("test_") or m.split(".")[-1] == "conftest"}
        if bad:
            offenders[str(path.relative_to(TESTS))] = sorted(bad)
    assert offenders == {}, f"import shared helpers from tests.helpers instead: {offenders}"


def test_every_test_folder_is_a_package():
    folders = {p.parent for p in TESTS.rglob("test_*.py")} | {TESTS / "helpers"}
    assert sorted(str(f.relative_to(TESTS.parent)) for f in folders if not (f / "__init__.py").is_file()) == []


def test_each_helper_is_defined_once():
    defs: dict[str, list[str]] = {}
    for path in sorted(TESTS.rglob("*.py")):
        for node in ast.parse(path.read_text(encoding="utf-8")).body:
            if isinstance(node, ast.FunctionDef) and not node.name.startswith("test_") and not node.name.startswith("_"):
                defs.setdefault(node.name, []).append(str(path.relative_to(TESTS)))
    shared = {"tiny_benchmark", "random_embeddings", "build_tiny_model", "write_pairs", "make_entries", "synthetic_rows"}
    assert {n: where for n, where in defs.items() if n in shared and len(where) > 1} == {}
