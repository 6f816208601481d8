"""The published language-bias measures on hand-made runs whose values are worked out by hand here."""

import math

import numpy as np
import pytest
from scipy import stats

from polyret.evaluation import bias_measures as bm
from polyret.evaluation.runtable import RunTable
from polyret.evaluation.settings import Setting

LANGS = ("en", "de")
DOCS = ["A_en", "X_en", "Y_en", "A_de", "X_de", "Y_de"]  # A_*: the parallel gold passages of q0
DOC_LANGS = ["en", "en", "en", "de", "de", "de"]


def make_run(rankings: dict[str, list[str]], k: int) -> RunTable:
    """Query q0 in en and de against the pool of both languages; ``rankings`` is each query language's
    FULL ranking of the six candidates; the table keeps the top k plus every gold row (as search does)."""
    settings = [Setting("multi", lang, LANGS) for lang in LANGS]
    cols = {c: [] for c in ("setting", "query", "doc", "rank", "score", "relevance")}
    for qi, lang in enumerate(LANGS):
        for rank, doc in enumerate(rankings[lang], start=1):
            rel = int(doc.startswith("A_"))
            if rank <= k or rel:
                for c, v in zip(cols, (qi, qi, DOCS.index(doc), rank, 10.0 - rank, rel)):
                    cols[c].append(v)
    return RunTable(settings, ["q0", "q0"], list(LANGS), DOCS, DOC_LANGS, k=k, exact_ranks=True, **cols)


FULL = {
    "en": ["A_en", "X_en", "Y_en", "A_de", "X_de", "Y_de"],
    "de": ["A_de", "A_en", "X_de", "X_en", "Y_de", "Y_en"],
}


def test_max_at_r_is_the_worst_gold_rank():
    v = bm.max_at_r(make_run(FULL, k=6))
    assert v.per_language == {"en": 4.0, "de": 2.0}  # en: gold at 1 and 4; de: at 1 and 2
    assert v.mean == 3.0
    assert v.better == "low"


def test_lpr_counts_query_language_share_of_gold_in_top_k():
    run = make_run(FULL, k=6)
    at1 = bm.lpr(run, k=1)
    assert at1.per_language == {"en": 1.0, "de": 1.0}
    at2 = bm.lpr(run, k=2)  # en: only A_en in the top 2 -> 1; de: A_de and A_en -> 1/2
    assert at2.per_language == {"en": 1.0, "de": 0.5}
    assert at2.mean == 0.75
    assert at2.extra["chance"] == 0.5  # one of two gold passages per query is in its language


def test_lang_ndcg_by_hand():
    v = bm.lang_ndcg(make_run(FULL, k=6), k=6, other_gain=0.5)
    # en: gain 1 at rank 1, .5 at rank 4; ideal 1 at 1, .5 at 2
    en = (1 + 0.5 / math.log2(5)) / (1 + 0.5 / math.log2(3))
    assert v.per_language["en"] == pytest.approx(en)
    assert v.per_language["de"] == pytest.approx(1.0)  # de: own-language gold first, the other second: ideal
    assert v.mean == pytest.approx((en + 1) / 2)


def test_mrc_spearman_on_full_and_on_union_of_top_k():
    full = bm.mrc(make_run(FULL, k=6))
    # en ranks of the docs in DOCS order: 1..6; de: A_en 2, X_en 4, Y_en 6, A_de 1, X_de 3, Y_de 5
    d = np.array([1, 2, 3, 4, 5, 6]) - np.array([2, 4, 6, 1, 3, 5])
    rho = 1 - 6 * (d**2).sum() / (6 * 35)
    assert full.values == pytest.approx([rho, rho])
    assert full.mean == pytest.approx(rho)
    top2 = bm.mrc(make_run(FULL, k=2))
    # union of {A_en, X_en} and {A_de, A_en}: en ranks (1, 2, 3=k+1), de ranks (2, 3=k+1, 1)
    # rank vectors (1,2,3) vs (2,3,1): d = (-1,-1,2), rho = 1 - 6*6/(3*8) = -0.5
    assert top2.values == pytest.approx([-0.5, -0.5])
    assert top2.extra["ranked_on"].startswith("union")


def test_peer_by_hand_and_with_unretrieved_gold():
    run = make_run(FULL, k=6)
    v = bm.peer(run)
    # en query, level 0 (non-relevant in the top 6): en ranks [2, 3], de [5, 6]: mean 4, group means
    # 2.5 and 5.5: SSG = 2*1.5^2 * 2 = 9, SSA = 4+1+1+4 = 10, H = (4-1)*9/10 = 2.7, 1 df
    # level 1: en [1], de [4]: H = (2-1)*SSG/SSA = 1 (one item per group: always N - 1)
    en = 0.5 * stats.chi2.sf(2.7, 1) + 0.5 * stats.chi2.sf(1.0, 1)
    assert v.per_language["en"] == pytest.approx(en)
    assert v.extra["weights"] == {"0": 0.5, "1": 0.5}
    cut = bm.peer(run, cutoff=3)
    # top 3 of en: A_en, X_en, Y_en. level 1: en [1], de [unretrieved -> (2*2 + 1 + 1)/2 = 3]: H = 1
    # level 0: only en documents retrieved: one group -> p = 1
    assert cut.per_language["en"] == pytest.approx(0.5 * 1.0 + 0.5 * stats.chi2.sf(1.0, 1))


def test_kruskal_peer_matches_scipy_on_distinct_ranks():
    # on distinct ranks 1..N the reference formula is the Kruskal-Wallis H itself
    groups = [[1, 4, 6], [2, 3], [5, 7, 8, 9]]
    assert bm.kruskal_peer(groups) == pytest.approx(stats.kruskal(*groups).pvalue)
    assert bm.kruskal_peer([[1.0], []]) == 1.0  # one non-empty group
    assert bm.kruskal_peer([[float("nan")], [float("nan")]]) == 1.0


def test_selection_and_parameters_are_checked():
    assert bm.check_bias_measures("peer,mrc") == ("peer", "mrc")
    with pytest.raises(ValueError, match="unknown 'pear'"):
        bm.check_bias_measures(["pear"])
    with pytest.raises(ValueError, match="lpr_k"):
        bm.BiasParams(lpr_k=0)
    out = bm.compute(make_run(FULL, k=6), ["max_at_r", "lpr"])
    assert set(out) == {"max_at_r", "lpr"}
    block = bm.add_to_block({}, out, bm.BiasParams())
    assert block["max_at_r"] == 3.0 and block["per_language"]["de"]["lpr"] == 0.5  # k=10: both gold found
    assert block["better"] == {"max_at_r": "low", "lpr": "chance"}


def test_peer_and_mrc_read_the_same_lists_from_polyrets_exported_run(tmp_path):
    """A search keeps the top k plus deeper gold rows; its TREC export writes the same rows: PEER and
    MRC find the k-long lists in both (the longest run of ranks 1, 2, 3 ...)."""
    from polyret.evaluation import score
    from polyret.evaluation.external_runs import score_run
    from tests.helpers.benchmarks import random_embeddings, tiny_benchmark

    bench = tiny_benchmark(n_q=10)
    q, c = random_embeddings(bench, seed=4)
    res, run = score(bench, q, c, k=4, measures=["map"], bias_measures=["peer", "mrc"])
    assert run.rank.max() > 4
    run.to_trec_run(tmp_path / "run.trec", include_unretrieved=True)
    got, table = score_run(tmp_path / "run.trec", bench, measures=["map"], bias_measures=["peer", "mrc"])
    assert table.k > 4  # the file's depth, not the search's k
    for key in ("peer", "mrc"):
        assert got.bias[key] == pytest.approx(res.bias[key])


def test_measures_reach_settings_csv_and_mteb_files_read_by_mteb(tmp_path):
    mteb = pytest.importorskip("mteb")
    from polyret.evaluation import score
    from polyret.evaluation.mteb_export import write_mteb_results
    from tests.helpers.benchmarks import random_embeddings, tiny_benchmark

    bench = tiny_benchmark(n_q=6)
    q, c = random_embeddings(bench, seed=2)
    res, _ = score(bench, q, c, measures=["map", "ndcg@10"], model_name="org/tiny")
    res.fingerprint = "0123456789abcdef"
    rows = {r.split(",")[0]: r.split(",") for r in res.settings_csv().splitlines()}
    header = rows["setting"]
    for key in ("peer", "max_at_r", "lpr", "lang_ndcg", "mrc"):
        col = header.index(key)
        assert float(rows["multi:de"][col]) == pytest.approx(res.bias["per_language"]["de"][key], rel=1e-5)
        assert rows["mono:de"][col] == ""  # bias: multilingual pools only
    written = write_mteb_results(res, tmp_path)
    # one TaskResult per setting family: the bias measures sit in the multilingual one, never in the others
    multi = {e["hf_subset"]: e for e in mteb.TaskResult.from_disk(written["mteb_task_multi"]).scores["test"]}
    mono = {e["hf_subset"]: e for e in mteb.TaskResult.from_disk(written["mteb_task_mono"]).scores["test"]}
    assert multi["de-all"]["polyret_peer"] == pytest.approx(res.bias["per_language"]["de"]["peer"], abs=1e-6)
    assert multi["de-all"]["polyret_mrc"] == pytest.approx(res.bias["per_language"]["de"]["mrc"], abs=1e-6)
    assert "polyret_peer" not in mono["de-de"]


def _random_graded_run(seed: int, n_qids: int = 5, langs=("en", "de", "zh"), n_docs: int = 12, k: int = 5) -> RunTable:
    """Parallel queries in ``langs`` against one pool of ``n_docs`` documents per language, random
    scores, graded relevance (0, 1, 2; some queries without level 2, some with gold beyond k)."""
    rng = np.random.default_rng(seed)
    settings = [Setting("multi", lang, langs) for lang in langs]
    docs = [f"d{i}_{lg}" for lg in langs for i in range(n_docs)]
    doc_langs = [lg for lg in langs for _ in range(n_docs)]
    cols = {c: [] for c in ("setting", "query", "doc", "rank", "score", "relevance")}
    query_ids, query_langs = [], []
    for qid in range(n_qids):
        rel = np.zeros(len(docs), dtype=int)
        gold = rng.choice(n_docs, size=2, replace=False)
        for li in range(len(langs)):
            rel[li * n_docs + gold[0]] = 1
            if qid % 2 == 0:
                rel[li * n_docs + gold[1]] = 2
        for si, lang in enumerate(langs):
            qi = len(query_ids)
            query_ids.append(f"q{qid}")
            query_langs.append(lang)
            order = np.argsort(-rng.normal(size=len(docs)) - 0.5 * rel, kind="stable")
            for rank, d in enumerate(order.tolist(), start=1):
                if rank <= k or rel[d]:
                    for c, v in zip(cols, (si, qi, d, rank, -float(rank), int(rel[d]))):
                        cols[c].append(v)
    return RunTable(settings, query_ids, query_langs, docs, doc_langs, k=k, exact_ranks=True, **cols)


def _list_len(rows) -> int:
    """The retrieved list's length: the longest run of ranks 1, 2, 3 ... (the search's k, or k + n when
    gold rows sit right below it at k + 1 ... k + n: polyret's documented reading of a list's depth)."""
    n = 0
    while n < len(rows) and rows[n][0] == n + 1:
        n += 1
    return n


def _reference_lists(run: RunTable):
    """Per (setting, query): its rows' (rank, relevance, doc, doc language), ascending rank."""
    out = {}
    for r in range(len(run)):
        key = (int(run.setting[r]), int(run.query[r]))
        out.setdefault(key, []).append((int(run.rank[r]), int(run.relevance[r]), int(run.doc[r]), run.doc_langs[run.doc[r]]))
    return {key: sorted(v) for key, v in sorted(out.items())}


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_vectorised_peer_and_mrc_equal_a_per_query_reference(seed):
    """PEER and MRC are computed for all queries at once; this recomputes them query by query with the
    scalar Kruskal-Wallis (:func:`kruskal_peer`) and scipy's Spearman correlation."""
    run = _random_graded_run(seed)
    lists = _reference_lists(run)
    weights = {0: 1 / 3, 1: 1 / 3, 2: 1 / 3}
    for cutoff in (None, 3):
        want = {}
        for (s, q), rows in lists.items():
            k = _list_len(rows) if cutoff is None else min(cutoff, _list_len(rows))
            total = 0.0
            for lv in [0, *sorted({rel for _, rel, _, _ in rows if rel > 0})]:
                by_lang = {}
                for rank, rel, _, lang in rows:
                    if rel == lv and (lv > 0 or rank <= k):
                        by_lang.setdefault(lang, []).append(float(rank) if rank <= k else float("nan"))
                total += weights[lv] * bm.kruskal_peer(list(by_lang.values()))
            want[(run.setting_names[s], run.query_ids[q])] = total
        got = bm.peer(run, cutoff=cutoff, weights=weights)
        assert len(got.values) == len(want)
        for s, q, v in zip(got.setting_names, got.query_ids, got.values):
            assert v == pytest.approx(want[(s, q)], abs=1e-12)
    # MRC: each query's mean Spearman correlation with its parallel queries on the union of the top-k lists
    top = {q: {d: rank for rank, _, d, _ in rows if rank <= _list_len(rows)} for (_, q), rows in lists.items()}
    got = bm.mrc(run)
    for qi_name, lang, v in zip(got.query_ids, got.query_langs, got.values):
        qi = [i for i in range(len(run.query_ids)) if run.query_ids[i] == qi_name and run.query_langs[i] == lang][0]
        rhos = []
        for other in range(len(run.query_ids)):
            if other == qi or run.query_ids[other] != qi_name:
                continue
            union = sorted(set(top[qi]) | set(top[other]))
            a = [top[qi].get(d, len(top[qi]) + 1) for d in union]
            b = [top[other].get(d, len(top[other]) + 1) for d in union]
            rhos.append(stats.spearmanr(a, b).statistic)
        assert v == pytest.approx(np.mean(rhos), abs=1e-12)
