"""Parallel training pairs as a lazy Hugging Face dataset for the sentence-transformers trainer.

A batch sampler must be able to ask for "group g of source s, query in language a, passage in language b"
with one integer. Materialising every (group, a, b) combination is fine for XQuAD-R (1190 x 11^2 rows) but
not for mMARCO (millions of groups x 14^2), so :class:`PairIndex` keeps one row per existing
:class:`~polyret.data.records.Pair` ("pair row", grouped by parallel group, languages sorted) and encodes a
training example as

    index = passage_slot * num_pairs + query_row

where ``query_row`` is the pair row that supplies the query and ``passage_slot`` is the position, within
the same group, of the pair that supplies the positive (and hard negatives). ``num_slots`` is the largest
number of languages of any group; slots past a group's size are padding that no sampler emits (read
anyway, they alias to ``slot % group size`` so that ST's model-card code scanning the first rows never fails).

:meth:`PairIndex.to_dataset` builds a ``datasets.Dataset`` of ``num_pairs * num_slots`` rows whose two int64
columns (``q`` = query row, ``s`` = query row + passage slot) are zero-copy slices of ONE arrow array of
``num_pairs + num_slots`` integers, so the index costs O(num_pairs) memory whatever the language count. A
``set_transform`` turns rows into ``anchor``/``positive`` texts (plus ``negative``, or ``negative_1`` ..
``negative_k`` for k > 1 hard negatives: MultipleNegativesRankingLoss takes any number of negative
columns) when the DataLoader fetches a batch: the sentence-transformers 6.2 trainer and collator
consume such a "custom"-format dataset unchanged (the collator reads the transformed row dicts; the
model card reads ``dataset[0].keys()`` and samples rows through the transform).

**Passage identity.** ``pair_positive`` / ``pair_negative`` give each pair row an integer code for the
passage identity of its positive / hard negatives
(one column per negative, ``-1``: none), so a sampler can keep a passage
and its translations out of each other's in-batch negatives. Codes come from ``Pair.positive_id`` /
``negative_id`` (LAReQA and mMARCO loaders fill them; translations share them) and are namespaced per
source; a passage without an id falls back to a code for its exact ``(language, text)``: identical texts
are caught, translations are NOT (e.g. a JSONL file without ids). Only the integer arrays are kept.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from polyret.data.records import DataError, PairGroups

INDEX_COLUMNS = ("q", "s")


def negative_columns(k: int) -> tuple[str, ...]:
    """Column names of ``k`` hard negatives: ``()``, ``("negative",)``, ``("negative_1", .., "negative_k")``.

    Args:
        k: hard negatives per example.
    """
    if k <= 0:
        return ()
    return ("negative",) if k == 1 else tuple(f"negative_{i}" for i in range(1, k + 1))


@dataclass(frozen=True)
class ExampleRef:
    """What one dataset index stands for."""

    source: str
    group: str
    query_lang: str
    passage_lang: str


@dataclass(frozen=True)
class DecodedIndices:
    """Vectorised :class:`ExampleRef`: integer codes per index (see ``PairIndex.sources/languages/group_ids``)."""

    query_row: np.ndarray  # pair row supplying the query
    passage_row: np.ndarray  # pair row supplying the positive / negative
    source: np.ndarray  # source number
    group: np.ndarray  # global group number
    query_lang: np.ndarray  # language code
    passage_lang: np.ndarray  # language code


class PairIndex:
    """Integer view of one or more :class:`PairGroups` sources; texts stay in the source objects.

    Groups are numbered source by source in the sources' dict order; a group's pair rows are contiguous
    and sorted by language code. ``negatives``: how many hard-negative columns (:func:`negative_columns`)
    the texts carry. ``None`` keeps as many as every pair has (0 if one has none); ``True`` is 1; an
    integer k demands at least k per pair (DataError naming the first pair with fewer) and takes each
    pair's first k; ``False`` / 0 drops them.

    Args:
        sources: the training sources (parallel groups of pairs), at least one.
        negatives: hard-negative columns to carry, as above.
    """

    def __init__(self, sources: Sequence[PairGroups], *, negatives: bool | int | None = None) -> None:
        if isinstance(sources, PairGroups):
            sources = [sources]
        if not sources:
            raise ValueError("PairIndex needs at least one PairGroups source")
        names = [s.name for s in sources]
        if len(set(names)) != len(names):
            raise ValueError(f"PairGroups source names must be unique, got {names}")
        self.sources: tuple[str, ...] = tuple(names)
        self.languages: tuple[str, ...] = tuple(sorted({lang for s in sources for lang in s.languages}))
        lang_code = {lang: i for i, lang in enumerate(self.languages)}

        want = None if negatives is None else int(negatives)  # bool: True -> 1, False -> 0
        if want is not None and want < 0:
            raise ValueError(f"negatives must be >= 0, got {negatives}")
        fewest: int | None = None  # the fewest negatives of any pair, and which pair that was
        fewest_at: str | None = None
        identity: dict[tuple, int] = {}  # (source, "i", id) | (source, "t", lang, text) -> code; build-time only
        pos_code: list[int] = []
        neg_code: list[list[int]] = []  # per pair row, one code per hard negative
        queries: list[str] = []
        positives: list[str] = []
        negs: list[str | tuple[str, ...] | None] = []  # pair.negative as stored: no tuple per pair
        pair_lang: list[int] = []
        group_start: list[int] = []
        group_nlang: list[int] = []
        group_source: list[int] = []
        self.group_ids: list[str] = []  # global group number -> the source's group id
        source_group_start = [0]
        for s_num, src in enumerate(sources):
            for gid, by_lang in src.groups.items():
                if not by_lang:
                    raise DataError(f"source {src.name!r}: group {gid!r} has no pairs")
                group_start.append(len(queries))
                group_nlang.append(len(by_lang))
                group_source.append(s_num)
                self.group_ids.append(gid)
                for lang in sorted(by_lang):
                    pair = by_lang[lang]
                    if pair.lang != lang:
                        raise DataError(f"source {src.name!r}: group {gid!r} stores a {pair.lang!r} pair under key {lang!r}")
                    queries.append(pair.query)
                    positives.append(pair.positive)
                    negs.append(pair.negative)
                    pair_lang.append(lang_code[lang])
                    key = (s_num, "i", pair.positive_id) if pair.positive_id is not None else (s_num, "t", lang, pair.positive)
                    pos_code.append(identity.setdefault(key, len(identity)))
                    codes = []
                    for text, nid in zip(pair.negatives, pair.negative_ids):
                        key = (s_num, "i", nid) if nid is not None else (s_num, "t", lang, text)
                        codes.append(identity.setdefault(key, len(identity)))
                    neg_code.append(codes)
                    count = 0 if pair.negative is None else 1 if isinstance(pair.negative, str) else len(pair.negative)
                    if fewest is None or count < fewest:
                        fewest = count
                        fewest_at = f"source {src.name!r}: group {gid!r}, language {lang!r}"
            source_group_start.append(len(group_start))

        fewest = fewest or 0
        if want is not None and fewest < want:
            has = "no hard negative" if fewest == 0 else f"only {fewest}"
            raise DataError(f"negatives={want} but a pair has {has} ({fewest_at})")
        self.num_negatives: int = fewest if want is None else want
        self.negative_columns: tuple[str, ...] = negative_columns(self.num_negatives)
        self.has_negatives: bool = self.num_negatives > 0
        self._queries = queries
        self._positives = positives
        self._negatives = negs if self.has_negatives else None

        n_groups = len(group_start)
        self.num_pairs: int = len(queries)
        self.num_identities: int = len(identity)
        del identity
        code_dtype = np.int32 if self.num_identities < 2**31 - 1 else np.int64
        self.pair_positive = np.asarray(pos_code, dtype=code_dtype)  # passage identity code per pair row
        # hard negatives' identity codes: one column per negative the index uses (at least one column),
        # -1 where there is none or negatives are dropped
        self.pair_negative = np.full((len(queries), max(self.num_negatives, 1)), -1, dtype=code_dtype)
        if self.has_negatives:
            for row, codes in enumerate(neg_code):
                self.pair_negative[row, : min(len(codes), self.num_negatives)] = codes[: self.num_negatives]
        del neg_code
        self.group_start = np.asarray(group_start, dtype=np.int64)
        self.group_nlang = np.asarray(group_nlang, dtype=np.int64)
        self.group_source = np.asarray(group_source, dtype=np.int32)
        self.source_group_start = np.asarray(source_group_start, dtype=np.int64)
        self.pair_lang = np.asarray(pair_lang, dtype=np.int32)
        self.pair_group = np.repeat(np.arange(n_groups, dtype=np.int64), self.group_nlang)
        self.num_slots: int = int(self.group_nlang.max()) if n_groups else 0
        # group x language -> slot of that language in the group (-1: absent); int8 keeps it G*L bytes.
        slot_dtype = np.int8 if self.num_slots < 127 else np.int32
        self.lang_slot = np.full((n_groups, len(self.languages)), -1, dtype=slot_dtype)
        slots_in_group = np.arange(self.num_pairs, dtype=np.int64) - self.group_start[self.pair_group]
        self.lang_slot[self.pair_group, self.pair_lang] = slots_in_group

    # ----------------------------------------------------------------- sizes
    @property
    def num_groups(self) -> int:
        return len(self.group_ids)

    @property
    def num_rows(self) -> int:
        """Length of the dataset view (padded index space)."""
        return self.num_pairs * self.num_slots

    def source_groups(self, source: int) -> np.ndarray:
        """Global group numbers of one source."""
        return np.arange(self.source_group_start[source], self.source_group_start[source + 1], dtype=np.int64)

    def source_pair_rows(self, source: int) -> slice:
        """The pair rows of one source (contiguous)."""
        groups = self.source_groups(source)
        if not len(groups):
            return slice(0, 0)
        first, last = int(groups[0]), int(groups[-1])
        return slice(int(self.group_start[first]), int(self.group_start[last] + self.group_nlang[last]))

    def source_languages(self, source: int) -> tuple[int, ...]:
        groups = self.source_groups(source)
        present = (self.lang_slot[groups] >= 0).any(axis=0) if len(groups) else np.zeros(0, bool)
        return tuple(int(i) for i in np.flatnonzero(present))

    # ------------------------------------------------------------- encoding
    def encode(self, groups: np.ndarray, query_slots: np.ndarray, passage_slots: np.ndarray) -> np.ndarray:
        """Dataset indices for (global group, query slot, passage slot) triples."""
        groups = np.asarray(groups, dtype=np.int64)
        return np.asarray(passage_slots, dtype=np.int64) * self.num_pairs + self.group_start[groups] + query_slots

    def encode_langs(self, groups: np.ndarray, query_langs: np.ndarray, passage_langs: np.ndarray) -> np.ndarray:
        """Dataset indices for (global group, query language code, passage language code); must exist."""
        groups = np.asarray(groups, dtype=np.int64)
        qs = self.lang_slot[groups, query_langs].astype(np.int64)
        ps = self.lang_slot[groups, passage_langs].astype(np.int64)
        if (qs < 0).any() or (ps < 0).any():
            raise KeyError("a requested (group, language) pair does not exist")
        return self.encode(groups, qs, ps)

    def _rows(self, q: np.ndarray, s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        q = np.asarray(q, dtype=np.int64)
        slot = np.asarray(s, dtype=np.int64) - q
        group = self.pair_group[q]
        slot = slot % self.group_nlang[group]  # padding slots alias to a real pair (never sampled)
        return q, self.group_start[group] + slot

    def decode(self, indices: Sequence[int] | np.ndarray) -> DecodedIndices:
        idx = np.asarray(indices, dtype=np.int64)
        if idx.size and (idx.min() < 0 or idx.max() >= self.num_rows):
            raise IndexError(f"dataset index out of range [0, {self.num_rows})")
        q = idx % self.num_pairs
        q, p = self._rows(q, q + idx // self.num_pairs)
        group = self.pair_group[q]
        return DecodedIndices(q, p, self.group_source[group], group, self.pair_lang[q], self.pair_lang[p])

    def ref(self, index: int) -> ExampleRef:
        d = self.decode([index])
        return ExampleRef(
            self.sources[int(d.source[0])],
            self.group_ids[int(d.group[0])],
            self.languages[int(d.query_lang[0])],
            self.languages[int(d.passage_lang[0])],
        )

    # ---------------------------------------------------------------- texts
    def texts(self, indices: Sequence[int] | np.ndarray) -> dict[str, list[str]]:
        """Columns ``anchor``, ``positive`` (and :attr:`negative_columns`) for dataset indices."""
        d = self.decode(indices)
        return self._texts(d.query_row, d.passage_row)

    def _texts(self, q: np.ndarray, p: np.ndarray) -> dict[str, list[str]]:
        out = {"anchor": [self._queries[i] for i in q.tolist()], "positive": [self._positives[i] for i in p.tolist()]}
        if self._negatives is not None:
            rows = p.tolist()
            stored = [self._negatives[i] for i in rows]
            for j, column in enumerate(self.negative_columns):
                out[column] = [n if isinstance(n, str) else n[j] for n in stored]
        return out

    def transform(self, batch: dict[str, list]) -> dict[str, list[str]]:
        """``Dataset.set_transform`` hook: index columns -> text columns (only text columns come out)."""
        q, p = self._rows(np.asarray(batch["q"]), np.asarray(batch["s"]))
        return self._texts(q, p)

    def to_dataset(self):
        """The lazy ``datasets.Dataset`` view (``num_rows`` rows, texts looked up per fetched batch)."""
        import datasets
        import pyarrow as pa
        from datasets.table import InMemoryTable

        n, k = self.num_pairs, self.num_slots
        if n == 0:
            raise ValueError("PairIndex has no pairs: nothing to train on")
        base = pa.array(np.arange(n + k, dtype=np.int64))
        q_col = pa.chunked_array([base.slice(0, n)] * k)
        s_col = pa.chunked_array([base.slice(slot, n) for slot in range(k)])
        table = pa.Table.from_arrays([q_col, s_col], names=list(INDEX_COLUMNS))
        ds = datasets.Dataset(InMemoryTable(table))
        ds.set_transform(self.transform)
        return ds


def build_pairs_dataset(sources: Sequence[PairGroups] | PairGroups, *, negatives: bool | int | None = None):
    """(lazy ``datasets.Dataset``, its :class:`PairIndex`) for one or more sources.

    Args:
        sources: one source or several (:class:`~polyret.data.records.PairGroups`).
        negatives: hard-negative columns, as for :class:`PairIndex`.
    """
    index = PairIndex(sources if not isinstance(sources, PairGroups) else [sources], negatives=negatives)
    return index.to_dataset(), index


def is_index_dataset(dataset, index: PairIndex) -> bool:
    """Whether ``dataset`` is (a transform-carrying view of) ``index.to_dataset()``.

    Args:
        dataset: any dataset the trainer holds (train or eval).
        index: the index the sampler draws from.
    """
    try:
        return list(dataset.column_names) == list(INDEX_COLUMNS) and len(dataset) == index.num_rows
    except (AttributeError, TypeError):
        return False
