"""The held (whole pool in one GEMM) and streamed (blocks, band counting) exact paths give the same run
table, and both the brute-force full ranking, on random data with many exact ties."""

from __future__ import annotations

import numpy as np
import pytest

import polyret.evaluation.search as search
from polyret.evaluation.search import build_run_table
from polyret.evaluation.settings import settings_for
from tests.helpers.benchmarks import make_bench

COLS = ("setting", "query", "doc", "rank", "score", "relevance")


def _tied_embeddings(bench, seed: int, dim: int = 5):
    """Small integers: exact float32 dot products, so every score has many exact equals."""
    rng = np.random.default_rng(seed)
    q = rng.integers(-1, 2, (len(bench.queries), dim)).astype(np.float32)
    c = rng.integers(-1, 2, (len(bench.candidates), dim)).astype(np.float32)
    return q, c


def _run(monkeypatch, bench, q, c, held: bool, k: int, chunk_size: int, sort_pairs: int = 3):
    calls = {"held": 0, "streamed": 0}
    real_held, real_counts = search._held_ranks, search._PairCounts

    def spy_held(*args, **kwargs):
        calls["held"] += 1
        return real_held(*args, **kwargs)

    class SpyCounts(real_counts):
        def __init__(self, *args, **kwargs):
            calls["streamed"] += 1
            super().__init__(*args, **kwargs)

    with monkeypatch.context() as m:
        m.setattr(search, "_held_ranks", spy_held)
        m.setattr(search, "_PairCounts", SpyCounts)
        if not held:
            m.setattr(search, "_MAX_BLOCK", 7)  # blocks of a few columns: many merges, bands, own blocks
            m.setattr(search, "_SORT_PAIRS_PER_QUERY", sort_pairs)  # 0: sorted blocks; 1000: row comparisons
        run = build_run_table(bench, q, c, k=k, chunk_size=chunk_size)
    assert calls["held" if held else "streamed"] > 0 and calls["streamed" if held else "held"] == 0, calls
    return run


def _brute(bench, q, c, run):
    """Every row's rank from the dense score matrix: 1 + pool candidates with a greater score, or an equal
    score and a greater id (trec_eval's order); and the top-k lists, row for row."""
    scores = q.astype(np.float64) @ c.astype(np.float64).T
    ids = np.asarray([x.id for x in bench.candidates])
    langs = np.asarray([x.lang for x in bench.candidates])
    row_of = {cid: i for i, cid in enumerate(ids)}
    for code, setting in enumerate(run.settings):
        pool = np.flatnonzero(np.isin(langs, setting.pool_langs))
        for qi in np.unique(run.query[run.setting == code]):
            rows = np.flatnonzero((run.setting == code) & (run.query == qi))
            s = scores[qi, pool]
            order = pool[np.lexsort((-np.argsort(np.argsort(ids[pool])), -s))]  # score desc, id desc
            rank_of = {int(j): r + 1 for r, j in enumerate(order)}
            for r in rows:
                j = row_of[run.doc_ids[run.doc[r]]]
                if run.relevance[r] > 0:
                    assert run.rank[r] == rank_of[j], (setting.name, qi, ids[j])
                else:
                    assert 1 <= run.rank[r] <= run.k and rank_of[j] == run.rank[r], (setting.name, qi, ids[j])
                assert run.score[r] == np.float32(scores[qi, j])


@pytest.mark.parametrize("seed,k,chunk_size", [(0, 3, 1024), (1, 5, 4), (2, 1000, 7)])
def test_held_and_streamed_paths_give_the_same_table_and_the_brute_force_ranks(monkeypatch, seed, k, chunk_size):
    bench = make_bench(seed=seed)
    q, c = _tied_embeddings(bench, seed)
    held = _run(monkeypatch, bench, q, c, True, k, chunk_size)
    for sort_pairs in (0, 1000):  # streamed with sorted blocks, and with per-pair row comparisons
        streamed = _run(monkeypatch, bench, q, c, False, k, chunk_size, sort_pairs)
        a, b = held.sorted(), streamed.sorted()
        for col in COLS:
            np.testing.assert_array_equal(getattr(a, col), getattr(b, col), err_msg=f"{col} ({sort_pairs})")
        np.testing.assert_array_equal(a.doc_ids, b.doc_ids)
    assert len(settings_for(bench)) == len(held.settings)
    _brute(bench, q, c, held)


def test_count_at_least_is_searchsorted_per_row():
    rng = np.random.default_rng(3)
    for m in (1, 2, 3, 7, 64, 100):
        srt = np.sort(rng.integers(0, 5, (6, m)).astype(np.float32), axis=1)
        rows = rng.integers(0, 6, 50)
        values = rng.integers(-1, 6, 50).astype(np.float32)
        for strict, side in ((True, "right"), (False, "left")):
            got = search._count_at_least(srt, rows, values, strict=strict)
            want = [m - np.searchsorted(srt[r], v, side=side) for r, v in zip(rows, values)]
            np.testing.assert_array_equal(got, want)


def test_distinct_is_unique_with_inverse():
    values = np.random.default_rng(4).integers(0, 50, 1000).astype(np.int32)
    named, code = search._distinct(values, 60)
    want_named, want_code = np.unique(values, return_inverse=True)
    np.testing.assert_array_equal(named, want_named)
    np.testing.assert_array_equal(code, want_code)


def test_a_forked_child_searches_with_its_own_threads():
    """The held path's thread pool is per process: a child forked after a search (its parent's pool
    threads do not exist there) still gets its table, the same one."""
    import multiprocessing as mp

    bench = make_bench(seed=7)
    q, c = _tied_embeddings(bench, 7)
    ref = build_run_table(bench, q, c, k=3)  # the parent's pool exists now
    ctx = mp.get_context("fork")
    with ctx.Pool(1) as pool:
        rank = pool.apply_async(_child_ranks, (bench, q, c)).get(timeout=120)
    np.testing.assert_array_equal(rank, ref.sorted().rank)


def _child_ranks(bench, q, c):
    return build_run_table(bench, q, c, k=3).sorted().rank


def test_preallocated_rows_bound_the_table_and_overflow_into_parts(monkeypatch):
    """The exact search writes into arrays sized by ``_row_bound`` (an upper bound); a capacity that is
    too small (forced here) spills into parts and gives the same table; the writer thread keeps the
    chunks' order, so two runs are identical."""
    bench = make_bench(seed=5, n_questions=30)
    q, c = _tied_embeddings(bench, seed=6)
    settings = settings_for(bench)
    full = build_run_table(bench, q, c, settings=settings, k=4, chunk_size=7)
    prep = search._prepare(bench, q, c)
    assert len(full) <= search._row_bound(prep, bench, settings, 4)
    again = build_run_table(bench, q, c, settings=settings, k=4, chunk_size=7)
    real_rows = search._Rows
    monkeypatch.setattr(search, "_Rows", lambda capacity=None: real_rows(None if capacity is None else len(full) // 3))
    spilled = build_run_table(bench, q, c, settings=settings, k=4, chunk_size=7)
    for col in COLS:
        assert np.array_equal(getattr(full, col), getattr(again, col)), col
        assert np.array_equal(getattr(full, col), getattr(spilled, col)), col
    assert list(full.doc_ids) == list(spilled.doc_ids)
