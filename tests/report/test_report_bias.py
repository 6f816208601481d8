"""The report shows the published bias measures with intervals and tests, and a remedy as a system."""

import json

import numpy as np
import pytest

from polyret.evaluation import score
from polyret.report import ReportEntry, build_report
from tests.helpers.report import report_benchmark as tiny_benchmark
from tests.helpers.report import report_embeddings as embeddings

# system -> (noise, language offset); "base+shift" stands for the base embeddings after a remedy
SYSTEMS = {"base": (1.6, 1.2), "base+shift": (1.6, 0.3), "hybrid": (1.05, 0.5)}
NEW = ("peer", "max_at_r", "lpr", "lang_ndcg", "mrc")


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    bench = tiny_benchmark()
    entries = []
    for k, (name, (noise, offset)) in enumerate(SYSTEMS.items()):
        for sd in [None] if name.startswith("base") else (1, 2):
            q, c = embeddings(bench, noise, offset, 7 if sd is None else 10 * sd + k)
            res, _ = score(bench, q, c, model_name=name, measures=("map",))
            entries.append(ReportEntry(name, sd, bench.id, res))
    out = tmp_path_factory.mktemp("report")
    files = build_report(entries, out, title="Bias", n_resamples=200, seed=0)
    assert files["tiny:test/bias_measures"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"  # one panel per measure
    return entries, out


def test_every_published_measure_is_a_column_with_its_interval(built):
    entries, out = built
    b = json.loads((out / "report.json").read_text())["benchmarks"]["tiny:test"]
    for name in SYSTEMS:
        cols = b["systems"][name]["columns"]
        for key in NEW:
            mean = np.mean([e.results.bias[key] for e in entries if e.system == name])
            assert cols[key]["mean"] == pytest.approx(mean)
    sig = {(r["a"], r["b"], r["column"]): r for r in b["significance"]}
    for key in NEW:  # the remedy is compared like a strategy, from the per-query values of the measure
        r = sig[("base+shift", "base", key)]
        diff = b["systems"]["base+shift"]["columns"][key]["mean"] - b["systems"]["base"]["columns"][key]["mean"]
        assert r["low"] <= r["diff"] <= r["high"]
        if key != "lpr":  # LPR skips queries with no gold in the top k: the paired test uses the common ones
            assert r["diff"] == pytest.approx(diff, abs=1e-9), key
    md = (out / "report.md").read_text()
    assert "PEER \u2191" in md and "MRC \u2191" in md and "| base+shift |" in md
    assert "Published bias measures" in md and "#### Max@R \u2193 (lower is better)" in md


def test_less_language_offset_reads_as_less_bias(built):
    entries, _ = built
    base = next(e.results.bias for e in entries if e.system == "base")
    shifted = next(e.results.bias for e in entries if e.system == "base+shift")
    assert shifted["max_at_r"] < base["max_at_r"] and shifted["mrc"] > base["mrc"]
