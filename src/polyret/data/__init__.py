"""Benchmarks and training pairs behind stable ids (see ``registry.list_benchmarks``)."""

from polyret.data.benchmarks import load_benchmark
from polyret.data.download import DownloadError, RemoteFile, ensure_file
from polyret.data.lareqa import (
    MLQA_R_LANGUAGES,
    XQUAD_R_LANGUAGES,
    SplitConfig,
    article_split,
    load_lareqa,
    parse_lareqa_file,
)
from polyret.data.miracl import MIRACL_LANGUAGES, load_miracl
from polyret.data.mmarco import MMARCO_LANGUAGES
from polyret.data.pairs import SourceSpec, load_pair_source, load_pairs, pair_counts, parse_source_spec
from polyret.data.records import Benchmark, Candidate, DataError, Pair, PairGroups, Query
from polyret.data.registry import BENCHMARKS, BenchmarkInfo, benchmark_info, list_benchmarks
from polyret.data.trec import read_qrels, read_run, read_topics

__all__ = [
    "BENCHMARKS",
    "Benchmark",
    "BenchmarkInfo",
    "Candidate",
    "DataError",
    "DownloadError",
    "MIRACL_LANGUAGES",
    "MLQA_R_LANGUAGES",
    "MMARCO_LANGUAGES",
    "Pair",
    "PairGroups",
    "Query",
    "RemoteFile",
    "SourceSpec",
    "SplitConfig",
    "XQUAD_R_LANGUAGES",
    "article_split",
    "benchmark_info",
    "ensure_file",
    "list_benchmarks",
    "load_benchmark",
    "load_lareqa",
    "load_miracl",
    "load_pair_source",
    "load_pairs",
    "pair_counts",
    "parse_lareqa_file",
    "parse_source_spec",
    "read_qrels",
    "read_run",
    "read_topics",
]
