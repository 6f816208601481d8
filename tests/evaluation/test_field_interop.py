"""The field's vocabulary: measure names of ir_measures / trec_eval, named runs, CombSUM / CombMNZ as ranx
defines them, LaTeX tables, and significance that knows equality (ties, Holm-Bonferroni)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import pytrec_eval
from typer.testing import CliRunner

from polyret.cli import app
from polyret.data.trec import read_run_table
from polyret.evaluation import score
from polyret.evaluation.fusion import fuse_comb
from polyret.evaluation.metrics import canonical_measures, parse_measure
from polyret.evaluation.significance import holm, paired_bootstrap, paired_cluster_bootstrap, verdict
from polyret.report.runs import score_runs
from tests.helpers.benchmarks import random_embeddings, tiny_benchmark, write_corpus_run

FIELD = {  # the name a user types -> polyret's stable key, pytrec_eval's measure
    "nDCG@10": ("ndcg@10", "ndcg_cut_10"),
    "AP": ("map", "map"),
    "RR@10": ("mrr@10", None),
    "R@100": ("recall@100", "recall_100"),
    "P@5": ("p@5", "P_5"),
    "ndcg_cut_10": ("ndcg@10", "ndcg_cut_10"),
    "map_cut_100": ("map@100", "map_cut_100"),
    "recip_rank": ("mrr", "recip_rank"),
}


def test_field_names_parse_to_stable_keys_and_unknown_ones_are_refused():
    assert canonical_measures(list(FIELD)) == ["ndcg@10", "map", "mrr@10", "recall@100", "p@5", "map@100", "mrr"]
    assert canonical_measures("map@20,recall@1") == ["map@20", "recall@1"]  # polyret's own names unchanged
    assert parse_measure("Judged@10").kind == "ir" and parse_measure("Judged@10").name == "Judged@10"
    assert parse_measure("AP(rel=2)@10").kind == "ir"  # a parameter polyret's kernel does not have
    with pytest.raises(ValueError, match=r"unknown measure 'nDCG@ten'.*ndcg@k.*Judged@10"):
        parse_measure("nDCG@ten")


def test_field_names_give_pytrec_evals_numbers_and_other_measures_come_from_ir_measures(tmp_path):
    bench = tiny_benchmark(n_q=10)
    q, c = random_embeddings(bench, seed=11)
    res, run = score(bench, q, c, k=len(bench.candidates), measures=[*FIELD, "Judged@10", "p@10"])
    assert res.measures == ["ndcg@10", "map", "mrr@10", "recall@100", "p@5", "map@100", "mrr", "Judged@10", "p@10"]
    qrels, trec = run.to_pytrec()
    ev = pytrec_eval.RelevanceEvaluator(qrels, {v[1] for v in FIELD.values() if v[1]}).evaluate(trec)
    for ours, theirs in {v[0]: v[1] for v in FIELD.values() if v[1]}.items():
        for setting, vals in res.per_setting.items():
            want = np.mean([ev[k][theirs] for k in ev if k.startswith(setting + "/")])
            assert vals[ours] == pytest.approx(want, abs=1e-12), (ours, setting)
    # Judged@10 by ir_measures: with only relevant judgements kept, the share of the top 10 judged relevant = P@10
    assert np.allclose(res.per_query.values["Judged@10"], res.per_query.values["p@10"], atol=1e-12)
    with pytest.raises(ValueError, match=r"Judged@200.*ir_measures on the top 5"):
        score(bench, q, c, k=5, measures=["Judged@200"])


def _ranx_dict(trec):
    out: dict = {}
    for qc, d, s in zip(trec.query, trec.docid, trec.score):
        out.setdefault(str(trec.qids[qc]), {})[str(d)] = float(s)
    return out


@pytest.mark.slow  # ranx compiles its fusion with numba on first use: a minute or two on 2 cores
def test_combsum_and_combmnz_equal_ranx_fuse(tmp_path):
    ranx = pytest.importorskip("ranx")
    rng = np.random.default_rng(3)
    files = []
    for name in ("a", "b", "c"):
        lines = []
        for qi in range(4):
            docs = rng.choice(12, size=int(rng.integers(3, 9)), replace=False)
            scores = np.sort(rng.normal(size=len(docs)) * 5)[::-1]
            lines += [f"q{qi} Q0 d{d} {r} {s:.6f} {name}" for r, (d, s) in enumerate(zip(docs, scores), 1)]
        files.append(tmp_path / f"{name}.trec")
        files[-1].write_text("\n".join(lines) + "\n")
    runs = [read_run_table(f) for f in files]
    for method in ("combsum", "combmnz"):
        ours = _ranx_dict(fuse_comb(runs, method=method))
        ranx_method = {"combsum": "sum", "combmnz": "mnz"}[method]
        theirs = ranx.fuse([ranx.Run(_ranx_dict(r)) for r in runs], norm="min-max", method=ranx_method).to_dict()
        assert ours.keys() == theirs.keys()
        for qid, docs in theirs.items():
            assert ours[qid].keys() == docs.keys()
            for d, v in docs.items():
                assert ours[qid][d] == pytest.approx(v, abs=1e-9), (method, qid, d)


def test_score_command_names_runs_fuses_writes_latex_and_takes_field_measures(tmp_path):
    from polyret.data.records import Benchmark

    bench = tiny_benchmark(n_q=8)
    q, c = random_embeddings(bench, seed=1)
    q2, c2 = random_embeddings(bench, seed=2)
    write_corpus_run(bench, q, c, tmp_path / "run.trec", "x", limit=10)
    (tmp_path / "other").mkdir()
    write_corpus_run(bench, q2, c2, tmp_path / "other" / "run.trec", "y", limit=10)  # the same file name: run and run-2 before
    out = tmp_path / "scored"
    results = score_runs(
        [tmp_path / "run.trec", tmp_path / "other" / "run.trec"], bench, names=["dense", "sparse"], output=out,
        fuse="combmnz", measures=["nDCG@10", "AP", "RR@10", "R@100"], latex=True,
    )  # fmt: skip
    assert list(results) == ["dense", "sparse", "combmnz"]
    assert results["dense"].measures == ["ndcg@10", "map", "mrr@10", "recall@100"]
    fusion = json.loads((out / "combmnz" / "results.json").read_text())["fusion"]
    assert fusion["method"] == "combmnz" and fusion["systems"] == ["dense", "sparse"] and "min-max" in fusion["normalization"]
    tex = (out / "report" / "report.tex").read_text()
    assert r"\begin{tabular}" in tex and r"\toprule" in tex and "dense" in tex and r"p_\mathrm{Holm}" in tex
    md = (out / "report" / "report.md").read_text()
    assert "p (randomization, Holm)" in md and "Not corrected for multiple comparisons" not in md
    assert "trained system was run with one seed" not in md and "fixed runs" in md
    with pytest.raises(ValueError, match="given to two runs"):
        score_runs([tmp_path / "run.trec"] * 2, bench, names=["a", "a"])
    assert isinstance(bench, Benchmark)


def test_score_cli_parses_names_and_refuses_unknown_measures(tmp_path, monkeypatch):
    monkeypatch.setenv("POLYRET_DATA_DIR", str(tmp_path / "nodata"))
    r = CliRunner().invoke(app, ["score", "--run", "a=x.trec", "--benchmark", "xquad-r:test", "--measures", "nDCG@ten"])
    assert r.exit_code == 2 and "--measures: unknown measure 'nDCG@ten'" in r.output
    r = CliRunner().invoke(app, ["score", "--run", "a/b=x.trec", "--benchmark", "xquad-r:test"])
    assert r.exit_code == 2 and "not a usable system name" in r.output
    r = CliRunner().invoke(app, ["evaluate", "--measures", "Bpref", "--benchmark", "xquad-r:test"])
    assert r.exit_code == 2 and "--measures: Bpref" in r.output


# ---- significance that knows equality ----------------------------------------------------------------------


def test_float_rounding_differences_are_ties_never_better():
    rng = np.random.default_rng(0)
    a = rng.uniform(size=200)
    b = a + rng.uniform(1e-9, 5e-8, size=200)  # every difference has one sign, all below the resolution
    boot = paired_bootstrap(a, b, n_resamples=200)
    assert boot.diff == 0.0 and boot.low == 0.0 and boot.high == 0.0 and boot.p == 1.0
    m = np.vstack([a, a])
    cb = paired_cluster_bootstrap(m, m + 1e-8, n_resamples=200)
    assert (cb.diff, cb.low, cb.high) == (0.0, 0.0, 0.0)
    assert not verdict(cb.diff, cb.low, cb.high, 0.001)
    assert not verdict(0.0, 0.0, 0.0, None) and not verdict(0.0, -0.1, 0.1, 0.5)
    assert verdict(0.05, 0.01, 0.09, 0.01) and not verdict(0.05, 0.01, 0.09, 0.2)  # adjusted p must be small too


def test_holm_matches_the_textbook_procedure():
    p = [0.01, 0.04, 0.03, 0.005]
    # sorted: .005*4=.02, .01*3=.03, .03*2=.06, .04*1=.04 -> running max .02 .03 .06 .06
    assert holm(p) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert holm([0.5, None, 0.9])[1] != holm([0.5, None, 0.9])[1]  # NaN for a missing p-value
    assert holm([0.6, 0.9]) == [1.0, 1.0]  # 0.6 x 2 capped at 1; the running maximum carries it to 0.9 x 1


def test_a_run_scored_against_the_evaluation_that_wrote_it_is_a_tie(tmp_path):
    bench = tiny_benchmark(n_q=12)
    q, c = random_embeddings(bench, seed=5)
    res, run = score(bench, q, c, k=len(bench.candidates), measures=["map", "ndcg@10"])
    res.write(tmp_path / "ev", heatmap=False, run=run)
    out = tmp_path / "cmp"
    score_runs([tmp_path / "ev" / "run.trec"], bench, compare=[tmp_path / "ev"], output=out, measures=["map", "ndcg@10"])
    report = json.loads((out / "report" / "report.json").read_text())
    sig = [c for b in report["benchmarks"].values() for c in b["significance"]]
    assert sig and all(not c["significant"] and c["better"] is None for c in sig)
    assert all(c["diff"] == 0.0 and c["low"] == 0.0 and c["high"] == 0.0 for c in sig)
    md = (out / "report" / "report.md").read_text()
    assert "run better" not in md and "ev better" not in md and "tie (no per-query difference)" in md
    rows = [line for line in md.split("### Main results")[1].split("###")[0].splitlines() if line.startswith("| run ")]
    assert rows and "\u2020" not in rows[0]  # no dagger on a difference of 0
    assert "(1 seed)" not in md and "1 seed /" not in md  # fixed runs have no training seed
