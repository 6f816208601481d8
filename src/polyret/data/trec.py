"""TREC text formats: topics (``qid<TAB>text``), qrels (``qid Q0 docid rel``) and runs.

The one reader of these files: MIRACL's loader uses it, and so can an external run or qrels file.
Every malformed line is a ``DataError`` naming ``file:line``; blank lines are skipped; gzip by suffix.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from polyret.data.lines import numbered_lines
from polyret.data.records import DataError

__all__ = ["RunLine", "TrecRun", "read_qrels", "read_run", "read_run_table", "read_topics", "trec_token", "write_run"]

_SPACE = re.compile(r"\s")


def trec_token(text: str) -> str:
    """``text`` as one whitespace-free TREC field: unchanged unless it holds whitespace, which (and ``%``)
    is then percent-encoded (``"x 319#1"`` -> ``"x%20319#1"``), so every run and qrels line keeps its
    fields. ``polyret score`` looks candidates up by this same token.

    Args:
        text: a query or document id.
    """
    if not _SPACE.search(text):
        return text
    return "".join(f"%{ord(ch):02X}" if ch == "%" or ch.isspace() else ch for ch in text)


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
        if len(qid.split()) != 1:
            raise DataError(f"{path}:{lineno}: query id {qid!r} contains whitespace; a TREC run line cannot hold it")
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


@dataclass(frozen=True)
class TrecRun:
    """A TREC run as columns: one entry per line, the query as an int code, never one object per line.

    Args:
        path: the file it was read from (named in every later error).
        qids: the distinct query ids, in order of first appearance.
        query: per line, int32 code into ``qids``.
        docid: per line, the document id (numpy str array).
        rank: per line, the int32 rank the run gives (>= 1).
        score: per line, the float64 score.
        line: per line, its int32 line number in the file.
        tag: the run's name (the last column, the same on every line).
    """

    path: str
    qids: np.ndarray
    query: np.ndarray
    docid: np.ndarray
    rank: np.ndarray
    score: np.ndarray
    line: np.ndarray
    tag: str

    def __len__(self) -> int:
        return len(self.query)

    def where(self, i: int) -> str:
        """``file:line`` of entry ``i``."""
        return f"{self.path}:{int(self.line[i])}"


_CHUNK = 1 << 16  # lines parsed into Python lists before they become numpy columns
_ZERO = ("Q0", "0")  # the second column: trec_eval ignores it; pyserini, Anserini and trec_eval's docs write Q0


def read_run_table(path: str | os.PathLike) -> TrecRun:
    """Read a TREC run (``qid Q0 docid rank score tag``) strictly into columns.

    A run file is one system's ranking per query. Every line is checked, and the first problem found
    raises a ``DataError`` naming ``file:line``. Ranks are what the run says (trec_eval re-sorts by
    score; polyret keeps the rank column, so a run may list deeper relevant documents at their true
    rank after a gap); they must agree with the scores. Blank lines are skipped; gzip by suffix.

    Args:
        path: the run file.

    Raises:
        DataError: a line without six fields; a second column other than ``Q0`` / ``0``; a rank that is
            not an integer or < 1; a score that is not a finite number; lines with different tags (two
            runs in one file); the same docid twice for one query; the same rank twice for one query;
            ranks that contradict the scores (a later rank with a higher score); no lines at all.
    """
    path = Path(path)
    qcode: dict[str, int] = {}  # one entry per distinct query: small
    chunks: list[tuple[np.ndarray, ...]] = []
    query: list[int] = []
    docs: list[str] = []
    ranks: list[int] = []
    scores: list[float] = []
    lines: list[int] = []
    tag: str | None = None

    def flush() -> None:  # the lines parsed so far become numpy columns: no Python object per line is kept
        if query:
            chunks.append((np.asarray(query, dtype=np.int32), np.asarray(docs, dtype=str), np.asarray(ranks, dtype=np.int32),
                           np.asarray(scores, dtype=np.float64), np.asarray(lines, dtype=np.int32)))  # fmt: skip
            for column in (query, docs, ranks, scores, lines):
                column.clear()

    for lineno, line in numbered_lines(path):
        if not line.strip():
            continue
        parts = line.split()
        if len(parts) != 6:
            raise DataError(
                f"{path}:{lineno}: expected 'qid Q0 docid rank score tag' (6 fields), got {len(parts)}: {line[:80]!r}"
            )
        qid, zero, docid, rank_text, score_text, line_tag = parts
        if zero not in _ZERO:
            raise DataError(f"{path}:{lineno}: second column must be 'Q0' (or 0), got {zero!r}: {line[:80]!r}")
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
        if tag is None:
            tag = line_tag
        elif line_tag != tag:
            raise DataError(
                f"{path}:{lineno}: run tag {line_tag!r} differs from {tag!r} on the first line "
                "(one run per file: split it, or fuse several runs with --fuse rrf)"
            )
        query.append(qcode.setdefault(qid, len(qcode)))
        docs.append(docid)
        ranks.append(rank)
        scores.append(score)
        lines.append(lineno)
        if len(query) >= _CHUNK:
            flush()
    flush()
    if not chunks:
        raise DataError(f"{path}: no run lines (empty file)")
    cols = [np.concatenate([c[i] for c in chunks]) for i in range(5)]
    run = TrecRun(
        path=str(path),
        qids=np.asarray(list(qcode), dtype=str),
        query=cols[0],
        docid=cols[1],
        rank=cols[2],
        score=cols[3],
        line=cols[4],
        tag=tag or "",
    )
    _check_groups(run)
    return run


def _first_bad(run: TrecRun, bad_later: np.ndarray, order: np.ndarray) -> int | None:
    """Index (into the run) of the earliest line flagged, where ``bad_later[j]`` flags ``order[j + 1]``."""
    hits = order[1:][bad_later]
    if not len(hits):
        return None
    # the line that repeats or contradicts an earlier one is the later of the two in the file
    partner = order[:-1][bad_later]
    later = np.where(run.line[hits] > run.line[partner], hits, partner)
    return int(later[np.argmin(run.line[later])])


def _check_groups(run: TrecRun) -> None:
    """Per-query checks, vectorised: duplicate docids, duplicate ranks, ranks against scores."""
    by_doc = np.lexsort((run.line, run.docid, run.query))
    same = (run.query[by_doc][1:] == run.query[by_doc][:-1]) & (run.docid[by_doc][1:] == run.docid[by_doc][:-1])
    i = _first_bad(run, same, by_doc)
    if i is not None:
        raise DataError(f"{run.where(i)}: docid {str(run.docid[i])!r} listed twice for query {str(run.qids[run.query[i]])!r}")
    by_rank = np.lexsort((run.line, run.rank, run.query))
    q, r, s = run.query[by_rank], run.rank[by_rank], run.score[by_rank]
    same_q = q[1:] == q[:-1]
    i = _first_bad(run, same_q & (r[1:] == r[:-1]), by_rank)
    if i is not None:
        raise DataError(f"{run.where(i)}: rank {int(run.rank[i])} given twice for query {str(run.qids[run.query[i]])!r}")
    rising = same_q & (s[1:] > s[:-1])  # a later rank scored higher than an earlier one
    hits = np.flatnonzero(rising)
    if len(hits):
        j = hits[np.argmin(np.maximum(run.line[by_rank[hits]], run.line[by_rank[hits + 1]]))]
        a, b = by_rank[j], by_rank[j + 1]
        i = a if run.line[a] > run.line[b] else b
        raise DataError(
            f"{run.where(i)}: ranks contradict scores for query {str(run.qids[run.query[i]])!r}: rank {int(run.rank[b])} "
            f"scores {run.score[b]:g} > rank {int(run.rank[a])}'s {run.score[a]:g} (ranks must follow descending scores)"
        )


def read_run(path: str | os.PathLike) -> dict[str, list[RunLine]]:
    """``qid -> lines`` of a TREC run (``qid Q0 docid rank score tag``), each query's lines in file order.

    One object per line: for small runs and tests; :func:`read_run_table` is the columnar reader (the
    same checks) that scoring uses.

    Args:
        path: the run file.

    Raises:
        DataError: everything :func:`read_run_table` rejects.
    """
    table = read_run_table(path)
    run: dict[str, list[RunLine]] = {}
    for i in np.argsort(table.line, kind="stable"):
        qid = str(table.qids[table.query[i]])
        run.setdefault(qid, []).append(RunLine(qid, str(table.docid[i]), int(table.rank[i]), float(table.score[i]), table.tag))
    return run


def write_run(run: TrecRun, path: str | os.PathLike) -> int:
    """Write ``run`` as ``qid Q0 docid rank score tag`` lines (query by query, by rank), atomically.

    Args:
        run: the run to write.
        path: the output file.

    Returns:
        The number of lines written.
    """
    from polyret.paths import atomic_path

    order = np.lexsort((run.rank, run.query))
    qids = run.qids[run.query[order]].tolist()
    docs = run.docid[order].tolist()
    ranks = run.rank[order].tolist()
    scores = run.score[order].tolist()
    tag = run.tag or "run"
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as fh:
        for q, d, r, s in zip(qids, docs, ranks, scores):
            fh.write(f"{q} Q0 {d} {r} {s:.10g} {tag}\n")
    return len(order)
