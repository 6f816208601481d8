"""polyret.training.mining: language-aware, identity-aware hard negatives with a false-negative guard."""

from __future__ import annotations

import json
from collections.abc import Sequence

import pytest
from typer.testing import CliRunner

from polyret.cli import app
from polyret.data.pairs import load_pairs
from polyret.data.records import DataError, Pair, PairGroups
from polyret.encode import encode
from polyret.training.mining import (
    mine_negatives,
    passage_identity,
    positive_identity,
    stats_path,
    write_mined_jsonl,
)

EN = "city river capital country year people war king church music school water language history science".split()
DE = "stadt fluss hauptstadt land jahr menschen krieg könig".split()


@pytest.fixture(scope="module")
def model(tiny_model_dir):
    from polyret import models

    return models.load(tiny_model_dir)


def parallel_source() -> PairGroups:
    """8 groups in en and de whose translations share a passage id, plus three traps:

    * ``dup``/de: another wording of g0's German passage with g0's identity ``P0`` (a near-duplicate);
    * ``m1``/``m2``/en: one query text with two gold passages (different ids), near-duplicates of each other.
    """
    groups: dict[str, dict[str, Pair]] = {}
    for g in range(8):
        en = Pair(f"g{g}", "en", f"what {EN[g]} {EN[g + 1]}", f"the {EN[g]} {EN[g + 1]} of {EN[g + 2]}",
                  positive_id=f"P{g}")  # fmt: skip
        de = Pair(f"g{g}", "de", f"wer {DE[g]} ist", f"die {DE[g]} und {DE[(g + 3) % 8]}", positive_id=f"P{g}")
        groups[f"g{g}"] = {"en": en, "de": de}
    groups["dup"] = {"de": Pair("dup", "de", "wo ist die stadt", f"die {DE[0]} und {DE[3]} {DE[3]}", positive_id="P0")}
    groups["m1"] = {"en": Pair("m1", "en", "who is the king", "the king of the church", positive_id="K1")}
    groups["m2"] = {"en": Pair("m2", "en", "who is the king", "the king of the church music", positive_id="K2")}
    return PairGroups("parallel", groups)


def gold_texts(source: PairGroups, pair: Pair) -> set[str]:
    """Positives of the pair's group and of pairs with its (lang, query), and every text sharing their ids."""
    flat = [p for by_lang in source.groups.values() for p in by_lang.values()]
    gold = [p for p in flat if p.group == pair.group or (p.lang, p.query) == (pair.lang, pair.query)]
    ids = {positive_identity(p) for p in gold}
    return {p.positive for p in gold} | {p.positive for p in flat if positive_identity(p) in ids}


def test_identity_helper():
    assert positive_identity(Pair("g", "de", "q", "p", positive_id="P1")) == ("id", "P1")
    assert positive_identity(Pair("g", "de", "q", "p")) == ("text", "de", "p")
    assert passage_identity("en", "p", None) != passage_identity("de", "p", None)


def test_negatives_are_in_the_passage_language_and_never_gold(model):
    source = parallel_source()
    texts = {lang: {p.positive for by in source.groups.values() for p in by.values() if p.lang == lang}
             for lang in ("en", "de")}  # fmt: skip
    # top 3, no guard: only the identity rules keep the traps (the hardest candidates by text) out
    mined, stats = mine_negatives(source, model, k=3, relative_margin=None)
    assert stats.pairs == stats.written == 19 and stats.short == 0 and stats.negatives == 57
    for by_lang in mined.groups.values():
        for lang, pair in by_lang.items():
            assert len(set(pair.negatives)) == 3 and set(pair.negatives) <= texts[lang]
            assert not set(pair.negatives) & gold_texts(source, pair) and pair.positive_id not in pair.negative_ids
    # k as large as any pool: every pair gets exactly its language's passages minus its gold ones, so a
    # missing identity rule could not hide behind a low score
    mined, stats = mine_negatives(source, model, k=9, relative_margin=None, range_max=20, keep_short=True)
    for gid, by_lang in mined.groups.items():
        for lang, pair in by_lang.items():
            assert set(pair.negatives) == texts[lang] - gold_texts(source, pair), (gid, lang)
    assert source.groups["dup"]["de"].positive not in mined.groups["g0"]["de"].negatives  # same id P0
    assert source.groups["m2"]["en"].positive not in mined.groups["m1"]["en"].negatives  # same query
    assert stats.skipped["identity"] == 4  # g0/de <-> dup (both P0), m1 <-> m2 (one query)
    assert stats.short == 9 + 2  # every German pair (9 passages: at most 8 candidates), m1 and m2


def test_negatives_come_from_existing_negatives_too(model):
    source = PairGroups("s", {
        "a": {"en": Pair("a", "en", "what city", "the city", negative="the river", negative_id="N1")},
        "b": {"en": Pair("b", "en", "what war", "the war")},
    })  # fmt: skip
    mined, _ = mine_negatives(source, model, k=2, relative_margin=None)
    assert set(mined.groups["b"]["en"].negatives) == {"the city", "the river"}
    assert dict(zip(mined.groups["b"]["en"].negatives, mined.groups["b"]["en"].negative_ids))["the river"] == "N1"
    assert set(mined.groups["a"]["en"].negatives) == {"the river", "the war"}


def _reference(
    source: PairGroups,
    model,
    pair: Pair,
    k: int,
    *,
    relative_margin=None,
    absolute_margin=None,
    max_score=None,
    min_score=None,
    range_min=0,
    range_max=100,
) -> list[str]:
    """Brute force of the documented rules for one pair (sentence-transformers' order of filters)."""
    pool = sorted({p.positive for by in source.groups.values() for p in by.values() if p.lang == pair.lang})
    pool = [t for t in pool if t not in gold_texts(source, pair)]
    q = encode(model, [pair.query], kind="query")[0]
    pos = float(q @ encode(model, [pair.positive], kind="passage")[0])
    scores = encode(model, pool, kind="passage") @ q
    ranked = sorted(zip(pool, scores.tolist()), key=lambda x: -x[1])[:range_max]
    keep = []
    for text, s in ranked:
        if absolute_margin is not None and s + absolute_margin > pos:
            continue
        if relative_margin is not None and s > pos - abs(pos) * relative_margin:
            continue
        if (max_score is not None and s > max_score) or (min_score is not None and s < min_score):
            continue
        keep.append((text, s))
    return keep[range_min : range_min + k]


def assert_same_choice(got: Sequence[str], expected: list[tuple[str, float]], model, query: str) -> None:
    """Same negatives as the brute force, up to exact ties (the capitalised twin scores like its original)."""
    scores = (encode(model, list(got), kind="passage") @ encode(model, [query], kind="query")[0]).tolist() if got else []
    assert scores == pytest.approx([s for _, s in expected], abs=1e-5)
    for text, (ref_text, _) in zip(got, expected):
        assert text == ref_text or text.lower() == ref_text.lower()


def test_guard_skips_a_near_duplicate_and_follows_st_margins(model):
    source = parallel_source()
    pair = source.groups["g0"]["en"]
    # a copy of g0's English positive in capitals under another id (the tokenizer lowercases): a false negative
    twin = Pair("twin", "en", "what school", pair.positive.upper(), positive_id="T")
    source.groups["twin"] = {"en": twin}
    q = encode(model, [pair.query], kind="query")[0]
    pos = float(q @ encode(model, [pair.positive], kind="passage")[0])
    others = [p.positive for by in source.groups.values() for p in by.values()
              if p.lang == "en" and p.group not in ("g0", "twin")]  # fmt: skip
    twin_score = float(q @ encode(model, [twin.positive], kind="passage")[0])
    best_other = float(max(encode(model, others, kind="passage") @ q))
    assert twin_score > best_other  # the twin is the hardest candidate
    unguarded, _ = mine_negatives(source, model, k=3, relative_margin=None, range_max=30)
    assert unguarded.groups["g0"]["en"].negatives[0] == twin.positive
    # a margin whose threshold lies between the twin and the next candidate
    threshold = (twin_score + best_other) / 2
    margin = (pos - threshold) / abs(pos)
    guarded, stats = mine_negatives(source, model, k=3, relative_margin=margin, range_max=30, keep_short=True)
    got = guarded.groups["g0"]["en"].negatives
    assert twin.positive not in got and len(got) == 3
    assert stats.skipped["relative_margin"] >= 1
    assert_same_choice(got, _reference(source, model, pair, 3, relative_margin=margin, range_max=30), model, pair.query)
    # the other rules and range_min against the brute force, for every English pair
    for rules in ({"absolute_margin": (pos - threshold)}, {"max_score": threshold, "range_min": 1},
                  {"min_score": best_other - 0.01, "relative_margin": margin}):  # fmt: skip
        mined, _ = mine_negatives(source, model, k=2, range_max=30, keep_short=True,
                                  **{"relative_margin": None, **rules})  # fmt: skip
        for gid, by_lang in source.groups.items():
            if "en" in by_lang:
                expected = _reference(source, model, by_lang["en"], 2, range_max=30, **rules)
                got = mined.groups.get(gid, {}).get("en")
                assert_same_choice(got.negatives if got else (), expected, model, by_lang["en"].query)


def test_short_pairs_are_dropped_or_kept_and_ranges_checked(model):
    source = parallel_source()
    mined, stats = mine_negatives(source, model, k=6, relative_margin=None, range_max=10)
    # German: 9 passages, dup and g0 share P0, so g0/de and dup/de have 9 - 2 = 7 candidates: all get 6
    # English: 10 passages; m1/m2 exclude each other: 8 candidates; all get 6
    assert stats.short == 0
    mined, stats = mine_negatives(source, model, k=8, relative_margin=None, range_max=10)
    assert stats.short == stats.dropped > 0 and stats.written == stats.pairs - stats.short
    assert all(len(p.negatives) == 8 for by in mined.groups.values() for p in by.values())
    kept, stats2 = mine_negatives(source, model, k=8, relative_margin=None, range_max=10, keep_short=True)
    assert stats2.written == stats2.pairs and stats2.dropped == 0
    assert min(len(p.negatives) for by in kept.groups.values() for p in by.values()) < 8
    with pytest.raises(ValueError, match="range_min"):
        mine_negatives(source, model, k=2, range_min=5, range_max=5)
    with pytest.raises(ValueError, match="cannot mine 4 negatives"):
        mine_negatives(source, model, k=4, range_max=3)
    with pytest.raises(ValueError, match="k .* must be >= 1"):
        mine_negatives(source, model, k=0)


def test_mined_jsonl_round_trips(model, tmp_path):
    source = parallel_source()
    mined, _ = mine_negatives(source, model, k=3, relative_margin=None)
    path = tmp_path / "mined.jsonl"
    assert write_mined_jsonl(path, mined) == 19
    back = load_pairs(str(path))
    for gid, by_lang in mined.groups.items():
        for lang, pair in by_lang.items():
            got = back.groups[gid][lang]
            assert (got.query, got.positive, got.positive_id, got.negatives, got.negative_ids) == (
                pair.query,
                pair.positive,
                pair.positive_id,
                pair.negatives,
                pair.negative_ids,
            )
    row = json.loads(path.read_text().splitlines()[0])
    assert set(row) == {"id", "lang", "query", "positive", "positive_id", "negative", "negative_id"}
    assert isinstance(row["negative"], list) and len(row["negative"]) == len(row["negative_id"]) == 3
    assert not list(tmp_path.glob(".mined.jsonl.*"))  # written through a temp name


def test_pair_normalises_negatives():
    assert Pair("g", "en", "q", "p", negative=["a"], negative_id=["A"]).negative == "a"
    two = Pair("g", "en", "q", "p", negative=["a", "b"])
    assert two.negative == ("a", "b") and two.negatives == ("a", "b") and two.negative_ids == (None, None)
    assert Pair("g", "en", "q", "p", negative=[]).negative is None
    assert Pair("g", "en", "q", "p", negative="a", negative_id="A").negative_ids == ("A",)
    with pytest.raises(ValueError, match="2 negatives but 1 negative ids"):
        Pair("g", "en", "q", "p", negative=("a", "b"), negative_id=("A",))


GOOD = {"id": "g1", "lang": "en", "query": "q", "positive": "p"}


@pytest.fixture()
def _cache(tmp_path, monkeypatch):
    """load_pairs builds the file's pair store: in the test's own cache."""
    monkeypatch.setenv("POLYRET_CACHE_DIR", str(tmp_path / "cache"))


@pytest.mark.parametrize(
    "extra, pattern",
    [
        ({"positive": ["p", "p2"]}, r"m\.jsonl:2 \(id 'g1'\): 'positive' must be a string, got list"),
        ({"query": 7}, r"m\.jsonl:2 \(id 'g1'\): 'query' must be a string, got int"),
        ({"negative": ["a", 3]}, r"m\.jsonl:2 \(id 'g1'\): 'negative'\[1\] must be a non-empty string"),
        ({"negative": ["a", " "]}, r"m\.jsonl:2 .*'negative'\[1\] must be a non-empty string"),
        ({"negative": ["a", "b"], "negative_id": ["A"]}, r"m\.jsonl:2 .*'negative_id' must be a list of 2 ids .*got a list of 1"),
        ({"negative": ["a", "b"], "negative_id": "A"}, r"m\.jsonl:2 .*'negative_id' must be a list of 2 ids .*got str"),
        ({"negative": "a", "negative_id": ["A"]}, r"m\.jsonl:2 .*'negative' is one string, so 'negative_id' must be one id"),
        ({"negative_id": "A"}, r"m\.jsonl:2 .*'negative_id' given without a 'negative'"),
        ({"negative": ["a"], "negative_id": [{"x": 1}]}, r"m\.jsonl:2 .*'negative_id\[0\]' must be a non-empty string"),
        ({"positive_id": ["P"]}, r"m\.jsonl:2 .*'positive_id' must be a non-empty string, an integer or null"),
        ({"negative": {"a": 1}}, r"m\.jsonl:2 .*'negative' must be a non-empty string, a list of them, or absent"),
    ],
)
def test_malformed_negative_fields_name_file_and_line(tmp_path, extra, pattern, _cache):
    path = tmp_path / "m.jsonl"
    path.write_text(json.dumps({**GOOD, "id": "g0"}) + "\n" + json.dumps({**GOOD, **extra}) + "\n")
    with pytest.raises(DataError, match=pattern):
        load_pairs(str(path))


def test_jsonl_ids_and_list_negatives_load(tmp_path, _cache):
    path = tmp_path / "ok.jsonl"
    rows = [{**GOOD, "positive_id": 12, "negative": ["a", "b"], "negative_id": ["A", None]},
            {**GOOD, "id": "g2", "positive_id": None, "negative": "c", "negative_id": 5},
            {**GOOD, "id": "g3", "negative": [], "negative_id": []}]  # fmt: skip
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    pairs = load_pairs(str(path))
    p1, p2, p3 = (pairs.groups[g]["en"] for g in ("g1", "g2", "g3"))
    assert (p1.positive_id, p1.negatives, p1.negative_ids) == ("12", ("a", "b"), ("A", None))
    assert (p2.positive_id, p2.negative, p2.negative_id) == (None, "c", "5")
    assert p3.negative is None and p3.negatives == ()


def test_mine_command_writes_jsonl_and_stats(tiny_model_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("POLYRET_CACHE_DIR", str(tmp_path / "cache"))
    src = tmp_path / "src.jsonl"
    write_mined_jsonl(src, parallel_source())
    out = tmp_path / "mined.jsonl"
    args = ["mine", "--train", str(src), "--model", tiny_model_dir, "--k", "2", "--output", str(out),
            "--languages", "de", "--no-relative-margin"]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "--set negatives=2" in result.output
    mined = load_pairs(str(out))
    assert mined.languages == ("de",) and all(len(p.negatives) == 2 for by in mined.groups.values() for p in by.values())
    stats = json.loads(stats_path(out).read_text())
    assert stats["pairs"] == 9 and stats["written"] == 9 and stats["settings"]["train"] == str(src)
    assert list((tmp_path / "cache" / "embeddings").glob("*/shard-*.npz"))  # polyret's embedding cache


@pytest.mark.parametrize(
    "args, needle",
    [
        (["--train", "nope.jsonl"], "nope.jsonl"),
        (["--k", "0"], "k (negatives per pair) must be >= 1"),
        (["--range-min", "3", "--range-max", "3"], "range_min (3) must be smaller than range_max (3)"),
        (["--languages", "xx"], "(training pairs) has no language xx"),
    ],
)
def test_mine_command_user_errors_exit_2(tiny_model_dir, tmp_path, args, needle):
    src = tmp_path / "src.jsonl"
    write_mined_jsonl(src, parallel_source())
    base = {"--train": str(src), "--model": tiny_model_dir, "--output": str(tmp_path / "o.jsonl")}
    for i in range(0, len(args), 2):
        base[args[i]] = args[i + 1]
    result = CliRunner().invoke(app, ["mine", *[x for kv in base.items() for x in kv], "--no-cache"])
    assert result.exit_code == 2, result.output
    assert needle in " ".join(result.output.split()) and "Traceback" not in result.output
    assert not (tmp_path / "o.jsonl").exists()


def test_mine_command_unwritable_output_exits_2(tiny_model_dir, tmp_path):
    src = tmp_path / "src.jsonl"
    write_mined_jsonl(src, parallel_source())
    (tmp_path / "adir").mkdir()
    args = ["mine", "--train", str(src), "--model", tiny_model_dir, "--output", str(tmp_path / "adir"), "--k", "1",
            "--no-relative-margin", "--no-cache"]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2, result.output
    assert "adir" in result.output and "Traceback" not in result.output
    assert (tmp_path / "adir").is_dir() and not list((tmp_path / "adir").iterdir())


def test_mine_refuses_an_unusable_output_before_the_model_loads(tmp_path, monkeypatch):
    import polyret.models
    from polyret.training.mining import mine

    monkeypatch.setattr(polyret.models, "load", lambda *a, **k: (_ for _ in ()).throw(AssertionError("loaded")))
    src = tmp_path / "src.jsonl"
    write_mined_jsonl(src, parallel_source())
    (tmp_path / "a-file").write_text("x")
    with pytest.raises(ValueError, match="a-file exists and is not a folder"):
        mine(str(src), tmp_path / "a-file" / "mined.jsonl", model="some/model", k=1)
    (tmp_path / "adir").mkdir()
    with pytest.raises(ValueError, match="adir is a folder"):
        mine(str(src), tmp_path / "adir", model="some/model", k=1)
