"""Tiny benchmarks built in memory, and random unit embeddings for them (scoring needs no model)."""

from __future__ import annotations

import numpy as np

from polyret.data.records import Benchmark, Candidate, Query


def tiny_benchmark(n_q=12, langs=("de", "en", "zh"), seed=0) -> Benchmark:
    """``n_q`` parallel questions in each language; per language one answer and one distractor per question."""
    rng = np.random.default_rng(seed)
    queries, cands, qrels = [], [], {}
    for i in range(n_q):
        for lang in langs:
            queries.append(Query(f"q{i}", lang, f"question {i} {lang}"))
            cands.append(Candidate(f"{lang}:{i}", lang, f"answer {i} {lang}"))
            cands.append(Candidate(f"{lang}:x{i}", lang, f"distractor {i} {lang} {rng.integers(1000)}"))
        qrels[f"q{i}"] = {f"{lang}:{i}": 1 for lang in langs}
    return Benchmark("tiny", tuple(langs), queries, cands, qrels)


def random_embeddings(bench, dim=16, seed=1):
    """Seeded random unit vectors for every query and candidate of ``bench``."""
    rng = np.random.default_rng(seed)
    q = rng.normal(size=(len(bench.queries), dim)).astype(np.float32)
    c = rng.normal(size=(len(bench.candidates), dim)).astype(np.float32)
    return q / np.linalg.norm(q, axis=1, keepdims=True), c / np.linalg.norm(c, axis=1, keepdims=True)


SEARCH_LANGS = ("en", "de", "fr")
SEARCH_SIZES = {"en": 40, "de": 25, "fr": 7}


def make_bench(seed=0, n_questions=12):
    """Pools of unequal size, candidate ids unrelated to index order, graded gold in 0-2 per language,
    a last question with no gold at all: the toy benchmark of the search tests."""
    rng = np.random.default_rng(seed)
    queries = [Query(f"q{i}", lang, f"{lang} question {i}") for lang in SEARCH_LANGS for i in range(n_questions)]
    cands = [Candidate(f"{lang}-{rng.integers(10**6)}-{j}", lang, "") for lang in SEARCH_LANGS for j in range(SEARCH_SIZES[lang])]
    order = rng.permutation(len(cands))  # candidate id order unrelated to index order
    cands = [cands[i] for i in order]
    by_lang = {lang: [c.id for c in cands if c.lang == lang] for lang in SEARCH_LANGS}
    qrels = {}
    for i in range(n_questions - 1):  # the last question has no gold at all
        rel = {}
        for lang in SEARCH_LANGS:
            if rng.random() < 0.75:
                for cid in rng.choice(by_lang[lang], size=rng.integers(1, 3), replace=False):
                    rel[str(cid)] = int(rng.integers(1, 4))
        if rel:
            qrels[f"q{i}"] = rel
    return Benchmark("toy", SEARCH_LANGS, queries, cands, qrels)


def search_embeddings(bench, seed=0, integer=False, dim=6):
    """Unit vectors, or small integers (exact float32 dot products and plenty of ties) with ``integer``."""
    rng = np.random.default_rng(seed + 1)
    shape_q, shape_c = (len(bench.queries), dim), (len(bench.candidates), dim)
    if integer:  # small integers: exact float32 dot products and plenty of ties
        return (rng.integers(-1, 2, shape_q).astype(np.float32), rng.integers(-1, 2, shape_c).astype(np.float32))
    q = rng.standard_normal(shape_q).astype(np.float32)
    c = rng.standard_normal(shape_c).astype(np.float32)
    return q / np.linalg.norm(q, axis=1, keepdims=True), c / np.linalg.norm(c, axis=1, keepdims=True)


def write_corpus_run(bench, q, c, path, tag: str = "dense", limit=None):
    """A TREC run of ``bench``: one ranking of the whole multilingual corpus per query (``qid@lang``), ties
    broken by docid descending (as trec_eval orders them), cut at ``limit`` lines per query."""
    ids = np.asarray([x.id for x in bench.candidates])
    with open(path, "w", encoding="utf-8") as fh:
        for qi, query in enumerate(bench.queries):
            s = c @ q[qi]
            order = np.lexsort((-np.argsort(np.argsort(ids)), -s))[:limit]
            for r, ci in enumerate(order, start=1):
                fh.write(f"{query.id}@{query.lang} Q0 {ids[ci]} {r} {s[ci]:.9g} {tag}\n")
    return path
