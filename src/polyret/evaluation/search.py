"""Build the pooled run table from query and candidate embeddings.

Exact backend: candidates are grouped by language into contiguous column slices of ONE matrix, so each
query language's queries are scored against every needed language once (chunked float32 matrix
products) and every mono / cross / multi setting is a union of those slices. Per language slice we
sort each score row once; that gives the top-k (threshold + tie-break) and, by binary search, the
exact number of pool candidates ranked above each relevant candidate. A multilingual top-k is the
top-k of the union of the per-language top-k lists, so the whole pool is never partitioned.

Faiss backend (``polyret.evaluation.faiss_search``): one index per distinct pool (IndexFlatIP, or
HNSW), for corpora too big to score densely; relevant candidates outside the returned top-k get rank
0 ("not retrieved"), so only cutoff metrics up to k are exact there.

Ties are broken like trec_eval: score descending, then candidate id descending (string order).

Size: ~400 lines because exact search, its tie rule and the run-table builder must agree line for
line (full mAP is exact only if they do); the faiss backend lives in ``faiss_search``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from polyret.data.records import Benchmark, DataError
from polyret.evaluation.runtable import RunTable
from polyret.evaluation.settings import Setting, settings_for

BACKENDS = ("exact", "faiss", "faiss-hnsw")
_MAX_BLOCK = 1 << 26  # most float32 scores held per query chunk (256 MiB), whatever chunk_size says


@dataclass
class _Prepared:
    queries: np.ndarray  # (nq, d) float32
    cands: np.ndarray  # (nc, d) float32
    langs: list[str]  # candidate languages, benchmark order
    cand_lang: np.ndarray  # (nc,) int code into langs
    perm: np.ndarray  # candidates grouped by language: perm[start[l]:start[l+1]] are language l
    start: np.ndarray  # (L+1,) slice bounds into perm
    tie_key: np.ndarray  # (nc,) int: smaller = earlier among equal scores (candidate id descending)
    rel_ptr: np.ndarray  # (nq+1,) CSR over queries
    rel_doc: np.ndarray  # candidate indices of relevant docs
    rel_gain: np.ndarray  # their graded relevance (> 0)


def _as_matrix(name: str, emb: np.ndarray, rows: int) -> np.ndarray:
    emb = np.ascontiguousarray(emb, dtype=np.float32)
    if emb.ndim != 2 or emb.shape[0] != rows:
        raise ValueError(f"{name} has shape {emb.shape}; expected ({rows}, dim) aligned with the benchmark")
    if not np.isfinite(emb).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    return emb


def _prepare(benchmark: Benchmark, query_emb: np.ndarray, cand_emb: np.ndarray) -> _Prepared:
    q = _as_matrix("query_emb", query_emb, len(benchmark.queries))
    c = _as_matrix("cand_emb", cand_emb, len(benchmark.candidates))
    if q.shape[1] != c.shape[1]:
        raise ValueError(f"query_emb dim {q.shape[1]} != cand_emb dim {c.shape[1]}")
    cand_ids = [cand.id for cand in benchmark.candidates]
    index = {cid: i for i, cid in enumerate(cand_ids)}
    if len(index) != len(cand_ids):
        dup = next(cid for i, cid in enumerate(cand_ids) if index[cid] != i)
        raise DataError(f"benchmark {benchmark.id!r}: candidate id {dup!r} occurs more than once")
    present = {cand.lang for cand in benchmark.candidates}
    langs = [lang for lang in benchmark.languages if lang in present]
    langs += sorted(present - set(langs))
    code = {lang: i for i, lang in enumerate(langs)}
    cand_lang = np.fromiter((code[cand.lang] for cand in benchmark.candidates), dtype=np.int32, count=len(cand_ids))
    perm = np.argsort(cand_lang, kind="stable").astype(np.int64)
    start = np.searchsorted(cand_lang[perm], np.arange(len(langs) + 1)).astype(np.int64)
    by_id_desc = np.argsort(np.asarray(cand_ids, dtype=str), kind="stable")[::-1]
    tie_key = np.empty(len(cand_ids), dtype=np.int64)
    tie_key[by_id_desc] = np.arange(len(cand_ids))

    ptr = [0]
    docs: list[int] = []
    gains: list[int] = []
    cache: dict[str, tuple[list[int], list[int]]] = {}
    for query in benchmark.queries:
        if query.id not in cache:
            d_list, g_list = [], []
            for cid, rel in sorted(benchmark.qrels.get(query.id, {}).items()):
                if cid not in index:
                    raise DataError(
                        f"benchmark {benchmark.id!r}: qrels of query {query.id!r} name candidate {cid!r}, "
                        "which is not among the benchmark's candidates"
                    )
                if int(rel) > 0:
                    d_list.append(index[cid])
                    g_list.append(int(rel))
            cache[query.id] = (d_list, g_list)
        d_list, g_list = cache[query.id]
        docs.extend(d_list)
        gains.extend(g_list)
        ptr.append(len(docs))
    return _Prepared(
        queries=q,
        cands=c,
        langs=langs,
        cand_lang=cand_lang,
        perm=perm,
        start=start,
        tie_key=tie_key,
        rel_ptr=np.asarray(ptr, dtype=np.int64),
        rel_doc=np.asarray(docs, dtype=np.int64),
        rel_gain=np.asarray(gains, dtype=np.int64),
    )


def _count_above(sorted_rows: np.ndarray, rows: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per probe: how many entries of ``sorted_rows[row]`` (ascending) are > value, and >= value.

    A vectorised binary search over all probes at once (log2(m) gathers), exact float comparisons.
    """
    m = sorted_rows.shape[1]
    out = []
    for strict in (True, False):
        lo = np.zeros(len(rows), dtype=np.int64)
        hi = np.full(len(rows), m, dtype=np.int64)
        while True:
            active = lo < hi
            if not active.any():
                break
            mid = (lo + hi) // 2
            v = sorted_rows[rows, np.minimum(mid, m - 1)]
            go_right = active & ((v <= values) if strict else (v < values))
            lo = np.where(go_right, mid + 1, lo)
            hi = np.where(active & ~go_right, mid, hi)
        out.append(m - lo)
    return out[0], out[1]


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


def _ranks_before(
    block: np.ndarray,
    sorted_block: np.ndarray,
    slice_docs: np.ndarray,
    pair_row: np.ndarray,
    pair_doc: np.ndarray,
    pair_score: np.ndarray,
    in_slice: np.ndarray,
    tie_key: np.ndarray,
) -> np.ndarray:
    """For each (row, doc, score) pair: how many candidates of this slice rank above the doc."""
    above, at_or_above = _count_above(sorted_block, pair_row, pair_score)
    before = above.astype(np.int64)
    extra = np.flatnonzero(at_or_above - above - in_slice > 0)
    for p in extra:  # genuine ties with other candidates: rare, resolved exactly by tie key
        eq = slice_docs[block[pair_row[p]] == pair_score[p]]
        before[p] += int(np.count_nonzero(tie_key[eq] < tie_key[pair_doc[p]]))
    return before


class _Rows:
    """Accumulates run-table column chunks."""

    def __init__(self) -> None:
        self.parts: dict[str, list[np.ndarray]] = {c: [] for c in ("setting", "query", "doc", "rank", "score", "relevance")}

    def add(self, setting: int, query, doc, rank, score, relevance) -> None:
        n = len(query)
        self.parts["setting"].append(np.full(n, setting, dtype=np.int16))
        self.parts["query"].append(np.asarray(query, dtype=np.int32))
        self.parts["doc"].append(np.asarray(doc, dtype=np.int32))
        self.parts["rank"].append(np.asarray(rank, dtype=np.int32))
        self.parts["score"].append(np.asarray(score, dtype=np.float32))
        self.parts["relevance"].append(np.asarray(relevance, dtype=np.int16))

    def columns(self) -> dict[str, np.ndarray]:
        dtypes = {
            "setting": np.int16,
            "query": np.int32,
            "doc": np.int32,
            "rank": np.int32,
            "score": np.float32,
            "relevance": np.int16,
        }
        return {c: (np.concatenate(v) if v else np.empty(0, dtype=dtypes[c])) for c, v in self.parts.items()}


def _chunk_pairs(prep: _Prepared, q_idx: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Relevant (row-in-chunk, candidate, gain) pairs of the chunk's queries."""
    lo, hi = prep.rel_ptr[q_idx], prep.rel_ptr[q_idx + 1]
    counts = hi - lo
    rows = np.repeat(np.arange(len(q_idx)), counts)
    flat = np.repeat(lo - np.concatenate(([0], np.cumsum(counts)[:-1])), counts) + np.arange(counts.sum())
    return rows, prep.rel_doc[flat], prep.rel_gain[flat]


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


def _search_exact(prep: _Prepared, benchmark: Benchmark, settings: list[Setting], k: int, chunk_size: int, out: _Rows) -> None:
    lang_code = {lang: i for i, lang in enumerate(prep.langs)}
    q_lang = np.asarray([q.lang for q in benchmark.queries], dtype=str)
    pos_in_slice = np.empty(len(prep.perm), dtype=np.int64)
    for li in range(len(prep.langs)):
        pos_in_slice[prep.perm[prep.start[li] : prep.start[li + 1]]] = np.arange(prep.start[li + 1] - prep.start[li])
    all_slices = {li: prep.perm[prep.start[li] : prep.start[li + 1]] for li in range(len(prep.langs))}
    all_mats: dict[int, np.ndarray] = {}  # per-language candidate matrices, built when a pool needs them
    every = {lang_code[y] for s in settings for y in s.pool_langs if y in lang_code}
    full_mat = np.ascontiguousarray(prep.cands[prep.perm].T) if len(every) == len(prep.langs) > 1 else None
    by_qlang: dict[str, list[int]] = {}
    for code, s in enumerate(settings):
        by_qlang.setdefault(s.query_lang, []).append(code)
    for x, codes in by_qlang.items():
        q_all = np.flatnonzero(q_lang == x)
        needed = sorted({lang_code[y] for c in codes for y in settings[c].pool_langs if y in lang_code})
        if len(q_all) == 0 or not needed:
            continue
        slices = {li: all_slices[li] for li in needed}
        full = full_mat if len(needed) == len(prep.langs) else None
        if full is None:
            all_mats.update({li: np.ascontiguousarray(prep.cands[all_slices[li]].T) for li in needed if li not in all_mats})
        n_cols = int(sum(len(all_slices[li]) for li in needed))
        rows_cap = max(1, min(chunk_size, _MAX_BLOCK // max(1, n_cols)))  # bounds the score block's memory
        n_chunks = -(-len(q_all) // rows_cap)
        for q_idx in np.array_split(q_all, n_chunks):  # even chunks: no tiny remainder GEMM
            pr, pd, pg = _chunk_pairs(prep, q_idx)
            p_lang = prep.cand_lang[pd]
            keep = np.isin(p_lang, needed)
            pr, pd, pg, p_lang = pr[keep], pd[keep], pg[keep], p_lang[keep]
            qm = prep.queries[q_idx]
            p_score = np.empty(len(pr), dtype=np.float32)
            tops: dict[int, tuple[np.ndarray, np.ndarray]] = {}
            before = np.zeros((len(pr), len(prep.langs)), dtype=np.int64)
            if full is not None:  # one GEMM against every candidate; languages are column slices
                scores = qm @ full
                blocks = {li: scores[:, prep.start[li] : prep.start[li + 1]] for li in needed}
            else:
                blocks = {li: qm @ all_mats[li] for li in needed}  # (n, n_li) float32 each
            for li in needed:  # every pair's score first: ranks need them against every slice
                mine = p_lang == li
                p_score[mine] = blocks[li][pr[mine], pos_in_slice[pd[mine]]]
            for li in needed:
                block, cols = blocks.pop(li), slices[li]
                srt = np.sort(block, axis=1)
                kk = min(k, block.shape[1])
                tops[li] = _topk(block, cols, kk, prep.tie_key, thresh=srt[:, block.shape[1] - kk])
                if len(pr):
                    before[:, li] = _ranks_before(block, srt, cols, pr, pd, p_score, p_lang == li, prep.tie_key)
                del block, srt
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


def build_run_table(
    benchmark: Benchmark,
    query_emb: np.ndarray,
    cand_emb: np.ndarray,
    settings: list[Setting] | None = None,
    k: int = 100,
    backend: str = "exact",
    chunk_size: int = 1024,
    hnsw_m: int = 32,
) -> RunTable:
    """Retrieve the top-``k`` of every setting's pool for every query with gold in that pool.

    ``query_emb`` / ``cand_emb`` are aligned with ``benchmark.queries`` / ``benchmark.candidates``
    and L2-normalised (scores are dot products). ``backend``: "exact" (dense, exact ranks for every
    relevant doc), "faiss" (IndexFlatIP per pool) or "faiss-hnsw" (approximate, ``hnsw_m`` links).
    ``chunk_size`` caps the queries scored at once; the score block is also capped at 2**26 floats
    (256 MiB), so peak memory stays near 3x that whatever the corpus size. Exact search still scores
    every candidate (MIRACL-size corpora: use "faiss" / "faiss-hnsw").
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
    out = _Rows()
    if backend == "exact":
        _search_exact(prep, benchmark, list(settings), k, chunk_size, out)
    else:
        from polyret.evaluation.faiss_search import search_faiss

        search_faiss(prep, benchmark, list(settings), k, chunk_size, out, hnsw_m if backend == "faiss-hnsw" else None)
    cols = out.columns()
    return RunTable(
        settings=list(settings),
        query_ids=np.asarray([q.id for q in benchmark.queries], dtype=str),
        query_langs=np.asarray([q.lang for q in benchmark.queries], dtype=str),
        doc_ids=np.asarray([c.id for c in benchmark.candidates], dtype=str),
        doc_langs=np.asarray([c.lang for c in benchmark.candidates], dtype=str),
        k=int(k),
        exact_ranks=backend == "exact",
        benchmark_id=benchmark.id,
        meta={"backend": backend},
        **cols,
    )
