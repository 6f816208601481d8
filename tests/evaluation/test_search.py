"""Search and run table against an independent brute-force full ranking."""

import numpy as np
import pytest

from polyret.data.records import DataError
from polyret.data.trec import read_run
from polyret.evaluation.runtable import RunTable
from polyret.evaluation.search import build_run_table
from polyret.evaluation.settings import settings_for
from tests.helpers.benchmarks import SEARCH_LANGS, make_bench
from tests.helpers.benchmarks import search_embeddings as embeddings

LANGS = SEARCH_LANGS


def brute_ranking(bench, q_emb, c_emb, qi, pool_langs):
    """Pool candidates ordered like trec_eval: score desc, then candidate id desc."""
    scores = c_emb.astype(np.float64) @ q_emb[qi].astype(np.float64)
    pool = [j for j, c in enumerate(bench.candidates) if c.lang in pool_langs]
    pool = sorted(pool, key=lambda j: bench.candidates[j].id, reverse=True)
    return sorted(pool, key=lambda j: -scores[j])


@pytest.mark.parametrize("integer", [False, True])
@pytest.mark.parametrize("k,chunk_size", [(1, 1024), (5, 3), (1000, 5)])
def test_exact_matches_brute_force(integer, k, chunk_size):
    bench = make_bench()
    q_emb, c_emb = embeddings(bench, integer=integer)
    settings = settings_for(bench)
    run = build_run_table(bench, q_emb, c_emb, settings, k=k, chunk_size=chunk_size)
    assert run.exact_ranks and run.k == k
    cand_id = [c.id for c in bench.candidates]
    n_checked = 0
    for code, setting in enumerate(settings):
        for qi, query in enumerate(bench.queries):
            if query.lang != setting.query_lang:
                continue
            gold = {
                cid: r
                for cid, r in bench.qrels.get(query.id, {}).items()
                if bench.candidates[cand_id.index(cid)].lang in setting.pool_langs
            }
            rows = np.flatnonzero((run.setting == code) & (run.query == qi))
            if not gold:
                assert len(rows) == 0, f"{setting.name} {query.id}: no gold in pool, so no rows"
                continue
            ranking = brute_ranking(bench, q_emb, c_emb, qi, setting.pool_langs)
            expect_rank = {cand_id[j]: r + 1 for r, j in enumerate(ranking)}
            got = {run.doc_ids[run.doc[r]]: (int(run.rank[r]), int(run.relevance[r])) for r in rows}
            assert len(got) == len(rows), "a doc appears twice"
            for cid, rel in gold.items():
                assert got[cid] == (expect_rank[cid], rel), (setting.name, query.id, cid)
            top = rows[(run.rank[rows] >= 1) & (run.rank[rows] <= k)]
            top = top[np.argsort(run.rank[top])]
            assert [run.doc_ids[d] for d in run.doc[top]] == [cand_id[j] for j in ranking[:k]]
            assert (run.relevance[rows][~np.isin(run.doc_ids[run.doc[rows]], list(gold))] == 0).all()
            n_checked += 1
    assert n_checked > 50


def test_scores_are_dot_products():
    bench = make_bench()
    q_emb, c_emb = embeddings(bench)
    run = build_run_table(bench, q_emb, c_emb, k=5)
    expect = np.einsum("ij,ij->i", q_emb[run.query], c_emb[run.doc])
    np.testing.assert_allclose(run.score, expect, atol=1e-5)


def test_faiss_same_topk_as_exact():
    bench = make_bench(seed=3)
    q_emb, c_emb = embeddings(bench, seed=3, dim=16)
    exact = build_run_table(bench, q_emb, c_emb, k=6)
    approx = build_run_table(bench, q_emb, c_emb, k=6, backend="faiss")
    assert not approx.exact_ranks

    def top_lists(run):
        m = run.retrieved
        order = np.lexsort((run.rank[m], run.query[m], run.setting[m]))
        return list(zip(run.setting[m][order], run.query[m][order], run.doc[m][order], run.rank[m][order]))

    assert top_lists(exact) == top_lists(approx)
    deep = (exact.relevance > 0) & (exact.rank > 6)
    assert deep.any()
    key = lambda r: {(s, q, d): v for s, q, d, v in zip(r.setting, r.query, r.doc, r.rank)}  # noqa: E731
    approx_rank = key(approx)
    assert all(approx_rank[(s, q, d)] == 0 for s, q, d in zip(exact.setting[deep], exact.query[deep], exact.doc[deep]))
    assert len(approx) == len(exact)


def test_bad_inputs():
    bench = make_bench()
    q_emb, c_emb = embeddings(bench)
    with pytest.raises(ValueError, match="query_emb"):
        build_run_table(bench, q_emb[:-1], c_emb)
    with pytest.raises(ValueError, match="backend"):
        build_run_table(bench, q_emb, c_emb, backend="annoy")
    bad = np.array(c_emb)
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        build_run_table(bench, q_emb, bad)
    bench.qrels["q0"] = {"nope": 1}
    with pytest.raises(DataError, match="'nope'"):
        build_run_table(bench, q_emb, c_emb)


def test_runtable_save_load_filter_trec(tmp_path):
    bench = make_bench()
    q_emb, c_emb = embeddings(bench)
    run = build_run_table(bench, q_emb, c_emb, k=3)
    path = run.save(tmp_path / "run.npz")
    back = RunTable.load(path)
    assert back.settings == run.settings and back.k == 3 and back.exact_ranks
    for col in ("setting", "query", "doc", "rank", "score", "relevance", "query_ids", "doc_langs"):
        np.testing.assert_array_equal(getattr(back, col), getattr(run, col))
    assert list(tmp_path.iterdir()) == [path]  # no temp file left behind

    sub = run.filter(["cross:de-en", "mono:fr"])
    assert sub.setting_names == ["cross:de-en", "mono:fr"]
    assert len(sub) == np.isin(run.setting, [run.setting_code("cross:de-en"), run.setting_code("mono:fr")]).sum()

    n = run.to_trec_run(tmp_path / "mono_en.run", setting="mono:en")
    lines = (tmp_path / "mono_en.run").read_text().splitlines()
    assert n == len(lines) > 0
    qid, q0, docid, rank, score, tag = lines[0].split()
    assert q0 == "Q0" and qid.endswith("@en") and tag == "polyret" and rank == "1"
    # every line against an independent computation: numpy dot products of the two embeddings
    q_index = {(q.id, q.lang): i for i, q in enumerate(bench.queries)}
    c_index = {c.id: j for j, c in enumerate(bench.candidates)}
    parsed = read_run(tmp_path / "mono_en.run")  # the shared TREC reader reads what we wrote
    assert sum(len(v) for v in parsed.values()) == n
    for trec_qid, entries in parsed.items():
        qi = q_index[tuple(trec_qid.rsplit("@", 1))]
        assert bench.queries[qi].lang == "en"
        expect = [float(q_emb[qi].astype(np.float64) @ c_emb[c_index[e.docid]].astype(np.float64)) for e in entries]
        assert all(bench.candidates[c_index[e.docid]].lang == "en" for e in entries)  # the mono:en pool
        np.testing.assert_allclose([e.score for e in entries], expect, rtol=1e-5, atol=1e-6)
        assert [e.rank for e in entries] == list(range(1, len(entries) + 1)) and len(entries) <= 3
        assert expect == sorted(expect, reverse=True)  # ranked by score
    qrels = run.to_qrels_dict("mono:en")
    assert set(qrels) == {line.split()[0] for line in lines}
    all_qrels, all_run = run.to_pytrec()
    assert all("/" in qid for qid in all_qrels) and set(all_run) <= set(all_qrels)
    with pytest.raises(KeyError):
        run.filter(["mono:xx"])
    with pytest.raises(ValueError):
        RunTable.load(tmp_path / "mono_en.run")


def test_faiss_hnsw_runs_and_mostly_agrees():
    bench = make_bench(seed=4)
    q_emb, c_emb = embeddings(bench, seed=4, dim=16)
    exact = build_run_table(bench, q_emb, c_emb, k=5)
    hnsw = build_run_table(bench, q_emb, c_emb, k=5, backend="faiss-hnsw", hnsw_m=8)
    top = lambda r: set(zip(r.setting[r.retrieved], r.query[r.retrieved], r.doc[r.retrieved]))  # noqa: E731
    assert len(top(exact) & top(hnsw)) >= 0.9 * len(top(exact))
    assert hnsw.meta["backend"] == "faiss-hnsw" and not hnsw.exact_ranks


def test_tiny_block_cap_gives_same_table(monkeypatch):
    import polyret.evaluation.search as search

    bench = make_bench()
    q_emb, c_emb = embeddings(bench)
    ref = build_run_table(bench, q_emb, c_emb, k=4)
    monkeypatch.setattr(search, "_MAX_BLOCK", 50)  # forces one query per chunk
    small = build_run_table(bench, q_emb, c_emb, k=4)
    a, b = ref.sorted(), small.sorted()
    for col in ("setting", "query", "doc", "rank", "relevance"):
        np.testing.assert_array_equal(getattr(a, col), getattr(b, col))
