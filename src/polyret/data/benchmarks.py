"""``load_benchmark``: a benchmark by its registry id (:mod:`polyret.data.registry` is the table; the
loaders are :mod:`polyret.data.lareqa` and :mod:`polyret.data.miracl`). Above the three, so the table
imports no loader."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from polyret.data.download import Fetch
from polyret.data.lareqa import SplitConfig, load_lareqa
from polyret.data.miracl import load_miracl
from polyret.data.records import Benchmark, DataError
from polyret.data.registry import benchmark_info
from polyret.vocabulary import check_languages

__all__ = ["load_benchmark"]


def load_benchmark(
    benchmark_id: str,
    *,
    data_dir: str | os.PathLike | None = None,
    languages: Sequence[str] | None = None,
    download: bool = True,
    split_config: SplitConfig | None = None,
    fetch: Fetch | None = None,
    corpus: str | os.PathLike | None = None,
    corpus_cache: bool | str | os.PathLike = True,
) -> Benchmark:
    """Load a benchmark by id (``list_benchmarks()``), optionally restricted to some languages.

    Args:
        benchmark_id: a registry id.
        data_dir: the data root looked at first (default: ``polyret.paths.data_dir()``).
        languages: a subset of the benchmark's languages (None: all).
        download: fetch missing files into the cache (verified against the table).
        split_config: the LAReQA article split (default ``SplitConfig()``).
        fetch: a replacement for the network fetch (tests).
        corpus: a ``miracl/<lang>`` benchmark only: read this MIRACL-format corpus JSONL(.gz) instead of
            the data root's ``miracl/corpus/<lang>.jsonl[.gz]`` (the topics and qrels stay the language's).
        corpus_cache: a ``miracl/<lang>`` benchmark only: False (no cache: nothing read or written), True
            (``<cache>/corpora``) or a folder for the parsed corpus (:func:`polyret.data.miracl.read_corpus`).

    Raises:
        DataError: an unknown id or language; a missing or malformed file (``DownloadError`` when a
            file cannot be fetched or a download does not match its size and sha256).
    """
    info = benchmark_info(benchmark_id)
    if languages is not None:
        languages = list(check_languages(languages, info.languages, where=benchmark_id, error=DataError))
    if benchmark_id.startswith("miracl/"):
        if corpus is not None and not Path(corpus).is_file():
            raise DataError(f"corpus: no corpus file at {corpus}")
        return load_miracl(info.languages[0], data_dir=data_dir, download=download, fetch=fetch, corpus_path=corpus,
                           corpus_cache=corpus_cache)  # fmt: skip
    if corpus is not None:
        raise DataError(f"corpus: only a MIRACL-format benchmark (miracl/<lang>) reads a corpus file, not {benchmark_id!r}")
    dataset, _, split = benchmark_id.partition(":")
    return load_lareqa(
        dataset,
        split=split or None,
        data_dir=data_dir,
        languages=languages,
        download=download,
        config=split_config or SplitConfig(),
        fetch=fetch,
    )
