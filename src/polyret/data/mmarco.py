"""mMARCO training pairs (Bonifacio et al. 2021): parallel MS MARCO translations, ids shared across them.

* ``mmarco``: ``unicamp-dl/mmarco`` on the Hugging Face hub, first triple of each query in
  ``triples.train.ids.small.tsv`` (:func:`mmarco_hub_files`).
* ``mmarco:<folder>``: the same from local files (:func:`mmarco_local_files`): ``<folder>/<lang>/queries.tsv``
  (``qid<TAB>text``), ``<folder>/<lang>/collection.tsv`` (``pid<TAB>text``), plus ``<folder>/triples.tsv``
  (``qid pos_pid neg_pid``) or ``<folder>/qrels.tsv`` (``qid 0 pid rel`` or ``qid pid``; no negatives).

``polyret.data.pairs.load_pairs`` is the entry that dispatches here.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from polyret.data.download import MMARCO_REPO, hub_dataset_file
from polyret.data.lines import numbered_lines
from polyret.data.records import DataError, Pair, PairGroups
from polyret.vocabulary import check_languages

__all__ = ["MMARCO_LANGUAGES", "MmarcoFiles", "mmarco_hub_files", "mmarco_local_files", "mmarco_pairs"]

# mMARCO's file names use English language names
MMARCO_LANGUAGES: dict[str, str] = {
    "ar": "arabic", "de": "german", "en": "english", "es": "spanish", "fr": "french", "hi": "hindi",
    "id": "indonesian", "it": "italian", "ja": "japanese", "nl": "dutch", "pt": "portuguese",
    "ru": "russian", "vi": "vietnamese", "zh": "chinese",
}  # fmt: skip
MMARCO_TRIPLES = "data/triples.train.ids.small.tsv"
LOCAL_TRIPLES = ("triples.tsv", "triples.train.ids.small.tsv")
LOCAL_QRELS = ("qrels.tsv", "qrels.train.tsv")


@dataclass(frozen=True)
class MmarcoFiles:
    """Where one mMARCO copy lives: per-language queries and collections, and the shared id file.

    Args:
        queries: language -> ``qid<TAB>text`` file.
        collections: language -> ``pid<TAB>text`` file.
        triples: ``qid pos_pid neg_pid`` file, or None.
        qrels: ``qid 0 pid rel`` (or ``qid pid``) file, used when there are no triples.
        origin: where the copy is (a folder or an hf:// url), named in messages.
    """

    queries: dict[str, Path]
    collections: dict[str, Path]
    triples: Path | None = None  # qid pos_pid neg_pid
    qrels: Path | None = None  # qid 0 pid rel, or qid pid (used when there are no triples)
    origin: str = ""


def mmarco_local_files(folder: str | os.PathLike) -> MmarcoFiles:
    """The files of a local mMARCO folder (see the module docstring for the layout)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"{folder}: no such mMARCO folder")
    queries, collections = {}, {}
    for sub in sorted(p for p in folder.iterdir() if p.is_dir()):
        q, c = sub / "queries.tsv", sub / "collection.tsv"
        if q.is_file() and c.is_file():
            queries[sub.name], collections[sub.name] = q, c
    if not queries:
        raise DataError(f"{folder}: no <lang>/queries.tsv + <lang>/collection.tsv language folders")
    triples = next((folder / n for n in LOCAL_TRIPLES if (folder / n).is_file()), None)
    qrels = next((folder / n for n in LOCAL_QRELS if (folder / n).is_file()), None)
    if triples is None and qrels is None:
        raise DataError(f"{folder}: needs one of {', '.join(LOCAL_TRIPLES + LOCAL_QRELS)} (query/passage ids)")
    return MmarcoFiles(queries, collections, triples, qrels, origin=str(folder))


def mmarco_hub_files(languages: Sequence[str]) -> MmarcoFiles:
    """Download (once, into the Hub cache) the mMARCO files for ``languages``; each collection is GBs."""
    check_languages(languages, tuple(MMARCO_LANGUAGES), where="mMARCO", error=DataError)
    queries, collections = {}, {}
    for lang in languages:
        full = MMARCO_LANGUAGES[lang]
        queries[lang] = hub_dataset_file(MMARCO_REPO, f"data/google/queries/train/{full}_queries.train.tsv")
        collections[lang] = hub_dataset_file(MMARCO_REPO, f"data/google/collections/{full}_collection.tsv")
    triples = hub_dataset_file(MMARCO_REPO, MMARCO_TRIPLES)
    return MmarcoFiles(queries, collections, triples=triples, origin=f"hf://datasets/{MMARCO_REPO}")


def _read_training_ids(files: MmarcoFiles) -> dict[str, tuple[str, str | None]]:
    """qid -> (positive pid, negative pid or None): the first row of each query, in file order."""
    out: dict[str, tuple[str, str | None]] = {}
    if files.triples is not None:
        for lineno, line in numbered_lines(files.triples):
            if not line.strip():
                continue
            parts = line.split()
            if len(parts) != 3:
                raise DataError(f"{files.triples}:{lineno}: expected 'qid pos_pid neg_pid', got {line[:80]!r}")
            out.setdefault(parts[0], (parts[1], parts[2]))
        source = files.triples
    else:
        assert files.qrels is not None
        for lineno, line in numbered_lines(files.qrels):
            if not line.strip():
                continue
            parts = line.split()
            if len(parts) == 2:
                qid, pid, rel = parts[0], parts[1], "1"
            elif len(parts) == 4:
                qid, _, pid, rel = parts
            else:
                raise DataError(f"{files.qrels}:{lineno}: expected 'qid 0 pid rel' or 'qid pid', got {line[:80]!r}")
            try:
                relevant = int(rel) > 0
            except ValueError as exc:
                raise DataError(f"{files.qrels}:{lineno}: relevance {rel!r} is not an integer") from exc
            if relevant:
                out.setdefault(qid, (pid, None))
        source = files.qrels
    if not out:
        raise DataError(f"{source}: no training ids (empty file)")
    return out


def _read_id_texts(path: Path, wanted: set[str]) -> dict[str, str]:
    """Texts of the ids in ``wanted`` from an ``id<TAB>text`` file, streamed (collections are GBs)."""
    out: dict[str, str] = {}
    for lineno, line in numbered_lines(path):
        if not line.strip():
            continue
        ident, tab, text = line.partition("\t")
        if not tab or not ident.strip():
            raise DataError(f"{path}:{lineno}: expected 'id<TAB>text', got {line[:80]!r}")
        ident = ident.strip()
        if ident in wanted:
            out[ident] = text.strip()
    return out


def mmarco_pairs(
    files: MmarcoFiles,
    *,
    languages: Sequence[str] | None = None,
    max_groups: int | None = None,
    seed: int = 0,
    name: str = "mmarco",
) -> PairGroups:
    """Parallel pairs grouped by query id; a language where a query or passage is missing just lacks it."""
    available = tuple(sorted(files.queries))
    check_languages(languages, available, where=f"{files.origin or name} (mMARCO files)", error=DataError)
    langs = list(dict.fromkeys(languages)) if languages is not None else list(available)  # asked order
    ids = _read_training_ids(files)
    chosen = list(ids)
    if max_groups is not None and max_groups < len(chosen):
        if max_groups < 1:
            raise ValueError(f"max_groups must be >= 1, got {max_groups}")
        keep = np.sort(np.random.default_rng(seed).permutation(len(chosen))[:max_groups])
        chosen = [chosen[i] for i in keep]
    wanted_q = set(chosen)
    wanted_p = {pid for qid in chosen for pid in ids[qid] if pid is not None}
    groups: dict[str, dict[str, Pair]] = {qid: {} for qid in chosen}
    for lang in langs:
        qtext = _read_id_texts(files.queries[lang], wanted_q)
        ptext = _read_id_texts(files.collections[lang], wanted_p)
        for qid in chosen:
            pos, neg = ids[qid]
            if qid not in qtext or pos not in ptext or (neg is not None and neg not in ptext):
                continue
            groups[qid][lang] = Pair(
                group=qid, lang=lang, query=qtext[qid], positive=ptext[pos],
                negative=ptext[neg] if neg is not None else None, source=name,
                positive_id=pos, negative_id=neg,  # mMARCO's passage ids are shared by the translations
            )  # fmt: skip
    groups = {qid: by_lang for qid, by_lang in groups.items() if by_lang}
    if not groups:
        raise DataError(f"{name}: no training pairs")
    return PairGroups(name=name, groups=groups)  # languages were checked against the folders
