"""Retrieval settings: which queries search which pool of candidates.

A setting is a query language plus a set of candidate languages. The three families the project
evaluates differ only in that set: monolingual (X -> X), cross-lingual (X -> Y, Y != X) and
multilingual (X -> every language at once). Pools are index views over one candidate matrix, so a
setting carries languages, never candidates.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from polyret.data.records import Benchmark
from polyret.vocabulary import FAMILIES, check_languages

__all__ = ["FAMILIES", "Setting", "parse_setting", "settings_for", "split_setting"]


@dataclass(frozen=True)
class Setting:
    """One retrieval setting: the queries of one language searching one pool.

    Args:
        family: ``"mono"``, ``"cross"`` or ``"multi"`` (``polyret.vocabulary.FAMILIES``).
        query_lang: the language of the queries.
        pool_langs: the languages of the candidate pool (one for mono/cross, all chosen ones for multi).
    """

    family: str  # "mono" | "cross" | "multi"
    query_lang: str
    pool_langs: tuple[str, ...]

    def __post_init__(self) -> None:
        if self.family not in FAMILIES:
            raise ValueError(f"unknown setting family {self.family!r}; expected one of {FAMILIES}")
        if not self.pool_langs:
            raise ValueError(f"setting {self.family}:{self.query_lang} has an empty pool")

    @property
    def name(self) -> str:
        """``mono:de``, ``cross:de-en``, ``multi:de`` (the pool of multi is implied by the benchmark)."""
        if self.family == "cross":
            return f"cross:{self.query_lang}-{self.pool_langs[0]}"
        return f"{self.family}:{self.query_lang}"

    def __str__(self) -> str:
        return self.name


def split_setting(name: str) -> tuple[str, str, str]:
    """``"cross:de-en"`` -> ``("cross", "de", "en")``: (family, query language, pool language).

    The one parser of setting names (``Setting.name`` is the one writer). Mono pools are the query
    language; multilingual pools are ``"all"``.

    Args:
        name: a setting name such as ``"mono:de"``, ``"cross:de-en"``, ``"multi:de"``.

    Raises:
        ValueError: the name has no family, an unknown family, or a malformed cross-lingual pair.
    """
    family, sep, rest = name.partition(":")
    if not sep or not rest:
        raise ValueError(f"bad setting name {name!r}; expected e.g. 'mono:de', 'cross:de-en', 'multi:de'")
    if family == "mono":
        return family, rest, rest
    if family == "cross":
        src, dash, tgt = rest.partition("-")
        if not dash or not src or not tgt or src == tgt:
            raise ValueError(f"bad cross-lingual setting name {name!r}; expected 'cross:<query>-<pool>'")
        return family, src, tgt
    if family == "multi":
        return family, rest, "all"
    raise ValueError(f"unknown setting family in {name!r}; expected one of {FAMILIES}")


def parse_setting(name: str, languages: Iterable[str]) -> Setting:
    """Inverse of ``Setting.name``; ``languages`` is the pool of a multilingual setting.

    Args:
        name: a setting name (see :func:`split_setting`).
        languages: the pool languages of a ``multi:`` setting (ignored for mono and cross).
    """
    family, query_lang, pool_lang = split_setting(name)
    pool = tuple(languages) if family == "multi" else (pool_lang,)
    return Setting(family, query_lang, pool)


def settings_for(
    benchmark: Benchmark,
    families: Iterable[str] | None = None,
    languages: Iterable[str] | None = None,
) -> list[Setting]:
    """Every setting of ``families`` (default: the benchmark's own) over ``languages``.

    ``languages`` (default: all of the benchmark's) restricts both query and pool languages, so the
    multilingual pool is the union of the chosen languages. A setting is listed only when its query
    language has queries and its pool has candidates; queries without gold in a pool drop out of that
    setting later, at search time. Order: mono, cross, multi; languages in benchmark order.
    """
    allowed = tuple(benchmark.families)
    if families is None:
        wanted = allowed
    else:
        wanted = tuple(dict.fromkeys(families))
        for fam in wanted:
            if fam not in FAMILIES:
                raise ValueError(f"unknown setting family {fam!r}; expected one of {FAMILIES}")
            if fam not in allowed:
                raise ValueError(
                    f"setting family {fam!r} is not evaluated on benchmark {benchmark.id!r} (its families: {allowed})"
                )
    langs = tuple(benchmark.languages)
    if languages is not None:
        langs = check_languages(languages, langs, where=f"benchmark {benchmark.id!r}")

    q_langs = {q.lang for q in benchmark.queries}
    c_langs = benchmark.candidates.present_langs()
    out: list[Setting] = []
    for fam in FAMILIES:
        if fam not in wanted:
            continue
        for x in langs:
            if x not in q_langs:
                continue
            if fam == "mono" and x in c_langs:
                out.append(Setting("mono", x, (x,)))
            elif fam == "cross":
                out.extend(Setting("cross", x, (y,)) for y in langs if y != x and y in c_langs)
            elif fam == "multi":
                pool = tuple(y for y in langs if y in c_langs)
                if pool:
                    out.append(Setting("multi", x, pool))
    return out
