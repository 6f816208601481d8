"""XQuAD-R / MLQA-R parsing, gold selection, article split; real shared files plus tiny bad ones."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from polyret.data.lareqa import (
    MLQA_R_LANGUAGES,
    XQUAD_R_LANGUAGES,
    SplitConfig,
    article_groups,
    article_split,
    build_benchmark,
    load_lareqa,
    load_lareqa_files,
    parse_lareqa_file,
)
from polyret.data.records import DataError

SHARED = Path(__file__).resolve().parents[3] / "shared" / "data"
XQUAD = SHARED / "xquad-r"
needs_xquad = pytest.mark.skipif(not (XQUAD / "en.json").is_file(), reason="shared XQuAD-R files absent")

# LAReQA README table: candidates per language (questions are 1190 everywhere)
LAREQA_CANDIDATES = {
    "ar": 1222, "de": 1276, "el": 1234, "en": 1180, "es": 1215, "hi": 1244,
    "ru": 1219, "th": 852, "tr": 1167, "vi": 1209, "zh": 1196,
}  # fmt: skip


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("POLYRET_CACHE_DIR", str(tmp_path / "cache"))


@pytest.fixture(scope="module")
def xquad_files():
    if not (XQUAD / "en.json").is_file():
        pytest.skip("shared XQuAD-R files absent")
    return load_lareqa_files("xquad-r", data_dir=SHARED, download=False)


# ------------------------------------------------------------------------------- real XQuAD-R files


@needs_xquad
def test_xquad_statistics_match_lareqa(xquad_files):
    bench = build_benchmark("xquad-r", xquad_files)
    assert bench.languages == XQUAD_R_LANGUAGES
    assert len(bench.qrels) == 1190
    for lang, expected in LAREQA_CANDIDATES.items():
        assert len(bench.queries_in(lang)) == 1190, lang
        assert len(bench.candidates_in(lang)) == expected, lang
    assert len({c.id for c in bench.candidates}) == len(bench.candidates)  # ids unique benchmark-wide
    assert len({(q.id, q.lang) for q in bench.queries}) == len(bench.queries)
    # one gold sentence per language for every question (11-way parallel)
    assert all(len(gold) == 11 for gold in bench.qrels.values())
    assert {cid.split(":")[0] for gold in bench.qrels.values() for cid in gold} == set(XQUAD_R_LANGUAGES)


@needs_xquad
def test_xquad_gold_sentence_holds_the_answer(xquad_files):
    raw = json.loads((XQUAD / "en.json").read_text(encoding="utf-8"))
    bench = build_benchmark("xquad-r", {"en": xquad_files["en"]}, languages=["en"])
    cands = {c.id: c for c in bench.candidates}
    checked = 0
    for ai, art in enumerate(raw["data"]):
        for pi, par in enumerate(art["paragraphs"]):
            for qa in par["qas"]:
                (gold,) = bench.qrels[qa["id"]]
                lang, a, p, s = gold.split(":")
                assert (lang, int(a), int(p)) == ("en", ai, pi)
                start, end = par["sentence_breaks"][int(s)]
                assert start <= qa["answers"][0]["answer_start"] < end
                assert cands[gold].text == par["sentences"][int(s)]
                assert cands[gold].context == par["context"]
                checked += 1
    assert checked == 1190


@needs_xquad
def test_xquad_articles_are_parallel(xquad_files):
    en = xquad_files["en"]
    for lang, parsed in xquad_files.items():
        assert [a.title for a in parsed.articles] == [a.title for a in en.articles], lang
        assert [[q.id for p in a.paragraphs for q in p.questions] for a in parsed.articles] == [
            [q.id for p in a.paragraphs for q in p.questions] for a in en.articles
        ], lang
    groups = article_groups(xquad_files)
    assert len(groups) == 48 and all(len(members) == 11 for _, members in groups)


@needs_xquad
def test_xquad_split_has_no_leakage_and_is_the_same_in_every_language(xquad_files):
    side = article_split(xquad_files)
    for ai in range(48):
        assert len({side[(lang, ai)] for lang in XQUAD_R_LANGUAGES}) == 1
    assert sum(1 for (lang, _), s in side.items() if lang == "en" and s == "test") == 24
    train = build_benchmark("xquad-r", xquad_files, split="train")
    test = build_benchmark("xquad-r", xquad_files, split="test")
    assert train.id == "xquad-r:train" and test.id == "xquad-r:test"
    assert not {q.id for q in train.queries} & {q.id for q in test.queries}
    assert not {c.id for c in train.candidates} & {c.id for c in test.candidates}
    art = lambda b: {(c.lang, c.id.split(":")[1]) for c in b.candidates}  # noqa: E731
    assert not art(train) & art(test)
    assert not {c.context for c in train.candidates} & {c.context for c in test.candidates}
    assert len(train.qrels) + len(test.qrels) == 1190
    assert len(train.candidates) + len(test.candidates) == sum(LAREQA_CANDIDATES.values())
    # gold of every query is inside its own side
    for bench in (train, test):
        ids = {c.id for c in bench.candidates}
        assert all(cid in ids for gold in bench.qrels.values() for cid in gold)


@needs_xquad
def test_split_is_deterministic_configurable_and_independent_of_languages(xquad_files):
    assert article_split(xquad_files) == article_split(dict(reversed(list(xquad_files.items()))))
    other_seed = article_split(xquad_files, SplitConfig(seed=1))
    assert other_seed != article_split(xquad_files)
    wide = article_split(xquad_files, SplitConfig(test_fraction=0.25))
    assert sum(1 for (lang, _), s in wide.items() if lang == "en" and s == "test") == 12
    full = load_lareqa("xquad-r", split="test", data_dir=SHARED, download=False)
    sub = load_lareqa("xquad-r", split="test", data_dir=SHARED, languages=["th", "en"], download=False)
    assert sub.languages == ("en", "th")
    assert {q.id for q in sub.queries} == {q.id for q in full.queries}
    assert {c.id for c in sub.candidates} == {c.id for c in full.candidates if c.lang in ("en", "th")}
    assert all(cid.split(":")[0] in ("en", "th") for gold in sub.qrels.values() for cid in gold)
    with pytest.raises(ValueError):
        SplitConfig(test_fraction=1.0)


# ----------------------------------------------------------------------------- tiny MLQA-like files


def _paragraph(sentences: list[str], qas: list[tuple[str, str, int]]) -> dict:
    """qas: (id, question, index of the sentence holding the answer)."""
    context, breaks, pos = "", [], 0
    for s in sentences:
        if context:
            context += " "
            pos += 1
        breaks.append([pos, pos + len(s)])
        context += s
        pos += len(s)
    return {
        "context": context,
        "sentences": sentences,
        "sentence_breaks": breaks,
        "qas": [{"id": qid, "question": q, "answers": [{"text": "x", "answer_start": breaks[si][0] + 1}]} for qid, q, si in qas],
    }


def _write(path: Path, articles: list[tuple[str, list[dict]]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    doc = {"version": 1.0, "data": [{"title": t, "paragraphs": ps} for t, ps in articles]}
    path.write_text(json.dumps(doc, ensure_ascii=False), encoding="utf-8")
    return path


@pytest.fixture
def mlqa_dir(tmp_path) -> Path:
    """7 MLQA-R files: English articles E1..E3; questions exist in en plus 1-3 other languages."""
    root = tmp_path / "data"
    d = root / "mlqa-r"
    en = [
        ("E1", [_paragraph(["Alpha one.", "Alpha two.", "Alpha two."], [("q1", "What one?", 0), ("q2", "What two?", 2)])]),
        ("E2", [_paragraph(["Beta one.", "Beta two."], [("q3", "Beta?", 1)])]),
        ("E3", [_paragraph(["Gamma one."], [("q4", "Gamma?", 0)]), _paragraph(["Gamma two.", "G3."], [("q5", "G?", 1)])]),
    ]
    _write(d / "en.json", en)
    _write(
        d / "de.json",
        [
            ("D-Beta", [_paragraph(["Beta eins.", "Beta zwei."], [("q3", "Beta de?", 1)])]),
            ("D-Alpha", [_paragraph(["Alpha eins."], [("q1", "Was eins?", 0)])]),
        ],
    )
    _write(d / "es.json", [("S-Alpha", [_paragraph(["Alfa uno.", "Alfa dos."], [("q2", "Dos?", 1)])])])
    _write(d / "zh.json", [("Z-Gamma", [_paragraph(["伽马一。"], [("q4", "伽马？", 0), ("q5", "G zh?", 0)])])])
    _write(d / "ar.json", [("A-Beta", [_paragraph(["بيتا."], [("q3", "بيتا؟", 0)])])])
    _write(d / "hi.json", [("H-Gamma", [_paragraph(["गामा।"], [("q5", "गामा?", 0)])])])
    _write(d / "vi.json", [("V-Alpha", [_paragraph(["Anpha."], [("q2", "Anpha?", 0)])])])
    return root


def test_mlqa_queries_only_where_the_question_exists_and_qrels_union(mlqa_dir):
    bench = load_lareqa("mlqa-r", data_dir=mlqa_dir, download=False)
    assert bench.languages == MLQA_R_LANGUAGES
    assert sorted(q.lang for q in bench.queries if q.id == "q3") == ["ar", "de", "en"]
    assert sorted(q.lang for q in bench.queries if q.id == "q2") == ["en", "es", "vi"]
    assert bench.qrels["q3"] == {"en:1:0:1": 1, "de:0:0:1": 1, "ar:0:0:0": 1}
    assert bench.qrels["q2"] == {"en:0:0:2": 1, "es:0:0:1": 1, "vi:0:0:0": 1}  # the 2nd "Alpha two."
    # duplicate sentence text in one paragraph: two candidates, as in LAReQA
    assert [c.text for c in bench.candidates_in("en")].count("Alpha two.") == 2
    assert len(bench.candidates) == 17  # every sentence of every paragraph
    only_de = load_lareqa("mlqa-r", data_dir=mlqa_dir, languages=["de"], download=False)
    assert {q.id for q in only_de.queries} == {"q1", "q3"}
    assert all(c.lang == "de" for c in only_de.candidates)


def test_mlqa_split_follows_question_connectivity(mlqa_dir):
    files = load_lareqa_files("mlqa-r", data_dir=mlqa_dir, download=False)
    groups = {key: set(members) for key, members in article_groups(files)}
    # three English articles -> three groups, each pulling in its translations
    assert len(groups) == 3
    assert groups["q:q3"] == {("en", 1), ("de", 0), ("ar", 0)}
    assert groups["q:q1"] == {("en", 0), ("de", 1), ("es", 0), ("vi", 0)}
    for seed in range(5):
        config = SplitConfig(test_fraction=0.5, seed=seed)
        train = load_lareqa("mlqa-r", split="train", data_dir=mlqa_dir, download=False, config=config)
        test = load_lareqa("mlqa-r", split="test", data_dir=mlqa_dir, download=False, config=config)
        assert not {q.id for q in train.queries} & {q.id for q in test.queries}
        assert not {c.id for c in train.candidates} & {c.id for c in test.candidates}
        assert {q.id for q in train.queries} | {q.id for q in test.queries} == {"q1", "q2", "q3", "q4", "q5"}
        # split computed from all languages even when one is asked for
        de_test = load_lareqa("mlqa-r", split="test", data_dir=mlqa_dir, languages=["de"], download=False, config=config)
        assert {q.id for q in de_test.queries} <= {q.id for q in test.queries}


# ---------------------------------------------------------------------------------------- bad input


def _good_doc() -> dict:
    return {"version": "1.1", "data": [{"title": "T", "paragraphs": [_paragraph(["One.", "Two."], [("q1", "Q?", 1)])]}]}


def _bad(tmp_path: Path, doc_or_text) -> Path:
    path = tmp_path / "en.json"
    path.write_text(doc_or_text if isinstance(doc_or_text, str) else json.dumps(doc_or_text), encoding="utf-8")
    return path


def test_good_tiny_file_parses(tmp_path):
    parsed = parse_lareqa_file(_bad(tmp_path, _good_doc()), "en")
    assert parsed.n_questions == 1 and parsed.n_sentences == 2
    assert parsed.articles[0].paragraphs[0].questions[0].gold == 1


def test_malformed_json_names_file_line_and_column(tmp_path):
    path = _bad(tmp_path, '{"data": [\n  {"title": "T",, }\n]}')
    with pytest.raises(DataError, match=r"en\.json:2:\d+: malformed JSON"):
        parse_lareqa_file(path, "en")


@pytest.mark.parametrize(
    "mutate, pattern",
    [
        (lambda d: d.pop("data"), r"missing field 'data'"),
        (lambda d: d["data"][0].pop("title"), r"article 0: missing field 'title'"),
        (lambda d: d["data"][0]["paragraphs"][0].pop("sentences"), r"article 0 \('T'\), paragraph 0: missing field 'sentences'"),
        (
            lambda d: d["data"][0]["paragraphs"][0]["qas"][0].pop("answers"),
            r"paragraph 0, question 'q1': missing field 'answers'",
        ),
        (
            lambda d: d["data"][0]["paragraphs"][0]["qas"][0]["answers"][0].pop("answer_start"),
            r"question 'q1', answer 0: missing field 'answer_start'",
        ),
        (lambda d: d["data"][0]["paragraphs"][0]["qas"][0]["answers"][0].update(answer_start="4"), r"'answer_start' must be int"),
        (lambda d: d["data"][0]["paragraphs"][0]["sentence_breaks"].pop(), r"2 sentences but 1 sentence_breaks"),
        (lambda d: d["data"][0]["paragraphs"][0]["sentence_breaks"].__setitem__(1, [5, 999]), r"sentence_breaks\[1\]"),
        (lambda d: d["data"][0]["paragraphs"][0]["qas"][0].update(question="  "), r"question 'q1': empty question text"),
        (
            lambda d: d["data"][0]["paragraphs"][0]["qas"][0]["answers"][0].update(answer_start=4),
            r"article 0 \('T'\), paragraph 0, question 'q1': answer_start 4 lies in no sentence",
        ),
        (lambda d: d["data"].clear(), r"no questions"),
    ],
)
def test_bad_records_name_file_and_record(tmp_path, mutate, pattern):
    doc = _good_doc()
    mutate(doc)
    path = _bad(tmp_path, doc)
    with pytest.raises(DataError, match=pattern) as err:
        parse_lareqa_file(path, "en")
    assert str(path) in str(err.value)


def test_duplicate_question_id_within_a_language(tmp_path):
    doc = _good_doc()
    doc["data"].append({"title": "U", "paragraphs": [_paragraph(["Three."], [("q1", "Again?", 0)])]})
    with pytest.raises(
        DataError, match=r"article 1 \('U'\), paragraph 0, question 'q1': duplicate question id \(first seen at .*article 0"
    ):
        parse_lareqa_file(_bad(tmp_path, doc), "en")


def test_empty_file_unknown_language_and_missing_file(tmp_path):
    with pytest.raises(DataError, match="empty file"):
        parse_lareqa_file(_bad(tmp_path, "  \n"), "en")
    with pytest.raises(DataError, match=r"xquad-r has no language xx"):
        parse_lareqa_file(_bad(tmp_path, _good_doc()), "xx")
    with pytest.raises(DataError, match=r"mlqa-r has no language th"):
        load_lareqa("mlqa-r", data_dir=tmp_path, languages=["th"], download=False)
    with pytest.raises(DataError, match=r"mlqa-r/en\.json not found .*354d67d"):
        load_lareqa("mlqa-r", data_dir=tmp_path, languages=["en"], download=False)
    with pytest.raises(DataError, match="unknown LAReQA dataset"):
        load_lareqa("squad", data_dir=tmp_path, download=False)


# ------------------------------------------------------------------- sentence / language checks


def _long_doc(n_sentences: int) -> dict:
    sentences = [f"Sentence number {i}." for i in range(n_sentences)]
    return {"data": [{"title": "T", "paragraphs": [_paragraph(sentences, [("q1", "Q?", 3)])]}]}


def test_a_few_sentences_off_their_breaks_warn_with_counts(tmp_path, caplog):
    doc = _long_doc(150)
    doc["data"][0]["paragraphs"][0]["sentences"][7] = "Not what the context says."
    path = _bad(tmp_path, doc)
    with caplog.at_level("WARNING", logger="polyret.data.lareqa"):
        parsed = parse_lareqa_file(path, "en")
    assert parsed.n_sentences == 150
    (msg,) = [r.getMessage() for r in caplog.records]
    assert str(path) in msg and "1 of 150 sentences differ" in msg and "sentence 7" in msg


def test_sentences_off_their_breaks_past_one_percent_are_an_error(tmp_path):
    doc = _long_doc(150)
    par = doc["data"][0]["paragraphs"][0]
    par["sentences"] = par["sentences"][1:] + par["sentences"][:1]  # shifted by one: every gold label wrong
    with pytest.raises(
        DataError, match=r"en\.json: 150 of 150 sentences differ .* first at article 0 \('T'\), paragraph 0, sentence 0"
    ):
        parse_lareqa_file(_bad(tmp_path, doc), "en")
    doc = _long_doc(150)
    for i in (5, 9):  # 2 of 150 = 1.3%
        doc["data"][0]["paragraphs"][0]["sentences"][i] = "Changed."
    with pytest.raises(DataError, match=r"2 of 150 sentences differ"):
        parse_lareqa_file(_bad(tmp_path, doc), "en")


@needs_xquad
def test_real_xquad_files_pass_the_sentence_check(caplog):
    with caplog.at_level("WARNING", logger="polyret.data.lareqa"):
        for lang in ("tr", "de"):
            parse_lareqa_file(XQUAD / f"{lang}.json", lang)
    msgs = [r.getMessage() for r in caplog.records]
    assert len(msgs) == 1 and "tr.json: 2 of" in msgs[0]  # the two known mismatches of tr.json; de is clean


def test_empty_sentences_are_skipped_and_counted(tmp_path, caplog):
    doc = {"data": [{"title": "T", "paragraphs": [_paragraph(["One.", " ", "Three."], [("q1", "Q?", 2)])]}]}
    path = _bad(tmp_path, doc)
    with caplog.at_level("WARNING", logger="polyret.data.lareqa"):
        parsed = parse_lareqa_file(path, "en")
    assert any("1 empty sentences are not candidates" in r.getMessage() and str(path) in r.getMessage() for r in caplog.records)
    bench = build_benchmark("xquad-r", {"en": parsed}, languages=["en"])
    assert [c.id for c in bench.candidates] == ["en:0:0:0", "en:0:0:2"]  # ids keep the sentence index
    assert bench.qrels["q1"] == {"en:0:0:2": 1}
    doc = {"data": [{"title": "T", "paragraphs": [_paragraph(["One.", "   ", "Three."], [("q1", "Q?", 1)])]}]}
    with pytest.raises(DataError, match=r"question 'q1': the answer's sentence 1 is empty"):
        parse_lareqa_file(_bad(tmp_path, doc), "en")


@pytest.mark.parametrize("code", ["DE ", "De", " de"])
def test_non_canonical_language_code_is_refused_naming_the_canonical_one(tmp_path, code):
    with pytest.raises(DataError, match=rf"language code {code!r} is not canonical; write 'de'"):
        load_lareqa("xquad-r", data_dir=tmp_path, languages=[code], download=False)
