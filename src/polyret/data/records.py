"""Typed records shared by every dataset family.

A benchmark is queries, candidates and qrels, each tagged with a language. A question id is shared by
its translations, so ``(query.id, query.lang)`` is unique and ``qrels[query.id]`` holds the gold
candidates in EVERY language; a setting restricts them to its pool. Candidate ids are unique across
the whole benchmark.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from polyret.vocabulary import FAMILIES


class DataError(ValueError):
    """Bad input data: the message names the file and the record."""


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


@dataclass
class Benchmark:
    """Queries, candidates and qrels of one benchmark, each tagged with a language.

    Args:
        id: the stable id, e.g. ``"xquad-r:test"``, ``"mlqa-r"``, ``"miracl/de"``.
        languages: its languages, in canonical order.
        queries: every query; ``(id, lang)`` is unique.
        candidates: every candidate.
        qrels: query id -> {candidate id: relevance > 0}, in every language.
        families: the setting families that make sense here.
        provenance: where the data came from (files, counts dropped), for reports.
    """

    id: str  # stable id, e.g. "xquad-r:test", "mlqa-r", "miracl/de"
    languages: tuple[str, ...]
    queries: list[Query]
    candidates: list[Candidate]
    qrels: dict[str, dict[str, int]]  # query id -> {candidate id: relevance > 0}
    families: tuple[str, ...] = FAMILIES  # setting families that make sense here
    provenance: str = ""

    def queries_in(self, lang: str) -> list[Query]:
        return [q for q in self.queries if q.lang == lang]

    def candidates_in(self, lang: str) -> list[Candidate]:
        return [c for c in self.candidates if c.lang == lang]


@dataclass(frozen=True)
class Pair:
    """One training example in one language; ``group`` is shared by its translations.

    ``positive_id`` / ``negative_id`` name the *passage identity* of the positive and hard negative:
    one id shared by a passage and all its translations (LAReQA: the gold sentence of the paragraph;
    mMARCO: the passage id). Two examples whose passages share an identity must never meet in one
    contrastive batch, or InfoNCE would treat the right answer as a negative. ``None``: not known;
    the training index then falls back to the exact text per language (translations are not caught).

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
