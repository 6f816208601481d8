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

:meth:`PairIndex.to_dataset` builds a ``datasets.Dataset`` of ``num_pairs * num_slots`` rows whose two integer
columns (``q`` = query row, ``s`` = query row + passage slot) are zero-copy slices of ONE arrow array of
``num_pairs + num_slots`` integers, so the index costs O(num_pairs) memory whatever the language count. A
``set_transform`` turns rows into ``anchor``/``positive`` texts (plus ``negative``, or ``negative_1`` ..
``negative_k`` for k > 1 hard negatives: MultipleNegativesRankingLoss takes any number of negative
columns) when the DataLoader fetches a batch: the sentence-transformers 6.2 trainer and collator
consume such a "custom"-format dataset unchanged (the collator reads the transformed row dicts; the
model card reads ``dataset[0].keys()`` and samples rows through the transform).

**Passage identity.** ``pair_positive`` / ``pair_negative`` give each pair row an integer code for the
passage identity of its positive / hard negatives (one column per negative, ``-1``: none), so a sampler
can keep a passage and its translations out of each other's in-batch negatives. The codes are the pair
store's (:func:`polyret.data.records.passage_identity`: an id shared by translations, else the exact
``(language, text)``), renumbered by first occurrence and namespaced per source. Only the integer arrays
are kept.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from polyret.data.pairstore import PairSource, as_pair_source
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


class _StoreTexts:
    """Texts of a :class:`~polyret.data.pairstore.PairSource`: fetched per batch from the memory-mapped table."""

    def __init__(self, table, store_rows: np.ndarray) -> None:
        from polyret.data.pairstore import chunk_offsets

        self._table, self._rows = table, store_rows
        self._offsets = chunk_offsets(table.column("query"))  # every column has the table's chunking

    def _take(self, column: str, rows: np.ndarray):
        from polyret.data.pairstore import take_rows

        return take_rows(self._table.column(column), self._rows[rows], self._offsets)

    def queries(self, rows: np.ndarray) -> list[str]:
        return self._take("query", rows).to_pylist()

    def passages(self, rows: np.ndarray, k: int) -> tuple[list[str], list[list[str]]]:
        import pyarrow.compute as pc

        negs = []
        if k:
            lists = self._take("negatives", rows)
            negs = [pc.list_element(lists, j).to_pylist() for j in range(k)]
        return self._take("positive", rows).to_pylist(), negs


@dataclass
class _Part:
    """One source as integer arrays in pair-row order (groups contiguous, languages sorted) + its texts."""

    name: str
    languages: tuple[str, ...]  # pair_lang codes index this (the store's languages)
    present: tuple[str, ...]  # the languages the view's pairs have
    group_ids: tuple  # (pyarrow string array, codes into it or None): one id per group
    group_nlang: np.ndarray
    pair_lang: np.ndarray
    pair_pos: np.ndarray  # identity codes, numbered by first occurrence (positive, then its negatives)
    neg_ptr: np.ndarray  # CSR offsets into neg_code, one more than the pair rows
    neg_code: np.ndarray
    num_identities: int
    texts: _StoreTexts

    def where(self, row: int) -> str:
        group = int(np.searchsorted(np.cumsum(self.group_nlang), row, side="right"))
        ids, codes = self.group_ids
        gid = ids[group if codes is None else int(codes[group])].as_py()
        lang = self.languages[int(self.pair_lang[row])]
        return f"source {self.name!r}: group {gid!r}, language {lang!r}"


def _store_part(src: PairSource) -> _Part:
    """The integer arrays of an on-disk view, with identity codes renumbered by first occurrence."""

    st, rows = src.store, np.asarray(src.rows, dtype=np.int64)
    kept = src.group_codes
    group = np.searchsorted(kept, st.group[rows])
    lang = np.asarray(st.lang[rows], dtype=np.int64)
    order = np.lexsort((lang, group))
    srows = rows[order]
    group_nlang = np.bincount(group, minlength=len(kept)).astype(np.int64)
    del group
    count = np.asarray(st.neg_ptr[srows + 1] - st.neg_ptr[srows], dtype=np.int64)
    n, total = len(srows), int(count.sum())
    width = 1 + count
    row_start = np.cumsum(width) - width  # each row's positive, then its negatives, in one sequence
    ptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(count, out=ptr[1:])
    owner = np.repeat(np.arange(n, dtype=np.int64), count)
    within = np.arange(total, dtype=np.int64) - ptr[:-1][owner]
    seq = np.empty(n + total, dtype=np.int64)
    seq[row_start] = st.pos[srows]
    neg_at = row_start[owner] + 1 + within
    seq[neg_at] = st.neg[np.asarray(st.neg_ptr[srows], dtype=np.int64)[owner] + within]
    del owner, within
    uniq, first, inverse = np.unique(seq, return_index=True, return_inverse=True)
    del seq
    rank = np.empty(len(uniq), dtype=np.int64)
    rank[np.argsort(first, kind="stable")] = np.arange(len(uniq), dtype=np.int64)
    codes = rank[inverse.ravel()]
    return _Part(
        src.name, st.languages, src.languages, (st.group_ids, np.asarray(kept, dtype=np.int64)), group_nlang,
        lang[order], codes[row_start], ptr, codes[neg_at], len(uniq), _StoreTexts(st.table, srows),
    )  # fmt: skip


class GroupIds:
    """Global group number -> the source's group id, read from Arrow strings (no Python object, no copy per group).

    Args:
        parts: per source, (its group ids as a pyarrow string array, the positions of its groups in that
            array or None for all of them in order): an on-disk view points into its store's id column.
    """

    def __init__(self, parts: Sequence[tuple]) -> None:
        self._parts = [(ids, None if codes is None else np.asarray(codes)) for ids, codes in parts]
        sizes = [len(ids) if codes is None else len(codes) for ids, codes in self._parts]
        self._start = np.concatenate([[0], np.cumsum(sizes, dtype=np.int64)]).astype(np.int64)

    def __len__(self) -> int:
        return int(self._start[-1])

    def __getitem__(self, i: int) -> str:
        i = int(i)
        if not 0 <= i < len(self):
            raise IndexError(f"group {i} out of range [0, {len(self)})")
        part = int(np.searchsorted(self._start, i, side="right")) - 1
        ids, codes = self._parts[part]
        j = i - int(self._start[part])
        return ids[j if codes is None else int(codes[j])].as_py()

    def __iter__(self):
        import pyarrow as pa

        for ids, codes in self._parts:
            if codes is None:
                yield from ids.to_pylist()
                continue
            for at in range(0, len(codes), 65536):  # a slice at a time: never all the ids as Python strings
                yield from ids.take(pa.array(codes[at : at + 65536])).to_pylist()


class PairIndex:
    """Integer view of one or more sources; texts stay in the sources' on-disk stores.

    Every source is a :class:`~polyret.data.pairstore.PairSource` (a view over a memory-mapped pair store):
    only integer arrays are built here, texts are fetched per batch from the Arrow table. A
    :class:`~polyret.data.records.PairGroups` given instead is first written to its store
    (:func:`~polyret.data.pairstore.as_pair_source`, keyed by content), so there is one kind of source.
    Groups are numbered source by source in the sources' order; a group's pair rows are contiguous and
    sorted by language code; :attr:`languages` are those the views' pairs have. ``negatives``: how many
    hard-negative columns (:func:`negative_columns`) the texts carry. ``None`` keeps as many as every pair
    has (0 if one has none); ``True`` is 1; an integer k demands at least k per pair (DataError naming the
    first pair with fewer) and takes each pair's first k; ``False`` / 0 drops them.

    Args:
        sources: the training sources, at least one.
        negatives: hard-negative columns to carry, as above.
    """

    def __init__(self, sources: Sequence[PairSource | PairGroups], *, negatives: bool | int | None = None) -> None:
        if isinstance(sources, (PairGroups, PairSource)):
            sources = [sources]
        if not sources:
            raise ValueError("PairIndex needs at least one source")
        names = [s.name for s in sources]
        if len(set(names)) != len(names):
            raise ValueError(f"source names must be unique, got {names}")
        sources = [as_pair_source(s) for s in sources]
        want = None if negatives is None else int(negatives)  # bool: True -> 1, False -> 0
        if want is not None and want < 0:
            raise ValueError(f"negatives must be >= 0, got {negatives}")
        parts = [_store_part(s) for s in sources]
        self.sources: tuple[str, ...] = tuple(names)
        self.languages: tuple[str, ...] = tuple(sorted({lang for p in parts for lang in p.present}))
        lang_code = {lang: i for i, lang in enumerate(self.languages)}

        fewest: int | None = None  # the fewest negatives of any pair, and which pair that was
        fewest_at: str | None = None
        for p in parts:
            counts = np.diff(p.neg_ptr)
            if len(counts) and (fewest is None or int(counts.min()) < fewest):
                fewest = int(counts.min())
                fewest_at = p.where(int(np.argmin(counts)))
        fewest = fewest or 0
        if want is not None and fewest < want:
            has = "no hard negative" if fewest == 0 else f"only {fewest}"
            raise DataError(f"negatives={want} but a pair has {has} ({fewest_at})")
        self.num_negatives: int = fewest if want is None else want
        self.negative_columns: tuple[str, ...] = negative_columns(self.num_negatives)
        self.has_negatives: bool = self.num_negatives > 0
        self._parts_texts = [p.texts for p in parts]

        self.num_pairs: int = sum(len(p.pair_lang) for p in parts)
        self.num_identities: int = sum(p.num_identities for p in parts)
        code_dtype = np.int32 if self.num_identities < 2**31 - 1 else np.int64
        self.pair_positive = np.empty(self.num_pairs, dtype=code_dtype)  # passage identity code per pair row
        # hard negatives' identity codes: one column per negative the index uses (at least one column),
        # -1 where there is none or negatives are dropped
        self.pair_negative = np.full((self.num_pairs, max(self.num_negatives, 1)), -1, dtype=code_dtype)
        self.pair_lang = np.empty(self.num_pairs, dtype=np.int32)
        self._pair_start = np.zeros(len(parts) + 1, dtype=np.int64)  # first pair row of each source
        row = id_offset = 0
        for s, p in enumerate(parts):
            n = len(p.pair_lang)
            to_global = np.asarray([lang_code.get(lang, -1) for lang in p.languages], dtype=np.int32)  # -1: unused
            self.pair_lang[row : row + n] = to_global[p.pair_lang] if n else []
            self.pair_positive[row : row + n] = p.pair_pos + id_offset
            counts = np.diff(p.neg_ptr)
            for j in range(self.num_negatives):
                has = np.flatnonzero(counts > j)
                self.pair_negative[row + has, j] = p.neg_code[p.neg_ptr[has] + j] + id_offset
            row += n
            id_offset += p.num_identities
            self._pair_start[s + 1] = row

        self.group_ids = GroupIds([p.group_ids for p in parts])  # global group number -> the source's group id
        self.group_nlang = np.concatenate([p.group_nlang for p in parts]).astype(np.int64)
        n_groups = len(self.group_nlang)
        self.group_start = np.zeros(n_groups, dtype=np.int64)
        if n_groups:
            np.cumsum(self.group_nlang[:-1], out=self.group_start[1:])
        self.group_source = np.repeat(np.arange(len(parts), dtype=np.int32), [len(p.group_nlang) for p in parts])
        self.source_group_start = np.concatenate([[0], np.cumsum([len(p.group_nlang) for p in parts])]).astype(np.int64)
        del parts
        self.pair_group = np.repeat(np.arange(n_groups, dtype=np.int64), self.group_nlang)
        self.num_slots: int = int(self.group_nlang.max()) if n_groups else 0
        # group x language -> slot of that language in the group (-1: absent); int8 keeps it G*L bytes.
        slot_dtype = np.int8 if self.num_slots < 127 else np.int32
        self.lang_slot = np.full((n_groups, len(self.languages)), -1, dtype=slot_dtype)
        slots_in_group = np.arange(self.num_pairs, dtype=np.int64) - self.group_start[self.pair_group]
        self.lang_slot[self.pair_group, self.pair_lang] = slots_in_group

    # ------------------------------------------------------- saved arrays
    ARRAYS = ("pair_positive", "pair_negative", "pair_lang", "pair_group", "group_start", "group_nlang",
              "group_source", "source_group_start", "lang_slot", "_pair_start")  # fmt: skip

    def saved_state(self) -> tuple[dict[str, np.ndarray], dict]:
        """(arrays, scalars) from which :meth:`restore` rebuilds this index over the same on-disk sources
        (``polyret.training.index_cache`` writes them next to the stores). Only for store-backed sources."""
        arrays = {name: getattr(self, name) for name in self.ARRAYS}
        for i, (texts, (_, codes)) in enumerate(zip(self._parts_texts, self.group_ids._parts)):
            arrays[f"part{i}_rows"] = texts._rows
            arrays[f"part{i}_groups"] = codes
        scalars = {"sources": list(self.sources), "languages": list(self.languages), "num_pairs": self.num_pairs,
                   "num_identities": self.num_identities, "num_negatives": self.num_negatives,
                   "num_slots": self.num_slots}  # fmt: skip
        return arrays, scalars

    @classmethod
    def restore(cls, sources: Sequence[PairSource], arrays: dict[str, np.ndarray], scalars: dict) -> PairIndex:
        """The index :meth:`saved_state` described, over ``sources`` (the same views), from (memory-mapped) arrays.

        Args:
            sources: the on-disk views the index was built from, in the same order.
            arrays, scalars: what :meth:`saved_state` returned (arrays may be read-only memory maps).
        """
        if [s.name for s in sources] != scalars["sources"]:
            raise ValueError(f"saved index is of sources {scalars['sources']}, not {[s.name for s in sources]}")
        self = cls.__new__(cls)
        for name in cls.ARRAYS:
            setattr(self, name, arrays[name])
        self.sources = tuple(scalars["sources"])
        self.languages = tuple(scalars["languages"])
        self.num_pairs, self.num_identities = int(scalars["num_pairs"]), int(scalars["num_identities"])
        self.num_negatives, self.num_slots = int(scalars["num_negatives"]), int(scalars["num_slots"])
        self.negative_columns = negative_columns(self.num_negatives)
        self.has_negatives = self.num_negatives > 0
        self._parts_texts = [_StoreTexts(s.store.table, arrays[f"part{i}_rows"]) for i, s in enumerate(sources)]
        self.group_ids = GroupIds([(s.store.group_ids, arrays[f"part{i}_groups"]) for i, s in enumerate(sources)])
        return self

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
        q, p = np.asarray(q, dtype=np.int64), np.asarray(p, dtype=np.int64)
        k = self.num_negatives
        src_q = self.group_source[self.pair_group[q]]
        src_p = self.group_source[self.pair_group[p]]
        if len(q) and (src_q == src_q[0]).all() and (src_p == src_q[0]).all():  # a step draws from one source
            s = int(src_q[0])
            texts, start = self._parts_texts[s], self._pair_start[s]
            positives, negs = texts.passages(p - start, k)
            out = {"anchor": texts.queries(q - start), "positive": positives}
        else:
            anchor: list = [None] * len(q)
            positives = [None] * len(p)
            negs = [[None] * len(p) for _ in range(k)]
            for s in np.unique(np.concatenate([src_q, src_p])).tolist():
                texts, start = self._parts_texts[s], self._pair_start[s]
                at = np.flatnonzero(src_q == s)
                for i, t in zip(at.tolist(), texts.queries(q[at] - start)):
                    anchor[i] = t
                at = np.flatnonzero(src_p == s)
                pos, neg = texts.passages(p[at] - start, k)
                for i, t in zip(at.tolist(), pos):
                    positives[i] = t
                for j in range(k):
                    for i, t in zip(at.tolist(), neg[j]):
                        negs[j][i] = t
            out = {"anchor": anchor, "positive": positives}
        for column, values in zip(self.negative_columns, negs):
            out[column] = values
        return out

    def transform(self, batch: dict[str, list]) -> dict[str, list[str]]:
        """``Dataset.set_transform`` hook: index columns -> text columns (only text columns come out)."""
        q, p = self._rows(np.asarray(batch["q"]), np.asarray(batch["s"]))
        return self._texts(q, p)

    def fingerprint(self) -> str:
        """A short hash of the index's shape (sources, pairs, slots, identities, negatives): the view's
        ``datasets`` fingerprint, computed without reading the arrays."""
        shape = [list(self.sources), self.num_pairs, self.num_slots, self.num_identities, self.num_negatives,
                 list(self.languages), self.num_groups]  # fmt: skip
        return hashlib.sha256(json.dumps(shape).encode()).hexdigest()[:16]

    def to_dataset(self):
        """The lazy ``datasets.Dataset`` view (``num_rows`` rows, texts looked up per fetched batch)."""
        import datasets
        import pyarrow as pa
        from datasets.table import InMemoryTable

        n, k = self.num_pairs, self.num_slots
        if n == 0:
            raise ValueError("PairIndex has no pairs: nothing to train on")
        # one column of n + k integers for both index columns: 4 bytes per pair below 2**31 rows
        base = pa.array(np.arange(n + k, dtype=np.int32 if n + k < 2**31 else np.int64))
        q_col = pa.chunked_array([base.slice(0, n)] * k)
        s_col = pa.chunked_array([base.slice(slot, n) for slot in range(k)])
        table = pa.Table.from_arrays([q_col, s_col], names=list(INDEX_COLUMNS))
        # A fingerprint of our own: without one, datasets hashes the whole table (pickles every slice).
        ds = datasets.Dataset(InMemoryTable(table), fingerprint=self.fingerprint())
        _register_transform_hash()
        ds.set_transform(IndexTransform(self.transform, self.fingerprint()))
        return ds


class IndexTransform:
    """A dataset transform over a :class:`PairIndex` that ``datasets`` fingerprints by the index's
    :meth:`~PairIndex.fingerprint` instead of pickling it.

    ``Dataset.set_transform`` hashes its transform to update the dataset's fingerprint; hashing a bound method
    of the index pickles the index: every integer array and the memory-mapped texts of the store, a transient
    of ~600 bytes per pair (about 6 GB per rank at 10M pairs) for a hash nothing uses (the index view is
    never mapped or cached). Ordinary pickling (DataLoader workers under spawn) is unchanged.

    Args:
        fn: the transform, index columns -> text columns (``PairIndex.transform``).
        fingerprint: the index's fingerprint.
    """

    def __init__(self, fn, fingerprint: str) -> None:
        self.fn = fn
        self.fingerprint = fingerprint

    def __call__(self, batch: dict[str, list]) -> dict[str, list[str]]:
        return self.fn(batch)


def _register_transform_hash() -> None:
    """Teach datasets' fingerprint pickler (used for hashing only) to hash an IndexTransform by its fingerprint."""
    try:
        from datasets.utils._dill import Pickler, pklregister
    except ImportError:  # pragma: no cover - another datasets layout: hashing falls back to pickling the index
        return
    if IndexTransform in Pickler.dispatch:
        return

    @pklregister(IndexTransform)
    def _save(pickler, obj):  # the hash stands for the index's shape and the transform's kind
        kind = getattr(obj.fn, "__qualname__", type(obj.fn).__qualname__)
        pickler.save_reduce(str, (f"polyret.IndexTransform:{obj.fingerprint}:{kind}",), obj=obj)


def build_pairs_dataset(
    sources: Sequence[PairSource | PairGroups] | PairSource | PairGroups, *, negatives: bool | int | None = None
):
    """(lazy ``datasets.Dataset``, its :class:`PairIndex`) for one or more sources.

    Args:
        sources: one source or several (on-disk :class:`~polyret.data.pairstore.PairSource` views, or
            :class:`~polyret.data.records.PairGroups` written to their stores first).
        negatives: hard-negative columns, as for :class:`PairIndex`.
    """
    index = PairIndex(sources if not isinstance(sources, (PairGroups, PairSource)) else [sources], negatives=negatives)
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
