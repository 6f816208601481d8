"""Strict TREC run reading: every malformed run file is refused with its file and line.

The file-level kinds are checked by ``read_run_table``; the kinds that need the benchmark (unknown
query or docid, a candidate outside its setting's pool, ...) by ``score_run``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from polyret.data.records import Benchmark, Candidate, DataError, Query
from polyret.data.trec import read_run, read_run_table, write_run
from polyret.evaluation.external_runs import score_run


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def _bench() -> Benchmark:
    queries = [Query(f"q{i}", lang, f"question {i}") for i in range(2) for lang in ("de", "en")]
    cands = [Candidate(f"{lang}:{i}", lang, f"answer {i}") for i in range(2) for lang in ("de", "en")]
    qrels = {f"q{i}": {f"de:{i}": 1, f"en:{i}": 1} for i in range(2)}
    return Benchmark("tiny2", ("de", "en"), queries, cands, qrels)


GOOD = "q0@de Q0 de:0 1 0.9 sys\nq0@de Q0 en:0 2 0.5 sys\n"

FILE_KINDS = [
    ("five columns", GOOD + "q1@de Q0 de:1 1 0.5\n", r"r\.trec:3: expected 'qid Q0 docid rank score tag' \(6 fields\), got 5"),
    ("seven columns", "q0@de Q0 de:0 1 0.9 sys extra\n", r"r\.trec:1: expected .* \(6 fields\), got 7"),
    ("second column", "q0@de X de:0 1 0.9 sys\n", r"r\.trec:1: second column must be 'Q0' \(or 0\), got 'X'"),
    ("rank not an integer", GOOD + "q1@de Q0 de:1 1.5 0.9 sys\n", r"r\.trec:3: rank '1\.5' is not an integer"),
    ("rank zero", "q0@de Q0 de:0 0 0.9 sys\n", r"r\.trec:1: rank 0 must be >= 1"),
    ("negative rank", "q0@de Q0 de:0 -2 0.9 sys\n", r"r\.trec:1: rank -2 must be >= 1"),
    ("score not a number", "q0@de Q0 de:0 1 high sys\n", r"r\.trec:1: score 'high' is not a number"),
    ("score infinite", "q0@de Q0 de:0 1 inf sys\n", r"r\.trec:1: score 'inf' is not finite"),
    ("score nan", "q0@de Q0 de:0 1 nan sys\n", r"r\.trec:1: score 'nan' is not finite"),
    ("two tags", GOOD + "q1@de Q0 de:1 1 0.9 other\n", r"r\.trec:3: run tag 'other' differs from 'sys'"),
    (
        "duplicate docid",
        GOOD + "q1@de Q0 de:1 1 0.9 sys\nq0@de Q0 de:0 3 0.1 sys\n",
        r"r\.trec:4: docid 'de:0' listed twice for query 'q0@de'",
    ),
    ("duplicate rank", GOOD + "q0@de Q0 de:1 2 0.4 sys\n", r"r\.trec:3: rank 2 given twice for query 'q0@de'"),
    (
        "ranks against scores",
        "q0@de Q0 de:0 1 0.5 sys\nq0@de Q0 en:0 2 0.9 sys\n",
        r"r\.trec:2: ranks contradict scores for query 'q0@de': rank 2 scores 0\.9 > rank 1's 0\.5",
    ),
    ("empty file", "\n\n", r"r\.trec: no run lines \(empty file\)"),
]


@pytest.mark.parametrize("kind, text, message", FILE_KINDS, ids=[k[0] for k in FILE_KINDS])
def test_malformed_run_files_are_refused_with_file_and_line(tmp_path, kind, text, message):
    path = _write(tmp_path / "r.trec", text)
    with pytest.raises(DataError, match=message):
        read_run_table(path)
    with pytest.raises(DataError, match=message):  # the object-per-line reader applies the same checks
        read_run(path)


def test_undecodable_and_missing_files_name_the_file(tmp_path):
    path = tmp_path / "r.trec"
    path.write_bytes(b"q0@de Q0 de:0 1 0.9 sys\nq0@de Q0 \xff 2 0.5 sys\n")
    with pytest.raises(DataError, match=r"r\.trec:2: not UTF-8"):
        read_run_table(path)
    with pytest.raises(DataError, match=r"nope\.trec: no such file"):
        read_run_table(tmp_path / "nope.trec")


BENCH_KINDS = [
    ("unknown query id", GOOD + "q9@de Q0 de:1 1 0.9 sys\n", r"r\.trec:3: unknown query 'q9' in language 'de'"),
    ("unknown plain query id", "q9 Q0 de:1 1 0.9 sys\n", r"r\.trec:1: unknown query id 'q9'"),
    ("ambiguous query id", "q0 Q0 de:1 1 0.9 sys\n", r"r\.trec:1: query id 'q0' is ambiguous .* write it as 'q0@<lang>'"),
    ("unknown docid", GOOD + "q1@en Q0 fr:1 1 0.9 sys\n", r"r\.trec:3: unknown docid 'fr:1'"),
    (
        "mixed qid forms",
        GOOD + "mono:en/q1@en Q0 en:1 1 0.9 sys\n",
        r"r\.trec:3: query id 'mono:en/q1@en' is written unlike the lines before it",
    ),
    (
        "unknown setting",
        "multi:xx/q0@de Q0 de:0 1 0.9 sys\n",
        r"r\.trec:1: 'multi:xx' is not a setting of benchmark 'tiny2'",
    ),
    (
        "setting of another query language",
        "mono:de/q0@en Q0 de:0 1 0.9 sys\n",
        r"r\.trec:1: query 'q0@en' is in language 'en', not the query language of 'mono:de'",
    ),
    (
        "candidate outside the setting's pool",
        "mono:de/q0@de Q0 de:0 1 0.9 sys\nmono:de/q0@de Q0 en:0 2 0.5 sys\n",
        r"r\.trec:2: docid 'en:0' \(en\) is not in the pool of mono:de",
    ),
]


@pytest.mark.parametrize("kind, text, message", BENCH_KINDS, ids=[k[0] for k in BENCH_KINDS])
def test_runs_that_do_not_fit_the_benchmark_are_refused_with_file_and_line(tmp_path, kind, text, message):
    path = _write(tmp_path / "r.trec", text)
    with pytest.raises(DataError, match=message):
        score_run(path, _bench(), measures=["map"])


def test_a_query_written_twice_in_one_run_is_refused(tmp_path):
    bench = Benchmark("one", ("de",), [Query("q0", "de", "x")], [Candidate("d0", "de", "y")], {"q0": {"d0": 1}})
    path = _write(tmp_path / "r.trec", "q0 Q0 d0 1 0.9 sys\nq0@de Q0 d0 1 0.9 sys\n")
    with pytest.raises(DataError, match=r"r\.trec:2: query id 'q0@de' names the same query as 'q0'"):
        score_run(path, bench, measures=["map"])


def test_columns_round_trip_through_write_run(tmp_path):
    text = "b Q0 x 1 2.5 sys\na Q0 y 1 1 sys\nb Q0 z 3 -0.5 sys\n"
    run = read_run_table(_write(tmp_path / "r.trec", text))
    assert run.qids.tolist() == ["b", "a"] and run.query.tolist() == [0, 1, 0]
    assert run.rank.tolist() == [1, 1, 3] and run.line.tolist() == [1, 2, 3] and run.tag == "sys"
    assert run.query.dtype == np.int32 and run.score.dtype == np.float64
    assert write_run(run, tmp_path / "copy.trec") == 3
    again = read_run_table(tmp_path / "copy.trec")
    assert again.docid.tolist() == ["x", "z", "y"] and again.rank.tolist() == [1, 3, 1]
    assert np.array_equal(again.score, [2.5, -0.5, 1.0])
