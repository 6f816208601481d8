import pytest

from polyret.data.records import Benchmark, Candidate, Query
from polyret.evaluation.settings import Setting, parse_setting, settings_for


def bench(langs=("en", "de", "fr"), families=("mono", "cross", "multi")):
    queries = [Query(f"q{i}", lang, "") for lang in langs for i in range(2)]
    cands = [Candidate(f"{lang}{i}", lang, "") for lang in langs for i in range(3)]
    qrels = {f"q{i}": {f"{lang}{i}": 1 for lang in langs} for i in range(2)}
    return Benchmark("toy", tuple(langs), queries, cands, qrels, families=families)


def test_counts_and_names():
    settings = settings_for(bench())
    names = [s.name for s in settings]
    assert names[:3] == ["mono:en", "mono:de", "mono:fr"]
    assert sum(s.family == "cross" for s in settings) == 6
    assert "cross:de-en" in names and "cross:en-en" not in names
    multi = [s for s in settings if s.family == "multi"]
    assert [s.name for s in multi] == ["multi:en", "multi:de", "multi:fr"]
    assert all(s.pool_langs == ("en", "de", "fr") for s in multi)


def test_eleven_languages_like_xquad_r():
    langs = ("ar", "de", "el", "en", "es", "hi", "ru", "th", "tr", "vi", "zh")
    settings = settings_for(bench(langs))
    fams = [s.family for s in settings]
    assert (fams.count("mono"), fams.count("cross"), fams.count("multi")) == (11, 110, 11)


def test_families_respect_benchmark():
    b = bench(families=("mono",))
    assert {s.family for s in settings_for(b)} == {"mono"}
    with pytest.raises(ValueError, match="not evaluated"):
        settings_for(b, families=["cross"])
    with pytest.raises(ValueError, match="unknown setting family"):
        settings_for(bench(), families=["bogus"])


def test_language_subset_restricts_queries_and_pools():
    settings = settings_for(bench(), families=["cross", "multi"], languages=["de", "en"])
    assert [s.name for s in settings] == ["cross:en-de", "cross:de-en", "multi:en", "multi:de"]
    assert settings[-1].pool_langs == ("en", "de")
    with pytest.raises(ValueError, match=r"benchmark '.*' has no language xx; it has "):
        settings_for(bench(), languages=["xx"])


def test_language_without_candidates_is_skipped():
    b = bench()
    b.candidates = [c for c in b.candidates if c.lang != "fr"]
    names = [s.name for s in settings_for(b)]
    assert "mono:fr" not in names and "cross:en-fr" not in names and "cross:fr-en" in names
    assert settings_for(b)[-1].pool_langs == ("en", "de")


def test_parse_roundtrip_and_errors():
    for s in settings_for(bench()):
        assert parse_setting(s.name, ("en", "de", "fr")) == s
    for bad in ("mono", "cross:de", "cross:de-de", "foo:de"):
        with pytest.raises(ValueError):
            parse_setting(bad, ("de",))
    with pytest.raises(ValueError):
        Setting("mono", "de", ())
