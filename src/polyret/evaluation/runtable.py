"""The pooled run table: every (setting, query) result list in one set of numpy columns.

Rows: for each (setting, query) the top-k retrieved candidates PLUS one row for every relevant
candidate of that setting's pool, carrying its true rank in the full ranking of the pool (or rank 0
when an approximate backend did not retrieve it). A relevant candidate inside the top-k appears once.
Every metric of ``metrics`` and ``bias`` only needs the relevant rows, so full (no-cutoff) AP, nDCG@k,
Recall@k, MRR@k and rank distances are exact pure functions of this table, whatever k was.

Columns are int codes (``setting`` into ``settings``, ``query`` into ``query_ids/query_langs`` which
are aligned with ``benchmark.queries``, ``doc`` into ``doc_ids/doc_langs``: the candidates the rows
name, in benchmark order, so a corpus of millions costs the table only what it retrieved), never Python
objects per row.

Ties: candidates with equal scores are ordered like trec_eval orders them (score descending, then
candidate id descending as a string), so ranks here agree with trec_eval on an exported full ranking.
"""

from __future__ import annotations

import json
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from polyret.evaluation.settings import Setting
from polyret.paths import atomic_path

_FORMAT = "polyret-runtable/1"
_COLUMNS = ("setting", "query", "doc", "rank", "score", "relevance")


@dataclass
class RunTable:
    """Every (setting, query) result list of one evaluation, as numpy columns (see the module docstring).

    Args:
        settings: the settings; ``setting`` holds codes into this list.
        query_ids, query_langs: one entry per benchmark query.
        doc_ids, doc_langs: the candidates the rows name (from a search: those retrieved or relevant, in
            benchmark order; not every candidate of a corpus).
        setting: per row, int16 code into ``settings``.
        query: per row, int32 index into ``query_ids``.
        doc: per row, int32 index into ``doc_ids``.
        rank: per row, the 1-based rank in the pool; 0 = relevant but not retrieved.
        score: per row, the float32 score.
        relevance: per row, the int16 graded gain; 0 = not relevant.
        k: how many candidates were retrieved per (setting, query).
        exact_ranks: True when every relevant row carries its true full rank (exact backend).
        benchmark_id: the benchmark's id.
        meta: free-form facts (the backend).
    """

    settings: list[Setting]
    query_ids: np.ndarray  # str, one per benchmark query
    query_langs: np.ndarray
    doc_ids: np.ndarray  # str, one per candidate the rows name
    doc_langs: np.ndarray
    setting: np.ndarray  # int16 code into settings
    query: np.ndarray  # int32 index into query_ids
    doc: np.ndarray  # int32 index into doc_ids
    rank: np.ndarray  # int32, 1-based rank in the pool; 0 = relevant but not retrieved
    score: np.ndarray  # float32
    relevance: np.ndarray  # int16, graded gain; 0 = not relevant
    k: int  # how many candidates were retrieved per (setting, query)
    exact_ranks: bool  # True when every relevant row carries its true full rank
    benchmark_id: str = ""
    meta: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.setting = np.asarray(self.setting, dtype=np.int16)
        self.query = np.asarray(self.query, dtype=np.int32)
        self.doc = np.asarray(self.doc, dtype=np.int32)
        self.rank = np.asarray(self.rank, dtype=np.int32)
        self.score = np.asarray(self.score, dtype=np.float32)
        self.relevance = np.asarray(self.relevance, dtype=np.int16)
        n = len(self.setting)
        for name in _COLUMNS:
            if len(getattr(self, name)) != n:
                raise ValueError(f"run table column {name!r} has {len(getattr(self, name))} rows, expected {n}")
        self.query_ids = np.asarray(self.query_ids, dtype=str)
        self.query_langs = np.asarray(self.query_langs, dtype=str)
        self.doc_ids = np.asarray(self.doc_ids, dtype=str)
        self.doc_langs = np.asarray(self.doc_langs, dtype=str)

    # ------------------------------------------------------------------ views
    def __len__(self) -> int:
        return len(self.setting)

    @property
    def setting_names(self) -> list[str]:
        return [s.name for s in self.settings]

    def setting_code(self, setting: str | Setting) -> int:
        name = setting.name if isinstance(setting, Setting) else setting
        try:
            return self.setting_names.index(name)
        except ValueError:
            raise KeyError(f"setting {name!r} is not in this run table (it has {self.setting_names})") from None

    @property
    def retrieved(self) -> np.ndarray:
        """Rows inside the retrieved top-k list (the rest are relevant candidates ranked deeper)."""
        return (self.rank >= 1) & (self.rank <= self.k)

    def filter(self, settings: Iterable[str | Setting] | None = None) -> RunTable:
        """A table holding only ``settings`` (names or Setting objects), re-coded in the given order."""
        if settings is None:
            return self
        codes = [self.setting_code(s) for s in settings]
        remap = np.full(len(self.settings), -1, dtype=np.int32)
        remap[codes] = np.arange(len(codes))
        new_code = remap[self.setting]
        rows = np.flatnonzero(new_code >= 0)
        out = self._take(rows)
        out.settings = [self.settings[c] for c in codes]
        out.setting = new_code[rows].astype(np.int16)
        return out

    def sorted(self) -> RunTable:
        """Rows ordered by setting, query, rank (unretrieved rank-0 rows last in their query)."""
        rank_key = np.where(self.rank > 0, self.rank, np.iinfo(np.int32).max)
        order = np.lexsort((rank_key, self.query, self.setting))
        out = self._take(order)
        return out

    def _take(self, index: np.ndarray) -> RunTable:
        return RunTable(
            settings=list(self.settings),
            query_ids=self.query_ids,
            query_langs=self.query_langs,
            doc_ids=self.doc_ids,
            doc_langs=self.doc_langs,
            setting=self.setting[index],
            query=self.query[index],
            doc=self.doc[index],
            rank=self.rank[index],
            score=self.score[index],
            relevance=self.relevance[index],
            k=self.k,
            exact_ranks=self.exact_ranks,
            benchmark_id=self.benchmark_id,
            meta=dict(self.meta),
        )

    # ------------------------------------------------------------------ TREC exports
    def _rows_for(self, setting: str | Setting | None) -> tuple[np.ndarray, bool]:
        if setting is None:
            return np.arange(len(self)), True
        return np.flatnonzero(self.setting == self.setting_code(setting)), False

    def _trec_qids(self, rows: np.ndarray, with_setting: bool) -> list[str]:
        """``<qid>@<lang>`` for one setting; ``<setting>/<qid>@<lang>`` when all settings share a file."""
        qids = np.char.add(np.char.add(self.query_ids[self.query[rows]], "@"), self.query_langs[self.query[rows]])
        if with_setting:
            names = np.asarray(self.setting_names, dtype=str)
            qids = np.char.add(np.char.add(names[self.setting[rows]], "/"), qids)
        return qids.tolist()

    def _trec_docids(self, rows: np.ndarray) -> list[str]:
        from polyret.data.trec import trec_token

        return [trec_token(d) for d in self.doc_ids[self.doc[rows]].tolist()]

    def to_trec_run(
        self,
        path: str | Path,
        setting: str | Setting | None = None,
        tag: str = "polyret",
        include_unretrieved: bool = False,
    ) -> int:
        """Write ``qid Q0 docid rank score tag`` lines; returns the number of lines.

        By default only the retrieved top-k rows are written: a plain top-k run, which trec_eval, ranx
        and ir_measures score exactly as polyret scores ``map@k``, ``ndcg@k'``, ``recall@k'`` ... for
        k' <= k (a full ``map`` only when k covers every pool: a full ranking). With
        ``include_unretrieved`` the deeper relevant rows are appended with their true rank (only
        ``polyret score`` reads that correctly: trec_eval re-ranks by score, so it would see them at
        k+1, k+2 ...); rank-0 rows (not retrieved by an approximate backend) are never written.
        Query ids: ``<setting>/<qid>@<lang>`` (``<qid>@<lang>`` for one ``setting``); docids as
        :func:`polyret.data.trec.trec_token` writes them. Scores are written with 9 significant digits,
        enough to keep the order of float32 scores; ties keep polyret's order (docid descending).
        """
        rows, with_setting = self._rows_for(setting)
        rows = rows[self.rank[rows] >= 1]
        if not include_unretrieved:
            rows = rows[self.rank[rows] <= self.k]
        rows = rows[np.lexsort((self.rank[rows], self.query[rows], self.setting[rows]))]
        qids = self._trec_qids(rows, with_setting)
        docids = self._trec_docids(rows)
        ranks = self.rank[rows].tolist()
        scores = self.score[rows].tolist()
        for what, values in (("docid", docids), ("query id", qids)):  # never write a line of 7 fields
            bad = next((v for v in values if len(str(v).split()) != 1), None)
            if bad is not None:
                from polyret.data.records import DataError

                raise DataError(f"{path}: {what} {bad!r} contains whitespace; it cannot be written as a TREC run line")
        with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as fh:
            for qid, docid, rank, score in zip(qids, docids, ranks, scores):
                fh.write(f"{qid} Q0 {docid} {rank} {score:.9g} {tag}\n")
        return len(rows)

    def to_trec_qrels(self, path: str | Path, setting: str | Setting | None = None) -> int:
        """Write the qrels of every (setting, query) as ``qid 0 docid rel`` lines, keyed like :meth:`to_trec_run`.

        Each setting's qrels are the relevant candidates of its pool (including relevant docids absent
        from the corpus, which no run can retrieve: trec_eval counts them against recall and AP as
        polyret does). With the run of :meth:`to_trec_run` this is what trec_eval, ranx and ir_measures
        need to reproduce polyret's per-setting numbers. Returns the number of lines.
        """
        rows, with_setting = self._rows_for(setting)
        rows = rows[self.relevance[rows] > 0]
        rows = rows[np.lexsort((self.doc[rows], self.query[rows], self.setting[rows]))]
        qids = self._trec_qids(rows, with_setting)
        docids = self._trec_docids(rows)
        with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as fh:
            for qid, docid, rel in zip(qids, docids, self.relevance[rows].tolist()):
                fh.write(f"{qid} 0 {docid} {int(rel)}\n")
        return len(rows)

    def to_qrels_dict(self, setting: str | Setting | None = None) -> dict[str, dict[str, int]]:
        """Qrels restricted to each setting's pool, keyed like ``to_trec_run``'s qids."""
        rows, with_setting = self._rows_for(setting)
        rows = rows[self.relevance[rows] > 0]
        qids = self._trec_qids(rows, with_setting)
        out: dict[str, dict[str, int]] = {}
        for qid, docid, rel in zip(qids, self._trec_docids(rows), self.relevance[rows].tolist()):
            out.setdefault(qid, {})[docid] = int(rel)
        return out

    def to_pytrec(
        self, setting: str | Setting | None = None, include_unretrieved: bool = False
    ) -> tuple[dict[str, dict[str, int]], dict[str, dict[str, float]]]:
        """``(qrels, run)`` dicts for pytrec_eval; the run holds the retrieved rows (see ``to_trec_run``)."""
        qrels = self.to_qrels_dict(setting)
        rows, with_setting = self._rows_for(setting)
        rows = rows[self.rank[rows] >= 1]
        if not include_unretrieved:
            rows = rows[self.rank[rows] <= self.k]
        run: dict[str, dict[str, float]] = {}
        for qid, docid, score in zip(self._trec_qids(rows, with_setting), self._trec_docids(rows), self.score[rows].tolist()):
            run.setdefault(qid, {})[docid] = float(score)
        return qrels, run

    # ------------------------------------------------------------------ persistence
    def save(self, path: str | Path) -> Path:
        """Write one uncompressed ``.npz`` atomically (temp file, then rename)."""
        path = Path(path)
        header = {
            "format": _FORMAT,
            "settings": [[s.family, s.query_lang, list(s.pool_langs)] for s in self.settings],
            "k": int(self.k),
            "exact_ranks": bool(self.exact_ranks),
            "benchmark_id": self.benchmark_id,
            "meta": self.meta,
        }
        arrays = {name: getattr(self, name) for name in _COLUMNS}
        with atomic_path(path) as tmp, open(tmp, "wb") as fh:
            np.savez(
                fh,
                header=np.asarray(json.dumps(header)),
                query_ids=self.query_ids,
                query_langs=self.query_langs,
                doc_ids=self.doc_ids,
                doc_langs=self.doc_langs,
                **arrays,
            )
        return path

    @classmethod
    def load(cls, path: str | Path) -> RunTable:
        path = Path(path)
        try:
            with np.load(path, allow_pickle=False) as z:
                header = json.loads(str(z["header"]))
                if header.get("format") != _FORMAT:
                    raise ValueError(f"{path}: not a polyret run table (format {header.get('format')!r})")
                return cls(
                    settings=[Setting(f, q, tuple(p)) for f, q, p in header["settings"]],
                    query_ids=z["query_ids"],
                    query_langs=z["query_langs"],
                    doc_ids=z["doc_ids"],
                    doc_langs=z["doc_langs"],
                    k=int(header["k"]),
                    exact_ranks=bool(header["exact_ranks"]),
                    benchmark_id=header.get("benchmark_id", ""),
                    meta=header.get("meta", {}),
                    **{name: z[name] for name in _COLUMNS},
                )
        except (KeyError, json.JSONDecodeError, zipfile.BadZipFile) as err:
            raise ValueError(f"{path}: cannot read run table ({err})") from err
