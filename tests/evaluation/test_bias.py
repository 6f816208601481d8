import numpy as np
import pytest

from polyret.data.records import Benchmark, Candidate, Query
from polyret.evaluation import bias
from polyret.evaluation.runtable import RunTable
from polyret.evaluation.search import build_run_table
from polyret.evaluation.settings import Setting

LANGS = ("en", "de", "fr")


def hand_run(gold_ranks, k=100):
    """gold_ranks: {(query index, query lang): {doc lang: rank}} in multi settings; one doc per lang."""
    settings = [Setting("multi", lang, LANGS) for lang in LANGS] + [Setting("mono", "en", ("en",))]
    qids, qlangs, dids, dlangs = [], [], [], []
    cols = {c: [] for c in ("setting", "query", "doc", "rank", "score", "relevance")}
    for (qi, ql), ranks in gold_ranks.items():
        qids.append(f"q{qi}")
        qlangs.append(ql)
        for dl, rank in ranks.items():
            dids.append(f"{dl}{qi}-{ql}")
            dlangs.append(dl)
            for c, v in zip(cols, (LANGS.index(ql), len(qids) - 1, len(dids) - 1, rank, 0.0, 1)):
                cols[c].append(v)
    # a mono row that must be ignored
    for c, v in zip(cols, (3, 0, 0, 500, 0.0, 1)):
        cols[c].append(v)
    return RunTable(settings, qids, qlangs, dids, dlangs, k=k, exact_ranks=True, **cols)


def test_max_rank_distance_by_hand():
    run = hand_run(
        {
            (0, "en"): {"en": 1, "de": 2, "fr": 10},  # 9
            (1, "en"): {"en": 3, "de": 4, "fr": 5},  # 2
            (0, "de"): {"en": 7, "de": 1, "fr": 2},  # 6
            (0, "fr"): {"fr": 4},  # a single gold answer: no distance
        }
    )
    d = bias.max_rank_distance(run)
    assert d.per_language == {"en": 5.5, "de": 6.0}
    assert d.mean == pytest.approx(5.75)
    assert sorted(d.values.tolist()) == [2.0, 6.0, 9.0]
    assert set(zip(d.setting_names, d.query_ids)) == {("multi:en", "q0"), ("multi:en", "q1"), ("multi:de", "q0")}


def test_same_language_preference_by_hand():
    run = hand_run(
        {
            (0, "en"): {"en": 1, "de": 2, "fr": 10},  # own language first
            (1, "en"): {"en": 3, "de": 4, "fr": 1},  # fr first
            (0, "de"): {"en": 7, "de": 1, "fr": 2},  # own first
            (1, "de"): {"en": 1, "fr": 2},  # no gold in own language: not counted
        }
    )
    p = bias.same_language_preference(run)
    assert p.per_language == {"en": 0.5, "de": 1.0}
    assert p.rate == pytest.approx(0.75)
    assert p.chance_rate == pytest.approx(1 / 3)
    assert p.preference == pytest.approx(0.75 * 3)
    assert p.top_answer_langs == {"en": {"en": 1, "fr": 1}, "de": {"de": 1}}


def test_unretrieved_gold_is_skipped():
    run = hand_run({(0, "en"): {"en": 1, "de": 0, "fr": 3}, (1, "en"): {"en": 2, "de": 1, "fr": 3}})
    d = bias.max_rank_distance(run)
    assert d.n_skipped == 1 and d.values.tolist() == [2.0]


def test_language_agnostic_vs_biased_embeddings():
    """A shared language offset in the embeddings must raise both bias measures."""
    rng = np.random.default_rng(0)
    n, dim = 30, 16
    topics = rng.standard_normal((n, dim))
    lang_vec = {lang: 3.0 * rng.standard_normal(dim) for lang in LANGS}
    queries = [Query(f"q{i}", lang, "") for lang in LANGS for i in range(n)]
    cands = [Candidate(f"{lang}{i}", lang, "") for lang in LANGS for i in range(n)]
    qrels = {f"q{i}": {f"{lang}{i}": 1 for lang in LANGS} for i in range(n)}
    bench = Benchmark("b", LANGS, queries, cands, qrels, families=("multi",))

    def run_for(offset):
        q = np.stack([topics[int(x.id[1:])] + offset * lang_vec[x.lang] + 0.3 * rng.standard_normal(dim) for x in queries])
        c = np.stack([topics[int(x.id[2:])] + offset * lang_vec[x.lang] + 0.3 * rng.standard_normal(dim) for x in cands])
        q /= np.linalg.norm(q, axis=1, keepdims=True)
        c /= np.linalg.norm(c, axis=1, keepdims=True)
        return build_run_table(bench, q.astype(np.float32), c.astype(np.float32), k=10)

    fair, biased = run_for(0.0), run_for(1.0)
    assert bias.max_rank_distance(biased).mean > 5 * max(bias.max_rank_distance(fair).mean, 1.0)
    assert bias.same_language_preference(biased).rate > 0.9
    assert bias.same_language_preference(fair).rate < 0.6
    summary = bias.summary(biased)
    assert summary.n_queries == 3 * n
    assert set(summary.per_language) == set(LANGS)
    assert summary.max_rank_distance == pytest.approx(bias.max_rank_distance(biased).mean)
    assert summary.same_language_rate == pytest.approx(bias.same_language_preference(biased).rate)
    block = summary.to_dict()  # the results.json block: same numbers, flat
    assert block["max_rank_distance"] == summary.max_rank_distance and block["n_queries"] == 3 * n
    assert block["per_language"] == summary.per_language and "definitions" in block
