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

import logging
import os
from pathlib import Path

from polyret.data.download import (
    Fetch,
    ensure_file,
    miracl_corpus_file,
    miracl_qrels_file,
    miracl_topics_file,
)
from polyret.data.lines import jsonl_objects
from polyret.data.records import Benchmark, Candidate, DataError, Query
from polyret.data.registry import MIRACL_LANGUAGES
from polyret.data.trec import read_qrels, read_topics
from polyret.vocabulary import check_languages

logger = logging.getLogger(__name__)


__all__ = ["MIRACL_LANGUAGES", "check_language", "load_miracl", "read_corpus", "read_qrels", "read_topics"]


def check_language(lang: str) -> str:
    """``lang`` if MIRACL has it, else a DataError listing its languages."""
    return check_languages([lang], MIRACL_LANGUAGES, where="MIRACL", error=DataError)[0]


def read_corpus(path: str | os.PathLike, lang: str) -> list[Candidate]:
    """Passages of a MIRACL corpus JSONL (``.gz`` ok) as candidates in ``lang``."""
    path = Path(path)
    seen: set[str] = set()
    out: list[Candidate] = []
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
        if docid in seen:
            raise DataError(f"{path}:{lineno}: duplicate docid {docid!r}")
        seen.add(docid)
        out.append(Candidate(id=docid, lang=lang, text=f"{title} {text}".strip() if title else text))
    if not out:
        raise DataError(f"{path}: no passages (empty corpus)")
    return out


def load_miracl(
    lang: str,
    *,
    data_dir: str | os.PathLike | None = None,
    download: bool = True,
    corpus_path: str | os.PathLike | None = None,
    fetch: Fetch | None = None,
) -> Benchmark:
    """``miracl/<lang>`` (dev): topics + qrels + corpus; ``corpus_path`` overrides the corpus lookup."""
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
    candidates = read_corpus(corpus_path, lang)
    queries = [Query(id=qid, lang=lang, text=text) for qid, text in topics.items() if qid in qrels]
    if not queries:
        raise DataError(f"{qrels_path}: no query has a relevant judgement")
    doc_ids = {c.id for c in candidates}
    missing = sum(1 for q in queries for d in qrels[q.id] if d not in doc_ids)
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
