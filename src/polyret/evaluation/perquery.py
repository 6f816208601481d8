"""Per-query values: one row per (setting, query), the input of every report table and significance test.

``metrics.per_query`` computes one; ``per_query.csv.gz`` in a results folder stores one. Its own module so
that the metrics (which produce it) and the results writer (which stores it) both sit above it.
"""

from __future__ import annotations

import csv
import gzip
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..paths import atomic_path

__all__ = ["PerQuery", "fmt_value"]


@dataclass
class PerQuery:
    """One row per (setting, query): the values metrics compute and every report and significance test
    starts from (``metrics.per_query`` returns one; ``per_query.csv.gz`` stores one).

    Rows of one setting are contiguous and settings come in the run table's order.

    Args:
        setting: the setting name of each row (``mono:de``, ``cross:de-en``, ``multi:de``).
        query_id: the query id of each row.
        query_lang: the query language of each row.
        values: measure name -> float64 array aligned with the rows.
    """

    setting: list[str]
    query_id: list[str]
    query_lang: list[str]
    values: dict[str, np.ndarray] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.setting)

    @property
    def measures(self) -> list[str]:
        return list(self.values)

    def rows_for(self, setting: str) -> np.ndarray:
        return np.flatnonzero(np.asarray(self.setting, dtype=object) == setting)

    def keys(self) -> np.ndarray:
        """``<setting>/<qid>@<lang>`` per row: stable across runs of the same benchmark."""
        if not len(self):
            return np.empty(0, dtype=str)
        qid = np.char.add(np.char.add(np.asarray(self.query_id, dtype=str), "@"), np.asarray(self.query_lang, dtype=str))
        return np.char.add(np.char.add(np.asarray(self.setting, dtype=str), "/"), qid)

    def setting_codes(self) -> tuple[list[str], np.ndarray]:
        """(setting names in row order of first appearance, each row's index into them)."""
        order: dict[str, int] = {}
        codes = np.fromiter((order.setdefault(s, len(order)) for s in self.setting), dtype=np.int64, count=len(self.setting))
        return list(order), codes

    def counts(self) -> dict[str, int]:
        """Number of evaluated queries per setting."""
        names, codes = self.setting_codes()
        return {name: int(c) for name, c in zip(names, np.bincount(codes, minlength=len(names)))}

    def to_csv(self, path: str | Path) -> None:
        measures = list(self.values)
        # each column formatted at once (``fmt_value``'s format), the rows written by csv's C writer; gzip
        # level 6 (zlib's default): level 9 took three times as long for a file 2% smaller
        cols = [_fmt_column(self.values[m]) for m in measures]
        with atomic_path(path) as tmp, gzip.open(tmp, "wt", encoding="utf-8", newline="", compresslevel=6) as fh:
            w = csv.writer(fh)
            w.writerow(["setting", "query_id", "query_lang", *measures])
            w.writerows(zip(self.setting, self.query_id, self.query_lang, *cols))

    @classmethod
    def from_csv(cls, path: str | Path) -> PerQuery:
        with gzip.open(path, "rt", encoding="utf-8", newline="") as fh:
            r = csv.reader(fh)
            header = next(r)
            rows = list(r)
        measures = header[3:]
        values = {
            m: np.array([float(row[3 + j]) if row[3 + j] != "" else np.nan for row in rows], dtype=np.float64)
            for j, m in enumerate(measures)
        }
        return cls([row[0] for row in rows], [row[1] for row in rows], [row[2] for row in rows], values)


def _fmt_column(values) -> list[str]:
    """:func:`fmt_value` of every value of a column."""
    return ["" if x != x else f"{x:.6g}" for x in np.asarray(values, dtype=np.float64).tolist()]


def fmt_value(x: float) -> str:
    return "" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{float(x):.6g}"
