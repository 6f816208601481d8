"""``run.trec`` + ``qrels.trec`` as other tools read them: pytrec_eval and ranx get polyret's own numbers."""

from __future__ import annotations

import json

import numpy as np
import pytest
import pytrec_eval

from polyret.data.records import Benchmark, Candidate, Query
from polyret.data.trec import read_qrels, read_run_table, trec_token
from polyret.evaluation import score
from polyret.evaluation.external_runs import score_run
from polyret.paths import COMPLETE_MARKER
from tests.helpers.benchmarks import random_embeddings, tiny_benchmark

# polyret name -> trec_eval name, for measures a top-k run reproduces exactly (cutoffs <= k)
TOP_K = {"map@4": "map_cut_4", "ndcg@3": "ndcg_cut_3", "recall@4": "recall_4", "p@2": "P_2", "mrr@4": "recip_rank"}


def _trec_eval(folder, names):
    qrels = read_qrels(folder / "qrels.trec")
    run: dict = {}
    for line in (folder / "run.trec").read_text().splitlines():
        qid, _, doc, _, s, _ = line.split()
        run.setdefault(qid, {})[doc] = float(s)
    return pytrec_eval.RelevanceEvaluator(qrels, set(names)).evaluate(run)


def _per_setting(ev, key):
    """setting -> mean of trec_eval's ``key`` over the setting's queries (every qrels query is in the run)."""
    out: dict[str, list[float]] = {}
    for qid, vals in ev.items():
        out.setdefault(qid.split("/")[0], []).append(vals[key])
    return {s: float(np.mean(v)) for s, v in out.items()}


def test_written_run_and_qrels_give_trec_eval_polyrets_per_setting_numbers(tmp_path):
    bench = tiny_benchmark(n_q=10)
    q, c = random_embeddings(bench, seed=4)
    res, run = score(bench, q, c, k=4, measures=["map", *TOP_K])
    assert run.rank.max() > 4  # deeper relevant candidates exist: the run file must not list them
    res.write(tmp_path, heatmap=False, run=run)
    listed = json.loads((tmp_path / COMPLETE_MARKER).read_text())["files"]
    assert {"run.trec", "qrels.trec", "run.npz"} <= set(listed)  # written before the marker, listed in it
    lines = (tmp_path / "run.trec").read_text().splitlines()
    assert all(len(line.split()) == 6 and int(line.split()[3]) <= 4 for line in lines)  # a plain top-k run
    ev = _trec_eval(tmp_path, TOP_K.values())
    for ours, theirs in TOP_K.items():
        if ours == "mrr@4":
            continue  # trec_eval's recip_rank has no cutoff; on a top-4 run it IS RR@4
        for setting, value in _per_setting(ev, theirs).items():
            assert res.per_setting[setting][ours] == pytest.approx(value, abs=1e-12), (ours, setting)
    for setting, value in _per_setting(ev, "recip_rank").items():
        assert res.per_setting[setting]["mrr@4"] == pytest.approx(value, abs=1e-12)
    # full map is NOT what a top-k run gives (documented): trec_eval's map of it is map@4
    for setting, value in _per_setting(_trec_eval(tmp_path, ["map"]), "map").items():
        assert value == pytest.approx(res.per_setting[setting]["map@4"], abs=1e-12)
    assert any(res.per_setting[s]["map"] > res.per_setting[s]["map@4"] for s in res.per_setting)


def test_a_full_ranking_reproduces_full_map(tmp_path):
    bench = tiny_benchmark(n_q=8)
    q, c = random_embeddings(bench, seed=6)
    res, run = score(bench, q, c, k=len(bench.candidates), measures=["map", "ndcg"])
    res.write(tmp_path, heatmap=False, run=run)
    ev = _trec_eval(tmp_path, ["map", "ndcg"])
    for ours, theirs in (("map", "map"), ("ndcg", "ndcg")):
        for setting, value in _per_setting(ev, theirs).items():
            assert res.per_setting[setting][ours] == pytest.approx(value, abs=1e-12), (ours, setting)


@pytest.mark.slow  # ranx compiles its metrics with numba on first use: a minute or two on 2 cores
def test_ranx_loads_the_files_unchanged_and_agrees(tmp_path):
    ranx = pytest.importorskip("ranx")
    bench = tiny_benchmark(n_q=10)
    q, c = random_embeddings(bench, seed=8)
    res, run = score(bench, q, c, k=5, measures=["map@5", "ndcg@5", "recall@5"])
    res.write(tmp_path, heatmap=False, run=run)
    qrels = ranx.Qrels.from_file(str(tmp_path / "qrels.trec"), kind="trec")
    rx_run = ranx.Run.from_file(str(tmp_path / "run.trec"), kind="trec")
    assert set(qrels.keys()) == set(rx_run.keys()) == set(res.per_query.keys().tolist())
    for ours in ("map@5",):  # one measure: ranx compiles each with numba on first use (slow on a fresh machine)
        per_q = ranx.evaluate(qrels, rx_run, ours, return_mean=False, make_comparable=True)
        by_key = dict(zip(qrels.keys(), per_q))
        mine = dict(zip(res.per_query.keys(), res.per_query.values[ours]))
        for key, value in mine.items():
            assert by_key[key] == pytest.approx(value, abs=1e-9), (ours, key)


def test_docids_with_whitespace_are_encoded_and_read_back(tmp_path):
    queries = [Query("q0", "sw", "swali"), Query("q1", "sw", "swali mbili")]
    cands = [Candidate("x 319#1", "sw", "jibu"), Candidate("y%2", "sw", "nyingine"), Candidate("z", "sw", "tatu")]
    bench = Benchmark("ws", ("sw",), queries, cands, {"q0": {"x 319#1": 1}, "q1": {"y%2": 1}}, families=("mono",))
    rng = np.random.default_rng(0)
    res, run = score(bench, rng.normal(size=(2, 4)).astype(np.float32), rng.normal(size=(3, 4)).astype(np.float32),
                     k=3, measures=["map", "ndcg@3"])  # fmt: skip
    res.write(tmp_path, heatmap=False, run=run)
    assert trec_token("x 319#1") == "x%20319#1" and trec_token("y%2") == "y%2"
    assert "x%20319#1" in (tmp_path / "run.trec").read_text() and "x%20319#1" in (tmp_path / "qrels.trec").read_text()
    read_run_table(tmp_path / "run.trec")  # six fields on every line
    got, _ = score_run(tmp_path / "run.trec", bench, measures=["map", "ndcg@3"])
    assert got.per_setting == res.per_setting
