"""mMARCO training pairs (Bonifacio et al. 2021): parallel MS MARCO translations, ids shared across them.

* ``mmarco``: ``unicamp-dl/mmarco`` on the Hugging Face hub, every triple of
  ``triples.train.ids.small.tsv`` (or the first ``max_triples_per_query`` of each query), downloaded
  through ``huggingface_hub`` (:func:`mmarco_hub_files`).
* ``mmarco:<folder>``: the same from local files (:func:`mmarco_local_files`): ``<folder>/<lang>/queries.tsv``
  (``qid<TAB>text``), ``<folder>/<lang>/collection.tsv`` (``pid<TAB>text``), plus ``<folder>/triples.tsv``
  (``qid pos_pid neg_pid``) or ``<folder>/qrels.tsv`` (``qid 0 pid rel`` or ``qid pid``; no negatives).

Each kept triple is one parallel group (``qid``, then ``qid#1``, ``qid#2`` ... for a query's later
triples), joined by id across languages in an on-disk pair store (:func:`mmarco_store`); the trainer
reads it as a :class:`~polyret.data.pairstore.PairSource` (:func:`mmarco_source`), small-data code as
Pair objects (:func:`mmarco_pairs`). ``polyret.data.pairs.load_pair_source`` parses the spec and dispatches here.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from polyret.data.download import MMARCO_REPO, hub_dataset_file
from polyret.data.lines import numbered_lines
from polyret.data.pairstore import (
    CHUNK,
    PairSource,
    PairStore,
    StoreWriter,
    chunk_offsets,
    file_key,
    open_or_build,
    take_rows,
)
from polyret.data.records import DataError, PairGroups, arrow_to_numpy
from polyret.vocabulary import check_languages

__all__ = [
    "MMARCO_LANGUAGES",
    "MmarcoFiles",
    "mmarco_hub_files",
    "mmarco_local_files",
    "mmarco_pairs",
    "mmarco_source",
    "mmarco_store",
]

# mMARCO's file names use English language names
MMARCO_LANGUAGES: dict[str, str] = {
    "ar": "arabic", "de": "german", "en": "english", "es": "spanish", "fr": "french", "hi": "hindi",
    "id": "indonesian", "it": "italian", "ja": "japanese", "nl": "dutch", "pt": "portuguese",
    "ru": "russian", "vi": "vietnamese", "zh": "chinese",
}  # fmt: skip
MMARCO_TRIPLES = "data/triples.train.ids.small.tsv"
# Recorded sizes for plans made before the files are on disk (a dry run never downloads): the lines of MS
# MARCO's triples.train.small (one training group each when every triple is kept) and of its train
# queries file (808,731, the most groups with max_triples_per_query=1; fewer queries have a triple).
MMARCO_RECORDED_TRIPLES = 39_780_811
MMARCO_RECORDED_QUERIES = 808_731
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


def mmarco_hub_cached(languages: Sequence[str]) -> bool:
    """True iff every hub file :func:`mmarco_hub_files` needs for ``languages`` is in the local Hub cache
    (checked without the network or a download).

    Args:
        languages: the training languages.
    """
    from huggingface_hub import try_to_load_from_cache

    names = [MMARCO_TRIPLES]
    for lang in languages:
        full = MMARCO_LANGUAGES.get(lang, lang)
        names += [f"data/google/queries/train/{full}_queries.train.tsv", f"data/google/collections/{full}_collection.tsv"]
    for name in names:
        found = try_to_load_from_cache(MMARCO_REPO, name, repo_type="dataset")
        if not isinstance(found, str):
            return False
    return True


def mmarco_recorded_groups(max_triples_per_query: int | None) -> int:
    """The training groups of hub mMARCO from recorded sizes (an upper bound with ``max_triples_per_query``).

    Args:
        max_triples_per_query: triples kept per query (None: all).
    """
    if max_triples_per_query is None:
        return MMARCO_RECORDED_TRIPLES
    return min(MMARCO_RECORDED_TRIPLES, MMARCO_RECORDED_QUERIES * max_triples_per_query)


def _scratch_table(path: Path, out: Path, parse: Callable[[str, str], tuple | None], schema: pa.Schema) -> pa.Table:
    """Stream a text file's lines through ``parse`` into an Arrow file at ``out``; return it memory-mapped.

    ``parse(line, where)`` returns one value per ``schema`` field except the last (the line number, added
    here), or None to skip the line. No Python object outlives a chunk of :data:`CHUNK` lines.
    """
    out.parent.mkdir(parents=True, exist_ok=True)
    cols: list[list] = [[] for _ in schema]

    def flush(w) -> None:
        if cols[0]:
            w.write_batch(pa.record_batch([pa.array(c, f.type) for c, f in zip(cols, schema)], schema=schema))
            for c in cols:
                c.clear()

    with pa.OSFile(str(out), "wb") as sink, pa.ipc.new_file(sink, schema) as w:
        for lineno, line in numbered_lines(path):
            if not line.strip():
                continue
            values = parse(line, f"{path}:{lineno}")
            if values is None:
                continue
            for c, v in zip(cols, (*values, lineno)):
                c.append(v)
            if len(cols[0]) >= CHUNK:
                flush(w)
        flush(w)
    return pa.ipc.open_file(pa.memory_map(str(out))).read_all()


def _parse_id_text(line: str, where: str) -> tuple[str, str]:
    ident, tab, text = line.partition("\t")
    if not tab or not ident.strip():
        raise DataError(f"{where}: expected 'id<TAB>text', got {line[:80]!r}")
    return ident.strip(), text.strip()


def _parse_triple(line: str, where: str) -> tuple[str, str, str]:
    parts = line.split()
    if len(parts) != 3:
        raise DataError(f"{where}: expected 'qid pos_pid neg_pid', got {line[:80]!r}")
    return parts[0], parts[1], parts[2]


def _parse_qrel(line: str, where: str) -> tuple[str, str, None] | None:
    parts = line.split()
    if len(parts) == 2:
        qid, pid, rel = parts[0], parts[1], "1"
    elif len(parts) == 4:
        qid, _, pid, rel = parts
    else:
        raise DataError(f"{where}: expected 'qid 0 pid rel' or 'qid pid', got {line[:80]!r}")
    try:
        relevant = int(rel) > 0
    except ValueError as exc:
        raise DataError(f"{where}: relevance {rel!r} is not an integer") from exc
    return (qid, pid, None) if relevant else None


_ID_TEXT = pa.schema([("id", pa.string()), ("text", pa.string()), ("line", pa.int64())])
_TRIPLE = pa.schema([("qid", pa.string()), ("pos", pa.string()), ("neg", pa.string()), ("line", pa.int64())])


def _training_ids(files: MmarcoFiles, scratch: Path, max_per_query: int | None) -> tuple[pa.Table, pa.Array]:
    """The kept (qid, pos, neg, line) rows in file order and their group ids (``qid``, ``qid#k``...)."""
    if files.triples is not None:
        source, table = files.triples, _scratch_table(files.triples, scratch / "ids.arrow", _parse_triple, _TRIPLE)
    else:
        assert files.qrels is not None
        source, table = files.qrels, _scratch_table(files.qrels, scratch / "ids.arrow", _parse_qrel, _TRIPLE)
    if table.num_rows == 0:
        raise DataError(f"{source}: no training ids (empty file)")
    qid = table.column("qid")
    code = pc.index_in(qid, value_set=pc.unique(qid)).to_numpy()
    order = np.argsort(code, kind="stable")
    sorted_code = code[order]
    starts = np.concatenate([[True], sorted_code[1:] != sorted_code[:-1]])
    run_start = np.maximum.accumulate(np.where(starts, np.arange(len(order)), 0))
    rank = np.empty(len(order), dtype=np.int64)
    rank[order] = np.arange(len(order)) - run_start  # k-th row of its query, in file order
    if max_per_query is not None:
        keep = rank < max_per_query
        table, rank = table.filter(pa.array(keep)), rank[keep]
        qid = table.column("qid")
    suffix = pc.cast(pa.array(rank), pa.string())
    groups = pc.if_else(pa.array(rank == 0), qid, pc.binary_join_element_wise(qid, suffix, "#"))
    if isinstance(groups, pa.ChunkedArray):
        groups = groups.combine_chunks()
    return table, groups


def mmarco_store(
    files: MmarcoFiles,
    languages: Sequence[str],
    *,
    max_triples_per_query: int | None = None,
    name: str = "mmarco",
    cache_dir: str | os.PathLike | None = None,
) -> PairStore:
    """The pair store of an mMARCO copy in ``languages`` (built once: see :mod:`polyret.data.pairstore`).

    Every kept triple is one parallel group: the first triple of query ``q`` is group ``q``, its k-th
    (k >= 1) is ``q#k``; a group holds the triple in every language where its query and passages exist.
    Queries and passages are joined by id with Arrow (``pyarrow.compute.index_in`` over each language's
    id column; the texts stay in memory-mapped Arrow scratch files), never as Python strings.

    Args:
        files: the copy (:func:`mmarco_local_files` / :func:`mmarco_hub_files`).
        languages: the languages to build, in order (each must have files).
        max_triples_per_query: keep the first k triples (or relevant qrels) of each query; None: all.
        name: the store's display name.
        cache_dir: the cache root.
    """
    if max_triples_per_query is not None and max_triples_per_query < 1:
        raise DataError(f"max_triples_per_query must be >= 1 or None (all), got {max_triples_per_query}")
    ids_file = files.triples if files.triples is not None else files.qrels
    assert ids_file is not None
    key = {
        "kind": "mmarco",
        "languages": list(languages),
        "max_triples_per_query": max_triples_per_query,
        "ids": {"triples" if files.triples is not None else "qrels": file_key(ids_file, cache_dir=cache_dir)},
        "queries": {lang: file_key(files.queries[lang], cache_dir=cache_dir) for lang in languages},
        "collections": {lang: file_key(files.collections[lang], cache_dir=cache_dir) for lang in languages},
    }

    def build(writer: StoreWriter) -> pa.Array:
        scratch = writer.folder / "scratch"
        triples, groups = _training_ids(files, scratch, max_triples_per_query)
        qid, pos, neg, line = (triples.column(c).combine_chunks() for c in ("qid", "pos", "neg", "line"))
        has_neg = files.triples is not None
        n = triples.num_rows
        for lang in languages:
            queries = _scratch_table(files.queries[lang], scratch / f"{lang}.queries.arrow", _parse_id_text, _ID_TEXT)
            passages = _scratch_table(files.collections[lang], scratch / f"{lang}.collection.arrow", _parse_id_text, _ID_TEXT)
            q_ids, p_ids = queries.column("id").combine_chunks(), passages.column("id").combine_chunks()
            q_text, p_text = queries.column("text"), passages.column("text")
            q_off, p_off = chunk_offsets(q_text), chunk_offsets(p_text)
            for lo in range(0, n, CHUNK):
                sl = slice(lo, min(lo + CHUNK, n))
                qrow = pc.index_in(qid[sl], value_set=q_ids)
                prow = pc.index_in(pos[sl], value_set=p_ids)
                ok = pc.and_(pc.is_valid(qrow), pc.is_valid(prow))
                if has_neg:
                    nrow = pc.index_in(neg[sl], value_set=p_ids)
                    ok = pc.and_(ok, pc.is_valid(nrow))
                sel = pc.indices_nonzero(ok)
                if not len(sel):
                    continue
                k = len(sel)

                def take(arr, sel=sel):
                    return pc.take(arr, sel)

                if has_neg:
                    neg_text = take_rows(p_text, _rows(take(nrow)), p_off)
                    offsets = pa.array(np.arange(k + 1, dtype=np.int32))
                    negatives = pa.ListArray.from_arrays(offsets, neg_text)
                    negative_ids = pa.ListArray.from_arrays(offsets, take(neg[sl]))
                    negative_hashes = pa.ListArray.from_arrays(offsets, pa.nulls(k, pa.int64()))
                else:
                    empty = pa.array([[]] * k, pa.list_(pa.string()))
                    negatives = negative_ids = empty
                    negative_hashes = pa.array([[]] * k, pa.list_(pa.int64()))
                writer.add_table(
                    pa.table({
                        "group": take(groups[sl]), "lang": pa.array([lang] * k, pa.string()),
                        "query": take_rows(q_text, _rows(take(qrow)), q_off),
                        "positive": take_rows(p_text, _rows(take(prow)), p_off),
                        "negatives": negatives, "positive_id": take(pos[sl]), "negative_ids": negative_ids,
                        "positive_hash": pa.nulls(k, pa.int64()), "negative_hashes": negative_hashes, "line": take(line[sl]),
                    })
                )  # fmt: skip
            del queries, passages, q_ids, p_ids, q_text, p_text
        if writer.rows == 0:
            raise DataError(f"{files.origin or name}: no training pairs (no query and passage ids found in the texts)")
        return groups

    return open_or_build(key, name, build, source=files.origin or name, cache_dir=cache_dir)


def _rows(indices) -> np.ndarray:
    """Row numbers from an ``index_in`` result already filtered to valid entries."""
    return arrow_to_numpy(indices).astype(np.int64)


def mmarco_source(
    spec: str = "mmarco",
    *,
    files: MmarcoFiles,
    languages: Sequence[str] | None = None,
    max_groups: int | None = None,
    seed: int = 0,
    max_triples_per_query: int | None = None,
    cache_dir: str | os.PathLike | None = None,
) -> PairSource:
    """mMARCO as a training source: the on-disk view the trainer uses (``mmarco`` or ``mmarco:<folder>``).

    Args:
        spec: ``mmarco`` or ``mmarco:<folder>`` (parsed by :func:`polyret.data.pairs.parse_source_spec`): the
            source's name.
        files: the copy (:func:`mmarco_local_files`, :func:`mmarco_hub_files`).
        languages: the languages (default: every language folder of a local copy).
        max_groups: a seeded subsample of this many groups (triples).
        seed: the subsample's seed.
        max_triples_per_query: triples kept per query (None: all, as the paper trains).
        cache_dir: the cache root for the store.
    """
    available = tuple(sorted(files.queries))
    check_languages(languages, available, where=f"{files.origin or spec} (mMARCO files)", error=DataError)
    langs = list(dict.fromkeys(languages)) if languages is not None else list(available)  # asked order
    store = mmarco_store(files, langs, max_triples_per_query=max_triples_per_query, name="mmarco", cache_dir=cache_dir)
    return store.view(spec, max_groups=max_groups, seed=seed)


def mmarco_pairs(
    files: MmarcoFiles,
    *,
    languages: Sequence[str] | None = None,
    max_groups: int | None = None,
    seed: int = 0,
    name: str = "mmarco",
    max_triples_per_query: int | None = None,
    cache_dir: str | os.PathLike | None = None,
) -> PairGroups:
    """Parallel pairs grouped by triple (see :func:`mmarco_store`), as Pair objects (small copies, tests).

    A language where a query or passage is missing just lacks that group.

    Args:
        files: the copy.
        languages: the languages (default: all of the copy).
        max_groups: a seeded subsample of this many groups.
        seed: the subsample's seed.
        name: the source's name.
        max_triples_per_query: triples kept per query (None: all).
        cache_dir: the cache root for the store.
    """
    view = mmarco_source(name, languages=languages, max_groups=max_groups, seed=seed,
                         max_triples_per_query=max_triples_per_query, cache_dir=cache_dir, files=files)  # fmt: skip
    return view.to_pair_groups()
