"""The data registry: one table of benchmark entries and their files (``polyret.data.benchmarks.load_benchmark``
loads one by id).

In the manner of ir_datasets, every benchmark id (``list_benchmarks()``) is a :class:`BenchmarkInfo`
entry: its languages, setting families, a description, and its files, each a :class:`RemoteFile` with
its public url, the pinned revision that url names, its size in bytes and its sha256.
``polyret.data.download.ensure_file`` verifies every file against this table:

* a download whose size or sha256 differs is refused (``DownloadError`` naming the file, what was
  expected and what came) and never moved into the cache;
* a local file (the data dir or the cache) is checked every time it is used: its size (a ``stat``) and
  its sha256 (hashing the few MB of a benchmark file costs a fraction of parsing it, and the loaders
  parse the whole file anyway, so the hash is not remembered: nothing can go stale). A mismatch there
  is a logged WARNING naming the file, expected and got, and the file is used: a local data dir is
  the user's own choice (an offline copy, a trimmed file for a test), but its numbers are then not the
  benchmark's, and the log says so.

Pinned revisions: MLQA-R files come from lareqa commit ``354d67d`` (the folder was removed later).
XQuAD-R and MIRACL topics/qrels come from the ``master`` branches of their repositories: no commit is
recorded for the copies in ``shared/data`` (SOURCES.md), so the url still names a moving branch; the
size and sha256 here (of those copies) detect a branch that moved: such a download is refused. MLQA-R
and the MIRACL corpora have no copy in ``shared/data``, so their size and sha256 are unknown (None) and
only checked for being non-empty; the MLQA-R url names a commit, and a MIRACL corpus is the
concatenation of the Hub shards of one folder (GBs, ``miracl/miracl-corpus``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from polyret.data.records import DataError
from polyret.vocabulary import FAMILIES

__all__ = [
    "BENCHMARKS",
    "BenchmarkInfo",
    "LAREQA_LANGUAGES",
    "MIRACL_LANGUAGES",
    "MLQA_R_LANGUAGES",
    "RemoteFile",
    "SPLITS",
    "XQUAD_R_LANGUAGES",
    "benchmark_info",
    "list_benchmarks",
    "recorded_size",
    "remote_file",
]

XQUAD_R_LANGUAGES: tuple[str, ...] = ("ar", "de", "el", "en", "es", "hi", "ru", "th", "tr", "vi", "zh")
MLQA_R_LANGUAGES: tuple[str, ...] = ("ar", "de", "en", "es", "hi", "vi", "zh")
LAREQA_LANGUAGES: dict[str, tuple[str, ...]] = {"xquad-r": XQUAD_R_LANGUAGES, "mlqa-r": MLQA_R_LANGUAGES}
SPLITS: tuple[str, ...] = ("train", "test")
MIRACL_LANGUAGES: tuple[str, ...] = (
    "ar", "bn", "de", "en", "es", "fa", "fi", "fr", "hi", "id", "ja", "ko", "ru", "sw", "te", "th", "yo", "zh",
)  # fmt: skip

LAREQA_REPO = "https://raw.githubusercontent.com/google-research-datasets/lareqa"
MLQA_R_COMMIT = "354d67d1cd066854cdfbf5ad0e6105528976141d"  # still has mlqa-r/ (removed from later commits)
ANSERINI_TOOLS = "https://raw.githubusercontent.com/castorini/anserini-tools/master/topics-and-qrels"
MIRACL_CORPUS_REPO = "miracl/miracl-corpus"
MMARCO_REPO = "unicamp-dl/mmarco"

# relpath -> (size in bytes, sha256), of the copies in shared/data (tests/test_data_registry.py checks
# that every file there has its entry and matches it)
CHECKSUMS: dict[str, tuple[int, str]] = {
    "miracl/qrels/qrels.miracl-v1.0-ar-dev.tsv": (572724, "3670a7804dedd5a602dad0661f6adb1e65b197829d5571f428e0af7fc46aa313"),
    "miracl/qrels/qrels.miracl-v1.0-bn-dev.tsv": (75970, "0aab3bcb0bbc5d3e5ed1566a9e3965800239438b5b5f68d5b6bb4acb7f0fec0e"),
    "miracl/qrels/qrels.miracl-v1.0-de-dev.tsv": (77351, "5d4a0d7ac42c7839a0513ba6deb6b27fc62803f318be8a7c411e10dbbde7578c"),
    "miracl/qrels/qrels.miracl-v1.0-en-dev.tsv": (167817, "a0af836c300e85088c4d73449492e2378280f967cac032853c9e11f3bc8a8d81"),
    "miracl/qrels/qrels.miracl-v1.0-es-dev.tsv": (157701, "2d9441de1e25d7d2faf54f757db618ad5a2927337862a367f1a60e87ef7e40b2"),
    "miracl/qrels/qrels.miracl-v1.0-fa-dev.tsv": (157653, "3cec8ea8fb1f056110e5282df3aa37e14fb5f44c6f885528b6072c0243c1efc4"),
    "miracl/qrels/qrels.miracl-v1.0-fi-dev.tsv": (226188, "4e534e96878729bd2566233d7499c991463052d91d34738dfe84d79f110255cd"),
    "miracl/qrels/qrels.miracl-v1.0-fr-dev.tsv": (84975, "823e8f6fd297064d67efe37991cd3953414dc040c290f249b0895925f03509ad"),
    "miracl/qrels/qrels.miracl-v1.0-hi-dev.tsv": (79771, "4cec99e7012ffca7fd129eeea01f37984bb21702706a8398208e8fba1c14e963"),
    "miracl/qrels/qrels.miracl-v1.0-id-dev.tsv": (176946, "6270863499b1be946be0883e8815b52ffb21e56181e9dc67596eaeb61494a61c"),
    "miracl/qrels/qrels.miracl-v1.0-ja-dev.tsv": (160882, "1e2a60ba96b889bd076adea950e7e83a2d083f671955a5ab3e9bdc332b492e5f"),
    "miracl/qrels/qrels.miracl-v1.0-ko-dev.tsv": (55675, "88827ccc5b64e531b25f70eef30202d33daa9bfa3ac8cceadf5cdbd5ca5034df"),
    "miracl/qrels/qrels.miracl-v1.0-ru-dev.tsv": (255921, "f877b43c7f53b76aab25e406e5a607ef1c5adba4ffaa11e1b252a4326735a19b"),
    "miracl/qrels/qrels.miracl-v1.0-sw-dev.tsv": (89581, "a1e6438ac732dabd9a24fd5c8dfc0c64168aea81ff477d8b1986fde5ad193a63"),
    "miracl/qrels/qrels.miracl-v1.0-te-dev.tsv": (28814, "576a7ded402697a7bb521b4b8bb1a27806b927556001450405d3a5b85590a0c9"),
    "miracl/qrels/qrels.miracl-v1.0-th-dev.tsv": (139845, "81097e891775f67a9b98d41309f9c452dc4e09572b0cbf4952d4107ed0fe1407"),
    "miracl/qrels/qrels.miracl-v1.0-yo-dev.tsv": (24820, "39a219ef0b593f6056e4ad1d65b9c03345730efa5107f0abd4a4a44ef2f6f0d2"),
    "miracl/qrels/qrels.miracl-v1.0-zh-dev.tsv": (94140, "5546474d3dc8139014e6571e9f4041848bb0a314ca6d2d4bac708174d71c59eb"),
    "miracl/topics/topics.miracl-v1.0-ar-dev.tsv": (174692, "10b534b889ec46e23df478eee09410ef2880d90d419644dfed5d05d39b57ece0"),
    "miracl/topics/topics.miracl-v1.0-bn-dev.tsv": (53473, "46fbf50f1f3972b6908543bad6b6dfc60a75eec80d54aae603efd884ba608d2f"),
    "miracl/topics/topics.miracl-v1.0-de-dev.tsv": (17620, "6b66ec2cfb4af383e6fe18a08899bfa3a0deeb5e6010758743fa93ab598321c9"),
    "miracl/topics/topics.miracl-v1.0-en-dev.tsv": (36782, "25d9e6d17656674fd7aa3b67ee912c71545e664a842b147bfc17e9ff391db3da"),
    "miracl/topics/topics.miracl-v1.0-es-dev.tsv": (39616, "5e93b5a1cea22a44912e6ad242147c58719dd8ce4bb6304264a53876b70e65ac"),
    "miracl/topics/topics.miracl-v1.0-fa-dev.tsv": (54322, "df0ece36ab8048f765aa0bb2dde948f5c764cc25bdfc09fb1f5317ef24ff8b49"),
    "miracl/topics/topics.miracl-v1.0-fi-dev.tsv": (58112, "71766986e9bef80118d60b989bdbd3ed965a845db6986847cbfd791fa00990b3"),
    "miracl/topics/topics.miracl-v1.0-fr-dev.tsv": (19375, "dd471f3a0a594d212b30495f8b1d9759451aea399b44e02de6ca9c5550930106"),
    "miracl/topics/topics.miracl-v1.0-hi-dev.tsv": (52022, "94bed8e649806246f59edfb6434ea0c59920a44f2f60a56e01d205c6bf58ef60"),
    "miracl/topics/topics.miracl-v1.0-id-dev.tsv": (42043, "c5d9d5de2913beeb003ee0ef63e4537c2f632940ed077bfb2e9e8a3b5943096d"),
    "miracl/topics/topics.miracl-v1.0-ja-dev.tsv": (50019, "1904b9bf0fc52e1b684daa7539b2bcfdd90122e603ffbcf6b5065a0e210525b0"),
    "miracl/topics/topics.miracl-v1.0-ko-dev.tsv": (12597, "a365552cfc997a8915e948a3b5994883f641e7c3f12b6af87bbfaf89729e32a8"),
    "miracl/topics/topics.miracl-v1.0-ru-dev.tsv": (108525, "91a7c3b6d21f79a12b5330f0a62811962f9370a0bf539cba8b3fecaa095f0616"),
    "miracl/topics/topics.miracl-v1.0-sw-dev.tsv": (21465, "15cde3f614cb75b3106fb4606a16162140ee157da22c4a57aae756571788b722"),
    "miracl/topics/topics.miracl-v1.0-te-dev.tsv": (90134, "3ac8a9a20bdf93ffcc36d554a5fff76ec4435131ae995010814df5881fff07d6"),
    "miracl/topics/topics.miracl-v1.0-th-dev.tsv": (94299, "6ef23316d1224d9fef9e3f8bc2fdf527dad1a3bba98657617398c226503f5a46"),
    "miracl/topics/topics.miracl-v1.0-yo-dev.tsv": (5983, "b24558e43e1965d5cfe7440a5bf3bf66d70529474ff76e64bfa72026129b2d2e"),
    "miracl/topics/topics.miracl-v1.0-zh-dev.tsv": (16903, "5b284a9aabf08bb2d1c88ed7ea276025c9d23846457c5350dc8d391b5e0d0a13"),
    "xquad-r/ar.json": (2234875, "c52922d3b8ac1ae03ed5ac38647ad59870dca3dda2beefe18ecdc30729acb69d"),
    "xquad-r/de.json": (732156, "16fb0f4bf4916154b585a20c24c66074591c9718a1affe764ff4697572328949"),
    "xquad-r/el.json": (2810127, "163fd43ee785a30eb534ae2061e9eaa766a7ee4e8ffce5e4b422480c150f64b6"),
    "xquad-r/en.json": (628651, "7b0954f39297c27a31fef610f0883337dd2907fa8699151dc922afdd0fa12ffe"),
    "xquad-r/es.json": (746335, "f8e836b2d91009c4363e04315f7ede363eedbbb49c67dda60de6c4aa782f58de"),
    "xquad-r/hi.json": (2408404, "ea45ba8ae4513d1533b222bebdc02a90bc319c055d3aeea68584a053d2e92872"),
    "xquad-r/ru.json": (2764904, "7f4dff853538b9a5fcc28c070b8bb983a5c5d190ac747b8e005a1ada9cab18f1"),
    "xquad-r/th.json": (2618544, "c3a041864c3a9fb0b4dd91cfdf99cf36b411b3e704c58a303c97bc6dc786cfe4"),
    "xquad-r/tr.json": (827827, "f3e8c13002bbce154a4578f535f7533cb70f3da08840e6b62735935baec7bd94"),
    "xquad-r/vi.json": (1132303, "e35926bf5cc6fc6ecbdfca49467aabeb454f08d152d7818143a906bd31dde995"),
    "xquad-r/zh.json": (959291, "80c2cde7b9c2fb134c303cbb52f2ba396ead9eb0014aec43993543d2ba9e93ed"),
}


@dataclass(frozen=True)
class RemoteFile:
    """One data file: where it lives under the data root, its public home, and what it must be.

    Args:
        relpath: its path under the data root (the layout of ``shared/data``), e.g. ``"xquad-r/en.json"``.
        url: ``https://...`` or ``hf://datasets/<owner>/<name>/<folder>/`` (the shards of a folder).
        alternatives: other local names accepted (e.g. an uncompressed copy); never verified by checksum.
        revision: the commit or branch the url names (``"master"`` is a moving branch).
        size: its size in bytes, or None when unknown.
        sha256: its sha256 (hex), or None when unknown.
    """

    relpath: str
    url: str
    alternatives: tuple[str, ...] = field(default=())
    revision: str | None = None
    size: int | None = None
    sha256: str | None = None

    @property
    def web_url(self) -> str:
        """The url a person can open (hf:// becomes the Hub page of that folder)."""
        if self.url.startswith("hf://datasets/"):
            owner, name, folder = self.url.removeprefix("hf://datasets/").split("/", 2)
            return f"https://huggingface.co/datasets/{owner}/{name}/tree/main/{folder.rstrip('/')}"
        return self.url

    @property
    def local_names(self) -> tuple[str, ...]:
        return (self.relpath, *self.alternatives)


def _file(relpath: str, url: str, revision: str | None, alternatives: tuple[str, ...] = ()) -> RemoteFile:
    size, sha256 = CHECKSUMS.get(relpath, (None, None))
    return RemoteFile(relpath, url, alternatives, revision, size, sha256)


def xquad_r_file(lang: str) -> RemoteFile:
    return _file(f"xquad-r/{lang}.json", f"{LAREQA_REPO}/master/xquad-r/{lang}.json", "master")


def mlqa_r_file(lang: str) -> RemoteFile:
    return _file(f"mlqa-r/{lang}.json", f"{LAREQA_REPO}/{MLQA_R_COMMIT}/mlqa-r/{lang}.json", MLQA_R_COMMIT)


def miracl_topics_file(lang: str, split: str = "dev") -> RemoteFile:
    name = f"topics.miracl-v1.0-{lang}-{split}.tsv"
    return _file(f"miracl/topics/{name}", f"{ANSERINI_TOOLS}/{name}", "master")


def miracl_qrels_file(lang: str, split: str = "dev") -> RemoteFile:
    name = f"qrels.miracl-v1.0-{lang}-{split}.tsv"
    return _file(f"miracl/qrels/{name}", f"{ANSERINI_TOOLS}/{name}", "master")


def miracl_corpus_file(lang: str) -> RemoteFile:
    return _file(
        f"miracl/corpus/{lang}.jsonl.gz",
        f"hf://datasets/{MIRACL_CORPUS_REPO}/miracl-corpus-v1.0-{lang}/",
        "main",
        alternatives=(f"miracl/corpus/{lang}.jsonl",),
    )


@dataclass(frozen=True)
class BenchmarkInfo:
    """One entry of the registry table.

    Args:
        id: the benchmark id (``"xquad-r:test"``, ``"miracl/de"``).
        languages: its languages, in canonical order.
        families: the setting families it is evaluated in (``polyret.vocabulary.FAMILIES``).
        description: one line for listings.
        files: the files it reads, with url, revision, size and sha256.
    """

    id: str
    languages: tuple[str, ...]
    families: tuple[str, ...]
    description: str
    files: tuple[RemoteFile, ...] = ()


# Recorded sizes (queries, candidates) per benchmark and language, for listings and plans made before the data
# is on disk. XQuAD-R: counted from the copies in shared/data (1,190 questions per language; candidates are
# sentences). MIRACL dev: queries counted from the topics files, passages from Zhang et al. 2023 (MIRACL,
# TACL), Table 1 (de and yo, the "surprise" languages, are not in it). MLQA-R: no local copy (None: unknown).
_XQUAD_R_SIZES = {"xquad-r": (13090, 13014), "xquad-r:train": (6919, 6684), "xquad-r:test": (6171, 6330)}
_MIRACL_DEV_QUERIES = {
    "ar": 2896, "bn": 411, "de": 305, "en": 799, "es": 648, "fa": 632, "fi": 1271, "fr": 343, "hi": 350,
    "id": 960, "ja": 860, "ko": 213, "ru": 1252, "sw": 482, "te": 828, "th": 733, "yo": 119, "zh": 393,
}  # fmt: skip
_MIRACL_PASSAGES = {
    "ar": 2_061_414, "bn": 297_265, "en": 32_893_221, "es": 10_373_953, "fa": 2_207_172, "fi": 1_883_509,
    "fr": 14_636_953, "hi": 506_264, "id": 1_446_315, "ja": 6_953_614, "ko": 1_486_752, "ru": 9_543_918,
    "sw": 131_924, "te": 518_079, "th": 542_166, "zh": 4_934_368,
}  # fmt: skip


def recorded_size(benchmark_id: str) -> tuple[int | None, int | None]:
    """(queries, candidates) of ``benchmark_id`` in all its languages, as recorded (None: not known).

    Args:
        benchmark_id: a registry id.
    """
    benchmark_info(benchmark_id)
    if benchmark_id in _XQUAD_R_SIZES:
        return _XQUAD_R_SIZES[benchmark_id]
    if benchmark_id.startswith("miracl/"):
        lang = benchmark_id.split("/", 1)[1]
        return _MIRACL_DEV_QUERIES.get(lang), _MIRACL_PASSAGES.get(lang)
    return None, None


def _table() -> tuple[BenchmarkInfo, ...]:
    infos: list[BenchmarkInfo] = []
    names = {"xquad-r": "XQuAD-R (LAReQA), 11-way parallel", "mlqa-r": "MLQA-R (LAReQA), 7 languages"}
    for dataset, langs in LAREQA_LANGUAGES.items():
        make = xquad_r_file if dataset == "xquad-r" else mlqa_r_file
        files = tuple(make(lang) for lang in langs)
        infos.append(BenchmarkInfo(dataset, langs, FAMILIES, f"{names[dataset]}, all articles", files))
        for split in SPLITS:
            infos.append(
                BenchmarkInfo(
                    f"{dataset}:{split}", langs, FAMILIES, f"{names[dataset]}, {split} side of the article split", files
                )
            )
    for lang in MIRACL_LANGUAGES:
        files = (miracl_topics_file(lang), miracl_qrels_file(lang), miracl_corpus_file(lang))
        infos.append(BenchmarkInfo(f"miracl/{lang}", (lang,), ("mono",), f"MIRACL v1.0 dev, {lang}", files))
    return tuple(infos)


BENCHMARKS: tuple[BenchmarkInfo, ...] = _table()
_BY_ID = {info.id: info for info in BENCHMARKS}
_BY_PATH = {f.relpath: f for info in BENCHMARKS for f in info.files}


def list_benchmarks() -> list[str]:
    """Every benchmark id ``load_benchmark`` accepts."""
    return [info.id for info in BENCHMARKS]


def benchmark_info(benchmark_id: str) -> BenchmarkInfo:
    """The registry entry of ``benchmark_id``; a DataError listing the known ids when there is none."""
    try:
        return _BY_ID[benchmark_id]
    except KeyError:
        raise DataError(_unknown(benchmark_id)) from None


def remote_file(relpath: str) -> RemoteFile:
    """The table's entry for the file at ``relpath`` under the data root (KeyError when there is none)."""
    return _BY_PATH[relpath]


def _unknown(benchmark_id: str) -> str:
    ids = list_benchmarks()
    miracl = [i for i in ids if i.startswith("miracl/")]
    shown = [i for i in ids if not i.startswith("miracl/")] + ["miracl/<lang> for " + ", ".join(m[7:] for m in miracl)]
    return f"unknown benchmark {benchmark_id!r}; known: {'; '.join(shown)}"
