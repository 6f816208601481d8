"""Find a benchmark file locally, or fetch it once from its public home into the cache.

Lookup order for a file with relative path ``rel`` (the same layout as ``shared/data``):
``<data_dir>/rel``, then ``<cache_dir>/data/rel``. When neither exists and ``download`` is on, the
file is fetched into ``<cache_dir>/data/rel`` through a temporary file that is renamed only once the
fetch finished, so an interrupted download never leaves a truncated file behind.

A *fetch* function ``fetch(url, dest)`` writes the resource at ``url`` into the path ``dest``; tests
pass a fake one so nothing touches the network. ``https://`` urls go through ``urllib``;
``hf://datasets/<owner>/<name>/<folder>/`` urls concatenate the ``.jsonl.gz`` shards of that folder of
a Hugging Face dataset repository (gzip members concatenate into one valid gzip stream).
"""

from __future__ import annotations

import os
import shutil
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from polyret import paths
from polyret.data.records import DataError

Fetch = Callable[[str, Path], None]

LAREQA_REPO = "https://raw.githubusercontent.com/google-research-datasets/lareqa"
# MLQA-R was removed from later commits of the lareqa repository; this commit still has it.
MLQA_R_COMMIT = "354d67d1cd066854cdfbf5ad0e6105528976141d"
ANSERINI_TOOLS = "https://raw.githubusercontent.com/castorini/anserini-tools/master/topics-and-qrels"
MIRACL_CORPUS_REPO = "miracl/miracl-corpus"
MMARCO_REPO = "unicamp-dl/mmarco"


class DownloadError(DataError):
    """A file is neither on disk nor downloadable (offline, or the download failed)."""


@dataclass(frozen=True)
class RemoteFile:
    """One data file: where it lives under the data root, and its public home."""

    relpath: str  # e.g. "xquad-r/en.json"
    url: str  # "https://..." or "hf://datasets/<owner>/<name>/<folder>/"
    alternatives: tuple[str, ...] = field(default=())  # other local names accepted (e.g. uncompressed)

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


def xquad_r_file(lang: str) -> RemoteFile:
    return RemoteFile(f"xquad-r/{lang}.json", f"{LAREQA_REPO}/master/xquad-r/{lang}.json")


def mlqa_r_file(lang: str) -> RemoteFile:
    return RemoteFile(f"mlqa-r/{lang}.json", f"{LAREQA_REPO}/{MLQA_R_COMMIT}/mlqa-r/{lang}.json")


def miracl_topics_file(lang: str, split: str = "dev") -> RemoteFile:
    name = f"topics.miracl-v1.0-{lang}-{split}.tsv"
    return RemoteFile(f"miracl/topics/{name}", f"{ANSERINI_TOOLS}/{name}")


def miracl_qrels_file(lang: str, split: str = "dev") -> RemoteFile:
    name = f"qrels.miracl-v1.0-{lang}-{split}.tsv"
    return RemoteFile(f"miracl/qrels/{name}", f"{ANSERINI_TOOLS}/{name}")


def miracl_corpus_file(lang: str) -> RemoteFile:
    return RemoteFile(
        f"miracl/corpus/{lang}.jsonl.gz",
        f"hf://datasets/{MIRACL_CORPUS_REPO}/miracl-corpus-v1.0-{lang}/",
        alternatives=(f"miracl/corpus/{lang}.jsonl",),
    )


def local_candidates(
    remote: RemoteFile,
    *,
    data_dir: str | os.PathLike | None = None,
    cache_dir: str | os.PathLike | None = None,
) -> list[Path]:
    """Every path where ``remote`` may already be, in lookup order."""
    roots = [paths.data_dir(data_dir), paths.cache_dir(cache_dir) / "data"]
    return [root / name for root in roots for name in remote.local_names]


def ensure_file(
    remote: RemoteFile,
    *,
    data_dir: str | os.PathLike | None = None,
    cache_dir: str | os.PathLike | None = None,
    download: bool = True,
    fetch: Fetch | None = None,
) -> Path:
    """Return a local path for ``remote``, downloading it into the cache when allowed and needed."""
    looked = local_candidates(remote, data_dir=data_dir, cache_dir=cache_dir)
    for path in looked:
        if path.is_file():
            return path
    where = ", ".join(str(p) for p in looked)
    if not download:
        raise DownloadError(
            f"{remote.relpath} not found (looked at: {where}) and downloading is off; "
            f"fetch it from {remote.web_url} or point --data-dir / POLYRET_DATA_DIR at a folder holding it"
        )
    target = paths.cache_dir(cache_dir) / "data" / remote.relpath
    fetch = fetch or default_fetch
    try:
        with paths.atomic_path(target) as tmp:
            fetch(remote.url, tmp)
            if tmp.stat().st_size == 0:
                raise OSError("the download was empty")
    except Exception as exc:  # any failure (offline, HTTP error, hub error) ends in one clear message
        raise DownloadError(
            f"{remote.relpath} not found (looked at: {where}) and the download from {remote.web_url} "
            f"failed ({type(exc).__name__}: {exc}); when offline, put the file at one of those paths "
            f"or set --data-dir / POLYRET_DATA_DIR"
        ) from exc
    return target


def ensure_files(
    remotes: Sequence[RemoteFile],
    *,
    data_dir: str | os.PathLike | None = None,
    download: bool = True,
    fetch: Fetch | None = None,
) -> list[Path]:
    return [ensure_file(r, data_dir=data_dir, download=download, fetch=fetch) for r in remotes]


def default_fetch(url: str, dest: Path) -> None:
    """Fetch ``url`` into ``dest`` (https via urllib, hf:// via huggingface_hub)."""
    if url.startswith("hf://"):
        _fetch_hf_shards(url, dest)
        return
    request = urllib.request.Request(url, headers={"User-Agent": "polyret"})
    with urllib.request.urlopen(request, timeout=60) as response, open(dest, "wb") as out:
        shutil.copyfileobj(response, out, length=1 << 20)


def _fetch_hf_shards(url: str, dest: Path) -> None:
    """Concatenate the ``.jsonl.gz`` shards under one folder of a Hub dataset repository."""
    from huggingface_hub import HfApi, hf_hub_download

    parts = url.removeprefix("hf://").split("/", 3)
    if len(parts) < 4 or parts[0] != "datasets":
        raise ValueError(f"expected hf://datasets/<owner>/<name>/<folder>/, got {url}")
    repo_id, folder = f"{parts[1]}/{parts[2]}", parts[3].rstrip("/") + "/"
    shards = sorted(
        f
        for f in HfApi().list_repo_files(repo_id, repo_type="dataset")
        if f.startswith(folder) and f.endswith(".jsonl.gz")
    )
    if not shards:
        raise FileNotFoundError(f"no .jsonl.gz shards under {folder} in dataset {repo_id}")
    with open(dest, "wb") as out:
        for shard in shards:
            local = hf_hub_download(repo_id, shard, repo_type="dataset")
            with open(local, "rb") as src:
                shutil.copyfileobj(src, out, length=1 << 20)


def hub_dataset_file(repo_id: str, filename: str) -> Path:
    """One file of a Hub dataset repository, through the Hub's own cache (mMARCO files are GBs)."""
    from huggingface_hub import hf_hub_download

    try:
        return Path(hf_hub_download(repo_id, filename, repo_type="dataset"))
    except Exception as exc:
        raise DownloadError(
            f"could not get {filename} from the Hugging Face dataset {repo_id} "
            f"({type(exc).__name__}: {exc}); offline, use a local folder instead"
        ) from exc
