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
import logging
import os
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

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

    Lines are streamed and turned into Arrow string arrays a batch at a time, so memory holds the
    texts' bytes and offsets, never one Python object per passage. Errors name ``file:line``
    (missing docid or text, a non-string title, a duplicate docid).

    Args:
        path: the corpus file.
        lang: the language code given to every passage.
        cache: False, True (the polyret cache dir) or a folder: keep the parsed columns as an Arrow IPC
            file keyed by the corpus file's path, size and mtime, memory-mapped when read again.
    """
    path = Path(path)
    cache_file = _corpus_cache_file(path, lang, cache) if cache else None
    if cache_file is not None and cache_file.is_file():
        table = _read_cached(cache_file, lang)
        if table is not None:
            return table
    ids_chunks, text_chunks, line_chunks = [], [], []
    ids: list[str] = []
    texts: list[str] = []
    lines: list[int] = []

    def flush() -> None:
        ids_chunks.append(pa.array(ids, type=pa.large_string()))
        text_chunks.append(pa.array(texts, type=pa.large_string()))
        line_chunks.append(np.asarray(lines, dtype=np.int64))
        ids.clear(), texts.clear(), lines.clear()

    for lineno, doc in jsonl_objects(path):
        docid, title, text = doc.get("docid"), doc.get("title", ""), doc.get("text")
        if not isinstance(docid, str) or not docid:
            raise DataError(f"{path}:{lineno}: missing or empty 'docid'")
        if not isinstance(text, str):
            raise DataError(f"{path}:{lineno} (docid {docid!r}): missing 'text'")
        if title is None:
            title = ""
        if not isinstance(title, str):
            raise DataError(f"{path}:{lineno} (docid {docid!r}): 'title' must be a string")
        ids.append(docid)
        texts.append(f"{title} {text}".strip() if title else text)
        lines.append(lineno)
        if len(ids) >= _BATCH:
            flush()
    if ids:
        flush()
    if not ids_chunks:
        raise DataError(f"{path}: no passages (empty corpus)")
    id_col = pa.chunked_array(ids_chunks).combine_chunks()
    text_col = pa.chunked_array(text_chunks).combine_chunks()
    ids_chunks.clear(), text_chunks.clear()
    table = CandidateTable(id_col, np.zeros(len(id_col), dtype=np.int16), (lang,), text_col)
    dup = table.first_duplicate()
    if dup is not None:
        rows = np.flatnonzero(pc.equal(table.ids, dup).to_numpy(zero_copy_only=False))
        line = int(np.concatenate(line_chunks)[rows[1]])
        raise DataError(f"{path}:{line}: duplicate docid {dup!r}")
    if cache_file is not None:
        _write_cached(cache_file, table)
    return table


def _corpus_cache_file(path: Path, lang: str, cache: bool | str | os.PathLike) -> Path | None:
    """Where the parsed corpus is kept: named by a hash of the format, language, path, size and mtime."""
    from polyret.paths import cache_dir

    try:
        st = path.stat()
    except OSError:
        return None  # jsonl_objects names the missing file
    key = f"{CORPUS_CACHE_FORMAT}\x00{lang}\x00{path.resolve()}\x00{st.st_size}\x00{st.st_mtime_ns}"
    root = cache_dir() / "corpora" if cache is True else Path(cache)
    return root / f"{path.name.split('.')[0]}-{hashlib.sha256(key.encode()).hexdigest()[:24]}.arrow"


def _write_cached(cache_file: Path, table: CandidateTable) -> None:
    """The columns as one Arrow IPC record batch (one chunk, so re-reading is zero-copy), atomically."""
    from polyret.paths import atomic_path

    batch = pa.record_batch([table.ids, table.texts], names=["docid", "text"])
    batch = batch.replace_schema_metadata({"format": CORPUS_CACHE_FORMAT})
    try:
        with (
            atomic_path(cache_file) as tmp,
            pa.OSFile(str(tmp), "wb") as sink,
            pa.ipc.new_file(sink, batch.schema) as writer,
        ):
            writer.write_batch(batch)
    except OSError as exc:  # a cache that cannot be written costs speed, not correctness
        logger.warning("%s: cannot write the corpus cache (%s); continuing without it", cache_file, exc)


def _read_cached(cache_file: Path, lang: str) -> CandidateTable | None:
    """The cached columns, memory-mapped; None (and the file removed) when unreadable."""
    try:
        reader = pa.ipc.open_file(pa.memory_map(str(cache_file), "r"))
        meta = reader.schema.metadata or {}
        if meta.get(b"format") != CORPUS_CACHE_FORMAT.encode() or reader.num_record_batches != 1:
            raise ValueError(f"not a {CORPUS_CACHE_FORMAT} file")
        batch = reader.get_batch(0)
        ids, texts = batch.column("docid"), batch.column("text")
        return CandidateTable(ids, np.zeros(len(ids), dtype=np.int16), (lang,), texts)
    except (OSError, ValueError, KeyError, pa.ArrowException) as exc:
        logger.warning("%s: unreadable corpus cache (%s); reading the corpus again", cache_file, exc)
        cache_file.unlink(missing_ok=True)
        return None


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
