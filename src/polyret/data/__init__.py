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
from polyret.data.pairs import load_pairs, load_pairs_jsonl, pair_counts
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
    "SplitConfig",
    "XQUAD_R_LANGUAGES",
    "article_split",
    "benchmark_info",
    "ensure_file",
    "list_benchmarks",
    "load_benchmark",
    "load_lareqa",
    "load_miracl",
    "load_pairs",
    "load_pairs_jsonl",
    "pair_counts",
    "parse_lareqa_file",
    "read_qrels",
    "read_run",
    "read_topics",
]
