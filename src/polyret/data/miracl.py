"""MIRACL (v1.0 dev): monolingual passage retrieval in 18 languages.

Files (same layout as ``shared/data/miracl``): ``topics/topics.miracl-v1.0-<lang>-dev.tsv``
(``qid<TAB>query``), ``qrels/qrels.miracl-v1.0-<lang>-dev.tsv`` (``qid Q0 docid rel``) and
``corpus/<lang>.jsonl[.gz]`` (one ``{"docid", "title", "text"}`` object per line).

* A candidate's text is ``"<title> <text>"`` (just the text when the title is empty), the common
  MIRACL/BEIR convention for dense retrievers.
* Judgements with ``rel > 0`` are relevant; ``rel == 0`` lines are validated but dropped. Queries
  without any relevant judgement are left out (the real dev sets have none).
* Relevant docids absent from the corpus stay in the qrels: they are relevant but unretrievable and
  count as misses for every model (against recall and mAP, as trec_eval counts a relevant document
  that was never retrieved), so a partial corpus gives a lower bound. They are counted at load time,
  before any model runs: a warning names the qrels file and the count, the provenance string says
  it, and ``evaluate`` records it as ``unretrievable_relevant`` in results.json.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path

import numpy as np
import pyarrow as pa

from polyret.data.download import (
    Fetch,
    ensure_file,
    miracl_corpus_file,
    miracl_qrels_file,
    miracl_topics_file,
)
from polyret.data.lines import jsonl_objects
from polyret.data.records import Benchmark, CandidateTable, DataError, Query
from polyret.data.registry import MIRACL_LANGUAGES
from polyret.data.trec import read_qrels, read_topics
from polyret.integrity import file_sha256, source_digest
from polyret.vocabulary import check_languages

logger = logging.getLogger(__name__)


__all__ = ["MIRACL_LANGUAGES", "check_language", "load_miracl", "read_corpus", "read_qrels", "read_topics"]


def check_language(lang: str) -> str:
    """``lang`` if MIRACL has it, else a DataError listing its languages."""
    return check_languages([lang], MIRACL_LANGUAGES, where="MIRACL", error=DataError)[0]


CORPUS_CACHE_FORMAT = "polyret-corpus/1"
_BATCH = 1 << 16  # passages converted to Arrow at a time while streaming


def read_corpus(path: str | os.PathLike, lang: str, *, cache: bool | str | os.PathLike = False) -> CandidateTable:
    """Passages of a MIRACL corpus JSONL (``.gz`` ok) as a columnar table of candidates in ``lang``.

    Lines are streamed, turned into Arrow string arrays a batch (``_BATCH`` passages) at a time, and
    each batch is written to an Arrow IPC file as soon as it is full; the finished file is then
    memory-mapped. So memory holds one batch of Python strings plus the mapped file's pages, never one
    Python object per passage nor a second copy of the texts. The columns are chunked (one chunk per
    batch). Errors name ``file:line`` (missing docid or text, a non-string title, a duplicate docid).

    With a cache the IPC file is written under a temp name beside the cache file and renamed into place
    only after the last batch, the footer and the duplicate check: an interrupted or failed read leaves
    no cache file (at most a temp file, which no later read looks at). Without a cache it is a temp file
    in the system temp dir, unlinked once mapped (the mapping keeps it until the table is freed).

    Args:
        path: the corpus file.
        lang: the language code given to every passage.
        cache: False, True (the polyret cache dir) or a folder: keep the parsed columns as an Arrow IPC
            file keyed by the corpus file's path and content sha256, memory-mapped when read again after
            its own sha256 matched the record beside it (``<name>.arrow.json``); one that does not is
            removed with a warning naming it and the corpus is parsed again.
    """
    import tempfile

    from polyret.paths import atomic_path, atomic_write_text

    path = Path(path)
    cache_file = _corpus_cache_file(path, lang, cache) if cache else None
    if cache_file is not None and (cache_file.is_file() or _sidecar(cache_file).is_file()):
        table = _read_cached(cache_file, lang)
        if table is not None:
            return table
    if cache_file is None:
        fd, tmp = tempfile.mkstemp(prefix="polyret-corpus-", suffix=".arrow")
        os.close(fd)
        try:
            _write_columns(path, Path(tmp))
            table = _open_columns(Path(tmp), lang)
            _check_unique(table, path)
            return table
        finally:
            Path(tmp).unlink(missing_ok=True)  # the mapping keeps the pages readable
    try:
        with atomic_path(cache_file) as tmp:
            _write_columns(path, tmp)
            table = _open_columns(tmp, lang)
            _check_unique(table, path)  # a corpus with a duplicate docid is never cached
        # the checksum of what was renamed into place, written after it: a file without one is never read
        record = {
            "format": CORPUS_CACHE_FORMAT,
            "source": str(path.resolve()),
            "lang": lang,
            "source_sha256": source_digest(path, cache_dir=cache_file.parent),
            "sha256": file_sha256(cache_file),
        }
        atomic_write_text(_sidecar(cache_file), json.dumps(record, indent=2))
    except OSError as exc:
        if not path.is_file():
            raise
        # a cache that cannot be written costs speed, not correctness: parse into a temp file instead
        logger.warning("%s: cannot write the corpus cache (%s); continuing without it", cache_file, exc)
        return read_corpus(path, lang, cache=False)
    return table


SCHEMA = pa.schema([("docid", pa.large_string()), ("text", pa.large_string())], metadata={"format": CORPUS_CACHE_FORMAT})


def _write_columns(path: Path, target: Path) -> int:
    """Parse the corpus at ``path`` into the Arrow IPC file ``target``, one record batch per ``_BATCH``
    passages; returns the passage count. ``target`` is complete (footer written) only on success."""
    ids: list[str] = []
    texts: list[str] = []
    n = 0
    with pa.OSFile(str(target), "wb") as sink, pa.ipc.new_file(sink, SCHEMA) as writer:

        def flush() -> None:
            writer.write_batch(
                pa.record_batch([pa.array(ids, type=pa.large_string()), pa.array(texts, type=pa.large_string())], schema=SCHEMA)
            )
            ids.clear(), texts.clear()

        for lineno, doc in jsonl_objects(path):
            docid, title, text = doc.get("docid"), doc.get("title", ""), doc.get("text")
            if not isinstance(docid, str) or not docid:
                raise DataError(f"{path}:{lineno}: missing or empty 'docid'")
            if len(docid.split()) != 1 or docid != docid.strip():
                # a TREC run line is 6 whitespace-separated fields: such a docid would make every run invalid
                raise DataError(f"{path}:{lineno}: docid {docid!r} contains whitespace; TREC runs and qrels cannot hold it")
            if not isinstance(text, str):
                raise DataError(f"{path}:{lineno} (docid {docid!r}): missing 'text'")
            if title is None:
                title = ""
            if not isinstance(title, str):
                raise DataError(f"{path}:{lineno} (docid {docid!r}): 'title' must be a string")
            ids.append(docid)
            texts.append(f"{title} {text}".strip() if title else text)
            n += 1
            if len(ids) >= _BATCH:
                flush()
        if ids:
            flush()
    if not n:
        raise DataError(f"{path}: no passages (empty corpus)")
    return n


def _open_columns(file: Path, lang: str) -> CandidateTable:
    """The columns of a corpus IPC file, memory-mapped (chunked: one chunk per record batch).

    The file is mapped with Python's ``mmap`` (read-only) and handed to Arrow zero-copy, so the table
    can later drop the pages it touched from the process's RSS (:meth:`CandidateTable.release_pages`).
    """
    import mmap

    fd = os.open(file, os.O_RDONLY)
    try:
        mapping = mmap.mmap(fd, 0, prot=mmap.PROT_READ)
    finally:
        os.close(fd)
    reader = pa.ipc.open_file(pa.BufferReader(pa.py_buffer(mapping)))
    meta = reader.schema.metadata or {}
    if meta.get(b"format") != CORPUS_CACHE_FORMAT.encode() or not reader.schema.equals(SCHEMA, check_metadata=False):
        raise ValueError(f"not a {CORPUS_CACHE_FORMAT} file")
    batches = [reader.get_batch(i) for i in range(reader.num_record_batches)]
    if not batches or not sum(len(b) for b in batches):
        raise ValueError("no passages")
    ids = pa.chunked_array([b.column(0) for b in batches], type=pa.large_string())
    texts = pa.chunked_array([b.column(1) for b in batches], type=pa.large_string())
    table = CandidateTable(ids, np.zeros(len(ids), dtype=np.int16), (lang,), texts)
    table.mapping = mapping
    return table


def _sidecar(cache_file: Path) -> Path:
    """The checksum record beside a corpus cache file (``<name>.arrow.json``)."""
    return cache_file.with_name(cache_file.name + ".json")


def _read_cached(cache_file: Path, lang: str) -> CandidateTable | None:
    """The cached columns, memory-mapped, when the file's sha256 matches its record; None (the file and its
    record removed, with a warning naming the file) otherwise. A cache file is renamed into place only
    after its docids were found unique, so the table is marked unique.

    The check reads the file once (streamed, ~1.5 GB/s); parsing the JSONL again costs far more."""
    try:
        try:
            record = json.loads(_sidecar(cache_file).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ValueError(f"no readable checksum record {_sidecar(cache_file).name} ({exc})") from None
        if not isinstance(record, dict) or record.get("format") != CORPUS_CACHE_FORMAT or record.get("lang") != lang:
            raise ValueError(f"{_sidecar(cache_file).name} is a record of another format or language")
        actual = file_sha256(cache_file)
        if actual != record.get("sha256"):
            raise ValueError(f"content changed since it was written (sha256 {actual[:12]}…, recorded "
                             f"{str(record.get('sha256'))[:12]}…)")  # fmt: skip
        return _open_columns(cache_file, lang).mark_unique()
    except (OSError, ValueError, KeyError, pa.ArrowException) as exc:
        logger.warning("%s: unreadable corpus cache (%s); reading the corpus again", cache_file, exc)
        cache_file.unlink(missing_ok=True)
        _sidecar(cache_file).unlink(missing_ok=True)
        return None


def _check_unique(table: CandidateTable, path: Path) -> None:
    """A DataError naming the line of the first repeat of a duplicated docid (found by a second pass)."""
    dup = table.first_duplicate()
    if dup is None:
        return
    seen = 0
    for lineno, doc in jsonl_objects(path):
        if doc.get("docid") == dup:
            seen += 1
            if seen == 2:
                raise DataError(f"{path}:{lineno}: duplicate docid {dup!r}")
    raise DataError(f"{path}: duplicate docid {dup!r}")  # pragma: no cover - the second pass finds it


def _corpus_cache_file(path: Path, lang: str, cache: bool | str | os.PathLike) -> Path | None:
    """Where the parsed corpus is kept: named by a hash of the format, language, path and the sha256 of
    the corpus file's CONTENT (:func:`polyret.integrity.source_digest`), so an edit that kept the size and
    the modification time (``cp -p``, ``rsync -t``, ``tar``) is another key; the source digest's first 16
    hex digits end the name."""
    from polyret.paths import cache_dir

    if not path.is_file():
        return None  # jsonl_objects names the missing file
    root = cache_dir() / "corpora" if cache is True else Path(cache)
    digest = source_digest(path, cache_dir=root)
    key = f"{CORPUS_CACHE_FORMAT}\x00{lang}\x00{path.resolve()}\x00{digest}"
    return root / f"{path.name.split('.')[0]}-{hashlib.sha256(key.encode()).hexdigest()[:24]}-{digest[:16]}.arrow"


def load_miracl(
    lang: str,
    *,
    data_dir: str | os.PathLike | None = None,
    download: bool = True,
    corpus_path: str | os.PathLike | None = None,
    fetch: Fetch | None = None,
    corpus_cache: bool | str | os.PathLike = True,
) -> Benchmark:
    """``miracl/<lang>`` (dev): topics + qrels + corpus; ``corpus_path`` overrides the corpus lookup.

    Args:
        lang: the MIRACL language.
        data_dir: the data root (None: ``POLYRET_DATA_DIR`` etc.).
        download: fetch missing files.
        corpus_path: read this corpus file instead of the data root's.
        fetch: the download function (tests).
        corpus_cache: keep the parsed corpus as a memory-mapped Arrow file (see :func:`read_corpus`).
    """
    check_language(lang)
    topics_path = ensure_file(miracl_topics_file(lang), data_dir=data_dir, download=download, fetch=fetch)
    qrels_path = ensure_file(miracl_qrels_file(lang), data_dir=data_dir, download=download, fetch=fetch)
    if corpus_path is None:
        corpus_path = ensure_file(miracl_corpus_file(lang), data_dir=data_dir, download=download, fetch=fetch)
    topics = read_topics(topics_path)
    qrels = read_qrels(qrels_path)
    unknown = sorted(set(qrels) - set(topics))
    if unknown:
        raise DataError(f"{qrels_path}: judgements for query ids absent from {topics_path}: {unknown[:5]}")
    candidates = read_corpus(corpus_path, lang, cache=corpus_cache)
    queries = [Query(id=qid, lang=lang, text=text) for qid, text in topics.items() if qid in qrels]
    if not queries:
        raise DataError(f"{qrels_path}: no query has a relevant judgement")
    judged = [d for q in queries for d in qrels[q.id]]
    missing = int(np.count_nonzero(candidates.positions(judged) < 0))
    kept = {q.id: qrels[q.id] for q in queries}
    if missing:
        logger.warning(
            "%s: %d relevant judgements name docids absent from %s; they count as misses", qrels_path, missing, corpus_path
        )
    provenance = (
        f"MIRACL v1.0 dev {lang}: {topics_path}, {qrels_path}, {corpus_path}; "
        f"{len(topics) - len(queries)} topics without relevant judgements dropped; "
        f"{missing} relevant judgements point to docids absent from the corpus (counted as misses)"
    )
    return Benchmark(
        id=f"miracl/{lang}",
        languages=(lang,),
        queries=queries,
        candidates=candidates,
        qrels=kept,
        families=("mono",),
        provenance=provenance,
    )
