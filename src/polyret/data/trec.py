"""TREC text formats: topics (``qid<TAB>text``), qrels (``qid Q0 docid rel``) and runs.

The one reader of these files: MIRACL's loader uses it, and so can an external run or qrels file.
Every malformed line is a ``DataError`` naming ``file:line``; blank lines are skipped; gzip by suffix.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

from polyret.data.lines import numbered_lines
from polyret.data.records import DataError

__all__ = ["RunLine", "read_qrels", "read_run", "read_topics"]


def read_topics(path: str | os.PathLike) -> dict[str, str]:
    """``qid -> query text`` from a ``qid<TAB>query`` file.

    Args:
        path: the topics file.

    Raises:
        DataError: a line without exactly one tab or with an empty field, a duplicate query id, no topics.
    """
    path = Path(path)
    topics: dict[str, str] = {}
    for lineno, line in numbered_lines(path):
        if not line.strip():
            continue
        parts = line.split("\t")
        if len(parts) != 2 or not parts[0].strip() or not parts[1].strip():
            raise DataError(f"{path}:{lineno}: expected 'qid<TAB>query', got {line[:80]!r}")
        qid = parts[0].strip()
        if qid in topics:
            raise DataError(f"{path}:{lineno}: duplicate query id {qid!r}")
        topics[qid] = parts[1].strip()
    if not topics:
        raise DataError(f"{path}: no topics (empty file)")
    return topics


def read_qrels(path: str | os.PathLike, *, keep_zero: bool = False) -> dict[str, dict[str, int]]:
    """``qid -> {docid: rel}`` from a TREC qrels file (``qid Q0 docid rel``).

    Args:
        path: the qrels file.
        keep_zero: also keep judgements with ``rel <= 0`` (by default only relevant ones, ``rel > 0``;
            the others are still validated).

    Raises:
        DataError: a line without four fields, a non-integer relevance, no judgements at all.
    """
    path = Path(path)
    qrels: dict[str, dict[str, int]] = {}
    n_lines = 0
    for lineno, line in numbered_lines(path):
        if not line.strip():
            continue
        n_lines += 1
        parts = line.split()
        if len(parts) != 4:
            raise DataError(f"{path}:{lineno}: expected 'qid Q0 docid rel', got {line[:80]!r}")
        qid, _, docid, rel_text = parts
        try:
            rel = int(rel_text)
        except ValueError as exc:
            raise DataError(f"{path}:{lineno}: relevance {rel_text!r} is not an integer") from exc
        if rel > 0 or keep_zero:
            qrels.setdefault(qid, {})[docid] = rel
    if n_lines == 0:
        raise DataError(f"{path}: no judgements (empty file)")
    return qrels


@dataclass(frozen=True)
class RunLine:
    """One line of a TREC run.

    Args:
        qid: the query id.
        docid: the retrieved document id.
        rank: the rank the run gives it (1 = first).
        score: the run's score.
        tag: the run's name (last column).
    """

    qid: str
    docid: str
    rank: int
    score: float
    tag: str


def read_run(path: str | os.PathLike) -> dict[str, list[RunLine]]:
    """``qid -> lines`` of a TREC run (``qid Q0 docid rank score tag``), each query's lines in file order.

    Args:
        path: the run file.

    Raises:
        DataError: a line without six fields, a non-integer rank (or < 1), a non-finite score, the same
            docid twice for one query, no lines at all.
    """
    path = Path(path)
    run: dict[str, list[RunLine]] = {}
    seen: set[tuple[str, str]] = set()
    for lineno, line in numbered_lines(path):
        if not line.strip():
            continue
        parts = line.split()
        if len(parts) != 6:
            raise DataError(f"{path}:{lineno}: expected 'qid Q0 docid rank score tag', got {line[:80]!r}")
        qid, _, docid, rank_text, score_text, tag = parts
        try:
            rank = int(rank_text)
        except ValueError as exc:
            raise DataError(f"{path}:{lineno}: rank {rank_text!r} is not an integer") from exc
        if rank < 1:
            raise DataError(f"{path}:{lineno}: rank {rank} must be >= 1")
        try:
            score = float(score_text)
        except ValueError as exc:
            raise DataError(f"{path}:{lineno}: score {score_text!r} is not a number") from exc
        if not math.isfinite(score):
            raise DataError(f"{path}:{lineno}: score {score_text!r} is not finite")
        if (qid, docid) in seen:
            raise DataError(f"{path}:{lineno}: docid {docid!r} listed twice for query {qid!r}")
        seen.add((qid, docid))
        run.setdefault(qid, []).append(RunLine(qid, docid, rank, score, tag))
    if not run:
        raise DataError(f"{path}: no run lines (empty file)")
    return run
