"""The shared TREC readers: topics, qrels, runs; every malformed line names file:line."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest

from polyret.data import DataError, read_qrels, read_run, read_topics
from polyret.data.trec import RunLine


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_topics_and_qrels_values(tmp_path):
    topics = read_topics(_write(tmp_path / "t.tsv", "1\twhat is a cat\n\n2\t  a dog  \n"))
    assert topics == {"1": "what is a cat", "2": "a dog"}
    path = _write(tmp_path / "q.tsv", "1 Q0 d1 1\n1 Q0 d2 0\n2 Q0 d3 2\n2 Q0 d4 -1\n")
    assert read_qrels(path) == {"1": {"d1": 1}, "2": {"d3": 2}}
    assert read_qrels(path, keep_zero=True) == {"1": {"d1": 1, "d2": 0}, "2": {"d3": 2, "d4": -1}}
    gz = tmp_path / "q.tsv.gz"
    gz.write_bytes(gzip.compress(path.read_bytes()))
    assert read_qrels(gz) == {"1": {"d1": 1}, "2": {"d3": 2}}


@pytest.mark.parametrize(
    "reader, text, message",
    [
        (read_topics, "1\tok\n2 no tab\n", r"t\.tsv:2: expected 'qid<TAB>query'"),
        (read_topics, "1\tok\n1\tagain\n", r"t\.tsv:2: duplicate query id '1'"),
        (read_topics, "\n\n", r"t\.tsv: no topics \(empty file\)"),
        (read_qrels, "1 Q0 d1 1\n1 Q0 d2\n", r"t\.tsv:2: expected 'qid Q0 docid rel'"),
        (read_qrels, "1 Q0 d1 yes\n", r"t\.tsv:1: relevance 'yes' is not an integer"),
        (read_qrels, "", r"t\.tsv: no judgements \(empty file\)"),
        (read_run, "1 Q0 d1 1 0.5 r\n1 Q0 d2 2 0.4\n", r"t\.tsv:2: expected 'qid Q0 docid rank score tag'"),
        (read_run, "1 Q0 d1 one 0.5 r\n", r"t\.tsv:1: rank 'one' is not an integer"),
        (read_run, "1 Q0 d1 0 0.5 r\n", r"t\.tsv:1: rank 0 must be >= 1"),
        (read_run, "1 Q0 d1 1 high r\n", r"t\.tsv:1: score 'high' is not a number"),
        (read_run, "1 Q0 d1 1 nan r\n", r"t\.tsv:1: score 'nan' is not finite"),
        (read_run, "1 Q0 d1 1 0.5 r\n1 Q0 d1 2 0.4 r\n", r"t\.tsv:2: docid 'd1' listed twice for query '1'"),
        (read_run, "\n", r"t\.tsv: no run lines \(empty file\)"),
    ],
)
def test_malformed_lines_name_file_and_line(tmp_path, reader, text, message):
    with pytest.raises(DataError, match=message):
        reader(_write(tmp_path / "t.tsv", text))


def test_missing_file_is_a_data_error(tmp_path):
    with pytest.raises(DataError, match=r"nope\.tsv: no such file"):
        read_qrels(tmp_path / "nope.tsv")


def test_run_lines_keep_file_order_per_query(tmp_path):
    run = read_run(_write(tmp_path / "r.trec", "q1 Q0 a 1 2.5 sys\nq2 Q0 b 1 1 sys\nq1 Q0 c 2 -0.5 sys\n"))
    assert run == {
        "q1": [RunLine("q1", "a", 1, 2.5, "sys"), RunLine("q1", "c", 2, -0.5, "sys")],
        "q2": [RunLine("q2", "b", 1, 1.0, "sys")],
    }
