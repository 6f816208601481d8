"""Parallel training pairs: group id -> {language: Pair}, from JSONL, LAReQA or mMARCO.

A group is one example and its translations (a question id, an mMARCO query id, a JSONL ``id``), so
the samplers can put the same example in several languages into one batch (cross / hybrid batches).

Sources (``load_pairs`` spec):

* ``path/to/file.jsonl``: one ``{"id", "lang", "query", "positive", "negative"?}`` object per line;
  ``id`` is the parallel group id shared by translations; ``negative`` may be a list (k hard negatives,
  e.g. from ``polyret mine``), ``positive_id`` / ``negative_id`` optional passage identities.
* ``xquad-r:train`` / ``mlqa-r:train`` (also ``:test`` or the whole set): question -> gold sentence in
  every language the question exists in, on that side of the article split (the split of
  ``lareqa.article_split``, so training on ``:train`` never sees a ``:test`` article). With
  ``hard_negatives`` the negative is another sentence of the same paragraph, chosen by a seeded hash.
  Positives and negatives carry passage identities shared by translations (``lareqa_passage_identities``).
* ``mmarco`` / ``mmarco:<folder>``: mMARCO from the Hub or local files (``polyret.data.mmarco``).

A language asked for but absent from the source is an error, never a silent skip.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np

from polyret.data.download import Fetch
from polyret.data.lareqa import (
    LAREQA_LANGUAGES,
    SPLITS,
    LareqaFile,
    SplitConfig,
    article_split,
    candidate_id,
    check_languages,
    load_lareqa_files,
)
from polyret.data.mmarco import (
    MMARCO_LANGUAGES,
    MmarcoFiles,
    mmarco_hub_files,
    mmarco_local_files,
    mmarco_pairs,
    mmarco_source,
)
from polyret.data.pairrows import PairRow, jsonl_rows
from polyret.data.records import DataError, Pair, PairGroups
from polyret.vocabulary import check_languages as check_subset

__all__ = [
    "MMARCO_LANGUAGES",
    "MmarcoFiles",
    "iter_pairs",
    "lareqa_pairs",
    "lareqa_passage_identities",
    "load_pairs",
    "load_pairs_jsonl",
    "mmarco_hub_files",
    "mmarco_local_files",
    "mmarco_pairs",
    "pair_counts",
    "restrict_languages",
    "subsample",
]  # the mMARCO names are re-exported: they lived here before data/mmarco.py


# ------------------------------------------------------------------------------------------ common


def subsample(groups: Mapping[str, dict[str, Pair]], max_groups: int | None, seed: int) -> dict[str, dict[str, Pair]]:
    """A seeded random subset of ``max_groups`` groups, kept in their original order."""
    if max_groups is None or max_groups >= len(groups):
        return dict(groups)
    if max_groups < 1:
        raise ValueError(f"max_groups must be >= 1, got {max_groups}")
    keep = np.sort(np.random.default_rng(seed).permutation(len(groups))[:max_groups])
    keys = list(groups)
    return {keys[i]: groups[keys[i]] for i in keep}


def restrict_languages(
    groups: Mapping[str, dict[str, Pair]], languages: Sequence[str] | None, source: str
) -> dict[str, dict[str, Pair]]:
    """Keep only ``languages`` (all must be present in the data); drop groups left empty."""
    if languages is None:
        return dict(groups)
    present = tuple(sorted({lang for by_lang in groups.values() for lang in by_lang}))
    wanted = set(check_subset(languages, present, where=f"{source} (training pairs)", error=DataError))
    out = {}
    for gid, by_lang in groups.items():
        kept = {lang: pair for lang, pair in by_lang.items() if lang in wanted}
        if kept:
            out[gid] = kept
    return out


def _finish(
    name: str,
    groups: Mapping[str, dict[str, Pair]],
    languages: Sequence[str] | None,
    max_groups: int | None,
    seed: int,
) -> PairGroups:
    groups = restrict_languages(groups, languages, name)
    groups = subsample(groups, max_groups, seed)
    if not groups:
        raise DataError(f"{name}: no training pairs")
    return PairGroups(name=name, groups=groups)


# ------------------------------------------------------------------------------------------- JSONL


def row_pair(row: PairRow, source: str) -> Pair:
    """The :class:`Pair` of one validated row.

    Args:
        row: a validated row (:mod:`polyret.data.pairrows`).
        source: the source name the pair records.
    """
    negative_id = row.negative_ids if any(i is not None for i in row.negative_ids) else None
    return Pair(
        group=row.group, lang=row.lang, query=row.query, positive=row.positive, negative=row.negatives or None,
        source=source, positive_id=row.positive_id, negative_id=negative_id,
    )  # fmt: skip


def load_pairs_jsonl(
    path: str | os.PathLike,
    *,
    languages: Sequence[str] | None = None,
    max_groups: int | None = None,
    seed: int = 0,
) -> PairGroups:
    """Pairs from a user JSONL file; bad rows are DataErrors with file and line.

    A row is ``{"id", "lang", "query", "positive"}`` plus optional ``"positive_id"`` (passage identity,
    shared by translations), ``"negative"`` (a string, or a list of strings: k hard negatives, as
    ``polyret mine`` writes) and ``"negative_id"`` (one id, or a list aligned with the negatives; ``null``
    entries: unknown).

    Args:
        path: the JSONL file.
        languages: keep only these languages (each must be present).
        max_groups: a seeded subsample of this many groups.
        seed: seed of the subsample.
    """
    path = Path(path)
    groups: dict[str, dict[str, Pair]] = {}
    first_line: dict[tuple[str, str], int] = {}
    for lineno, row in jsonl_rows(path):
        key = (row.group, row.lang)
        if key in first_line:
            raise DataError(f"{path}:{lineno}: duplicate (id, lang) = {key!r} (first on line {first_line[key]})")
        first_line[key] = lineno
        groups.setdefault(row.group, {})[row.lang] = row_pair(row, str(path))
    if not groups:
        raise DataError(f"{path}: no pairs (empty file)")
    return _finish(str(path), groups, languages, max_groups, seed)


# ------------------------------------------------------------------------------------------ LAReQA


def _pick(options: Sequence[str], seed: int, *key: str) -> str | None:
    """A seeded choice that depends only on (seed, key), not on iteration order."""
    if not options:
        return None
    digest = hashlib.sha256(":".join((str(seed), *key)).encode()).digest()
    return options[int.from_bytes(digest[:8], "big") % len(options)]


def lareqa_pairs(
    dataset: str,
    split: str | None = "train",
    *,
    data_dir: str | os.PathLike | None = None,
    languages: Sequence[str] | None = None,
    max_groups: int | None = None,
    seed: int = 0,
    hard_negatives: bool = False,
    download: bool = True,
    config: SplitConfig = SplitConfig(),
    fetch: Fetch | None = None,
) -> PairGroups:
    """Question -> gold sentence pairs, grouped by question id, from one side of the article split.

    Every positive and hard negative carries a passage identity (:func:`lareqa_passage_identities`): a
    gold sentence, its translations and every sentence that is the gold of a question sharing one of
    them, in any language, have one id. A hard negative (another sentence text of the paragraph, as
    before) may share its question's own identity (the gold of a question linked to it): harmless, since
    the sampler never puts two examples of one identity in a batch.
    """
    if languages is not None:
        check_languages(dataset, list(languages))
    if split is not None and split not in SPLITS:
        raise DataError(f"unknown split {split!r}; known: {', '.join(SPLITS)}")
    to_read = LAREQA_LANGUAGES[dataset] if split is not None or languages is None else languages
    files = load_lareqa_files(dataset, to_read, data_dir=data_dir, download=download, fetch=fetch, asked=languages)
    side = article_split(files, config) if split is not None else None
    name = dataset if split is None else f"{dataset}:{split}"
    identity = lareqa_passage_identities(files, side, split)
    groups: dict[str, dict[str, Pair]] = {}
    for lang, parsed in files.items():
        for ai, art in enumerate(parsed.articles):
            if side is not None and side[(lang, ai)] != split:
                continue
            for pi, par in enumerate(art.paragraphs):
                ids = [identity[(lang, ai, pi, si)] for si in range(len(par.sentences))]
                for q in par.questions:
                    positive, positive_id = par.sentences[q.gold], ids[q.gold]
                    negative = negative_id = None
                    if hard_negatives:
                        # never the positive's passage: not its text, nor a sentence linked to it
                        others = [
                            si for si, s in enumerate(par.sentences) if s != positive and ids[si] != positive_id and s.strip()
                        ]
                        pick = _pick(others, seed, q.id, lang)
                        if pick is not None:
                            negative, negative_id = par.sentences[pick], ids[pick]
                    groups.setdefault(q.id, {})[lang] = Pair(
                        group=q.id, lang=lang, query=q.text, positive=positive, negative=negative, source=name,
                        positive_id=positive_id, negative_id=negative_id,
                    )  # fmt: skip
    return _finish(name, groups, languages, max_groups, seed)


def lareqa_passage_identities(
    files: Mapping[str, LareqaFile], side: Mapping[tuple[str, int], str] | None = None, split: str | None = None
) -> dict[tuple[str, int, int, int], str]:
    """``(lang, article, paragraph, sentence) -> passage identity`` for the sentences of ``split``'s articles.

    Sentence splits differ by language, so a question's gold sentence in one language is linked to its
    gold in every other language (through the question id), and two questions whose gold sentences
    coincide in ANY language share one identity (union-find over sentences and questions). Sentences of
    identical text in one language are also one passage. The identity is the smallest candidate id
    (``lang:article:paragraph:sentence``) of its sentences, so it depends on the data only. A sentence
    that is nobody's gold is its own identity (its translations are not known without a question).

    Args:
        files: parsed files, one per language.
        side: ``(lang, article) -> "train" | "test"`` from ``article_split`` (None: every article).
        split: the side to cover (ignored when ``side`` is None).
    """
    parent: dict[object, object] = {}

    def find(x: object) -> object:
        root = parent.setdefault(x, x)
        while parent[root] != root:
            root = parent[root]
        while parent[x] != root:
            parent[x], x = root, parent[x]
        return root

    def union(a: object, b: object) -> None:
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[rb] = ra

    nodes: list[tuple[str, int, int, int]] = []
    by_text: dict[tuple[str, str], tuple[str, int, int, int]] = {}
    for lang, parsed in files.items():
        for ai, art in enumerate(parsed.articles):
            if side is not None and side[(lang, ai)] != split:
                continue
            for pi, par in enumerate(art.paragraphs):
                for si, text in enumerate(par.sentences):
                    node = (lang, ai, pi, si)
                    nodes.append(node)
                    find(node)
                    if text.strip():
                        first = by_text.setdefault((lang, text), node)
                        if first != node:
                            union(first, node)
                for q in par.questions:
                    union(("q", q.id), (lang, ai, pi, q.gold))
    names: dict[object, str] = {}
    for node in nodes:
        root, cid = find(node), candidate_id(*node)
        if root not in names or cid < names[root]:
            names[root] = cid
    return {node: names[find(node)] for node in nodes}


# ------------------------------------------------------------------------------------------- entry


def load_pairs(
    spec: str,
    *,
    data_dir: str | os.PathLike | None = None,
    languages: Sequence[str] | None = None,
    max_groups: int | None = None,
    seed: int = 0,
    hard_negatives: bool = False,
    download: bool = True,
    split_config: SplitConfig = SplitConfig(),
    fetch: Fetch | None = None,
    max_triples_per_query: int | None = None,
) -> PairGroups:
    """Training pairs from ``spec``: ``xquad-r:train``, ``mlqa-r:train``, ``file.jsonl``, ``file.tsv``, ``mmarco[:folder]``.

    The small-data API (Pair objects). The trainer reads big sources through
    :func:`polyret.data.pairstore.load_pair_source` instead (same groups, on disk).

    Args:
        spec: the source.
        data_dir: the data root (LAReQA sets).
        languages: keep only these languages (each must be present).
        max_groups: a seeded subsample of this many groups.
        seed: the subsample's seed.
        hard_negatives: LAReQA: one hard negative per pair.
        download: LAReQA: download missing files.
        split_config: LAReQA: the article split.
        fetch: LAReQA: the downloader.
        max_triples_per_query: mMARCO: triples kept per query (None: all).
    """
    if languages is not None:
        languages = list(dict.fromkeys(languages))
    dataset, _, split = spec.partition(":")
    if dataset in LAREQA_LANGUAGES:
        if split and split not in SPLITS:
            raise DataError(f"unknown split {split!r} in {spec!r}; known: {', '.join(SPLITS)}")
        return lareqa_pairs(
            dataset, split or None, data_dir=data_dir, languages=languages, max_groups=max_groups, seed=seed,
            hard_negatives=hard_negatives, download=download, config=split_config, fetch=fetch,
        )  # fmt: skip
    if dataset == "mmarco":
        return mmarco_source(spec, languages=languages, max_groups=max_groups, seed=seed,
                             max_triples_per_query=max_triples_per_query).to_pair_groups()  # fmt: skip
    if spec.endswith((".tsv", ".tsv.gz")):
        from polyret.data.pairstore import pair_file_store

        view = pair_file_store(spec).view(spec, languages=languages, max_groups=max_groups, seed=seed)
        return view.to_pair_groups()
    if spec.endswith(".jsonl") or Path(spec).is_file():
        return load_pairs_jsonl(spec, languages=languages, max_groups=max_groups, seed=seed)
    raise DataError(
        f"unknown training source {spec!r}; use xquad-r:train, mlqa-r:train (or :test / whole), "
        f"a .jsonl file, mmarco (Hub) or mmarco:<local folder>"
    )


def pair_counts(pairs: PairGroups) -> dict[str, int]:
    """Pairs per language, for logs and model cards."""
    counts: dict[str, int] = {}
    for by_lang in pairs.groups.values():
        for lang in by_lang:
            counts[lang] = counts.get(lang, 0) + 1
    return dict(sorted(counts.items()))


def iter_pairs(pairs: PairGroups) -> Iterable[Pair]:
    for by_lang in pairs.groups.values():
        yield from by_lang.values()
