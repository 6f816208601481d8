"""Typed records shared by every dataset family.

A benchmark is queries, candidates and qrels, each tagged with a language. A question id is shared by
its translations, so ``(query.id, query.lang)`` is unique and ``qrels[query.id]`` holds the gold
candidates in EVERY language; a setting restricts them to its pool. Candidate ids are unique across
the whole benchmark.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np

from polyret.errors import DataError  # noqa: F401  (re-exported: defined once, in polyret.errors)
from polyret.vocabulary import FAMILIES


@dataclass(frozen=True)
class Query:
    """One query (a question) in one language.

    Args:
        id: the question id, shared by its translations.
        lang: its language code.
        text: the query text.
    """

    id: str
    lang: str
    text: str


@dataclass(frozen=True)
class Candidate:
    """One retrievable passage (a sentence, a MIRACL passage).

    Args:
        id: unique across the whole benchmark.
        lang: its language code.
        text: the text encoded.
        context: the paragraph a sentence came from, for encoders that use it (``with_context``).
    """

    id: str
    lang: str
    text: str
    context: str = ""  # the paragraph a sentence came from, for encoders that use it


def arrow_to_numpy(arr) -> np.ndarray:
    """A numpy copy of an Arrow Array or ChunkedArray without nulls (a ChunkedArray's ``to_numpy`` takes
    ``zero_copy_only`` only from pyarrow 13; the floor is 12)."""
    import pyarrow as pa

    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    return arr.to_numpy(zero_copy_only=False)


class CandidateTable(Sequence[Candidate]):
    """Every candidate of a benchmark as columns, not one Python object per passage.

    ``ids``, ``texts`` (and ``contexts``, LAReQA's paragraphs) are Arrow ``large_string`` arrays (one
    buffer of bytes plus offsets), or chunked arrays of them (kept chunked, not concatenated: e.g. the
    record batches of a memory-mapped Arrow IPC file); languages are
    int16 codes into :attr:`lang_names`. It behaves as a read-only sequence of :class:`Candidate`
    (``len``, ``table[i]`` builds one lazily, iteration, slicing); code that needs every row should
    read the columns instead.

    Args:
        ids: candidate ids (unique across the benchmark), an Arrow string array (or chunked array) or a
            list of str.
        lang_codes: (n,) integer codes into ``lang_names``.
        lang_names: the language of each code.
        texts: the texts encoded, aligned with ``ids``.
        contexts: the paragraph each candidate came from (None: no contexts, every context is "").
    """

    def __init__(self, ids, lang_codes, lang_names: Sequence[str], texts, contexts=None) -> None:
        import pyarrow as pa

        self.ids = _large_strings(ids)
        self.texts = _large_strings(texts)
        self.contexts = None if contexts is None else _large_strings(contexts)
        self.lang_codes = np.asarray(lang_codes, dtype=np.int16)
        self.lang_names = tuple(lang_names)
        self.mapping = None  # the read-only mmap the columns live in, when a loader mapped a file
        n = len(self.ids)
        for name, col in (("texts", self.texts), ("lang_codes", self.lang_codes), ("contexts", self.contexts)):
            if col is not None and len(col) != n:
                raise ValueError(f"candidate column {name!r} has {len(col)} rows, expected {n}")
        if n and (self.lang_codes.min() < 0 or self.lang_codes.max() >= len(self.lang_names)):
            raise ValueError("candidate language codes out of range of lang_names")
        if self.ids.null_count or self.texts.null_count:
            raise ValueError("candidate ids and texts must not be null")
        assert isinstance(self.ids, (pa.Array, pa.ChunkedArray))

    # ------------------------------------------------------------------ building
    @classmethod
    def from_records(cls, candidates: Iterable[Candidate]) -> CandidateTable:
        """A table of ``Candidate`` objects (small benchmarks, tests); contexts kept when any is set."""
        cands = list(candidates)
        names = tuple(dict.fromkeys(c.lang for c in cands))
        code = {lang: i for i, lang in enumerate(names)}
        contexts = [c.context for c in cands] if any(c.context for c in cands) else None
        return cls(
            [c.id for c in cands],
            np.fromiter((code[c.lang] for c in cands), dtype=np.int16, count=len(cands)),
            names,
            [c.text for c in cands],
            contexts,
        )

    @classmethod
    def empty(cls) -> CandidateTable:
        return cls([], np.zeros(0, np.int16), (), [])

    # ------------------------------------------------------------------ sequence
    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, index):  # type: ignore[override]
        if isinstance(index, slice):
            return self.take(np.arange(len(self))[index])
        i = int(index)
        if i < 0:
            i += len(self)
        if not 0 <= i < len(self):
            raise IndexError(f"candidate index {index} out of range for {len(self)} candidates")
        return Candidate(
            id=self.ids[i].as_py(),
            lang=self.lang_names[self.lang_codes[i]],
            text=self.texts[i].as_py(),
            context=self.contexts[i].as_py() if self.contexts is not None else "",
        )

    def __iter__(self) -> Iterator[Candidate]:
        for lo in range(0, len(self), 4096):  # converted a batch at a time
            hi = min(lo + 4096, len(self))
            ids = self.ids.slice(lo, hi - lo).to_pylist()
            texts = self.texts.slice(lo, hi - lo).to_pylist()
            ctx = self.contexts.slice(lo, hi - lo).to_pylist() if self.contexts is not None else [""] * (hi - lo)
            for j, (cid, text, context) in enumerate(zip(ids, texts, ctx)):
                yield Candidate(cid, self.lang_names[self.lang_codes[lo + j]], text, context)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, CandidateTable):
            return (
                len(self) == len(other)
                and _chunked(self.ids).equals(_chunked(other.ids))
                and _chunked(self.texts).equals(_chunked(other.texts))
                and bool(np.array_equal(self.langs, other.langs))
                and self.context_list() == other.context_list()
            )
        if isinstance(other, (list, tuple)):
            return list(self) == list(other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"CandidateTable({len(self)} candidates, languages {', '.join(self.lang_names)})"

    # ------------------------------------------------------------------ columns
    @property
    def langs(self) -> np.ndarray:
        """The language of every candidate as a numpy str array (``lang_codes`` is the compact form)."""
        return np.asarray(self.lang_names or ("",), dtype=str)[self.lang_codes]

    def id_array(self, rows: np.ndarray | None = None) -> np.ndarray:
        """The ids (of ``rows`` only, when given) as a numpy str array, built from Arrow's buffers (no
        Python str per id) when ASCII. Only the ids column is read: never the texts' pages.

        Args:
            rows: candidate row indices (None: every candidate).
        """
        import pyarrow as pa

        if rows is None:
            return _str_array(self.ids)
        return _str_array(self.ids.take(pa.array(np.asarray(rows, dtype=np.int64))))

    def lang_array(self, rows: np.ndarray) -> np.ndarray:
        """The languages of ``rows`` as a numpy str array (``langs`` for a subset, without one entry per candidate).

        Args:
            rows: candidate row indices.
        """
        return np.asarray(self.lang_names or ("",), dtype=str)[self.lang_codes[np.asarray(rows, dtype=np.int64)]]

    def id_list(self) -> list[str]:
        return self.ids.to_pylist()

    def text_list(self) -> list[str]:
        return self.texts.to_pylist()

    def context_list(self) -> list[str]:
        return self.contexts.to_pylist() if self.contexts is not None else [""] * len(self)

    def present_langs(self) -> set[str]:
        """The languages that have at least one candidate."""
        return {self.lang_names[c] for c in np.unique(self.lang_codes)}

    def indices_in(self, langs: str | Iterable[str]) -> np.ndarray:
        """Row indices (ascending) of the candidates in ``langs`` (one code or several)."""
        wanted = {langs} if isinstance(langs, str) else set(langs)
        codes = [i for i, lang in enumerate(self.lang_names) if lang in wanted]
        return np.flatnonzero(np.isin(self.lang_codes, codes))

    def take(self, indices: np.ndarray) -> CandidateTable:
        """The rows at ``indices`` (int array) as a new table."""
        import pyarrow as pa

        idx = pa.array(np.asarray(indices, dtype=np.int64))
        return CandidateTable(
            self.ids.take(idx),
            self.lang_codes[np.asarray(indices, dtype=np.int64)],
            self.lang_names,
            self.texts.take(idx),
            None if self.contexts is None else self.contexts.take(idx),
        )

    def positions(self, ids: Sequence[str]) -> np.ndarray:
        """The row of each of ``ids`` (-1 where absent; the first row when an id repeats).

        The candidate ids are scanned against a hash set of ``ids`` (Arrow's ``index_in``), not the
        other way round: memory is that small set plus one int32 per candidate for the scan, never a
        hash table of the whole corpus (which Arrow's allocator would keep as resident memory).
        """
        import pyarrow as pa
        import pyarrow.compute as pc

        if not len(ids):
            return np.zeros(0, dtype=np.int64)
        wanted = pa.array(list(ids), type=pa.large_string())
        keys = pc.unique(wanted)
        hit = pc.index_in(self.ids, value_set=keys)  # per candidate: its key's index, or null
        valid = pc.is_valid(hit)
        rows = np.flatnonzero(arrow_to_numpy(valid))
        which = arrow_to_numpy(pc.filter(hit, valid)).astype(np.int64)
        del hit, valid
        first = np.full(len(keys), -1, dtype=np.int64)
        if len(rows):
            key, at = np.unique(which, return_index=True)  # rows ascend: the first row of each key
            first[key] = rows[at]
        release_arrow_memory()
        return first[arrow_to_numpy(pc.index_in(wanted, value_set=keys)).astype(np.int64)]

    def release_pages(self) -> None:
        """Drop the pages of a memory-mapped table (``mapping``: the loader's read-only ``mmap`` of its
        file) from this process's resident memory; they stay in the page cache and a later read faults
        them back in. Call it when a pass over the texts (encoding) is done, so they do not count in
        the search's RSS. A no-op for a table held in memory."""
        import mmap

        mapping = getattr(self, "mapping", None)
        if isinstance(mapping, mmap.mmap) and hasattr(mmap, "MADV_DONTNEED"):
            mapping.madvise(mmap.MADV_DONTNEED)  # a read-only file mapping: nothing is lost

    def mark_unique(self) -> CandidateTable:
        """Record that the ids are known to be unique (checked by the loader), so
        :meth:`first_duplicate` does not hash every id again; returns the table."""
        self._unique = True
        return self

    def first_duplicate(self) -> str | None:
        """An id that occurs more than once, or None (remembered once no id repeats)."""
        import pyarrow.compute as pc

        if getattr(self, "_unique", False):
            return None
        try:
            if len(pc.unique(self.ids)) == len(self.ids):
                self._unique = True
                return None
            counts = pc.value_counts(self.ids)
            dup = pc.filter(counts.field("values"), pc.greater(counts.field("counts"), 1))
            return dup[0].as_py()
        finally:  # the hash table of every id is gone: give its pages back, not keep them resident
            release_arrow_memory()


def release_arrow_memory() -> None:
    """Return the Arrow allocator's unused pages to the OS (after a corpus-wide hash or sort: jemalloc /
    mimalloc keep freed pages resident otherwise, and they would count in every later phase's RSS)."""
    import pyarrow as pa

    pa.default_memory_pool().release_unused()


def _chunked(values):
    """``values`` as a ChunkedArray (its chunking does not matter to ``equals``)."""
    import pyarrow as pa

    return values if isinstance(values, pa.ChunkedArray) else pa.chunked_array([values])


def _str_array(values) -> np.ndarray:
    """An Arrow ``large_string`` array (or chunked array) as a numpy ``<U`` array; the bytes are
    scattered into a fixed-width buffer directly, so no Python object is made per row (non-ASCII: via a list)."""
    import pyarrow as pa

    if isinstance(values, pa.ChunkedArray):
        parts = [_str_array(c) for c in values.chunks]
        return np.concatenate(parts) if parts else np.zeros(0, dtype="<U1")
    n = len(values)
    if n == 0:
        return np.zeros(0, dtype="<U1")
    offsets = np.frombuffer(values.buffers()[1], dtype=np.int64, count=n + 1, offset=values.offset * 8)
    data = values.buffers()[2]
    raw = np.frombuffer(data, dtype=np.uint8) if data is not None else np.zeros(0, np.uint8)
    lo, hi = offsets[:-1], offsets[1:]
    lengths = hi - lo
    width = max(1, int(lengths.max()))
    if raw[lo[0] : hi[-1]].max(initial=0) >= 128 or width > 256:
        return np.asarray(values.to_pylist(), dtype=str)
    out = np.zeros((n, width), dtype=np.uint8)
    for j in range(width):  # one byte column at a time: temporaries of n entries, not of every byte
        has = np.flatnonzero(lengths > j)
        out[has, j] = raw[lo[has] + j]
    return out.view(f"S{width}").ravel().astype(f"<U{width}")


def _large_strings(values):
    """``values`` as ``large_string`` Arrow data: an Arrow array stays one array, a chunked array stays
    chunked (one chunk: that array), so memory-mapped batches are never copied; a list of str becomes an array."""
    import pyarrow as pa

    if isinstance(values, pa.ChunkedArray):
        if values.num_chunks == 1:
            values = values.chunk(0)
        elif values.num_chunks == 0:
            values = pa.array([], type=pa.large_string())
        else:
            return values if values.type == pa.large_string() else values.cast(pa.large_string())
    if not isinstance(values, pa.Array):
        values = pa.array(list(values), type=pa.large_string())
    if values.type != pa.large_string():
        values = values.cast(pa.large_string())
    return values


@dataclass
class Benchmark:
    """Queries, candidates and qrels of one benchmark, each tagged with a language.

    Args:
        id: the stable id, e.g. ``"xquad-r:test"``, ``"mlqa-r"``, ``"miracl/de"``.
        languages: its languages, in canonical order.
        queries: every query; ``(id, lang)`` is unique.
        candidates: every candidate, as a :class:`CandidateTable` (a list of ``Candidate`` is
            converted into one, also when assigned later).
        qrels: query id -> {candidate id: relevance > 0}, in every language.
        families: the setting families that make sense here.
        provenance: where the data came from (files, counts dropped), for reports.
    """

    id: str  # stable id, e.g. "xquad-r:test", "mlqa-r", "miracl/de"
    languages: tuple[str, ...]
    queries: list[Query]
    candidates: CandidateTable
    qrels: dict[str, dict[str, int]]  # query id -> {candidate id: relevance > 0}
    families: tuple[str, ...] = FAMILIES  # setting families that make sense here
    provenance: str = ""

    def __setattr__(self, name: str, value) -> None:
        if name == "candidates" and not isinstance(value, CandidateTable):
            value = CandidateTable.from_records(value)
        object.__setattr__(self, name, value)

    def queries_in(self, lang: str) -> list[Query]:
        return [q for q in self.queries if q.lang == lang]

    def candidates_in(self, lang: str) -> CandidateTable:
        """The candidates in ``lang`` (a table of the rows, by index arrays)."""
        return self.candidates.take(self.candidates.indices_in(lang))


def passage_identity(lang: str, text: str, passage_id: str | None) -> tuple[str, ...]:
    """THE definition of passage identity: when two training passages are the same passage.

    Two passages are one passage when they carry the same id (``Pair.positive_id`` / ``negative_id``, a
    JSONL ``positive_id``, a LAReQA gold sentence's identity, an mMARCO pid: ids are shared by a passage
    and its translations), or when neither has an id and they have the same language and exact text
    (identical texts are caught, translations without ids are not). An id and a text never match each
    other. Everything that asks "the same passage?" keys on this: the pair store's integer identity codes
    (:mod:`polyret.data.pairstore`: an id's exact value, a text's 64-bit hash of ``(lang, text)``,
    :func:`polyret.data.pairstore.text_hash`), hence the training index's ``pair_positive`` /
    ``pair_negative``, the sampler's conflicts (no two examples of one passage in a batch) and mining's
    exclusion of gold passages (:mod:`polyret.training.mining`).

    Args:
        lang: the passage's language.
        text: the passage text.
        passage_id: its id (None: not known).

    Returns:
        ``("id", passage_id)`` or ``("text", lang, text)``.
    """
    return ("id", passage_id) if passage_id is not None else ("text", lang, text)


@dataclass(frozen=True)
class Pair:
    """One training example in one language; ``group`` is shared by its translations.

    ``positive_id`` / ``negative_id`` name the *passage identity* of the positive and hard negative:
    one id shared by a passage and all its translations (LAReQA: the gold sentence of the paragraph;
    mMARCO: the passage id). Two examples whose passages share an identity must never meet in one
    contrastive batch, or InfoNCE would treat the right answer as a negative. ``None``: not known;
    the passage is then known by its exact text per language (:func:`passage_identity`).

    ``negative`` is one hard negative (a string) or several (a tuple, e.g. mined with ``polyret mine``),
    with ``negative_id`` then a tuple of the same length (``None`` entries: identity unknown). A list
    becomes a tuple, a one-element tuple its string and an empty one ``None``, so code that reads
    ``negative`` as one string keeps working whenever there is one; :attr:`negatives` and
    :attr:`negative_ids` always give tuples.

    Args:
        group: the parallel group id (shared by translations).
        lang: the language of this example.
        query: the query text.
        positive: the positive passage text.
        negative: one hard negative, several (a tuple), or None.
        source: the source name it came from.
        positive_id: the passage identity of the positive (None: unknown).
        negative_id: the identity of the negative(s), aligned with ``negative`` (None: unknown).
    """

    group: str
    lang: str
    query: str
    positive: str
    negative: str | tuple[str, ...] | None = None
    source: str = ""
    positive_id: str | None = None
    negative_id: str | tuple[str | None, ...] | None = None

    def __post_init__(self) -> None:
        negative, negative_id = self.negative, self.negative_id
        if isinstance(negative, (list, tuple)):
            negative = tuple(negative)
            if isinstance(negative_id, (list, tuple)):
                negative_id = tuple(negative_id)
                if len(negative_id) != len(negative):
                    raise ValueError(
                        f"Pair {self.group!r} ({self.lang}): {len(negative)} negatives but {len(negative_id)} negative ids"
                    )
            elif negative_id is not None:
                raise ValueError(f"Pair {self.group!r} ({self.lang}): several negatives need a list of negative ids")
            if len(negative) <= 1:
                negative = negative[0] if negative else None
                negative_id = negative_id[0] if negative_id else None
        elif isinstance(negative_id, (list, tuple)):
            if len(negative_id) != (negative is not None):
                raise ValueError(
                    f"Pair {self.group!r} ({self.lang}): {int(negative is not None)} negative(s) but "
                    f"{len(negative_id)} negative ids"
                )
            negative_id = negative_id[0] if negative_id else None
        object.__setattr__(self, "negative", negative)
        object.__setattr__(self, "negative_id", negative_id)

    @property
    def negatives(self) -> tuple[str, ...]:
        """The hard negatives as a tuple (empty when there are none)."""
        if self.negative is None:
            return ()
        return self.negative if isinstance(self.negative, tuple) else (self.negative,)

    @property
    def negative_ids(self) -> tuple[str | None, ...]:
        """Passage identities aligned with :attr:`negatives` (``None``: not known)."""
        n = len(self.negatives)
        if self.negative_id is None or n == 0:
            return (None,) * n
        return self.negative_id if isinstance(self.negative_id, tuple) else (self.negative_id,)


@dataclass
class PairGroups:
    """Parallel training pairs: group id -> {language: Pair}. One source (dataset) of training data.

    Args:
        name: the source's name (its spec, e.g. ``"xquad-r:train"``).
        groups: group id -> {language: Pair}.
    """

    name: str
    groups: dict[str, dict[str, Pair]] = field(default_factory=dict)

    @property
    def languages(self) -> tuple[str, ...]:
        langs = {lang for by_lang in self.groups.values() for lang in by_lang}
        return tuple(sorted(langs))

    def __len__(self) -> int:
        return len(self.groups)
