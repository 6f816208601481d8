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


# a few words of each language, none of them a topic word of worded_benchmark
LANGUAGE_WORDS = {
    "de": ("der", "die", "und", "ist"),
    "en": ("the", "of", "and", "is"),
    "zh": ("城市", "河流", "首都", "国家"),
    "fr": ("le", "la", "et", "est"),
}


def worded_benchmark(n_q=6, langs=("de", "en", "zh"), seed=9, n_distract=2) -> Benchmark:
    """``n_q`` parallel questions per language built from the tiny model's vocabulary (``TINY_WORDS``), so a
    model embeds every text differently (the digits of :func:`tiny_benchmark` are unknown to the tiny
    vocabulary: its texts of one language embed alike and its rankings are ties). Question ``i`` shares two
    of its four topic words with its answer in every language; each language adds its own words and
    ``n_distract`` distractors of random words. The default seed keeps the tiny model's (seeds 0 and 1) scores
    of adjacent candidates at least 2.2e-6 apart (about 37 float32 steps at 0.97), so no ranking is a near-tie."""
    from tests.helpers.models import TINY_WORDS

    rng = np.random.default_rng(seed)
    taken = {w for words in LANGUAGE_WORDS.values() for w in words}
    vocab = sorted(set(TINY_WORDS) - taken - {"query", "passage"})
    queries, cands, qrels = [], [], {}
    for i in range(n_q):
        topic = list(rng.choice(vocab, size=4, replace=False))
        for lang in langs:
            own = LANGUAGE_WORDS[lang]
            queries.append(Query(f"q{i}", lang, " ".join([own[i % 4], *topic[:2]])))
            cands.append(Candidate(f"{lang}:{i}", lang, " ".join([own[(i + 1) % 4], *topic[1:], own[(i + 2) % 4]])))
            for j in range(n_distract):
                words = rng.choice(vocab, size=3, replace=False)
                cands.append(Candidate(f"{lang}:x{i}.{j}", lang, " ".join([own[j % 4], *words])))
        qrels[f"q{i}"] = {f"{lang}:{i}": 1 for lang in langs}
    return Benchmark("worded", tuple(langs), queries, cands, qrels)


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
