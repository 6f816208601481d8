"""Build the pooled run table from query and candidate embeddings, in bounded memory.

Exact backend: the candidate matrix (an ``np.ndarray``, or an ``np.memmap`` of an embedding store
bigger than RAM) is read in blocks of rows; every block is scored against a chunk of queries (one
float32 GEMM, multi-threaded BLAS), the block's rows are sorted (the top-k cutoff is read off, the
top-k taken by one comparison) and merged into a running top-k per query, per candidate language.
Nothing ever holds queries x corpus scores: peak memory is one score block (``_MAX_BLOCK`` floats) and
its sorted copy plus the running lists, whatever the corpus size.

Full ranks stay exact: every relevant (query, doc) pair gets the number of pool candidates ranked above
its doc (score greater, or equal with a smaller tie key), counted against the doc's own GEMM score.
Two paths, the same numbers (tested against each other and against brute force):

* Held (LAReQA-size pools: a query chunk's scores against the whole pool fit ``_MAX_BLOCK`` floats):
  one GEMM for the chunk, so every doc's own score is known at once; per language, in threads (numpy's
  sort and BLAS release the GIL), the rows are sorted, the top-k is read off the cutoff and every pair
  is counted by binary search in its sorted row. Per query, over a pool of N candidates of dim d with r
  relevant docs: O(N d) for the scores, O(N log N) for the sort, O(r log N) for the ranks.
* Streamed (corpora of millions, possibly memory-mapped): blocks of B candidate rows; the doc's own
  score is only known when its block comes, so every other block is counted against a float64 estimate
  with a band of width ``dim * 2**-23 * |q| |c|`` (twice the float32 rounding bound of a dot product):
  the candidates above the band are counted, the few inside it kept and compared exactly with the doc's
  GEMM score at the end. With many relevant docs per query (over ``_SORT_PAIRS_PER_QUERY``) the block's
  rows are sorted and counted by binary search (the doc's own block exactly at once): per query
  O(N d) + O(N log B) + O(r (N / B) log B); with few (MIRACL: 1-3), each pair's row is compared with
  its band: O(N d) + O(r N), no sort. Plus the band's candidates, a handful.

A multilingual top-k is the top-k of the union of the per-language top-k lists; a multilingual rank is
the sum of the per-language counts. So no-cutoff mAP is exact for every pool, LAReQA or MIRACL size.
Scores are BLAS float32 dot products; a score does not depend on the block shape it was computed in as
long as the block has at least two rows and two columns (a single row or column is BLAS's matrix-vector
path, which may sum in another order: a last-bit difference).

Faiss backend (``polyret.evaluation.faiss_search``): one index per distinct pool (Flat, IVF or
HNSW; on GPU when faiss-gpu is installed); relevant candidates outside the returned top-k get rank 0
("not retrieved"), so only measures with a cutoff up to k are computed from it (see
``polyret.evaluation.metrics``: a no-cutoff measure is refused there, and ``evaluate`` names it
``map@k``).

Ties are broken like trec_eval: score descending, then candidate id descending (string order).
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import numpy as np

from polyret.data.records import Benchmark
from polyret.evaluation.runtable import RunTable
from polyret.evaluation.searchdata import _chunk_pairs, _prepare, _Prepared, _Rows
from polyret.evaluation.settings import Setting, settings_for

BACKENDS = ("exact", "faiss", "faiss-ivf", "faiss-hnsw")
EXACT_RANK_BACKENDS = ("exact",)  # backends that give every relevant document its full rank
_MAX_BLOCK = 1 << 24  # most float32 scores in one block (64 MiB), whatever the corpus size
# streamed blocks are sorted (binary-search counts) when a chunk has more relevant pairs than this per
# query; with fewer, comparing each pair's row with its band is cheaper than sorting the block
_SORT_PAIRS_PER_QUERY = 3


def _row_starts(rows: np.ndarray, n_rows: int) -> np.ndarray:
    counts = np.bincount(rows, minlength=n_rows)
    return np.concatenate(([0], np.cumsum(counts)[:-1]))


def _topk_exact(
    scores: np.ndarray, docs: np.ndarray, kk: int, tie_key: np.ndarray, thresh: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """General (slow) path: ties at the cutoff and inside the list resolved by tie key."""
    n = scores.shape[0]
    rows, cols = np.nonzero(scores >= thresh[:, None])
    sel_scores = scores[rows, cols]
    sel_docs = docs[cols] if docs.ndim == 1 else docs[rows, cols]
    order = np.lexsort((tie_key[sel_docs], -sel_scores, rows))
    rows, sel_scores, sel_docs = rows[order], sel_scores[order], sel_docs[order]
    pos = np.arange(len(rows)) - _row_starts(rows, n)[rows]
    keep = pos < kk
    return sel_docs[keep].reshape(n, kk), sel_scores[keep].reshape(n, kk)


def _topk(
    scores: np.ndarray, docs: np.ndarray, kk: int, tie_key: np.ndarray, thresh: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Top ``kk`` of every row, ordered by score desc then tie key; ``docs`` is (n, m) or (m,).

    ``thresh`` is each row's kk-th largest score. Fast path: exactly kk scores reach it and they are
    all distinct; rows with ties fall back to the exact lexsort path.
    """
    n, m = scores.shape
    if thresh is None:
        thresh = np.partition(scores, m - kk, axis=1)[:, m - kk]
    flat = np.flatnonzero(scores >= thresh[:, None])
    rows = flat // m
    counts = np.bincount(rows, minlength=n)
    if not (counts == kk).all():
        bad = np.flatnonzero(counts != kk)
        good = np.flatnonzero(counts == kk)
        out_docs = np.empty((n, kk), dtype=np.int64)
        out_scores = np.empty((n, kk), dtype=np.float32)
        sub_docs = docs if docs.ndim == 1 else docs[bad]
        out_docs[bad], out_scores[bad] = _topk_exact(scores[bad], sub_docs, kk, tie_key, thresh[bad])
        if len(good):
            sub_docs = docs if docs.ndim == 1 else docs[good]
            out_docs[good], out_scores[good] = _topk(scores[good], sub_docs, kk, tie_key, thresh[good])
        return out_docs, out_scores
    cols = (flat - rows * m).reshape(n, kk)
    sel_scores = np.take_along_axis(scores, cols, axis=1)
    order = np.argsort(-sel_scores, axis=1)
    cols = np.take_along_axis(cols, order, axis=1)
    sel_scores = np.take_along_axis(sel_scores, order, axis=1)
    sel_docs = docs[cols] if docs.ndim == 1 else np.take_along_axis(docs, cols, axis=1)
    tied = np.flatnonzero((sel_scores[:, 1:] == sel_scores[:, :-1]).any(axis=1)) if kk > 1 else []
    for r in tied:  # equal scores inside the list: order them by tie key
        o = np.lexsort((tie_key[sel_docs[r]], -sel_scores[r]))
        sel_docs[r], sel_scores[r] = sel_docs[r][o], sel_scores[r][o]
    return sel_docs.astype(np.int64, copy=False), sel_scores


def _is_relevant(top_docs: np.ndarray, rel_rows: np.ndarray, rel_docs: np.ndarray, n_cands: int) -> np.ndarray:
    """(n, kk) mask: is top_docs[r, j] one of row r's relevant docs (rel_rows sorted ascending)."""
    n, kk = top_docs.shape
    counts = np.bincount(rel_rows, minlength=n)
    width = int(counts.max()) if len(counts) else 0
    if width == 0:
        return np.zeros((n, kk), dtype=bool)
    if width > 64:  # many judged docs per query: hash-free set membership
        keys = np.repeat(np.arange(n, dtype=np.int64), kk) * n_cands + top_docs.ravel()
        return np.isin(keys, rel_rows.astype(np.int64) * n_cands + rel_docs).reshape(n, kk)
    pad = np.full((n, width), -1, dtype=np.int64)
    pad[rel_rows, np.arange(len(rel_rows)) - _row_starts(rel_rows, n)[rel_rows]] = rel_docs
    return (top_docs[:, :, None] == pad[:, None, :]).any(axis=2)


def _emit(
    out: _Rows,
    code: int,
    q_idx: np.ndarray,
    top_docs: np.ndarray,
    top_scores: np.ndarray,
    top_rank: np.ndarray,
    rel_rows: np.ndarray,
    rel_docs: np.ndarray,
    rel_gain: np.ndarray,
    rel_rank: np.ndarray,
    rel_score: np.ndarray,
    n_cands: int,
) -> None:
    """Add one setting's rows for a query chunk: top-k minus relevant, then every relevant doc."""
    n, kk = top_docs.shape
    has_gold = np.bincount(rel_rows, minlength=n) > 0
    t_rows = np.repeat(np.arange(n), kk)
    t_docs = top_docs.ravel()
    keep = has_gold[t_rows] & ~_is_relevant(top_docs, rel_rows, rel_docs, n_cands).ravel()
    t_rows = t_rows[keep]
    out.add(
        code, q_idx[t_rows], t_docs[keep], top_rank.ravel()[keep], top_scores.ravel()[keep], np.zeros(len(t_rows), dtype=np.int16)
    )
    out.add(code, q_idx[rel_rows], rel_docs, rel_rank, rel_score, rel_gain)


def _count_at_least(srt: np.ndarray, rows: np.ndarray, values: np.ndarray, strict: bool) -> np.ndarray:
    """Per probe ``i``: how many entries of the ascending row ``srt[rows[i]]`` are > ``values[i]``
    (``strict``) or >= it; a branch-free binary search over all probes at once (``log2`` of the row
    length numpy passes over the probes, never over the rows), exact float comparisons."""
    m = srt.shape[1]
    flat = srt.reshape(-1)
    base = rows.astype(np.int64) * m - 1
    pos = np.zeros(len(rows), dtype=np.int64)  # entries known to be <= (strict) or < the value
    step = 1 << max(0, m.bit_length() - 1)
    while step:
        nxt = pos + step
        ok = nxt <= m
        v = flat[base + np.minimum(nxt, m)]
        ok &= (v <= values) if strict else (v < values)
        pos += step * ok
        step >>= 1
    return m - pos


def _count_ties(
    above: np.ndarray,
    seg: np.ndarray,
    docs: np.ndarray | None,
    tie_key: np.ndarray,
    tied: np.ndarray,
    rows: np.ndarray,
    own: np.ndarray,
    tie_of_doc: np.ndarray,
) -> None:
    """Add to ``above[tied]`` the entries of ``seg[rows[tied]]`` equal to ``own`` with a smaller tie key
    (``docs``: the entries' candidates, (n, m), or None when ``tie_key`` is per column already)."""
    if not len(tied):
        return
    sub = seg[rows[tied]]
    keys = tie_key[None, :] if docs is None else tie_key[docs[rows[tied]]]
    wins = (sub == own[tied, None]) & (keys < tie_of_doc[tied, None])
    above[tied] += np.count_nonzero(wins, axis=1)


def _scores_into(prep: _Prepared, qm: np.ndarray, needed: tuple[int, ...], slices: list[np.ndarray]) -> np.ndarray:
    """``qm`` times the pool of languages ``needed`` (columns in ``slices`` order), into a buffer reused
    by every chunk of one search: the pool's candidate matrix is gathered once, not per chunk, and the
    score matrix is written over the previous chunk's (fresh pages of tens of MB per chunk cost more
    than the GEMM on some machines). The caller is done with the previous chunk's scores."""
    pool = prep.scratch.get(("pool", needed))
    if pool is None:
        for key in [k for k in prep.scratch if isinstance(k, tuple)]:  # one pool held at a time
            del prep.scratch[key]
        pool = prep.scratch[("pool", needed)] = prep.rows(np.concatenate(slices)).T
    n, m = qm.shape[0], pool.shape[1]
    buf = prep.scratch.get("scores")
    if buf is None or buf.size < n * m:
        buf = prep.scratch["scores"] = np.empty(n * m, dtype=np.float32)
    out = buf[: n * m].reshape(n, m)
    # BLAS runs on one thread in the held search (see _one_blas_thread); the pool's threads share the GEMM by
    # rows instead, each part at least two rows (a part's scores are those of the whole GEMM: see the module
    # docstring on block shapes)
    parts = max(1, min(_workers(), n // 2))
    if parts == 1:
        np.matmul(qm, pool, out=out)
        return out
    bounds = np.linspace(0, n, parts + 1).astype(np.int64)
    spans = list(zip(bounds[:-1].tolist(), bounds[1:].tolist()))
    list(_pool().map(lambda span: np.matmul(qm[span[0] : span[1]], pool, out=out[span[0] : span[1]]), spans))
    return out


def _held_ranks(
    prep: _Prepared, qm: np.ndarray, needed: list[int], pr: np.ndarray, pd: np.ndarray, k: int
) -> tuple[dict[int, tuple[np.ndarray, np.ndarray]], np.ndarray, np.ndarray]:
    """Top-k per language and exact full ranks for a chunk whose pool's scores fit in memory.

    One GEMM gives the chunk's scores against the whole pool, so every relevant doc's own score is known
    at once. Per language (in threads: numpy's sort, compare and take release the GIL): the rows sorted;
    the top-k from its cutoff; every pair's candidates above by binary search in the sorted row (ties
    with the doc's exact score, rare, by tie key on that row).

    Returns:
        ``tops`` per language, ``before`` (pairs, languages) and the pairs' own scores.
    """
    slices = [prep.perm[prep.start[li] : prep.start[li + 1]] for li in needed]
    ends = np.cumsum([0] + [len(x) for x in slices])
    whole = _scores_into(prep, qm, tuple(needed), slices)  # (n, pool) float32, one BLAS call
    lang_of_pair = prep.cand_lang[pd]
    slot = {li: i for i, li in enumerate(needed)}
    col = np.empty(len(pd), dtype=np.int64)  # each pair's doc's column in ``whole``
    for li in set(lang_of_pair.tolist()):
        sel = np.flatnonzero(lang_of_pair == li)
        i = slot[li]
        order = np.argsort(slices[i])
        col[sel] = ends[i] + order[np.searchsorted(slices[i], pd[sel], sorter=order)]
    own = whole[pr, col]
    tie_of_doc = prep.tie_key[pd]
    before = np.zeros((len(pr), len(prep.langs)), dtype=np.int64)

    def lang(i: int) -> tuple[int, tuple[np.ndarray, np.ndarray]]:
        li, cols = needed[i], slices[i]
        seg = whole[:, ends[i] : ends[i + 1]]
        srt = np.sort(seg, axis=1)
        kk = min(k, len(cols))
        top = _topk(seg, cols, kk, prep.tie_key, thresh=srt[:, len(cols) - kk])
        if len(pr):
            gt = _count_at_least(srt, pr, own, strict=True)
            eq = _count_at_least(srt, pr, own, strict=False) - gt - (lang_of_pair == li)  # ties, not the doc
            _count_ties(gt, seg, None, prep.tie_key[cols], np.flatnonzero(eq > 0), pr, own, tie_of_doc)
            before[:, li] = gt
        return li, top

    tops = dict(_pool().map(lang, range(len(needed))))
    return tops, before, own


def _column_of(cols: np.ndarray, docs: np.ndarray) -> np.ndarray:
    """Where each of ``docs`` (all present) sits in ``cols``."""
    if np.all(cols[1:] > cols[:-1]):
        return np.searchsorted(cols, docs)
    order = np.argsort(cols)
    return order[np.searchsorted(cols[order], docs)]


class _PairCounts:
    """Exact full ranks of a query chunk's relevant pairs, counted block by block (module docstring)."""

    def __init__(self, prep: _Prepared, q_idx: np.ndarray, pr: np.ndarray, pd: np.ndarray, n_langs: int) -> None:
        self.pr, self.pd = pr, pd
        q = prep.queries[q_idx][pr].astype(np.float64)
        c = prep.rows(pd).astype(np.float64) if len(pd) else np.zeros((0, prep.queries.shape[1]))
        est = np.einsum("ij,ij->i", q, c)
        tol = prep.queries.shape[1] * 2.0**-23 * np.linalg.norm(q, axis=1) * np.linalg.norm(c, axis=1) + 1e-30
        self.lo, self.hi, self.est, self.tol = est - tol, est + tol, est, tol
        self.above = np.zeros((len(pr), n_langs), dtype=np.int64)
        self.own = np.full(len(pr), np.nan, dtype=np.float32)  # each doc's score from its own block
        self.band: list[tuple[int, np.ndarray, np.ndarray, np.ndarray]] = []  # (lang, pair, score, tie key)
        self.tie_of_doc = prep.tie_key[pd]

    def add_block(self, li: int, scores: np.ndarray, srt: np.ndarray | None, cols: np.ndarray, tie_key: np.ndarray) -> None:
        """Count one block for every pair: ``scores`` (chunk rows x block columns), ``srt`` its rows sorted.

        A pair whose doc is in the block is counted exactly at once against its own GEMM score (binary
        search in its sorted row; equal scores resolved by tie key). Any other pair gets the candidates
        above its band by binary search and keeps the few inside the band (read from its row) for ``before``.
        """
        if not len(self.pr):
            return
        tie = tie_key[cols]
        if srt is None:  # few pairs per query: compare each pair's row with its band (cheaper than a sort)
            sub = scores[self.pr]  # (pairs, block)
            self.above[:, li] += np.count_nonzero(sub > self.hi[:, None], axis=1)
            p, j = np.nonzero((sub >= self.lo[:, None]) & (sub <= self.hi[:, None]))
            if len(p):
                self.band.append((li, p, sub[p, j], tie[j]))
            mine = np.flatnonzero(np.isin(self.pd, cols))
            if len(mine):
                self.own[mine] = scores[self.pr[mine], _column_of(cols, self.pd[mine])]
            return
        is_mine = np.isin(self.pd, cols)
        other = np.flatnonzero(~is_mine)
        if len(other):
            rows = self.pr[other]
            above = _count_at_least(srt, rows, self.hi[other], strict=True)
            in_band = _count_at_least(srt, rows, self.lo[other], strict=False) - above
            self.above[other, li] += above
            banded = other[in_band > 0]
            if len(banded):
                sub = scores[self.pr[banded]]
                p, j = np.nonzero((sub >= self.lo[banded, None]) & (sub <= self.hi[banded, None]))
                self.band.append((li, banded[p], sub[p, j], tie[j]))
        mine = np.flatnonzero(is_mine)
        if len(mine):
            rows = self.pr[mine]
            own = scores[rows, _column_of(cols, self.pd[mine])]
            self.own[mine] = own
            gt = _count_at_least(srt, rows, own, strict=True)
            eq = _count_at_least(srt, rows, own, strict=False) - gt - 1  # exact ties, not the doc itself
            above = gt
            _count_ties(above, scores, None, tie, np.flatnonzero(eq > 0), rows, own, self.tie_of_doc[mine])
            self.above[mine, li] += above

    def before(self) -> np.ndarray:
        """(pairs, languages): candidates of each language ranked above each pair's doc."""
        if np.isnan(self.own).any():  # pragma: no cover - every pair's doc is in a scanned slice
            raise AssertionError("a relevant document was never scored")
        drift = np.abs(self.own.astype(np.float64) - self.est)
        if (drift > self.tol).any():  # pragma: no cover - the float32 rounding bound makes this impossible
            raise AssertionError(f"a GEMM score differs from its float64 value by {drift.max():.3g}")
        out = self.above.copy()
        for li, p, score, tie in self.band:
            own = self.own[p]
            wins = (score > own) | ((score == own) & (tie < self.tie_of_doc[p]))
            out[:, li] += np.bincount(p, weights=wins, minlength=len(self.pr)).astype(np.int64)
        return out


_EXECUTORS: dict[tuple[int, str], ThreadPoolExecutor] = {}  # (pid, name) -> executor


def _executor(name: str, workers: int) -> ThreadPoolExecutor:
    """This process's executor ``name``: one per process (a forked child has none of its parent's
    threads, so it makes its own; the parent's entries are dropped there)."""
    pid = os.getpid()
    if (pid, name) not in _EXECUTORS:
        for key in [k for k in _EXECUTORS if k[0] != pid]:
            del _EXECUTORS[key]
        _EXECUTORS[(pid, name)] = ThreadPoolExecutor(max_workers=workers, thread_name_prefix=f"polyret-{name}")
    return _EXECUTORS[(pid, name)]


def _writer() -> ThreadPoolExecutor:
    """One thread that writes chunks' rows in submission order."""
    return _executor("rows", 1)


def _workers() -> int:
    """Threads of the held search: one per usable core, at most 8."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(1, min(8, cores))


def _pool() -> ThreadPoolExecutor:
    """Worker threads for held chunks: one per usable core (numpy and BLAS release the GIL)."""
    return _executor("search", _workers())


_BLAS: list = []  # this process's threadpoolctl controller, made on first use


@contextmanager
def _one_blas_thread():
    """BLAS on one thread for the block: the held search's own threads already keep every core busy (its
    GEMM is split among them), and a multi-threaded BLAS's idle workers spin after each call, taking the cores
    from the sorts that follow (measured: 5.7 s of CPU for the bench's run table with BLAS threads, 4.6 s
    without). The limit is process-wide while it holds (a threadpoolctl limit)."""
    if not _BLAS:
        from threadpoolctl import ThreadpoolController

        _BLAS.append(ThreadpoolController())
    with _BLAS[0].limit(limits=1, user_api="blas"):
        yield


def _merge_top(
    top: tuple[np.ndarray, np.ndarray] | None,
    scores: np.ndarray,
    srt: np.ndarray | None,
    cols: np.ndarray,
    kk: int,
    tie_key: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """The running top-``kk`` after one more block (``srt``: its rows sorted, so the cutoff is read off;
    None: found by partial selection)."""
    kb = min(kk, scores.shape[1])
    b_docs, b_scores = _topk(scores, cols, kb, tie_key, thresh=None if srt is None else srt[:, scores.shape[1] - kb])
    if top is None:
        return b_docs, b_scores
    docs = np.concatenate([top[0], b_docs], axis=1)
    vals = np.concatenate([top[1], b_scores], axis=1)
    return _topk(vals, docs, min(kk, docs.shape[1]), tie_key)


def _search_exact(prep: _Prepared, benchmark: Benchmark, settings: list[Setting], k: int, chunk_size: int, out: _Rows) -> None:
    lang_code = {lang: i for i, lang in enumerate(prep.langs)}
    q_lang = np.asarray([q.lang for q in benchmark.queries], dtype=str)
    by_qlang: dict[str, list[int]] = {}
    for code, s in enumerate(settings):
        by_qlang.setdefault(s.query_lang, []).append(code)
    pending: list = []  # the writer's futures, oldest first
    for x, codes in by_qlang.items():
        q_all = np.flatnonzero(q_lang == x)
        needed = sorted({lang_code[y] for c in codes for y in settings[c].pool_langs if y in lang_code})
        if len(q_all) == 0 or not needed:
            continue
        n_chunks = -(-len(q_all) // chunk_size)
        for q_idx in np.array_split(q_all, n_chunks):  # even chunks: no tiny remainder GEMM
            pr, pd, pg = _chunk_pairs(prep, q_idx)
            p_lang = prep.cand_lang[pd]
            keep = np.isin(p_lang, needed)
            pr, pd, pg, p_lang = pr[keep], pd[keep], pg[keep], p_lang[keep]
            qm = prep.queries[q_idx]
            n_cols = int(sum(prep.start[li + 1] - prep.start[li] for li in needed))
            # held: the chunk's scores against the whole pool fit one block's bound, and so do the candidate
            # rows of that one GEMM; else streamed, one block (queries + pair rows) x columns at a time
            if len(q_idx) * n_cols <= _MAX_BLOCK and n_cols * prep.queries.shape[1] <= _MAX_BLOCK:
                with _one_blas_thread():
                    tops, before, p_score = _held_ranks(prep, qm, needed, pr, pd, k)
            else:
                counts = _PairCounts(prep, q_idx, pr, pd, len(prep.langs))
                sort = len(pr) > _SORT_PAIRS_PER_QUERY * len(q_idx)  # else compare each pair's row
                cols_cap = max(1, _MAX_BLOCK // max(1, len(q_idx) + len(pr)))
                tops = {}
                for li in needed:
                    cols_all = prep.perm[prep.start[li] : prep.start[li + 1]]
                    kk = min(k, len(cols_all))
                    top = None
                    for lo in range(0, len(cols_all), cols_cap):
                        cols = cols_all[lo : lo + cols_cap]
                        scores = qm @ prep.rows(cols).T  # (n, block) float32
                        srt = np.sort(scores, axis=1) if sort else None
                        top = _merge_top(top, scores, srt, cols, kk, prep.tie_key)
                        counts.add_block(li, scores, srt, cols, prep.tie_key)
                        del scores, srt
                    tops[li] = top
                before, p_score = counts.before(), counts.own
            pending.append(
                _writer().submit(
                    _emit_chunk, out, prep, settings, codes, lang_code, k, q_idx, tops, before, p_score, pr, pd, pg, p_lang
                )
            )
            while len(pending) > 2:  # bounded: at most two chunks' results wait for the writer
                pending.pop(0).result()
    for fut in pending:
        fut.result()


def _emit_chunk(out, prep, settings, codes, lang_code, k, q_idx, tops, before, p_score, pr, pd, pg, p_lang) -> None:
    """Write one query chunk's rows for each of its settings (run by the single writer thread, so the
    rows keep the chunks' order while the next chunk is scored)."""
    for code in codes:
        pool = [lang_code[y] for y in settings[code].pool_langs if y in lang_code]
        if not pool:
            continue
        if len(pool) == 1:
            t_docs, t_scores = tops[pool[0]]
        else:
            cat_docs = np.concatenate([tops[li][0] for li in pool], axis=1)
            cat_scores = np.concatenate([tops[li][1] for li in pool], axis=1)
            kk = min(k, cat_docs.shape[1])
            t_docs, t_scores = _topk(cat_scores, cat_docs, kk, prep.tie_key)
        t_rank = np.broadcast_to(np.arange(1, t_docs.shape[1] + 1, dtype=np.int32), t_docs.shape)
        sel = np.isin(p_lang, pool)
        rank = 1 + before[sel][:, pool].sum(axis=1)
        _emit(out, code, q_idx, t_docs, t_scores, t_rank, pr[sel], pd[sel], pg[sel], rank, p_score[sel], len(prep.perm))


def _row_bound(prep: _Prepared, benchmark: Benchmark, settings: list[Setting], k: int) -> int:
    """An upper bound on the exact search's rows: per setting, top-k of each query with gold in the pool
    plus every relevant pair (the top-k rows that are relevant are counted twice)."""
    lang_code = {lang: i for i, lang in enumerate(prep.langs)}
    q_lang = np.asarray([q.lang for q in benchmark.queries], dtype=str)
    q_names, q_code = np.unique(q_lang, return_inverse=True)
    n_pairs = np.diff(prep.rel_ptr)
    pair_q = np.repeat(q_code, n_pairs)
    pairs = np.zeros((len(q_names), len(prep.langs)), dtype=np.int64)  # (query lang, doc lang) -> relevant pairs
    np.add.at(pairs, (pair_q, prep.cand_lang[prep.rel_doc]), 1)
    sizes = np.diff(prep.start)
    total = 0
    for s in settings:
        if s.query_lang not in q_names:
            continue
        x = int(np.searchsorted(q_names, s.query_lang))
        pool = [lang_code[y] for y in s.pool_langs if y in lang_code]
        if not pool:
            continue
        # queries of that language with gold in the pool: at most all of them
        total += int(np.sum(q_code == x)) * min(k, int(sizes[pool].sum())) + int(pairs[x, pool].sum())
    return total


def _distinct(values: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """``np.unique(values, return_inverse=True)`` for integers in ``[0, n)``: a presence mask and its
    running count (linear; no sort of the run table's rows). The codes are written over ``values``
    (when it is an int32/int64 array) instead of into a new array of the table's length."""
    held = np.zeros(n, dtype=bool)
    held[values] = True
    named = np.flatnonzero(held)
    if len(named) == n:  # every candidate is named: the codes are the values
        return named, values
    code = np.cumsum(held, dtype=np.int32 if n < 2**31 else np.int64) - 1
    if values.dtype == code.dtype and values.flags.writeable:
        np.take(code, values, out=values)
        return named, values
    return named, code[values]


def build_run_table(
    benchmark: Benchmark,
    query_emb: np.ndarray,
    cand_emb: np.ndarray,
    settings: list[Setting] | None = None,
    k: int = 100,
    backend: str = "exact",
    chunk_size: int = 1024,
    hnsw_m: int = 32,
    faiss_options=None,
) -> RunTable:
    """Retrieve the top-``k`` of every setting's pool for every query with gold in that pool.

    ``query_emb`` / ``cand_emb`` are aligned with ``benchmark.queries`` / ``benchmark.candidates``
    and L2-normalised (scores are dot products); ``cand_emb`` may be a read-only ``np.memmap`` (float32
    or float16), read in blocks of rows only.

    Args:
        benchmark: the benchmark (its candidates a :class:`~polyret.data.records.CandidateTable`).
        query_emb: (queries, dim) embeddings.
        cand_emb: (candidates, dim) embeddings.
        settings: the settings (default: every setting of the benchmark).
        k: candidates kept per (setting, query).
        backend: "exact" (blocked, exact full ranks for every relevant doc), "faiss" (IndexFlatIP per
            pool), "faiss-ivf" or "faiss-hnsw" (approximate); see ``EXACT_RANK_BACKENDS``.
        chunk_size: queries scored at once (each chunk streams the candidates once).
        hnsw_m: links per node of an HNSW index.
        faiss_options: a :class:`~polyret.evaluation.faiss_search.FaissOptions` (its kind is set by
            ``backend``), for IVF lists / probes and GPU use.
    """
    if backend not in BACKENDS:
        raise ValueError(f"unknown search backend {backend!r}; expected one of {BACKENDS}")
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    if settings is None:
        settings = settings_for(benchmark)
    if len(settings) > np.iinfo(np.int16).max:
        raise ValueError(f"too many settings ({len(settings)}) for one run table")
    prep = _prepare(benchmark, query_emb, cand_emb)
    out = _Rows(_row_bound(prep, benchmark, list(settings), k) if backend == "exact" else None)
    if backend == "exact":
        _search_exact(prep, benchmark, list(settings), k, chunk_size, out)
    else:
        from dataclasses import replace

        from polyret.evaluation.faiss_search import FaissOptions, search_faiss

        kind = {"faiss": "flat", "faiss-ivf": "ivf", "faiss-hnsw": "hnsw"}[backend]
        opts = replace(faiss_options or FaissOptions(hnsw_m=hnsw_m), kind=kind)
        search_faiss(prep, benchmark, list(settings), k, chunk_size, out, opts)
    cols = out.columns()
    # the table names only the candidates its rows hold (retrieved or relevant), not the whole corpus
    named, cols["doc"] = _distinct(cols["doc"], len(prep.perm))
    return RunTable(
        settings=list(settings),
        query_ids=np.asarray([q.id for q in benchmark.queries], dtype=str),
        query_langs=np.asarray([q.lang for q in benchmark.queries], dtype=str),
        doc_ids=benchmark.candidates.id_array(named),  # the ids column only: the texts' pages stay untouched
        doc_langs=benchmark.candidates.lang_array(named),
        k=int(k),
        exact_ranks=backend in EXACT_RANK_BACKENDS,
        benchmark_id=benchmark.id,
        meta={"backend": backend},
        **cols,
    )
