"""What every search backend reads and writes: the prepared embeddings and judgements of a benchmark
(:class:`_Prepared`), a query chunk's relevant pairs, and the run-table rows being accumulated (:class:`_Rows`).

Shared by the exact backend (``search.py``) and the faiss backends (``faiss_search.py``), neither of which
imports the other's module for them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from polyret.data.records import Benchmark, DataError, release_arrow_memory


@dataclass
class _Prepared:
    queries: np.ndarray  # (nq, d) float32
    cands: np.ndarray  # (nc, d) float32 or float16, possibly a read-only memmap: read in blocks only
    langs: list[str]  # candidate languages, benchmark order
    cand_lang: np.ndarray  # (nc,) int code into langs
    perm: np.ndarray  # candidates grouped by language: perm[start[l]:start[l+1]] are language l
    start: np.ndarray  # (L+1,) slice bounds into perm
    tie_key: np.ndarray  # (nc,) int: smaller = earlier among equal scores (candidate id descending)
    rel_ptr: np.ndarray  # (nq+1,) CSR over queries
    rel_doc: np.ndarray  # candidate indices of relevant docs
    rel_gain: np.ndarray  # their graded relevance (> 0)
    scratch: dict = field(default_factory=dict)  # buffers one search reuses across its chunks

    def rows(self, cols: np.ndarray) -> np.ndarray:
        """Candidate rows ``cols`` as a float32 matrix: a slice when they are contiguous (a memmap then
        reads only those pages), else a gather; NaN / inf rows are an error naming the first one."""
        if len(cols) and cols[-1] - cols[0] == len(cols) - 1 and bool(np.all(np.diff(cols) == 1)):
            block = self.cands[cols[0] : cols[-1] + 1]
        else:
            block = self.cands[cols]
        block = np.ascontiguousarray(block, dtype=np.float32)
        if not np.isfinite(block).all():
            bad = int(cols[np.flatnonzero(~np.isfinite(block).all(axis=1))[0]])
            raise ValueError(f"cand_emb contains NaN or infinite values (row {bad})")
        return block


def _as_matrix(name: str, emb: np.ndarray, rows: int) -> np.ndarray:
    emb = np.ascontiguousarray(emb, dtype=np.float32)
    if emb.ndim != 2 or emb.shape[0] != rows:
        raise ValueError(f"{name} has shape {emb.shape}; expected ({rows}, dim) aligned with the benchmark")
    if not np.isfinite(emb).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    return emb


def _prepare(benchmark: Benchmark, query_emb: np.ndarray, cand_emb: np.ndarray) -> _Prepared:
    import pyarrow.compute as pc

    q = _as_matrix("query_emb", query_emb, len(benchmark.queries))
    table = benchmark.candidates
    n = len(table)
    c = cand_emb if isinstance(cand_emb, np.ndarray) else np.asarray(cand_emb)
    if c.ndim != 2 or c.shape[0] != n:
        raise ValueError(f"cand_emb has shape {c.shape}; expected ({n}, dim) aligned with the benchmark")
    if c.dtype not in (np.float32, np.float16):
        c = np.ascontiguousarray(c, dtype=np.float32)
    if q.shape[1] != c.shape[1]:
        raise ValueError(f"query_emb dim {q.shape[1]} != cand_emb dim {c.shape[1]}")
    dup = table.first_duplicate()
    if dup is not None:
        raise DataError(f"benchmark {benchmark.id!r}: candidate id {dup!r} occurs more than once")
    present = table.present_langs()
    langs = [lang for lang in benchmark.languages if lang in present]
    langs += sorted(present - set(langs))
    remap = np.asarray([langs.index(name) if name in present else -1 for name in table.lang_names] or [0], dtype=np.int16)
    cand_lang = remap[table.lang_codes]
    index = np.int32 if n < 2**31 else np.int64  # per-candidate arrays: 4 bytes each, not 8
    if len(present) <= 1:
        perm = np.arange(n, dtype=index)
    else:
        perm = np.argsort(cand_lang, kind="stable").astype(index)
    start = np.searchsorted(cand_lang[perm], np.arange(len(langs) + 1)).astype(np.int64)
    tie_key = np.empty(n, dtype=index)
    if n:
        by_id_desc = pc.sort_indices(table.ids, sort_keys=[("", "descending")])
        tie_key[by_id_desc.to_numpy()] = np.arange(n, dtype=index)
        del by_id_desc
        release_arrow_memory()

    judged = sorted({d for q_ in benchmark.queries for d in benchmark.qrels.get(q_.id, {})})
    where = dict(zip(judged, table.positions(judged).tolist()))
    ptr = [0]
    docs: list[int] = []
    gains: list[int] = []
    cache: dict[str, tuple[list[int], list[int]]] = {}
    for query in benchmark.queries:
        if query.id not in cache:
            d_list, g_list = [], []
            for cid, rel in sorted(benchmark.qrels.get(query.id, {}).items()):
                if where[cid] < 0:
                    raise DataError(
                        f"benchmark {benchmark.id!r}: qrels of query {query.id!r} name candidate {cid!r}, "
                        "which is not among the benchmark's candidates"
                    )
                if int(rel) > 0:
                    d_list.append(where[cid])
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


_COLUMN_DTYPES = {
    "setting": np.int16,
    "query": np.int32,
    "doc": np.int32,
    "rank": np.int32,
    "score": np.float32,
    "relevance": np.int16,
}


class _Rows:
    """Accumulates run-table column chunks.

    With ``capacity`` (an upper bound on the rows, known before an exact search) every chunk is written
    into one preallocated array per column, whose untouched tail is never paged in: no list of parts and
    no final concatenation (a second copy of the whole table, tens of MB per million rows). Without it
    (or past it) the chunks are kept and concatenated at the end.
    """

    def __init__(self, capacity: int | None = None) -> None:
        self.parts: dict[str, list[np.ndarray]] = {c: [] for c in _COLUMN_DTYPES}
        self.arrays = {c: np.empty(capacity, dtype=dt) for c, dt in _COLUMN_DTYPES.items()} if capacity else None
        self.n = 0

    def add(self, setting: int, query, doc, rank, score, relevance) -> None:
        n = len(query)
        if self.arrays is not None and not self.parts["query"] and self.n + n <= len(self.arrays["query"]):
            a, lo, hi = self.arrays, self.n, self.n + n
            a["setting"][lo:hi] = setting
            a["query"][lo:hi] = query
            a["doc"][lo:hi] = doc
            a["rank"][lo:hi] = rank
            a["score"][lo:hi] = score
            a["relevance"][lo:hi] = relevance
            self.n = hi
            return
        self.parts["setting"].append(np.full(n, setting, dtype=np.int16))
        self.parts["query"].append(np.asarray(query, dtype=np.int32))
        self.parts["doc"].append(np.asarray(doc, dtype=np.int32))
        self.parts["rank"].append(np.asarray(rank, dtype=np.int32))
        self.parts["score"].append(np.asarray(score, dtype=np.float32))
        self.parts["relevance"].append(np.asarray(relevance, dtype=np.int16))

    def columns(self) -> dict[str, np.ndarray]:
        out = {}
        for c, dt in _COLUMN_DTYPES.items():
            head = [self.arrays[c][: self.n]] if self.arrays is not None else []
            v = head + self.parts[c]
            out[c] = v[0] if len(v) == 1 else np.concatenate(v) if v else np.empty(0, dtype=dt)
        return out


def _chunk_pairs(prep: _Prepared, q_idx: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Relevant (row-in-chunk, candidate, gain) pairs of the chunk's queries."""
    lo, hi = prep.rel_ptr[q_idx], prep.rel_ptr[q_idx + 1]
    counts = hi - lo
    rows = np.repeat(np.arange(len(q_idx)), counts)
    flat = np.repeat(lo - np.concatenate(([0], np.cumsum(counts)[:-1])), counts) + np.arange(counts.sum())
    return rows, prep.rel_doc[flat], prep.rel_gain[flat]
