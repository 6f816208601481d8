"""Training pairs: user JSONL, LAReQA question->gold sentence, local mMARCO folders."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from polyret.data import load_benchmark
from polyret.data.mmarco import mmarco_local_files, mmarco_pairs
from polyret.data.pairs import load_pairs, pair_counts
from polyret.data.records import DataError

SHARED = Path(__file__).resolve().parents[3] / "shared" / "data"
needs_xquad = pytest.mark.skipif(not (SHARED / "xquad-r" / "en.json").is_file(), reason="shared XQuAD-R absent")


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("POLYRET_CACHE_DIR", str(tmp_path / "cache"))


# ------------------------------------------------------------------------------------------- JSONL


def _jsonl(path: Path, rows: list) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows), encoding="utf-8")
    return path


ROWS = [
    {"id": "g1", "lang": "en", "query": "q en", "positive": "p en", "negative": "n en"},
    {"id": "g1", "lang": "de", "query": "q de", "positive": "p de"},
    {"id": 2, "lang": "en", "query": "q2", "positive": "p2"},
    {"id": "g3", "lang": "fr", "query": "q3", "positive": "p3", "negative": None},
]


def test_jsonl_groups_by_id(tmp_path):
    pairs = load_pairs(str(_jsonl(tmp_path / "train.jsonl", ROWS)))
    assert len(pairs) == 3 and pairs.languages == ("de", "en", "fr")
    assert pairs.groups["g1"]["en"].negative == "n en" and pairs.groups["g1"]["de"].negative is None
    assert pairs.groups["2"]["en"].group == "2"
    assert pair_counts(pairs) == {"de": 1, "en": 2, "fr": 1}
    only = load_pairs(str(tmp_path / "train.jsonl"), languages=["de", "en"])
    assert set(only.groups) == {"g1", "2"} and only.languages == ("de", "en")
    with pytest.raises(DataError, match=r"\(training pairs\) has no language ja; it has de, en, fr"):
        load_pairs(str(tmp_path / "train.jsonl"), languages=["en", "ja"])


@pytest.mark.parametrize(
    "bad, pattern",
    [
        ('{"id": "g9", "lang": "en", "query": "q"', r"train\.jsonl:2:\d+: malformed JSON"),
        ('["not", "an", "object"]', r"train\.jsonl:2: expected a JSON object"),
        ({"lang": "en", "query": "q", "positive": "p"}, r"train\.jsonl:2: missing or empty 'id'"),
        ({"id": "g9", "lang": "en", "query": "  ", "positive": "p"}, r"train\.jsonl:2 \(id 'g9'\): missing or empty 'query'"),
        ({"id": "g9", "lang": "en", "query": "q"}, r"train\.jsonl:2 \(id 'g9'\): missing or empty 'positive'"),
        ({"id": "g9", "query": "q", "positive": "p"}, r"missing or empty 'lang'"),
        ({"id": "g9", "lang": "en", "query": "q", "positive": "p", "negative": 3}, r"'negative' must be"),
        (
            {"id": "g1", "lang": "en", "query": "q", "positive": "p"},
            r"train\.jsonl:2: duplicate \(id, lang\) = \('g1', 'en'\) \(first on line 1\)",
        ),
    ],
)
def test_jsonl_bad_rows_name_file_and_line(tmp_path, bad, pattern):
    path = _jsonl(tmp_path / "train.jsonl", [ROWS[0], bad])
    with pytest.raises(DataError, match=pattern):
        load_pairs(str(path))


def test_jsonl_empty_and_unknown_spec(tmp_path):
    with pytest.raises(DataError, match="no pairs"):
        load_pairs(str(_jsonl(tmp_path / "e.jsonl", [""])))
    with pytest.raises(DataError, match="unknown training source 'nope'"):
        load_pairs("nope")
    with pytest.raises(DataError, match="unknown split 'dev'"):
        load_pairs("xquad-r:dev", data_dir=tmp_path)


def test_max_groups_is_seeded(tmp_path):
    rows = [{"id": f"g{i}", "lang": "en", "query": f"q{i}", "positive": f"p{i}"} for i in range(50)]
    path = str(_jsonl(tmp_path / "many.jsonl", rows))
    a = load_pairs(path, max_groups=10, seed=3)
    assert len(a) == 10 and list(a.groups) == list(load_pairs(path, max_groups=10, seed=3).groups)
    assert list(a.groups) != list(load_pairs(path, max_groups=10, seed=4).groups)
    assert list(a.groups) == sorted(a.groups, key=lambda g: int(g[1:]))  # original order kept


# ------------------------------------------------------------------------------------------ LAReQA


@needs_xquad
def test_xquad_train_pairs_match_the_train_benchmark():
    pairs = load_pairs("xquad-r:train", data_dir=SHARED, download=False, hard_negatives=True, seed=0)
    bench = load_benchmark("xquad-r:train", data_dir=SHARED, download=False)
    test = load_benchmark("xquad-r:test", data_dir=SHARED, download=False)
    assert set(pairs.groups) == set(bench.qrels)
    assert not set(pairs.groups) & set(test.qrels)
    assert all(len(by_lang) == 11 for by_lang in pairs.groups.values())
    cands = {c.id: c for c in bench.candidates}
    test_texts = {(c.lang, c.context) for c in test.candidates}
    paragraph: dict[tuple[str, str], set[str]] = {}
    for c in bench.candidates:
        paragraph.setdefault((c.lang, c.context), set()).add(c.text)
    n_none = 0
    for qid, by_lang in list(pairs.groups.items())[:100]:
        for lang, pair in by_lang.items():
            (gold,) = [cid for cid in bench.qrels[qid] if cid.startswith(lang + ":")]
            assert pair.positive == cands[gold].text
            others = paragraph[(lang, cands[gold].context)] - {pair.positive}
            if not others:  # a one-sentence paragraph has no hard negative
                assert pair.negative is None
            if pair.negative is None:  # (or every other sentence is linked to the gold passage)
                n_none += 1
                continue
            assert pair.negative in others  # another sentence of the same paragraph
            assert pair.negative_id != pair.positive_id  # never the positive's passage under another text
            assert (lang, cands[gold].context) not in test_texts
    assert n_none < 0.2 * 100 * 11  # mostly Thai, whose paragraphs are often one "sentence"
    again = load_pairs("xquad-r:train", data_dir=SHARED, download=False, hard_negatives=True, seed=0)
    assert again.groups == pairs.groups
    other = load_pairs("xquad-r:train", data_dir=SHARED, download=False, hard_negatives=True, seed=1)
    assert any(other.groups[g][lang].negative != pairs.groups[g][lang].negative for g in pairs.groups for lang in ("en", "de"))
    plain = load_pairs("xquad-r:train", data_dir=SHARED, download=False, languages=["en", "th"])
    assert plain.languages == ("en", "th") and all(p.negative is None for g in plain.groups.values() for p in g.values())
    with pytest.raises(DataError, match=r"xquad-r has no language ja"):
        load_pairs("xquad-r:train", data_dir=SHARED, download=False, languages=["en", "ja"])


def test_lareqa_language_absent_from_the_data_is_an_error(tmp_path):
    with pytest.raises(DataError, match=r"mlqa-r has no language el"):
        load_pairs("mlqa-r:train", data_dir=tmp_path, download=False, languages=["el"])


# ------------------------------------------------------------------------------------------ mMARCO


def _mmarco(tmp_path: Path, with_triples: bool = True) -> Path:
    root = tmp_path / "mmarco"
    texts = {
        "en": ({"1": "what is a cat", "2": "what is a dog", "3": "why"}, {"10": "A cat is an animal.", "20": "A dog barks.", "30": "Because.", "99": "Noise."}),  # noqa: E501
        "de": ({"1": "was ist eine Katze", "2": "was ist ein Hund"}, {"10": "Eine Katze ist ein Tier.", "20": "Ein Hund bellt.", "99": "Rauschen."}),  # noqa: E501
    }  # fmt: skip
    for lang, (queries, passages) in texts.items():
        (root / lang).mkdir(parents=True)
        (root / lang / "queries.tsv").write_text("".join(f"{k}\t{v}\n" for k, v in queries.items()), encoding="utf-8")
        (root / lang / "collection.tsv").write_text("".join(f"{k}\t{v}\n" for k, v in passages.items()), encoding="utf-8")
    if with_triples:
        (root / "triples.tsv").write_text("1\t10\t99\n1\t10\t20\n2\t20\t99\n3\t30\t99\n", encoding="utf-8")
    else:
        (root / "qrels.tsv").write_text("1 0 10 1\n2 0 20 1\n3 0 30 1\n3 0 99 0\n", encoding="utf-8")
    return root


def test_mmarco_local_triples(tmp_path):
    root = _mmarco(tmp_path)
    every = load_pairs(f"mmarco:{root}")  # every triple, as the paper trains: query 1 has two
    assert list(every.groups) == ["1", "1#1", "2", "3"]
    assert every.groups["1#1"]["de"].negative == "Ein Hund bellt." and every.groups["1#1"]["en"].positive_id == "10"
    pairs = load_pairs(f"mmarco:{root}", max_triples_per_query=1)
    assert pairs.name == f"mmarco:{root}"
    assert list(pairs.groups) == ["1", "2", "3"]
    assert set(pairs.groups["1"]) == {"de", "en"} and set(pairs.groups["3"]) == {"en"}  # no de query 3
    assert pairs.groups["1"]["de"].positive == "Eine Katze ist ein Tier."
    assert pairs.groups["1"]["de"].negative == "Rauschen."  # first triple of query 1
    assert pairs.groups["2"]["en"].query == "what is a dog"
    one = load_pairs(f"mmarco:{root}", max_groups=1, seed=0)
    assert len(one) == 1
    de = load_pairs(f"mmarco:{root}", languages=["de"], max_triples_per_query=1)
    assert set(de.groups) == {"1", "2"}
    with pytest.raises(DataError, match=r"\(mMARCO files\) has no language fr; it has de, en"):
        load_pairs(f"mmarco:{root}", languages=["de", "fr"])


def test_mmarco_pairs_carry_passage_ids_shared_by_translations(tmp_path):
    from polyret.training.pairs_dataset import PairIndex

    root = _mmarco(tmp_path)
    pairs = load_pairs(f"mmarco:{root}", max_triples_per_query=1)
    g = pairs.groups
    assert (g["1"]["en"].positive_id, g["1"]["en"].negative_id) == ("10", "99")
    assert g["1"]["de"].positive_id == "10" and g["2"]["de"].negative_id == "99"
    ix = PairIndex([pairs])
    # rows: 1/de, 1/en, 2/de, 2/en, 3/en: one code per passage id, whatever the language
    assert ix.pair_positive.tolist()[:2] == [ix.pair_positive[0]] * 2
    assert len(set(ix.pair_positive.tolist())) == 3 and len(set(ix.pair_negative.ravel().tolist())) == 1
    qrels = mmarco_pairs(mmarco_local_files(_mmarco(tmp_path / "q", with_triples=False)))
    assert qrels.groups["3"]["en"].positive_id == "30" and qrels.groups["3"]["en"].negative_id is None


def test_mmarco_local_qrels_and_bad_files(tmp_path):
    root = _mmarco(tmp_path, with_triples=False)
    pairs = mmarco_pairs(mmarco_local_files(root))
    assert list(pairs.groups) == ["1", "2", "3"] and pairs.groups["1"]["en"].negative is None
    (root / "en" / "collection.tsv").write_text("10\tok\nno-tab-here\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"en/collection\.tsv:2: expected 'id<TAB>text'"):
        load_pairs(f"mmarco:{root}")
    (root / "qrels.tsv").write_text("1 0 10\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"qrels\.tsv:1: expected 'qid 0 pid rel' or 'qid pid'"):
        load_pairs(f"mmarco:{root}")
    with pytest.raises(DataError, match="no such mMARCO folder"):
        load_pairs(f"mmarco:{tmp_path / 'absent'}")
    with pytest.raises(DataError, match="needs an explicit language list"):
        load_pairs("mmarco")
