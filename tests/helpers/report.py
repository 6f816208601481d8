"""Synthetic systems with known quality and language bias, scored into report entries (no model)."""

from __future__ import annotations

import numpy as np

from polyret.data.records import Benchmark, Candidate, Query
from polyret.evaluation import score
from polyret.report import ReportEntry

LANGS = ("en", "de", "fr")
N_Q, N_DISTRACT, DIM = 24, 12, 16
# system -> (noise, language offset): lower noise = better retrieval, lower offset = less language bias
SYSTEMS = {"base": (1.6, 1.2), "mono": (1.2, 1.0), "cross": (1.25, 0.6), "hybrid": (1.05, 0.5)}


def report_benchmark(bench_id: str = "tiny:test", langs: tuple[str, ...] = LANGS, families=("mono", "cross", "multi")):
    queries, cands, qrels = [], [], {}
    for i in range(N_Q):
        qid = f"q{i}"
        for lang in langs:
            queries.append(Query(qid, lang, f"{qid} {lang}"))
            cands.append(Candidate(f"{qid}-{lang}", lang, "answer"))
        qrels[qid] = {f"{qid}-{lang}": 1 for lang in langs}
    for j in range(N_DISTRACT):
        for lang in langs:
            cands.append(Candidate(f"d{j}-{lang}", lang, "distractor"))
    return Benchmark(bench_id, langs, queries, cands, qrels, families=families)


def report_embeddings(bench: Benchmark, noise: float, offset: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Each question and its answers share a topic vector; languages add an offset; the seed adds noise."""
    topics = np.random.default_rng(100).normal(size=(N_Q + N_DISTRACT, DIM))
    lang_vec = np.random.default_rng(101).normal(size=(len(LANGS), DIM))
    rng = np.random.default_rng(seed)

    def topic(item_id: str) -> int:
        head = item_id.split("-")[0]
        return int(head[1:]) + (N_Q if head[0] == "d" else 0)

    q = np.stack([topics[topic(x.id)] + offset * lang_vec[LANGS.index(x.lang)] for x in bench.queries])
    c = np.stack([topics[topic(x.id)] + offset * lang_vec[LANGS.index(x.lang)] for x in bench.candidates])
    return q + noise * rng.normal(size=q.shape), c + noise * rng.normal(size=c.shape)


def make_entries(seeds=(1, 2), systems=SYSTEMS, bench=None) -> list[ReportEntry]:
    bench = bench or report_benchmark()
    out = []
    for k, (name, (noise, offset)) in enumerate(systems.items()):
        for sd in [None] if name == "base" else seeds:
            q, c = report_embeddings(bench, noise, offset, 7 if sd is None else 10 * sd + k)
            # the two older bias measures only (the published ones: tests/report/test_report_bias.py)
            res, _ = score(
                bench, q, c, model_name=name, measures=("map", "ndcg@10"), bias_measures=("max_rank_distance", "same_language")
            )
            out.append(ReportEntry(name, sd, bench.id, res))
    return out
