"""The public API: every top-level name resolves, importing polyret stays light, the README uses it."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import polyret

README = Path(__file__).resolve().parents[1] / "README.md"


def test_every_public_name_resolves_to_its_definition():
    import polyret.evaluation
    import polyret.experiment
    import polyret.models
    import polyret.report
    import polyret.training

    for name in polyret.__all__:
        assert getattr(polyret, name) is not None, name
    assert polyret.train is polyret.training.trainer.train
    assert polyret.evaluate is polyret.evaluation.evaluate
    assert polyret.load_model is polyret.models.load
    assert polyret.run_experiment is polyret.experiment.run_experiment
    assert polyret.Report is polyret.report.Report
    assert set(polyret.__all__) <= set(dir(polyret))


def test_unknown_name_is_an_attribute_error():
    import pytest

    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        polyret.nope  # noqa: B018


def test_import_polyret_does_not_import_torch():
    code = "import sys, polyret; print('torch' in sys.modules, 'sentence_transformers' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]


def test_evaluation_exports_stay_functions_whatever_submodules_load():
    """No submodule of ``polyret.evaluation`` is named like a name it exports, so importing every submodule
    (which sets each as an attribute of the package) never replaces ``evaluate`` or ``score`` with a module
    (what broke a lazy ``polyret.evaluation`` before)."""
    code = """
import pkgutil, importlib
import polyret.evaluation as ev
names = sorted(m.name for m in pkgutil.iter_modules(ev.__path__))
assert not set(names) & set(ev.__all__), names
for name in names:
    importlib.import_module("polyret.evaluation." + name)
import polyret
from polyret.evaluation import evaluate, score
from polyret.evaluation.pipeline import evaluate as verb
from polyret.evaluation.scoring import score as scorer
assert evaluate is verb is ev.evaluate is polyret.evaluate and callable(evaluate)
assert score is scorer is ev.score
print("ok")
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.split() == ["ok"], out.stderr


def test_readme_python_api_uses_only_top_level_imports():
    text = README.read_text(encoding="utf-8")
    section = text[text.index("## Python API") :]
    block = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    imports = re.findall(r"^from (\S+) import (.+)$", block, re.M)
    assert imports and all(module == "polyret" for module, _ in imports), imports
    for _, names in imports:
        for name in names.split(","):
            assert name.strip() in polyret.__all__, name
