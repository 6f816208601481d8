"""``polyret score``: external runs scored in polyret's settings; polyret's own run.trec is the oracle."""

from __future__ import annotations

import json

import numpy as np
import pytest
import pytrec_eval
from typer.testing import CliRunner

from polyret.cli import app
from polyret.data.records import DataError
from polyret.data.trec import read_run_table, write_run
from polyret.evaluation import score
from polyret.evaluation.external_runs import score_run
from polyret.evaluation.fusion import fuse_rrf
from polyret.report.runs import score_runs
from tests.helpers.benchmarks import random_embeddings, tiny_benchmark, write_corpus_run

MEASURES = ["map", "map@20", "ndcg@10", "recall@1", "recall@10", "mrr@10", "p@5"]


def _assert_same(a, b):
    assert a.per_setting == b.per_setting
    assert a.macro == b.macro
    assert a.bias == b.bias
    assert list(a.per_query.setting) == list(b.per_query.setting)
    assert list(a.per_query.query_id) == list(b.per_query.query_id)
    for m, v in a.per_query.values.items():
        assert np.array_equal(v, b.per_query.values[m], equal_nan=True), m


def test_polyret_run_file_reproduces_polyret_numbers_exactly(tmp_path):
    bench = tiny_benchmark(n_q=15)
    q, c = random_embeddings(bench, seed=3)
    # PEER and MRC read whole top-k lists, and a run file does not say what k was: the others reproduce
    bias = ("max_rank_distance", "same_language", "max_at_r", "lpr", "lang_ndcg")
    res, run = score(bench, q, c, k=4, measures=MEASURES, bias_measures=bias)
    assert run.rank.max() > 4  # some relevant candidates sit deeper than k: full mAP needs their true rank
    run.to_trec_run(tmp_path / "run.trec", include_unretrieved=True)
    got, table = score_run(tmp_path / "run.trec", bench, measures=MEASURES, bias_measures=bias)
    _assert_same(res, got)
    assert table.exact_ranks and got.extra["not_retrieved_relevant"] == 0
    # without the deeper rows, cutoff measures within k still agree and full mAP can only drop
    run.to_trec_run(tmp_path / "top.trec")
    top, table = score_run(tmp_path / "top.trec", bench, measures=["map", "recall@1", "mrr@4", "ndcg@10"])
    assert not table.exact_ranks and top.extra["not_retrieved_relevant"] > 0
    for name, vals in top.per_setting.items():
        assert vals["recall@1"] == res.per_setting[name]["recall@1"]
        assert vals["map"] <= res.per_setting[name]["map"]
    assert any(v["map"] < res.per_setting[n]["map"] for n, v in top.per_setting.items())


def test_one_corpus_wide_ranking_per_query_gives_every_setting_exactly(tmp_path):
    bench = tiny_benchmark(n_q=10)
    q, c = random_embeddings(bench, seed=5)
    res, _ = score(bench, q, c, k=len(bench.candidates), measures=MEASURES)
    write_corpus_run(bench, q, c, tmp_path / "full.trec")
    got, table = score_run(tmp_path / "full.trec", bench, measures=MEASURES)
    assert table.meta["form"] == "plain" and table.exact_ranks
    assert got.per_setting.keys() == res.per_setting.keys()
    _assert_same(res, got)  # the numbers depend on ranks only: equal to the last bit


def test_a_truncated_run_agrees_with_trec_eval_and_left_out_queries_score_zero(tmp_path):
    bench = tiny_benchmark(n_q=10)
    q, c = random_embeddings(bench, seed=7)
    write_corpus_run(bench, q, c, tmp_path / "cut.trec", limit=5)
    lines = (tmp_path / "cut.trec").read_text().splitlines()
    kept = [line for line in lines if not line.startswith("q3@en ")]  # the run leaves one query out
    (tmp_path / "cut.trec").write_text("\n".join(kept) + "\n")
    got, _ = score_run(tmp_path / "cut.trec", bench, families=["multi"], measures=["map", "ndcg@10", "recall@5"])
    runs: dict = {}
    for line in kept:
        qid, _, doc, _, s, _ = line.split()
        runs.setdefault(qid, {})[doc] = float(s)
    qrels = {f"{x.id}@{x.lang}": bench.qrels[x.id] for x in bench.queries}
    ev = pytrec_eval.RelevanceEvaluator(qrels, {"map", "ndcg_cut_10", "recall_5"}).evaluate(runs)
    for lang in bench.languages:
        per = got.per_query.rows_for(f"multi:{lang}")
        vals = {qid: got.per_query.values["map"][i] for i, qid in zip(per, np.asarray(got.per_query.query_id)[per])}
        for qid, v in vals.items():
            key = f"{qid}@{lang}"
            assert v == pytest.approx(ev[key]["map"] if key in ev else 0.0, abs=1e-9), key
    assert got.per_setting["multi:en"]["n_queries"] == 10  # the left-out query is counted, at 0


def test_rrf_fusion_by_hand(tmp_path):
    a = tmp_path / "a.trec"
    b = tmp_path / "b.trec"
    a.write_text("q Q0 x 1 9 A\nq Q0 y 2 8 A\nq Q0 z 3 7 A\np Q0 x 1 1 A\n")
    b.write_text("q Q0 z 1 5 B\nq Q0 w 2 4 B\n")
    fused = fuse_rrf([read_run_table(a), read_run_table(b)], k=60)
    rows = zip(fused.query, fused.docid, fused.rank, fused.score)
    got = {(str(fused.qids[qc]), str(d)): (int(r), float(s)) for qc, d, r, s in rows}
    assert got[("q", "z")] == (1, pytest.approx(1 / 63 + 1 / 61))
    assert got[("q", "x")] == (2, pytest.approx(1 / 61))
    assert got[("q", "y")] == (3, pytest.approx(1 / 62))  # y and w tie at 1/62: docid descending, as trec_eval
    assert got[("q", "w")] == (4, pytest.approx(1 / 62))
    assert got[("p", "x")] == (1, pytest.approx(1 / 61))
    assert fused.qids.tolist() == ["q", "p"]
    write_run(fused, tmp_path / "f.trec")
    assert read_run_table(tmp_path / "f.trec").tag == "rrf"


def test_rrf_of_a_run_with_itself_keeps_its_ranking(tmp_path):
    bench = tiny_benchmark(n_q=6)
    q, c = random_embeddings(bench, seed=2)
    write_corpus_run(bench, q, c, tmp_path / "d.trec")
    one = read_run_table(tmp_path / "d.trec")
    fused = fuse_rrf([one, one])
    a, _ = score_run(one, bench, measures=MEASURES)
    b, _ = score_run(fused, bench, measures=MEASURES)
    assert a.per_setting == b.per_setting


def test_score_runs_writes_results_and_a_report_comparing_systems(tmp_path):
    bench = tiny_benchmark(n_q=12)
    q, c = random_embeddings(bench, seed=1)
    exact = ("max_rank_distance", "same_language", "max_at_r", "lpr", "lang_ndcg")  # PEER, MRC: the top-k lists
    res, _ = score(bench, q, c, k=5, measures=MEASURES, bias_measures=exact)
    res.write(tmp_path / "model")
    write_corpus_run(bench, q, c, tmp_path / "dense.trec")
    q2, c2 = random_embeddings(bench, seed=9)
    write_corpus_run(bench, q2, c2, tmp_path / "other.trec", limit=8)
    out = tmp_path / "scored"
    results = score_runs(
        [tmp_path / "dense.trec", tmp_path / "other.trec"], bench, output=out, fuse="rrf", compare=[tmp_path / "model"],
        measures=MEASURES, bias_measures=exact,
    )  # fmt: skip
    assert list(results) == ["dense", "other", "rrf", "model"]
    assert results["model"].per_setting == results["dense"].per_setting  # read back from results.json: exact
    assert results["model"].bias == results["dense"].bias
    assert json.loads((out / "rrf" / "results.json").read_text())["fusion"]["method"] == "rrf"
    report = json.loads((out / "report" / "report.json").read_text())
    text = (out / "report" / "report.md").read_text()
    assert "other" in text and "rrf" in text
    assert report["baseline"] == "model"
    (tmp_path / "mixed.trec").write_text("mono:de/q0@de Q0 de:0 1 0.5 x\n")
    with pytest.raises(DataError, match=r"mixed\.trec writes query ids as '<setting>/<qid>@<lang>'.*other\.trec"):
        score_runs([tmp_path / "mixed.trec", tmp_path / "other.trec"], bench, fuse="rrf", measures=["map"])


@pytest.mark.slow
def test_score_command_end_to_end_reproduces_evaluate(tiny_model_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("POLYRET_CACHE_DIR", str(tmp_path / "cache"))
    runner = CliRunner()
    ev = tmp_path / "ev"
    args = ["--benchmark", "xquad-r:test", "--languages", "de,en"]
    measures = ["--measures", "AP@5,nDCG@5,R@5,RR@5,P@2"]  # what a top-5 run reproduces, in the field's spelling
    r = runner.invoke(
        app, ["evaluate", "--model", tiny_model_dir, *args, *measures, "--k", "5", "--output", str(ev), "--trec-run"]
    )
    assert r.exit_code == 0, r.output
    assert (ev / "qrels.trec").is_file()
    sc = tmp_path / "sc"
    r = runner.invoke(app, ["score", "--run", f"tiny={ev / 'run.trec'}", *args, *measures, "--output", str(sc)])
    assert r.exit_code == 0, r.output
    a = json.loads((ev / "results.json").read_text())
    b = json.loads((sc / "results.json").read_text())
    assert b["model"] == "tiny"  # --run NAME=path names the system
    assert a["measures"] == b["measures"] == ["map@5", "ndcg@5", "recall@5", "mrr@5", "p@2"]
    assert a["settings"] == b["settings"]
    bad = tmp_path / "bad.trec"
    bad.write_text((ev / "run.trec").read_text().replace(" Q0 ", " Q1 ", 1))
    r = runner.invoke(app, ["score", "--run", str(bad), *args])
    assert r.exit_code == 2 and "bad.trec:1: second column must be 'Q0'" in r.output


def _tiny_miracl(tmp_path):
    """A MIRACL-layout data dir (Swahili): 4 topics, a partial corpus (one relevant docid absent)."""
    root = tmp_path / "data" / "miracl"
    words = "mji mto nchi mwaka watu vita mfalme kanisa muziki shule maji lugha historia".split()
    rng = np.random.default_rng(0)
    docs = [{"docid": f"{i}#{j}", "title": "T", "text": " ".join(rng.choice(words, 6))} for i in range(4) for j in range(3)]
    files = {
        "topics/topics.miracl-v1.0-sw-dev.tsv": "".join(f"{i}\tswali {' '.join(rng.choice(words, 3))}\n" for i in range(4)),
        "qrels/qrels.miracl-v1.0-sw-dev.tsv": "".join(f"{i} Q0 {i}#0 1\n{i} Q0 {i}#1 0\n" for i in range(4)) + "2 Q0 99#9 1\n",
        "corpus/sw.jsonl": "".join(json.dumps(d) + "\n" for d in docs),
    }
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text, encoding="utf-8")
    return tmp_path / "data"


def test_miracl_runs_polyret_oracle_and_a_plain_run_against_trec_eval(tiny_model_dir, tmp_path):
    from polyret.data import load_benchmark
    from polyret.evaluation import evaluate

    data = _tiny_miracl(tmp_path)
    res = evaluate(tiny_model_dir, "miracl/sw", data_dir=str(data), progress=False, cache=False, device="cpu",
                   keep_run=True, k=2, measures=MEASURES)  # fmt: skip
    assert res.extra["unretrievable_relevant"] == 1
    res.run.to_trec_run(tmp_path / "run.trec", include_unretrieved=True)
    got = score_runs([tmp_path / "run.trec"], "miracl/sw", data_dir=data, measures=MEASURES)["run"]
    assert got.per_setting == res.per_setting and got.extra["unretrievable_relevant"] == 1

    # a BM25-style run: plain query ids, one ranking per query; the absent relevant docid is a miss
    bench = load_benchmark("miracl/sw", data_dir=data)
    lines = [f"{q.id} Q0 {c.id} {r} {10 - r} bm25" for q in bench.queries for r, c in enumerate(bench.candidates[:5], 1)]
    (tmp_path / "bm25.trec").write_text("\n".join(lines) + "\n")
    plain = score_runs([tmp_path / "bm25.trec"], bench, measures=["map", "ndcg@10", "recall@5"])["bm25"]
    qrels = {q: dict(d) for q, d in bench.qrels.items()}
    runs: dict = {}
    for line in lines:
        qid, _, doc, _, s, _ = line.split()
        runs.setdefault(qid, {})[doc] = float(s)
    ev = pytrec_eval.RelevanceEvaluator(qrels, {"map", "ndcg_cut_10", "recall_5"}).evaluate(runs)
    for ours, theirs in (("map", "map"), ("ndcg@10", "ndcg_cut_10"), ("recall@5", "recall_5")):
        assert plain.per_setting["mono:sw"][ours] == pytest.approx(np.mean([v[theirs] for v in ev.values()]), abs=1e-9)
