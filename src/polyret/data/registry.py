"""Benchmark ids -> Benchmark: the one door the evaluation side uses to get data."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

from polyret.data.download import Fetch
from polyret.data.lareqa import LAREQA_LANGUAGES, SPLITS, SplitConfig, load_lareqa
from polyret.data.miracl import MIRACL_LANGUAGES, load_miracl
from polyret.data.records import Benchmark, DataError
from polyret.vocabulary import check_languages


@dataclass(frozen=True)
class BenchmarkInfo:
    id: str
    languages: tuple[str, ...]
    families: tuple[str, ...]
    description: str


def _infos() -> list[BenchmarkInfo]:
    infos: list[BenchmarkInfo] = []
    names = {"xquad-r": "XQuAD-R (LAReQA), 11-way parallel", "mlqa-r": "MLQA-R (LAReQA), 7 languages"}
    for dataset, langs in LAREQA_LANGUAGES.items():
        infos.append(BenchmarkInfo(dataset, langs, ("mono", "cross", "multi"), f"{names[dataset]}, all articles"))
        for split in SPLITS:
            infos.append(
                BenchmarkInfo(
                    f"{dataset}:{split}", langs, ("mono", "cross", "multi"),
                    f"{names[dataset]}, {split} side of the article split",
                )
            )
    for lang in MIRACL_LANGUAGES:
        infos.append(BenchmarkInfo(f"miracl/{lang}", (lang,), ("mono",), f"MIRACL v1.0 dev, {lang}"))
    return infos


def list_benchmarks() -> list[str]:
    """Every benchmark id ``load_benchmark`` accepts."""
    return [info.id for info in _infos()]


def benchmark_info(benchmark_id: str) -> BenchmarkInfo:
    for info in _infos():
        if info.id == benchmark_id:
            return info
    raise DataError(_unknown(benchmark_id))


def _unknown(benchmark_id: str) -> str:
    ids = list_benchmarks()
    miracl = [i for i in ids if i.startswith("miracl/")]
    shown = [i for i in ids if not i.startswith("miracl/")] + ["miracl/<lang> for " + ", ".join(m[7:] for m in miracl)]
    return f"unknown benchmark {benchmark_id!r}; known: {'; '.join(shown)}"


def load_benchmark(
    benchmark_id: str,
    *,
    data_dir: str | os.PathLike | None = None,
    languages: Sequence[str] | None = None,
    download: bool = True,
    split_config: SplitConfig = SplitConfig(),
    fetch: Fetch | None = None,
) -> Benchmark:
    """Load a benchmark by id (``list_benchmarks()``), optionally restricted to some languages."""
    info = benchmark_info(benchmark_id)
    if languages is not None:
        languages = list(check_languages(languages, info.languages, where=benchmark_id, error=DataError))
    if benchmark_id.startswith("miracl/"):
        return load_miracl(info.languages[0], data_dir=data_dir, download=download, fetch=fetch)
    dataset, _, split = benchmark_id.partition(":")
    return load_lareqa(
        dataset,
        split=split or None,
        data_dir=data_dir,
        languages=languages,
        download=download,
        config=split_config,
        fetch=fetch,
    )
