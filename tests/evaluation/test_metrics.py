"""Every metric against pytrec_eval (trec_eval) on full rankings built independently of search."""

import numpy as np
import pytest
import pytrec_eval

from polyret.data.records import Benchmark, Candidate, Query
from polyret.evaluation.metrics import DEFAULT_MEASURES, macro, parse_measure, per_query, per_setting
from polyret.evaluation.runtable import RunTable
from polyret.evaluation.search import build_run_table
from polyret.evaluation.settings import Setting

TREC = {
    "map": "map",
    "map@10": "map_cut_10",
    "map@5": "map_cut_5",
    "ndcg@10": "ndcg_cut_10",
    "ndcg@3": "ndcg_cut_3",
    "ndcg": "ndcg",
    "recall@100": "recall_100",
    "recall@10": "recall_10",
    "p@5": "P_5",
    "mrr": "recip_rank",
}


def random_case(seed, n_queries=40, k=20):
    """Random pools (3..300 docs), untied scores, graded qrels; some gold forced to the last rank."""
    rng = np.random.default_rng(seed)
    settings = [Setting("mono", "en", ("en",)), Setting("cross", "en", ("de",))]
    doc_ids, doc_langs, qrels, full_run = [], [], {}, {}
    cols = {c: [] for c in ("setting", "query", "doc", "rank", "score", "relevance")}
    for qi in range(n_queries):
        code = qi % 2
        pool = int(rng.choice([3, 10, 57, 300]))
        ids = [f"d{qi}-{rng.integers(10**9)}" for _ in range(pool)]
        first = len(doc_ids)
        doc_ids += ids
        doc_langs += ["en"] * pool
        scores = rng.standard_normal(pool)
        n_rel = int(rng.integers(1, min(pool, 12) + 1))
        rel_idx = rng.choice(pool, size=n_rel, replace=False)
        gains = rng.integers(1, 4, size=n_rel)
        if rng.random() < 0.3:
            scores[rel_idx[0]] = scores.min() - 1.0  # a relevant doc ranked last
        qid = f"{settings[code].name}/q{qi}@en"
        qrels[qid] = {ids[j]: int(g) for j, g in zip(rel_idx, gains)}
        for j in rng.choice(pool, size=min(pool, 3), replace=False):  # judged non-relevant docs
            qrels[qid].setdefault(ids[j], 0)
        full_run[qid] = {ids[j]: float(scores[j]) for j in range(pool)}
        order = sorted(range(pool), key=lambda j: ids[j], reverse=True)
        order = sorted(order, key=lambda j: -scores[j])
        rank_of = {j: r + 1 for r, j in enumerate(order)}
        gain_of = dict(zip(rel_idx.tolist(), gains.tolist()))
        rows = [j for j in order[:k] if j not in gain_of] + list(gain_of)
        for j in rows:
            cols["setting"].append(code)
            cols["query"].append(qi)
            cols["doc"].append(first + j)
            cols["rank"].append(rank_of[j])
            cols["score"].append(scores[j])
            cols["relevance"].append(gain_of.get(j, 0))
    perm = rng.permutation(len(cols["query"]))  # row order must not matter
    run = RunTable(
        settings=settings,
        query_ids=[f"q{i}" for i in range(n_queries)],
        query_langs=["en"] * n_queries,
        doc_ids=doc_ids,
        doc_langs=doc_langs,
        k=k,
        exact_ranks=True,
        **{c: np.asarray(v)[perm] for c, v in cols.items()},
    )
    return run, qrels, full_run


def trec_values(qrels, full_run, measures, cutoff_run=None):
    ev = pytrec_eval.RelevanceEvaluator(qrels, measures)
    return ev.evaluate(cutoff_run or full_run)


def truncated(full_run, k):
    return {q: dict(sorted(d.items(), key=lambda kv: (-kv[1], tuple(-ord(ch) for ch in kv[0])))[:k]) for q, d in full_run.items()}


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_against_pytrec_eval(seed):
    run, qrels, full_run = random_case(seed)
    measures = list(TREC) + ["mrr@10", "success@5"]
    scores = per_query(run, measures)
    keys = scores.keys()
    assert len(keys) == len(qrels)
    ref = trec_values(qrels, full_run, {"map", "map_cut.5,10", "ndcg_cut.3,10", "ndcg", "recall.10,100", "P.5", "recip_rank"})
    for ours, theirs in TREC.items():
        expect = np.array([ref[k][theirs] for k in keys])
        np.testing.assert_allclose(scores.values[ours], expect, atol=1e-6, err_msg=ours)
    ref10 = trec_values(qrels, full_run, {"recip_rank"}, cutoff_run=truncated(full_run, 10))
    np.testing.assert_allclose(scores.values["mrr@10"], [ref10[k]["recip_rank"] for k in keys], atol=1e-6)
    ref5 = trec_values(qrels, full_run, {"P.5"})
    np.testing.assert_array_equal(scores.values["success@5"], [float(ref5[k]["P_5"] > 0) for k in keys])


def test_end_to_end_search_against_pytrec_eval():
    rng = np.random.default_rng(7)
    langs = ("en", "de")
    queries = [Query(f"q{i}", lang, "") for lang in langs for i in range(15)]
    cands = [Candidate(f"{lang}{j:03d}", lang, "") for lang in langs for j in range(60)]
    qrels = {
        f"q{i}": {
            f"{lang}{j:03d}": int(rng.integers(1, 3))
            for lang in langs
            for j in rng.choice(60, size=rng.integers(1, 4), replace=False)
        }
        for i in range(15)
    }
    bench = Benchmark("e2e", langs, queries, cands, qrels)
    q = rng.standard_normal((30, 8)).astype(np.float32)
    c = rng.standard_normal((120, 8)).astype(np.float32)
    run = build_run_table(bench, q, c, k=7)
    scores = per_query(run, ["map", "ndcg@10", "recall@20", "p@5"])
    full = q.astype(np.float64) @ c.T.astype(np.float64)
    keys = scores.keys().tolist()
    for _code, s in enumerate(run.settings):
        tq, tr = {}, {}
        for qi, query in enumerate(queries):
            if query.lang != s.query_lang:
                continue
            key = f"{s.name}/{query.id}@{query.lang}"
            gold = {d: r for d, r in qrels[query.id].items() if d[:2] in s.pool_langs}
            if gold:
                tq[key] = gold
                tr[key] = {cand.id: float(full[qi, j]) for j, cand in enumerate(cands) if cand.lang in s.pool_langs}
        ref = pytrec_eval.RelevanceEvaluator(tq, {"map", "ndcg_cut.10", "recall.20", "P.5"}).evaluate(tr)
        for key, vals in ref.items():
            i = keys.index(key)
            for ours, theirs in (("map", "map"), ("ndcg@10", "ndcg_cut_10"), ("recall@20", "recall_20"), ("p@5", "P_5")):
                assert scores.values[ours][i] == pytest.approx(vals[theirs], abs=1e-6), (key, ours)


def test_per_setting_and_macro():
    run, _, _ = random_case(5)
    scores = per_query(run, ["map", "ndcg@10"])
    by_setting = per_setting(scores)
    assert set(by_setting) == {"mono:en", "cross:en-de"}
    mono = scores.values["map"][scores.rows_for("mono:en")].mean()
    assert by_setting["mono:en"]["map"] == pytest.approx(mono)
    fam = macro(scores)
    assert fam["mono"]["map"] == pytest.approx(mono)
    assert set(fam) == {"mono", "cross"}
    assert scores.counts() == {"mono:en": 20, "cross:en-de": 20}


def test_macro_weighs_settings_equally():
    settings = [Setting("cross", "en", ("de",)), Setting("cross", "en", ("fr",))]
    # setting 0: one query with AP 1; setting 1: three queries with AP 0.5
    rows = [(0, 0, 0, 1, 1)] + [(1, q, q, 2, 1) for q in (1, 2, 3)]
    s, q, d, r, g = (np.array(x) for x in zip(*rows))
    run = RunTable(
        settings,
        [f"q{i}" for i in range(4)],
        ["en"] * 4,
        [f"d{i}" for i in range(4)],
        ["de"] * 4,
        s,
        q,
        d,
        r,
        np.zeros(4),
        g,
        k=10,
        exact_ranks=True,
    )
    assert macro(per_query(run, ["map"]))["cross"]["map"] == pytest.approx(0.75)


def test_approximate_run_refuses_deep_cutoffs():
    run, _, _ = random_case(0)
    run.exact_ranks = False
    with pytest.raises(ValueError, match="deeper"):
        per_query(run, ["recall@100"])
    for full in ("map", "ndcg", "mrr"):  # a top-k run cannot give a no-cutoff value: refused, never a top-k number
        with pytest.raises(ValueError, match=rf"\['{full}'\].*{full}@20"):
            per_query(run, ["recall@20", full])
    assert set(per_query(run, ["recall@20", "map@20"]).values) == {"recall@20", "map@20"}


def test_parse_measure():
    assert parse_measure("nDCG@10").name == "ndcg@10"
    assert parse_measure("AP").name == "map"
    assert parse_measure("map_cut_10").name == "map@10"
    assert parse_measure("R@100").name == "recall@100"
    assert parse_measure("RR@10").name == "mrr@10"
    assert parse_measure("recip_rank").name == "mrr"
    assert parse_measure("P_5").name == "p@5"
    for m in DEFAULT_MEASURES:
        assert parse_measure(m).name == m
    for bad in ("recall", "foo@3", "ndcg@0", "map@x"):
        with pytest.raises(ValueError):
            parse_measure(bad)
