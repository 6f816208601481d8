"""Golden files: an evaluation's results.json and a report's report.json and report.md, regenerated and
compared with the copies committed in ``tests/golden/``, so a change to what the results writer or a report
renderer writes shows as a diff.

The inputs are fixed: the tiny random BERT of ``tests/helpers/models.py`` (seed 0 as ``base``, seed 1 as
``hybrid``) evaluated through ``evaluate()`` on ``tests/helpers/benchmarks.worded_benchmark`` (fp32, no
cache), written and read back through the results folder, and a report over the two (its bootstrap seeded).

What is masked before comparing, and why (nothing else is):

- ``results.json``: ``timing_s`` (durations) and ``model_fingerprint`` (a hash of the model's modules'
  config and tokenizer as the installed sentence-transformers / tokenizers serialise them: changes with
  their versions); the model folder's absolute path (in ``model`` and ``config.model``) becomes
  ``<tmp>/<folder name>``.
- every float in both JSON files is compared rounded to 6 significant digits (what ``per_query.csv.gz``
  keeps): the encoder and the search run in float32 on torch / BLAS kernels whose last bits may differ from
  one CPU to another. The benchmark keeps adjacent candidates' scores at least 2.2e-6 apart (checked
  below), so such differences cannot reorder a ranking.
- ``report.md`` is compared as written (its renderer prints rounded numbers).

Refresh after an intended change, then review the diff of ``tests/golden/``::

    POLYRET_UPDATE_GOLDEN=1 pytest tests/test_golden.py
"""

from __future__ import annotations

import difflib
import json
import math
import os
from pathlib import Path

import numpy as np
import pytest

from tests.helpers.benchmarks import worded_benchmark
from tests.helpers.models import build_tiny_model

GOLDEN = Path(__file__).resolve().parent / "golden"
UPDATE = os.environ.get("POLYRET_UPDATE_GOLDEN") == "1"
MEASURES = ("map", "ndcg@10", "recall@10")
MASKED = "<masked>"
MASKED_RESULT_KEYS = ("timing_s", "model_fingerprint")  # durations; library-version dependent hash
MIN_SCORE_GAP = 1e-6  # adjacent scores of one ranking at least this far apart (no near-ties)


def _round(value):
    """Every float of a JSON value rounded to 6 significant digits (dict order kept)."""
    if isinstance(value, float):
        return value if not math.isfinite(value) or value == 0 else float(f"{value:.6g}")
    if isinstance(value, dict):
        return {k: _round(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_round(v) for v in value]
    return value


def _masked_results(data: dict, model_dirs: list[Path]) -> dict:
    data = dict(data)
    for key in MASKED_RESULT_KEYS:
        assert key in data, f"results.json has no {key!r} any more: update MASKED_RESULT_KEYS"
        data[key] = MASKED
    text = json.dumps(data, ensure_ascii=False)
    for folder in model_dirs:  # the absolute path of the test's temporary model folder
        text = text.replace(json.dumps(str(folder))[1:-1], f"<tmp>/{folder.name}")
    return _round(json.loads(text))


def _dump(data: dict) -> str:
    return json.dumps(data, indent=2, ensure_ascii=False) + "\n"


def _check(name: str, text: str) -> None:
    path = GOLDEN / name
    if UPDATE:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        return
    assert path.is_file(), f"{path} missing: run POLYRET_UPDATE_GOLDEN=1 pytest {Path(__file__).name}"
    want = path.read_text(encoding="utf-8")
    if text != want:
        diff = "".join(difflib.unified_diff(want.splitlines(True), text.splitlines(True), f"golden/{name}", "now", n=2))
        pytest.fail(f"{name} differs from its golden copy (POLYRET_UPDATE_GOLDEN=1 to accept):\n{diff[:6000]}")


@pytest.fixture(scope="module")
def golden_run(tmp_path_factory):
    """Two tiny models evaluated on the worded benchmark, read back from their folders, and their report."""
    from polyret.evaluation import evaluate
    from polyret.evaluation.results import load_checked
    from polyret.report import ReportEntry, build_report

    root = tmp_path_factory.mktemp("golden")
    bench = worded_benchmark()
    entries, gaps, folders = [], [], {}
    for system, seed in (("base", 0), ("hybrid", 1)):
        model = build_tiny_model(root / f"model-{system}", seed=seed)
        res = evaluate(
            str(model), bench, output=root / system, measures=MEASURES, precision="fp32", device="cpu",
            cache=False, progress=False, keep_run=True,
        )  # fmt: skip
        run = res.run
        key = run.setting.astype(np.int64) * len(run.query_ids) + run.query
        order = np.lexsort((-run.score, key))
        same_ranking = key[order][1:] == key[order][:-1]
        gaps.append(float(np.abs(np.diff(run.score[order]))[same_ranking].min()))
        loaded, why = load_checked(root / system)
        assert why is None, why
        entries.append(ReportEntry(system, None if system == "base" else seed, bench.id, loaded))
        folders[system] = model
    setup = {"model": "tiny random BERT (tests/helpers/models.py)", "benchmark": "worded (tests/helpers/benchmarks.py)"}
    build_report(entries, root / "report", title="Golden report", measure="map", figures=False, setup=setup)
    return root, folders, gaps


def test_the_golden_inputs_have_no_near_ties(golden_run):
    _, _, gaps = golden_run
    assert min(gaps) >= MIN_SCORE_GAP, f"adjacent scores {min(gaps):.3g} apart: last-bit differences could reorder"


def test_results_json_matches_its_golden_copy(golden_run):
    root, folders, _ = golden_run
    data = json.loads((root / "base" / "results.json").read_text(encoding="utf-8"))
    _check("results.json", _dump(_masked_results(data, list(folders.values()))))


def test_report_json_and_markdown_match_their_golden_copies(golden_run):
    root, _, _ = golden_run
    data = json.loads((root / "report" / "report.json").read_text(encoding="utf-8"))
    _check("report.json", _dump(_round(data)))
    _check("report.md", (root / "report" / "report.md").read_text(encoding="utf-8"))
    if UPDATE:
        pytest.skip(f"golden files rewritten in {GOLDEN}: review their diff")


def test_a_changed_renderer_shows_as_a_diff(golden_run):
    """The comparison can fail: a results.json with one number changed differs from the golden copy."""
    if UPDATE:
        pytest.skip("updating")
    root, folders, _ = golden_run
    data = json.loads((root / "base" / "results.json").read_text(encoding="utf-8"))
    data["settings"]["mono"]["map"] += 1e-3
    with pytest.raises(pytest.fail.Exception, match=r"results.json differs"):
        _check("results.json", _dump(_masked_results(data, list(folders.values()))))
