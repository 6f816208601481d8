"""MIRACL: real shared topics/qrels with tiny corpora written in tmp dirs; bad lines name file:line."""

from __future__ import annotations

import gzip
import json
import shutil
from pathlib import Path

import pytest

from polyret.data.miracl import MIRACL_LANGUAGES, load_miracl, read_corpus, read_qrels, read_topics
from polyret.data.records import DataError
from tests.helpers.miracl import write_corpus as _corpus
from tests.helpers.miracl import write_miracl_dir as _tiny

SHARED = Path(__file__).resolve().parents[3] / "shared" / "data"
MIRACL = SHARED / "miracl"
needs_miracl = pytest.mark.skipif(not (MIRACL / "topics").is_dir(), reason="shared MIRACL files absent")


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("POLYRET_CACHE_DIR", str(tmp_path / "cache"))


def _data_dir(tmp_path: Path, lang: str) -> Path:
    """A data dir holding the real topics/qrels of ``lang`` (copied: the shared dir is read-only)."""
    root = tmp_path / "data" / "miracl"
    for kind in ("topics", "qrels"):
        name = f"{kind}.miracl-v1.0-{lang}-dev.tsv"
        (root / kind).mkdir(parents=True, exist_ok=True)
        shutil.copy(MIRACL / kind / name, root / kind / name)
    return tmp_path / "data"


@needs_miracl
def test_real_topics_and_qrels_parse_for_every_language():
    sizes = {}
    for lang in MIRACL_LANGUAGES:
        topics = read_topics(MIRACL / "topics" / f"topics.miracl-v1.0-{lang}-dev.tsv")
        qrels = read_qrels(MIRACL / "qrels" / f"qrels.miracl-v1.0-{lang}-dev.tsv")
        assert set(qrels) <= set(topics)
        assert all(rel > 0 for docs in qrels.values() for rel in docs.values())
        sizes[lang] = len(topics)
    assert sizes["de"] == 305 and sizes["ar"] == 2896 and sizes["yo"] == 119


@needs_miracl
@pytest.mark.parametrize("gz", [False, True])
def test_benchmark_from_real_qrels_and_a_small_corpus(tmp_path, gz):
    data = _data_dir(tmp_path, "de")
    qrels = read_qrels(data / "miracl/qrels/qrels.miracl-v1.0-de-dev.tsv")
    qid = "10055536#0"
    relevant = sorted(qrels[qid])
    docs = [{"docid": relevant[0], "title": "Titel", "text": "Ein Text."},
            {"docid": "x#1", "title": "", "text": "Nur Text."}]  # fmt: skip
    name = "de.jsonl.gz" if gz else "de.jsonl"
    _corpus(data / "miracl" / "corpus" / name, docs, gz=gz)
    bench = load_miracl("de", data_dir=data, download=False)
    assert bench.id == "miracl/de" and bench.languages == ("de",) and bench.families == ("mono",)
    assert len(bench.queries) == 305 and len(bench.qrels) == 305
    assert [c.text for c in bench.candidates] == ["Titel Ein Text.", "Nur Text."]
    assert all(c.lang == "de" for c in bench.candidates)
    # relevant docs absent from the corpus stay in the qrels (misses), and the provenance says so
    assert set(bench.qrels[qid]) == set(relevant)
    n_rel = sum(len(v) for v in qrels.values())
    assert f"{n_rel - 1} relevant judgements point to docids absent" in bench.provenance
    # judged-irrelevant lines are not relevant
    assert "220710#0" not in bench.qrels[qid]


GOOD_CORPUS = '{"docid": "d1", "title": "T", "text": "a"}\n{"docid": "d2", "title": "T", "text": "b"}\n'


def test_tiny_benchmark_drops_topics_without_relevant_docs(tmp_path):
    data = _tiny(tmp_path, "1\tswali moja\n2\tswali mbili\n\n", "1 Q0 d1 1\n1 Q0 d2 0\n2 Q0 d2 0\n", GOOD_CORPUS)
    bench = load_miracl("sw", data_dir=data, download=False)
    assert [q.id for q in bench.queries] == ["1"]
    assert bench.qrels == {"1": {"d1": 1}}
    assert "1 topics without relevant judgements dropped" in bench.provenance


@pytest.mark.parametrize(
    "topics, qrels, corpus, pattern",
    [
        ("1\tq\n2 no tab\n", "1 Q0 d1 1\n", GOOD_CORPUS, r"topics\.miracl-v1\.0-sw-dev\.tsv:2: expected 'qid<TAB>query'"),
        ("1\tq\n1\tagain\n", "1 Q0 d1 1\n", GOOD_CORPUS, r"topics.*:2: duplicate query id"),
        ("", "1 Q0 d1 1\n", GOOD_CORPUS, r"topics.*: no topics"),
        ("1\tq\n", "1 Q0 d1 1\n1 Q0 d2\n", GOOD_CORPUS, r"qrels\.miracl-v1\.0-sw-dev\.tsv:2: expected 'qid Q0 docid rel'"),
        ("1\tq\n", "1 Q0 d1 yes\n", GOOD_CORPUS, r"qrels.*:1: relevance 'yes' is not an integer"),
        ("1\tq\n", "9 Q0 d1 1\n", GOOD_CORPUS, r"judgements for query ids absent"),
        ("1\tq\n", "1 Q0 d1 1\n", '{"docid": "d1", "text": "a"}\n{"docid": "d2", "text": \n', r"sw\.jsonl:2:\d+: malformed JSON"),
        (
            "1\tq\n",
            "1 Q0 d1 1\n",
            '{"docid": "d1", "text": "a"}\n{"title": "t", "text": "b"}\n',
            r"sw\.jsonl:2: missing or empty 'docid'",
        ),
        ("1\tq\n", "1 Q0 d1 1\n", '{"docid": "d1", "title": "t"}\n', r"sw\.jsonl:1 \(docid 'd1'\): missing 'text'"),
        (
            "1\tq\n",
            "1 Q0 d1 1\n",
            '{"docid": "d1", "text": "a"}\n{"docid": "d1", "text": "b"}\n',
            r"sw\.jsonl:2: duplicate docid",
        ),
        ("1\tq\n", "1 Q0 d1 1\n", "\n", r"sw\.jsonl: no passages"),
    ],
)
def test_bad_lines_name_file_and_line(tmp_path, topics, qrels, corpus, pattern):
    data = _tiny(tmp_path, topics, qrels, corpus)
    with pytest.raises(DataError, match=pattern):
        load_miracl("sw", data_dir=data, download=False)


def test_unknown_language_and_missing_corpus(tmp_path):
    with pytest.raises(DataError, match=r"MIRACL has no language xx; it has ar, bn"):
        load_miracl("xx", data_dir=tmp_path, download=False)
    data = _tiny(tmp_path, "1\tq\n", "1 Q0 d1 1\n", GOOD_CORPUS)
    (data / "miracl" / "corpus" / "sw.jsonl").unlink()
    with pytest.raises(DataError, match=r"miracl/corpus/sw\.jsonl\.gz not found .*huggingface\.co/datasets/miracl/miracl-corpus"):
        load_miracl("sw", data_dir=data, download=False)


def test_corrupt_gzip_corpus_is_a_data_error(tmp_path):
    path = tmp_path / "c.jsonl.gz"
    path.write_bytes(gzip.compress(GOOD_CORPUS.encode())[:-12])
    with pytest.raises(DataError, match=r"c\.jsonl\.gz"):
        read_corpus(path, "sw")


# ------------------------------------------------------------- qrels naming docids absent from the corpus

ABSENT_TOPICS = "1\tswali moja la mji\n2\tswali mbili la mto\n3\tswali tatu\n"
ABSENT_QRELS = "1 Q0 d1 1\n1 Q0 gone#1 1\n2 Q0 d2 1\n2 Q0 d3 2\n3 Q0 gone#2 1\n3 Q0 d4 0\n"
ABSENT_CORPUS = "".join(
    json.dumps({"docid": f"d{i}", "title": "T", "text": t}, ensure_ascii=False) + "\n"
    for i, t in enumerate(["mji mkubwa", "mto mrefu", "nchi na mji", "mwaka wa vita", "watu wa mto", "shule ya maji"], 1)
)


def test_absent_docids_are_counted_and_warned_at_load_time(tmp_path, caplog):
    data = _tiny(tmp_path, ABSENT_TOPICS, ABSENT_QRELS, ABSENT_CORPUS)
    with caplog.at_level("WARNING", logger="polyret.data.miracl"):
        bench = load_miracl("sw", data_dir=data, download=False)
    (msg,) = [r.getMessage() for r in caplog.records if r.name == "polyret.data.miracl"]
    assert "qrels.miracl-v1.0-sw-dev.tsv: 2 relevant judgements name docids absent" in msg
    assert bench.qrels["3"] == {"gone#2": 1}  # kept: relevant but unretrievable
    assert "2 relevant judgements point to docids absent" in bench.provenance


def test_absent_docids_count_as_misses_like_trec_eval(tmp_path, tiny_model_dir):
    """The whole evaluation runs (no error after encoding) and every measure equals trec_eval's on the
    full qrels file, where the absent docs are relevant documents that were never retrieved."""
    import pytrec_eval

    from polyret.encode import encode
    from polyret.evaluation import evaluate
    from polyret.models import load

    data = _tiny(tmp_path, ABSENT_TOPICS, ABSENT_QRELS, ABSENT_CORPUS)
    res = evaluate(
        tiny_model_dir,
        "miracl/sw",
        data_dir=str(data),
        output=tmp_path / "out",
        progress=False,
        cache=False,
        measures=["map", "recall@2", "ndcg@10", "mrr@10", "recall@100"],
    )
    stored = json.loads((tmp_path / "out" / "results.json").read_text())
    assert stored["unretrievable_relevant"] == 2
    assert res.per_setting["mono:sw"]["n_queries"] == 3  # query 3 (only an absent doc) counts, with 0

    model = load(tiny_model_dir)
    bench = load_miracl("sw", data_dir=data, download=False)
    q = encode(model, [x.text for x in bench.queries], kind="query")
    c = encode(model, [x.text for x in bench.candidates], kind="passage")
    run = {
        query.id: {cand.id: float(q[i] @ c[j]) for j, cand in enumerate(bench.candidates)}
        for i, query in enumerate(bench.queries)
    }
    qrels = {qid: dict(docs) for qid, docs in read_qrels(data / "miracl/qrels/qrels.miracl-v1.0-sw-dev.tsv").items()}
    ev = pytrec_eval.RelevanceEvaluator(qrels, {"map", "recall_2", "ndcg_cut_10", "recip_rank", "recall_100"}).evaluate(run)
    assert len(ev) == 3
    mean = lambda key: sum(v[key] for v in ev.values()) / len(ev)  # noqa: E731
    got = res.per_setting["mono:sw"]
    assert got["map"] == pytest.approx(mean("map"), abs=1e-6)
    assert got["recall@2"] == pytest.approx(mean("recall_2"), abs=1e-6)
    assert got["recall@100"] == pytest.approx(mean("recall_100"), abs=1e-6)
    assert got["ndcg@10"] == pytest.approx(mean("ndcg_cut_10"), abs=1e-6)
    assert got["mrr@10"] == pytest.approx(mean("recip_rank"), abs=1e-6)  # every doc is within 10 here
    assert mean("recall_100") < 1.0  # the absent docs really count against recall
