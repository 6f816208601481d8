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

import logging
import os
import shutil
import urllib.request
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

from polyret import paths
from polyret.data.records import DataError
from polyret.data.registry import (
    LAREQA_LANGUAGES,
    MMARCO_REPO,
    BenchmarkInfo,
    RemoteFile,
    benchmark_info,
    miracl_corpus_file,
    miracl_qrels_file,
    miracl_topics_file,
    mlqa_r_file,
    xquad_r_file,
)
from polyret.integrity import source_digest

Fetch = Callable[[str, Path], None]

logger = logging.getLogger(__name__)

__all__ = [
    "MMARCO_REPO",
    "DownloadError",
    "Fetch",
    "RemoteFile",
    "default_fetch",
    "ensure_file",
    "files_read",
    "hub_dataset_file",
    "local_candidates",
    "missing_files",
    "miracl_corpus_file",
    "miracl_qrels_file",
    "miracl_topics_file",
    "mlqa_r_file",
    "sha256_of",
    "sources_identity",
    "verify",
    "xquad_r_file",
]  # the file specs live in polyret.data.registry (the table); re-exported here, where they were


class DownloadError(DataError):
    """A file is neither on disk nor downloadable (offline, the download failed, or what came does not
    match the registry's size and sha256)."""


sha256_of = paths.file_sha256  # the sha256 (hex) of a file: one definition, in polyret.paths


def verify(remote: RemoteFile, path: str | os.PathLike) -> str | None:
    """None if ``path`` is what the registry says ``remote`` is (size, then sha256, each where known),
    else a sentence naming the file, what was expected and what it is."""
    path = Path(path)
    size = path.stat().st_size
    if remote.size is not None and size != remote.size:
        return f"{path}: expected {remote.size} bytes (registry entry {remote.relpath}), got {size} bytes"
    if remote.sha256 is not None:
        got = sha256_of(path)
        if got != remote.sha256:
            return f"{path}: expected sha256 {remote.sha256} (registry entry {remote.relpath}), got sha256 {got}"
    return None


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
            if path.name == Path(remote.relpath).name:  # an alternative name (uncompressed) has no checksum
                problem = verify(remote, path)
                if problem:
                    logger.warning("%s; using it anyway (a local copy), but its numbers are not the benchmark's", problem)
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
            problem = verify(remote, tmp)
            if problem:  # raised inside the block: the temp file is removed, nothing enters the cache
                raise _Mismatch(problem.replace(str(tmp), f"the download of {remote.relpath}", 1))
    except _Mismatch as exc:
        raise DownloadError(
            f"{exc} from {remote.web_url}; refused, not stored in the cache (the file upstream changed, "
            "or the download was damaged)"
        ) from None
    except Exception as exc:  # any failure (offline, HTTP error, hub error) ends in one clear message
        raise DownloadError(
            f"{remote.relpath} not found (looked at: {where}) and the download from {remote.web_url} "
            f"failed ({type(exc).__name__}: {exc}); when offline, put the file at one of those paths "
            f"or set --data-dir / POLYRET_DATA_DIR"
        ) from exc
    return target


class _Mismatch(Exception):
    """A download that does not match the registry (turned into a DownloadError by ensure_file)."""


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
        f for f in HfApi().list_repo_files(repo_id, repo_type="dataset") if f.startswith(folder) and f.endswith(".jsonl.gz")
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


def missing_files(
    benchmark_id: str, languages: Sequence[str] | None = None, *, data_dir: str | os.PathLike | None = None
) -> list[RemoteFile]:
    """The files of ``benchmark_id`` (restricted to ``languages``) that are neither in the data root nor in the
    download cache: what a run would have to download. Nothing is read or fetched.

    Args:
        benchmark_id: a registry id.
        languages: the languages evaluated (None: all).
        data_dir: the data root (None: the default lookup).
    """
    return [
        remote
        for remote in files_read(benchmark_info(benchmark_id), languages or None)
        if not any(p.is_file() for p in local_candidates(remote, data_dir=data_dir))
    ]


def files_read(info: BenchmarkInfo, languages: Iterable[str] | None = None) -> list[RemoteFile]:
    """The files of a benchmark a run of ``languages`` reads: all of them, less the per-language LAReQA
    files (``xquad-r/de.json``...) of languages not in ``languages`` (None: every language).

    Args:
        info: the benchmark's registry entry.
        languages: the languages read (None: all).
    """
    wanted = set(languages) if languages is not None else None
    out = []
    for remote in info.files:
        stem = Path(remote.relpath).name.split(".")[0]
        if wanted is not None and stem in LAREQA_LANGUAGES.get(remote.relpath.split("/")[0], ()) and stem not in wanted:
            continue  # a LAReQA file of a language not read
        out.append(remote)
    return out


def sources_identity(
    specs: Iterable[str],
    *,
    languages: Iterable[str] | None = None,
    data_dir: str | os.PathLike | None = None,
    cache_dir: str | os.PathLike | None = None,
) -> dict[str, str]:
    """The content (sha256, remembered by :func:`source_digest`) of every local file the data ``specs`` read:
    a file path is itself; a registry id (``xquad-r:test``, ``xquad-r:train``, ``miracl/sw``) is the local copy
    of each of its files (of ``languages`` only, for the per-language LAReQA files) that is on disk. An
    experiment records it beside what it trained and evaluated, so edited data is never paired with results
    of the old data. Specs that are neither (a Hub dataset, ``mmarco``) and files not on disk are left out.

    Args:
        specs: training sources or benchmark ids.
        languages: the languages read (None: all).
        data_dir: the data root (None: the default lookup).
        cache_dir: the cache root (downloads, remembered digests).
    """
    languages = list(languages) if languages else None
    out: dict[str, str] = {}
    for spec in specs:
        path = Path(str(spec)).expanduser()
        if path.is_file():
            out[str(path.resolve())] = source_digest(path, cache_dir=cache_dir)
            continue
        try:
            info = benchmark_info(str(spec))
        except ValueError:
            continue
        for remote in files_read(info, languages):
            found = next((p for p in local_candidates(remote, data_dir=data_dir, cache_dir=cache_dir) if p.is_file()), None)
            if found is not None:
                out[remote.relpath] = source_digest(found, cache_dir=cache_dir)
    return out
