"""Benchmark ids, language checks, and downloads (fake fetchers only: nothing touches the network)."""

from __future__ import annotations

import gzip
import io
import shutil
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from polyret.data import BENCHMARKS, DataError, DownloadError, benchmark_info, list_benchmarks, load_benchmark
from polyret.data.download import default_fetch, ensure_file, miracl_corpus_file, sha256_of, xquad_r_file
from polyret.data.registry import CHECKSUMS, MLQA_R_COMMIT, mlqa_r_file, remote_file

SHARED = Path(__file__).resolve().parents[3] / "shared" / "data"
needs_xquad = pytest.mark.skipif(not (SHARED / "xquad-r" / "en.json").is_file(), reason="shared XQuAD-R absent")


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    path = tmp_path / "cache"
    monkeypatch.setenv("POLYRET_CACHE_DIR", str(path))
    return path


@pytest.fixture
def empty_data(tmp_path) -> Path:
    path = tmp_path / "data"
    path.mkdir()
    return path


def test_list_benchmarks_and_info():
    ids = list_benchmarks()
    for bid in ("xquad-r", "xquad-r:train", "xquad-r:test", "mlqa-r", "mlqa-r:train", "mlqa-r:test", "miracl/de", "miracl/yo"):
        assert bid in ids
    assert len(ids) == 6 + 18 and len(set(ids)) == len(ids)
    assert benchmark_info("mlqa-r:test").languages == ("ar", "de", "en", "es", "hi", "vi", "zh")
    assert benchmark_info("miracl/th").families == ("mono",)
    assert benchmark_info("xquad-r").families == ("mono", "cross", "multi")


def test_unknown_id_and_language_errors(cache, empty_data):
    with pytest.raises(DataError, match=r"unknown benchmark 'xquad'; known: xquad-r; xquad-r:train.*miracl/<lang> for ar, bn"):
        load_benchmark("xquad", data_dir=empty_data)
    with pytest.raises(DataError, match=r"unknown benchmark 'xquad-r:dev'"):
        load_benchmark("xquad-r:dev", data_dir=empty_data)
    with pytest.raises(DataError, match=r"xquad-r:test has no language ja, fr; it has ar, de"):
        load_benchmark("xquad-r:test", data_dir=empty_data, languages=["en", "ja", "fr"])
    with pytest.raises(DataError, match=r"miracl/de has no language en; it has de"):
        load_benchmark("miracl/de", data_dir=empty_data, languages=["en"])
    with pytest.raises(DataError, match=r"the language list is empty; name at least one of"):
        load_benchmark("mlqa-r", data_dir=empty_data, languages=[])


@needs_xquad
def test_load_benchmark_from_shared_data(cache):
    bench = load_benchmark("xquad-r", data_dir=SHARED, languages=["zh", "en"], download=False)
    assert bench.id == "xquad-r" and bench.languages == ("en", "zh")
    assert len(bench.queries) == 2 * 1190 and len(bench.candidates) == 1180 + 1196


@needs_xquad
def test_missing_file_is_downloaded_once_into_the_cache(cache, empty_data):
    calls: list[str] = []

    def fake_fetch(url: str, dest: Path) -> None:
        calls.append(url)
        shutil.copy(SHARED / "xquad-r" / url.rsplit("/", 1)[1], dest)

    bench = load_benchmark("xquad-r", data_dir=empty_data, languages=["en"], fetch=fake_fetch)
    assert calls == ["https://raw.githubusercontent.com/google-research-datasets/lareqa/master/xquad-r/en.json"]
    assert (cache / "data" / "xquad-r" / "en.json").read_bytes() == (SHARED / "xquad-r" / "en.json").read_bytes()
    assert len(bench.queries) == 1190
    load_benchmark("xquad-r", data_dir=empty_data, languages=["en"], fetch=fake_fetch)
    assert len(calls) == 1  # the cached copy is used
    # a file in the data dir wins over the cache
    assert ensure_file(xquad_r_file("en"), data_dir=SHARED, fetch=fake_fetch) == SHARED / "xquad-r" / "en.json"


def test_failed_download_leaves_no_file(cache, empty_data):
    def half_then_fail(url: str, dest: Path) -> None:
        dest.write_text('{"data": [', encoding="utf-8")
        raise ConnectionResetError("connection dropped")

    with pytest.raises(
        DownloadError,
        match=r"xquad-r/en\.json not found .*download from https://raw\.githubusercontent\.com/.*/xquad-r/en\.json failed \(ConnectionResetError: connection dropped\)",  # noqa: E501
    ):
        load_benchmark("xquad-r", data_dir=empty_data, languages=["en"], fetch=half_then_fail)
    folder = cache / "data" / "xquad-r"
    assert not (folder / "en.json").exists()
    assert not folder.exists() or list(folder.iterdir()) == []  # no temp file left behind either

    with pytest.raises(DownloadError, match="the download was empty"):
        ensure_file(xquad_r_file("de"), data_dir=empty_data, fetch=lambda url, dest: None)
    assert not (folder / "de.json").exists()


def test_offline_error_lists_paths_and_url(cache, empty_data, monkeypatch):
    def offline(*args, **kwargs):
        raise urllib.error.URLError("Temporary failure in name resolution")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    with pytest.raises(DownloadError) as err:
        load_benchmark("mlqa-r", data_dir=empty_data, languages=["de"])
    message = str(err.value)
    assert str(empty_data / "mlqa-r" / "de.json") in message
    assert str(cache / "data" / "mlqa-r" / "de.json") in message
    assert "lareqa/354d67d1cd066854cdfbf5ad0e6105528976141d/mlqa-r/de.json" in message
    assert "URLError" in message
    with pytest.raises(DownloadError, match="downloading is off"):
        load_benchmark("mlqa-r", data_dir=empty_data, languages=["de"], download=False)


def test_default_fetch_streams_the_response(cache, empty_data, monkeypatch):
    seen = {}

    def fake_urlopen(request, timeout):
        seen["url"], seen["timeout"] = request.full_url, timeout
        return io.BytesIO(b"qid\tquery\n")

    monkeypatch.setattr(urllib.request, "urlopen", fake_urlopen)
    dest = empty_data / "out.tsv"
    default_fetch("https://example.org/topics.tsv", dest)
    assert dest.read_bytes() == b"qid\tquery\n" and seen["url"] == "https://example.org/topics.tsv"


@pytest.mark.skipif(not (SHARED / "miracl" / "topics").is_dir(), reason="shared MIRACL absent")
def test_miracl_corpus_download_goes_through_the_hub_url(cache, tmp_path):
    data = tmp_path / "mdata"
    for kind in ("topics", "qrels"):
        name = f"{kind}.miracl-v1.0-yo-dev.tsv"
        (data / "miracl" / kind).mkdir(parents=True)
        shutil.copy(SHARED / "miracl" / kind / name, data / "miracl" / kind / name)
    urls = []

    def fake_fetch(url: str, dest: Path) -> None:
        urls.append(url)
        dest.write_bytes(gzip.compress(b'{"docid": "1#0", "title": "T", "text": "x"}\n'))

    bench = load_benchmark("miracl/yo", data_dir=data, fetch=fake_fetch)
    assert urls == ["hf://datasets/miracl/miracl-corpus/miracl-corpus-v1.0-yo/"]
    assert [c.id for c in bench.candidates] == ["1#0"] and len(bench.queries) == 119
    assert (cache / "data" / "miracl" / "corpus" / "yo.jsonl.gz").is_file()
    assert (
        miracl_corpus_file("yo").web_url == "https://huggingface.co/datasets/miracl/miracl-corpus/tree/main/miracl-corpus-v1.0-yo"
    )


# --------------------------------------------------------------------------------- checksums


@pytest.mark.skipif(not SHARED.is_dir(), reason="shared data absent")
def test_every_shared_data_file_has_a_matching_table_entry():
    files = sorted(p for p in SHARED.rglob("*") if p.is_file() and p.suffix in (".json", ".tsv"))
    assert len(files) == 11 + 2 * 18
    for path in files:
        rel = path.relative_to(SHARED).as_posix()
        entry = remote_file(rel)  # KeyError: a shared file the table does not know
        assert (entry.size, entry.sha256) == (path.stat().st_size, sha256_of(path)), rel
    assert set(CHECKSUMS) == {p.relative_to(SHARED).as_posix() for p in files}  # and nothing the folder lacks


def test_table_entries_carry_files_with_revisions():
    by_id = {info.id: info for info in BENCHMARKS}
    assert [f.relpath for f in by_id["xquad-r:test"].files] == [f"xquad-r/{lang}.json" for lang in by_id["xquad-r"].languages]
    assert {f.revision for f in by_id["mlqa-r"].files} == {MLQA_R_COMMIT}
    assert all(f.sha256 is None and f.size is None for f in by_id["mlqa-r"].files)  # no copy to take them from
    de = by_id["miracl/de"].files
    assert [f.relpath for f in de] == [
        "miracl/topics/topics.miracl-v1.0-de-dev.tsv",
        "miracl/qrels/qrels.miracl-v1.0-de-dev.tsv",
        "miracl/corpus/de.jsonl.gz",
    ]
    assert de[0].size == CHECKSUMS[de[0].relpath][0] and len(de[0].sha256) == 64
    assert xquad_r_file("en") == remote_file("xquad-r/en.json") and xquad_r_file("en").revision == "master"


@needs_xquad
@pytest.mark.parametrize("damage", ["size", "content"])
def test_a_download_that_differs_from_the_table_is_refused_and_not_cached(cache, empty_data, damage):
    good = (SHARED / "xquad-r" / "en.json").read_bytes()
    bad = good + b" " if damage == "size" else good.replace(b"Normans", b"Nxrmans", 1)
    assert len(bad) != len(good) if damage == "size" else (len(bad) == len(good) and bad != good)

    def moved_branch(url: str, dest: Path) -> None:
        dest.write_bytes(bad)

    expected = xquad_r_file("en")
    with pytest.raises(DownloadError) as err:
        load_benchmark("xquad-r", data_dir=empty_data, languages=["en"], fetch=moved_branch)
    message = str(err.value)
    assert "xquad-r/en.json" in message and "refused" in message
    if damage == "size":
        assert f"expected {expected.size} bytes" in message and f"got {len(bad)} bytes" in message
    else:
        import hashlib

        assert f"expected sha256 {expected.sha256}" in message
        assert f"got sha256 {hashlib.sha256(bad).hexdigest()}" in message
    folder = cache / "data" / "xquad-r"
    assert not folder.exists() or list(folder.iterdir()) == []  # neither the file nor a temp file
    # the right bytes are accepted afterwards
    bench = load_benchmark("xquad-r", data_dir=empty_data, languages=["en"], fetch=lambda url, dest: dest.write_bytes(good))
    assert len(bench.queries) == 1190 and (folder / "en.json").read_bytes() == good


def test_a_download_without_a_known_checksum_is_only_checked_for_being_there(cache, empty_data):
    assert mlqa_r_file("de").sha256 is None
    path = ensure_file(mlqa_r_file("de"), data_dir=empty_data, fetch=lambda url, dest: dest.write_bytes(b"{}"))
    assert path == cache / "data" / "mlqa-r" / "de.json" and path.read_bytes() == b"{}"


@needs_xquad
def test_a_local_file_that_differs_from_the_table_is_used_with_a_warning(cache, tmp_path, caplog):
    data = tmp_path / "local"
    (data / "xquad-r").mkdir(parents=True)
    good = (SHARED / "xquad-r" / "en.json").read_bytes()
    (data / "xquad-r" / "en.json").write_bytes(good.replace(b"Normans", b"Nxrmans", 1))
    with caplog.at_level("WARNING", logger="polyret.data.download"):
        path = ensure_file(xquad_r_file("en"), data_dir=data, download=False)
    assert path == data / "xquad-r" / "en.json"
    (msg,) = [r.getMessage() for r in caplog.records if r.name == "polyret.data.download"]
    assert str(path) in msg and f"expected sha256 {xquad_r_file('en').sha256}" in msg
    assert f"got sha256 {sha256_of(path)}" in msg
    caplog.clear()
    with caplog.at_level("WARNING", logger="polyret.data.download"):
        ensure_file(xquad_r_file("en"), data_dir=SHARED, download=False)  # the real file: silent
    assert [r for r in caplog.records if r.name == "polyret.data.download"] == []
