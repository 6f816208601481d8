"""One validated training row from a JSONL object or a TSV line, as the pair store reads pair files.

A row is ``(group, lang, query, positive, negatives, positive_id, negative_ids)`` with ``negatives`` a
tuple of strings (maybe empty) and ``negative_ids`` an aligned tuple (``None`` entries: unknown). Bad
rows raise :class:`~polyret.data.records.DataError` naming the file, line and key (the streamed and the
parallel build of :mod:`polyret.data.pairstore` both validate through :func:`parse_row`).

TSV pair files have a header line naming the columns: ``id``, ``lang``, ``query``, ``positive`` (required),
``positive_id``, ``negative`` / ``negative_id`` or ``negative_1`` .. ``negative_k`` with
``negative_id_1`` .. ``negative_id_k`` (optional). An empty cell is an absent value.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

from polyret.data.lines import jsonl_objects, numbered_lines
from polyret.data.records import DataError
from polyret.vocabulary import check_language_code

TSV_REQUIRED = ("id", "lang", "query", "positive")
PAIR_FILE_SUFFIXES = {".jsonl": "jsonl", ".jsonl.gz": "jsonl", ".tsv": "tsv", ".tsv.gz": "tsv"}


def pair_file_kind(name: str) -> str | None:
    """The one suffix rule of pair files: ``jsonl`` (``.jsonl``, ``.jsonl.gz``), ``tsv`` (``.tsv``,
    ``.tsv.gz``), else None (a source spec then reads an existing file as JSONL).

    Args:
        name: a file name or path.
    """
    return next((kind for suffix, kind in PAIR_FILE_SUFFIXES.items() if str(name).endswith(suffix)), None)


_NEG = re.compile(r"^negative(?:_(\d+))?$")
_NEG_ID = re.compile(r"^negative_id(?:_(\d+))?$")


class PairRow(NamedTuple):
    """One validated row (see the module docstring)."""

    group: str
    lang: str
    query: str
    positive: str
    negatives: tuple[str, ...]
    positive_id: str | None
    negative_ids: tuple[str | None, ...]


def jsonl_id(value, where: str, key: str) -> str | None:
    """An optional passage identity: a non-empty string or an integer (kept as its decimal string).

    Args:
        value: the JSON value.
        where: ``file:line`` for messages.
        key: the key it came from, for messages.
    """
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, str) and value.strip():
        return value
    raise DataError(f"{where}: {key!r} must be a non-empty string, an integer or null, got {value!r}")


def jsonl_negatives(row: dict, where: str) -> tuple[str | tuple[str, ...] | None, str | tuple | None]:
    """``negative`` (a string or a list of strings) and its ``negative_id`` (a scalar or an aligned list).

    Args:
        row: the JSON object.
        where: ``file:line`` for messages.
    """
    negative, negative_id = row.get("negative"), row.get("negative_id")
    if isinstance(negative, list):
        for i, text in enumerate(negative):
            if not isinstance(text, str) or not text.strip():
                raise DataError(f"{where}: 'negative'[{i}] must be a non-empty string, got {text!r}")
        if negative_id is None:
            return tuple(negative) or None, None
        if not isinstance(negative_id, list) or len(negative_id) != len(negative):
            got = f"a list of {len(negative_id)}" if isinstance(negative_id, list) else type(negative_id).__name__
            raise DataError(
                f"{where}: 'negative_id' must be a list of {len(negative)} ids (one per negative) or absent, got {got}"
            )
        ids = tuple(jsonl_id(v, where, f"negative_id[{i}]") for i, v in enumerate(negative_id))
        return (tuple(negative), ids) if negative else (None, None)
    if negative is not None and (not isinstance(negative, str) or not negative.strip()):
        raise DataError(f"{where}: 'negative' must be a non-empty string, a list of them, or absent")
    if negative is None and negative_id is not None:
        raise DataError(f"{where}: 'negative_id' given without a 'negative'")
    if isinstance(negative_id, list):
        raise DataError(f"{where}: 'negative' is one string, so 'negative_id' must be one id, got a list")
    return negative, jsonl_id(negative_id, where, "negative_id")


def parse_row(row: dict, where: str) -> PairRow:
    """Validate one JSON object (or a TSV line turned into one) as a training row.

    Args:
        row: ``{"id", "lang", "query", "positive", ...}``.
        where: ``file:line`` for messages.
    """
    gid = row.get("id")
    if isinstance(gid, int) and not isinstance(gid, bool):
        gid = str(gid)
    if not isinstance(gid, str) or not gid.strip():
        raise DataError(f"{where}: missing or empty 'id' (string or integer)")
    where = f"{where} (id {gid!r})"
    fields = {}
    for key in ("lang", "query", "positive"):
        value = row.get(key)
        if value is not None and not isinstance(value, str):
            raise DataError(f"{where}: {key!r} must be a string, got {type(value).__name__}")
        if value is None or not value.strip():
            raise DataError(f"{where}: missing or empty {key!r}")
        fields[key] = value
    check_language_code(fields["lang"], where=f"{where}: 'lang'", error=DataError)
    positive_id = jsonl_id(row.get("positive_id"), where, "positive_id")
    negative, negative_id = jsonl_negatives(row, where)
    if negative is None:
        negs, nids = (), ()
    elif isinstance(negative, str):
        negs, nids = (negative,), (negative_id if not isinstance(negative_id, tuple) else negative_id[0],)
    else:
        negs = negative
        nids = negative_id if isinstance(negative_id, tuple) else (None,) * len(negative)
    for i, (text, nid) in enumerate(zip(negs, nids)):
        # the loss would be told to rank one passage both as the answer and as a wrong one
        if text == fields["positive"] or (nid is not None and nid == positive_id):
            same = "text" if text == fields["positive"] else f"id {nid!r}"
            raise DataError(
                f"{where}: hard negative {i} is the positive itself (same {same}); a passage cannot be its own "
                "negative: remove it from 'negative'"
            )
    return PairRow(gid, fields["lang"], fields["query"], fields["positive"], negs, positive_id, nids)


def jsonl_rows(path: str | os.PathLike) -> Iterator[tuple[int, PairRow]]:
    """``(line number, row)`` for each non-blank line of a JSONL pair file, streamed.

    Args:
        path: the JSONL file (gzip by suffix).
    """
    for lineno, obj in jsonl_objects(path):
        yield lineno, parse_row(obj, f"{path}:{lineno}")


def tsv_header(cells: list[str], where: str) -> tuple[list[str], list[int], list[int | None]]:
    """The header of a TSV pair file: column names, positions of the negatives and of their ids.

    Args:
        cells: the header line split at tabs.
        where: ``file:line`` for messages.
    """
    header = [c.strip() for c in cells]
    missing = [c for c in TSV_REQUIRED if c not in header]
    if missing:
        raise DataError(
            f"{where}: the header must name the columns {', '.join(TSV_REQUIRED)} "
            f"(tab-separated; optional positive_id, negative, negative_id), missing {', '.join(missing)}"
        )
    negs, neg_ids = _negative_columns(header, where)
    return header, negs, neg_ids


def tsv_row(cells: list[str], header: tuple, where: str) -> PairRow:
    """One TSV data line as a validated row.

    Args:
        cells: the line split at tabs.
        header: what :func:`tsv_header` returned.
        where: ``file:line`` for messages.
    """
    names, negs, neg_ids = header
    if len(cells) != len(names):
        raise DataError(f"{where}: {len(cells)} tab-separated cells, the header has {len(names)}")
    values = dict(zip(names, cells))
    obj: dict = {k: (values.get(k) or None) for k in ("id", "lang", "query", "positive", "positive_id")}
    texts = [cells[i] for i in negs]
    ids = [cells[i] if i is not None else "" for i in neg_ids]
    if any(i for t, i in zip(texts, ids) if not t):
        raise DataError(f"{where}: a negative id is given without its negative")
    kept = [(t, i or None) for t, i in zip(texts, ids) if t]
    if kept:
        obj["negative"] = [t for t, _ in kept]
        if any(i is not None for _, i in kept):
            obj["negative_id"] = [i for _, i in kept]
    return parse_row(obj, where)


def tsv_rows(path: str | os.PathLike) -> Iterator[tuple[int, PairRow]]:
    """``(line number, row)`` for each non-blank data line of a TSV pair file with a header, streamed.

    Args:
        path: the TSV file (gzip by suffix); its first non-blank line names the columns.
    """
    path = Path(path)
    header: tuple | None = None
    for lineno, line in numbered_lines(path):
        if not line.strip():
            continue
        if header is None:
            header = tsv_header(line.split("\t"), f"{path}:{lineno}")
            continue
        yield lineno, tsv_row(line.split("\t"), header, f"{path}:{lineno}")
    if header is None:
        raise DataError(f"{path}: no pairs (empty file)")


def _negative_columns(header: list[str], where: str) -> tuple[list[int], list[int | None]]:
    """Positions of the negative columns in order and of their id columns (None: no id column)."""
    neg: dict[int, int] = {}
    nid: dict[int, int] = {}
    for pos, name in enumerate(header):
        if m := _NEG.match(name):
            neg[int(m.group(1) or 1)] = pos
        elif m := _NEG_ID.match(name):
            nid[int(m.group(1) or 1)] = pos
    if sorted(neg) != list(range(1, len(neg) + 1)):
        raise DataError(f"{where}: negative columns must be 'negative' or 'negative_1' .. 'negative_k', got {sorted(neg)}")
    extra = sorted(set(nid) - set(neg))
    if extra:
        raise DataError(f"{where}: id column(s) for negative(s) {extra} without a negative column")
    order = sorted(neg)
    return [neg[k] for k in order], [nid.get(k) for k in order]
