"""Training sources: the one parser of a source spec, and every source as an on-disk pair store.

A spec (``polyret train --train``, ``TrainConfig.train``, an experiment's ``train``) is parsed once, by
:func:`parse_source_spec`, into a :class:`SourceSpec`:

* ``xquad-r:train`` / ``mlqa-r:train`` (also ``:test`` or the whole set): question -> gold sentence in
  every language the question exists in, on that side of the article split (the split of
  ``lareqa.article_split``, so training on ``:train`` never sees a ``:test`` article). With
  ``hard_negatives`` the negative is another sentence of the same paragraph, chosen by a seeded hash.
  Positives and negatives carry passage identities shared by translations (:func:`lareqa_passage_identities`).
* ``mmarco`` / ``mmarco:<folder>``: mMARCO from the Hub or local files (:mod:`polyret.data.mmarco`).
* a pair file: a spec ending in ``.jsonl`` / ``.jsonl.gz`` (one ``{"id", "lang", "query", "positive",
  "negative"?}`` object per line, :mod:`polyret.data.pairrows`) or ``.tsv`` / ``.tsv.gz`` (a header naming
  the columns), or any other existing file (read as JSONL). ``id`` is the parallel group id shared by
  translations; ``negative`` may be a list (k hard negatives, e.g. from ``polyret mine``), ``positive_id`` /
  ``negative_id`` optional passage identities.

Every kind becomes the same thing (:func:`load_pair_source`): a view over an on-disk pair store
(:mod:`polyret.data.pairstore`) built once into the cache, keyed by content and checksummed, with the same
passage-identity codes (:func:`polyret.data.records.passage_identity`). :func:`load_pairs` is the same
source materialised as Pair objects (the small-data API: mining, notebooks). :func:`check_source` is the
cheap check before any work (no file parsed). A language asked for but absent from the source is an
error, never a silent skip.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from polyret.data.download import Fetch, ensure_file
from polyret.data.lareqa import (
    LAREQA_LANGUAGES,
    SPLITS,
    LareqaFile,
    SplitConfig,
    _UnionFind,
    article_split,
    candidate_id,
    check_languages,
    load_lareqa_files,
    remote_file,
)
from polyret.data.mmarco import (
    MMARCO_LANGUAGES,
    MmarcoFiles,
    mmarco_hub_files,
    mmarco_local_files,
    mmarco_pairs,
    mmarco_source,
)
from polyret.data.pairrows import pair_file_kind
from polyret.data.pairstore import PairSource, file_key, groups_store, pair_file_store
from polyret.data.records import DataError, Pair, PairGroups
from polyret.vocabulary import check_languages as check_subset

__all__ = [
    "MMARCO_LANGUAGES",
    "MmarcoFiles",
    "SourceSpec",
    "check_source",
    "lareqa_pairs",
    "lareqa_passage_identities",
    "lareqa_source",
    "load_pair_source",
    "load_pairs",
    "mmarco_hub_files",
    "mmarco_local_files",
    "mmarco_pairs",
    "pair_counts",
    "parse_source_spec",
]  # the mMARCO names are re-exported: they lived here before data/mmarco.py

SPEC_HELP = "use xquad-r:train, mlqa-r:train (or :test / whole), a .jsonl file, mmarco (Hub) or mmarco:<local folder>"


# -------------------------------------------------------------------------------------------- spec
@dataclass(frozen=True)
class SourceSpec:
    """One parsed training-source spec (:func:`parse_source_spec`).

    Args:
        spec: the spec as given.
        kind: ``lareqa``, ``mmarco``, ``jsonl`` or ``tsv``.
        dataset: ``xquad-r`` / ``mlqa-r`` / ``mmarco`` (None for a pair file).
        split: a LAReQA side, ``train`` or ``test`` (None: the whole set; other kinds: None).
        path: a pair file, or a local mMARCO folder (None: the Hub; LAReQA: None).
    """

    spec: str
    kind: str
    dataset: str | None = None
    split: str | None = None
    path: Path | None = None

    @property
    def name(self) -> str:
        """The source's name (its pairs record it; dev sets and logs show it): a pair file's path as
        written (``~`` kept), a LAReQA set ``dataset[:split]``, mMARCO its spec."""
        if self.kind == "lareqa":
            return self.dataset if self.split is None else f"{self.dataset}:{self.split}"
        return str(Path(self.spec)) if self.kind in ("jsonl", "tsv") else self.spec


def parse_source_spec(spec: str) -> SourceSpec:
    """The one parser of a training-source spec (see the module docstring for the forms).

    A LAReQA id or ``mmarco`` wins over a file of that name; a spec ending in a pair-file suffix is a pair
    file whether or not it exists yet (:func:`check_source` says it is missing); any other existing file
    is read as JSONL. Nothing is read.

    Args:
        spec: the spec.

    Raises:
        DataError: an unknown LAReQA split, or a spec that is none of the forms (naming the spec).
    """
    dataset, _, rest = spec.partition(":")
    if dataset in LAREQA_LANGUAGES:
        if rest and rest not in SPLITS:
            raise DataError(f"unknown split {rest!r} in {spec!r}; known: {', '.join(SPLITS)}")
        return SourceSpec(spec, "lareqa", dataset, rest or None)
    if dataset == "mmarco":
        return SourceSpec(spec, "mmarco", "mmarco", path=Path(rest).expanduser() if rest else None)
    path = Path(spec).expanduser()
    kind = pair_file_kind(spec)
    if kind is not None:
        return SourceSpec(spec, kind, path=path)
    if spec and path.is_file():
        return SourceSpec(spec, "jsonl", path=path)
    raise DataError(f"unknown training source {spec!r}; {SPEC_HELP}")


def check_source(spec: str, languages: Sequence[str] | None = None) -> SourceSpec:
    """Refuse a training source that could not be opened, without reading it: an unknown id or split, a
    language the dataset lacks, a missing file or mMARCO folder, Hub mMARCO without a language list.

    Args:
        spec: the source.
        languages: the training languages (None: all).

    Returns:
        The parsed spec.

    Raises:
        DataError naming the source.
    """
    source = parse_source_spec(spec)
    if source.kind == "lareqa":
        if languages:
            check_subset(languages, LAREQA_LANGUAGES[source.dataset], where=f"training source {spec!r}", error=DataError)
    elif source.kind == "mmarco":
        if source.path is not None:
            mmarco_local_files(source.path)
        elif languages is None:
            raise DataError(
                f"training source {spec!r}: mmarco from the Hugging Face hub needs an explicit language list (set `languages`)"
            )
    elif not source.path.is_file():
        raise DataError(f"{source.path}: no such file" + (" (it is a folder)" if source.path.is_dir() else ""))
    return source


# ------------------------------------------------------------------------------------------ LAReQA


def _pick(options: Sequence[str], seed: int, *key: str) -> str | None:
    """A seeded choice that depends only on (seed, key), not on iteration order."""
    if not options:
        return None
    digest = hashlib.sha256(":".join((str(seed), *key)).encode()).digest()
    return options[int.from_bytes(digest[:8], "big") % len(options)]


def _lareqa_groups(
    files: Mapping[str, LareqaFile], dataset: str, split: str | None, config: SplitConfig, hard_negatives: bool, seed: int
) -> PairGroups:
    """Every pair of ``split``'s articles in the files read, grouped by question id (first seen order)."""
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
    return PairGroups(name, groups)


def lareqa_source(
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
    cache_dir: str | os.PathLike | None = None,
) -> PairSource:
    """Question -> gold sentence pairs, grouped by question id, from one side of the article split, as a
    view over their pair store (built once per set of files and options, keyed by the files' sha256).

    Every positive and hard negative carries a passage identity (:func:`lareqa_passage_identities`): a
    gold sentence, its translations and every sentence that is the gold of a question sharing one of
    them, in any language, have one id. A hard negative (another sentence text of the paragraph) may
    share its question's own identity (the gold of a question linked to it): harmless, since the sampler
    never puts two examples of one identity in a batch. Every language is read for a split (the article
    split and the identities span them all) and the view keeps ``languages``; the whole set
    (``split=None``) reads only ``languages``.

    Args:
        dataset: ``xquad-r`` or ``mlqa-r``.
        split: ``train``, ``test`` or None (every article).
        data_dir: the data root.
        languages: keep only these languages (each must be present).
        max_groups: a seeded subsample of this many groups (of those left after the language restriction).
        seed: the subsample's seed, and the hard negatives' draw.
        hard_negatives: one hard negative per pair.
        download: download missing files.
        config: the article split.
        fetch: the downloader.
        cache_dir: the cache root for the store.
    """
    if languages is not None:
        languages = list(dict.fromkeys(languages))
        check_languages(dataset, languages)
    if split is not None and split not in SPLITS:
        raise DataError(f"unknown split {split!r}; known: {', '.join(SPLITS)}")
    to_read = tuple(LAREQA_LANGUAGES[dataset] if split is not None or languages is None else languages)
    paths = {lang: ensure_file(remote_file(dataset, lang), data_dir=data_dir, download=download, fetch=fetch)
             for lang in check_languages(dataset, list(to_read))}  # fmt: skip
    name = dataset if split is None else f"{dataset}:{split}"
    key = {
        "kind": "lareqa", "dataset": dataset, "split": split, "split_config": asdict(config),
        "hard_negatives": bool(hard_negatives), "seed": seed if hard_negatives else None,
        "files": {lang: file_key(path, cache_dir=cache_dir) for lang, path in paths.items()},
    }  # fmt: skip

    def read() -> PairGroups:
        files = load_lareqa_files(dataset, list(paths), data_dir=data_dir, download=download, fetch=fetch, asked=languages)
        return _lareqa_groups(files, dataset, split, config, hard_negatives, seed)

    store = groups_store(read, key=key, name=name, cache_dir=cache_dir)
    return store.view(name, languages=languages, max_groups=max_groups, seed=seed)


def lareqa_pairs(dataset: str, split: str | None = "train", **options) -> PairGroups:
    """:func:`lareqa_source` as Pair objects (same arguments).

    Args:
        dataset: ``xquad-r`` or ``mlqa-r``.
        split: ``train``, ``test`` or None.
        options: as for :func:`lareqa_source`.
    """
    return lareqa_source(dataset, split, **options).to_pair_groups()


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
    sets = _UnionFind()
    find, union = sets.find, sets.union
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


def load_pair_source(
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
    cache_dir: str | os.PathLike | None = None,
    workers: int | None = None,
) -> PairSource:
    """A training source as the trainer reads it: a view over its on-disk pair store, whatever the kind.

    Args:
        spec: ``xquad-r:train``, ``mlqa-r:train``, ``file.jsonl``, ``file.tsv``, ``mmarco[:folder]`` (:func:`parse_source_spec`).
        data_dir: the data root (LAReQA sets).
        languages: keep only these languages (each must be present).
        max_groups: a seeded subsample of this many groups.
        seed: the subsample's seed (and LAReQA's hard-negative draw).
        hard_negatives: LAReQA: one hard negative per pair (files and mMARCO carry their own).
        download: LAReQA: download missing files.
        split_config: LAReQA: the article split.
        fetch: LAReQA: the downloader.
        max_triples_per_query: mMARCO: triples kept per query (None: all).
        cache_dir: the cache root for the stores.
        workers: processes parsing a big pair file (:func:`polyret.data.pairstore.build_workers`).
    """
    if languages is not None:
        languages = list(dict.fromkeys(languages))
    source = parse_source_spec(spec)
    if source.kind == "lareqa":
        return lareqa_source(
            source.dataset, source.split, data_dir=data_dir, languages=languages, max_groups=max_groups, seed=seed,
            hard_negatives=hard_negatives, download=download, config=split_config, fetch=fetch, cache_dir=cache_dir,
        )  # fmt: skip
    if source.kind == "mmarco":
        if source.path is not None:
            files = mmarco_local_files(source.path)
        elif languages is None:
            raise DataError("mmarco from the Hugging Face hub needs an explicit language list (collections are GBs each)")
        else:
            files = mmarco_hub_files(languages)
        return mmarco_source(spec, files=files, languages=languages, max_groups=max_groups, seed=seed,
                             max_triples_per_query=max_triples_per_query, cache_dir=cache_dir)  # fmt: skip
    store = pair_file_store(source.path, cache_dir=cache_dir, workers=workers)
    return store.view(source.name, languages=languages, max_groups=max_groups, seed=seed)


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
    cache_dir: str | os.PathLike | None = None,
) -> PairGroups:
    """Training pairs from ``spec`` as Pair objects: :func:`load_pair_source`'s view, materialised.

    The small-data API (mining, notebooks, tests); the trainer keeps the view. The source's store is built
    into the cache as for training.

    Args:
        spec: ``xquad-r:train``, ``mlqa-r:train``, ``file.jsonl``, ``file.tsv``, ``mmarco[:folder]`` (:func:`parse_source_spec`).
        data_dir: the data root (LAReQA sets).
        languages: keep only these languages (each must be present).
        max_groups: a seeded subsample of this many groups.
        seed: the subsample's seed (and LAReQA's hard-negative draw).
        hard_negatives: LAReQA: one hard negative per pair.
        download: LAReQA: download missing files.
        split_config: LAReQA: the article split.
        fetch: LAReQA: the downloader.
        max_triples_per_query: mMARCO: triples kept per query (None: all).
        cache_dir: the cache root for the store.
    """
    return load_pair_source(
        spec, data_dir=data_dir, languages=languages, max_groups=max_groups, seed=seed, hard_negatives=hard_negatives,
        download=download, split_config=split_config, fetch=fetch, max_triples_per_query=max_triples_per_query,
        cache_dir=cache_dir,
    ).to_pair_groups()  # fmt: skip


def pair_counts(pairs: PairGroups) -> dict[str, int]:
    """Pairs per language, for logs and model cards."""
    counts: dict[str, int] = {}
    for by_lang in pairs.groups.values():
        for lang in by_lang:
            counts[lang] = counts.get(lang, 0) + 1
    return dict(sorted(counts.items()))
