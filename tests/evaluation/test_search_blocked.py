"""Exact search streams a memory-mapped candidate matrix in blocks: same table, bounded memory; faiss vs exact measures."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

import polyret.evaluation.search as search
from polyret.data.records import Benchmark, Candidate, Query
from polyret.evaluation import score
from polyret.evaluation.metrics import per_query
from polyret.evaluation.search import build_run_table
from tests.helpers.benchmarks import make_bench
from tests.helpers.benchmarks import search_embeddings as embeddings

COLS = ("setting", "query", "doc", "rank", "score", "relevance")


def _same(a, b, cols=COLS):
    """Same rows and ranks; scores equal up to float32 rounding (BLAS sums a block of another shape
    in another order, a few ulp apart: the ranks are computed against each score's own GEMM value)."""
    a, b = a.sorted(), b.sorted()
    for col in cols:
        if col == "score":
            np.testing.assert_allclose(a.score, b.score, rtol=0, atol=1e-6)
        else:
            np.testing.assert_array_equal(getattr(a, col), getattr(b, col), err_msg=col)


@pytest.mark.parametrize("integer", [False, True])
def test_memmap_in_tiny_blocks_gives_the_in_memory_table(tmp_path, monkeypatch, integer):
    bench = make_bench(seed=5)
    q_emb, c_emb = embeddings(bench, seed=5, integer=integer)
    ref = build_run_table(bench, q_emb, c_emb, k=4)
    np.save(tmp_path / "c.npy", c_emb)
    mm = np.load(tmp_path / "c.npy", mmap_mode="r")
    monkeypatch.setattr(search, "_MAX_BLOCK", 40)  # blocks of a column or two: many merges and bands
    got = build_run_table(bench, q_emb, mm, k=4, chunk_size=3)
    _same(ref, got)


def test_float16_store_is_read_as_float32_blocks(tmp_path):
    bench = make_bench(seed=6)
    q_emb, c_emb = embeddings(bench, seed=6)
    half = c_emb.astype(np.float16)
    np.save(tmp_path / "h.npy", half)
    got = build_run_table(bench, q_emb, np.load(tmp_path / "h.npy", mmap_mode="r"), k=3)
    _same(build_run_table(bench, q_emb, half.astype(np.float32), k=3), got)


def _big_mono(n_cands: int, n_queries: int, dim: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    cands = [Candidate(f"d{i}", "sw", "") for i in range(n_cands)]
    queries = [Query(f"q{i}", "sw", "") for i in range(n_queries)]
    qrels = {f"q{i}": {f"d{j}": 1 for j in rng.choice(n_cands, 3, replace=False)} for i in range(n_queries)}
    bench = Benchmark("miracl/sw", ("sw",), queries, cands, qrels, families=("mono",))
    q = rng.standard_normal((n_queries, dim)).astype(np.float32)
    c = rng.standard_normal((n_cands, dim)).astype(np.float32)
    return bench, q / np.linalg.norm(q, axis=1, keepdims=True), c / np.linalg.norm(c, axis=1, keepdims=True)


def test_peak_memory_never_holds_queries_by_corpus_scores(tmp_path, monkeypatch):
    bench, q, c = _big_mono(20_000, 200, 8)
    np.save(tmp_path / "c.npy", c)
    mm = np.load(tmp_path / "c.npy", mmap_mode="r")
    monkeypatch.setattr(search, "_MAX_BLOCK", 1 << 15)
    full_scores = len(bench.queries) * len(bench.candidates) * 4  # 16 MB
    tracemalloc.start()
    run = build_run_table(bench, q, mm, k=10)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < full_scores / 4, peak  # blocks + per-candidate integer arrays, never the score matrix
    # the ranks are still the full ranks: against a dense reference
    s = q @ c.T
    rel = run.relevance > 0
    row = bench.candidates.positions(run.doc_ids)  # the run names only what it holds: back to corpus rows by id
    assert len(run.doc_ids) < len(bench.candidates) // 2  # not one entry per candidate of the corpus
    for qi, d, r in zip(run.query[rel][:50], row[run.doc[rel][:50]], run.rank[rel][:50]):
        assert r == 1 + int(np.count_nonzero(s[qi] > s[qi, d])), (qi, d)


def test_exact_and_faiss_agree_where_both_are_exact_and_faiss_never_reports_full_map():
    bench, q, c = _big_mono(3000, 60, 16, seed=2)
    k = 20
    exact = build_run_table(bench, q, c, k=k)
    flat = build_run_table(bench, q, c, k=k, backend="faiss")
    measures = ["map@20", "ndcg@10", "recall@1", "recall@20", "mrr@10", "p@5"]
    a, b = per_query(exact, measures), per_query(flat, measures)
    for m in measures:  # cutoff <= k: the same number from both backends
        np.testing.assert_allclose(a.values[m], b.values[m], atol=1e-6, err_msg=m)
    for m in ("map", "ndcg", "mrr"):  # no cutoff: exact gives it, a top-k run refuses it
        assert len(per_query(exact, [m]).values[m]) == len(a)
        with pytest.raises(ValueError, match="full rank"):
            per_query(flat, [m])
    # full map really differs from map@k here: renaming is not cosmetic
    assert per_query(exact, ["map"]).values["map"].mean() > a.values["map@20"].mean()
    res, _ = score(bench, q, c, measures=["map", "recall@10"], k=k, backend="faiss")
    assert res.measures == ["map@20", "recall@10"] and res.extra["renamed_measures"] == {"map": "map@20"}
    assert "map" not in res.per_setting["mono:sw"]
    ivf = build_run_table(bench, q, c, k=k, backend="faiss-ivf")
    assert ivf.meta["backend"] == "faiss-ivf" and not ivf.exact_ranks
    with pytest.raises(ValueError, match="full rank"):
        per_query(ivf, ["map"])


def test_rows_gathers_unordered_and_repeated_indices(tmp_path):
    bench, q, c = _big_mono(50, 4, 8)
    prep = search._prepare(bench, q, np.load(_save(tmp_path, c), mmap_mode="r"))
    for cols in ([4, 6, 5, 7], [5, 6, 5], [3, 4, 5], [9]):
        np.testing.assert_array_equal(prep.rows(np.asarray(cols)), c[cols])


def _save(tmp_path, c):
    np.save(tmp_path / "c.npy", c)
    return tmp_path / "c.npy"


def test_run_table_names_held_candidates_without_reading_a_text():
    """The search reads ids (tie keys, the run table's names) and embeddings, never a candidate text:
    a memory-mapped corpus's text pages stay out of the search's RSS."""

    class Untouchable:
        def __init__(self, real):
            self.real = real

        def __len__(self):
            return len(self.real)

        null_count = 0

        def __getattr__(self, name):
            raise AssertionError(f"the search read the texts ({name})")

    bench, q, c = _big_mono(500, 20, 8)
    bench.candidates.texts = Untouchable(bench.candidates.texts)
    run = build_run_table(bench, q, c, k=5)
    assert len(run.doc_ids) < 500 and set(run.doc_ids[run.doc]) <= set(bench.candidates.id_list())
    assert (run.doc_langs == "sw").all()
