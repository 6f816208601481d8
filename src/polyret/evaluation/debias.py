"""Training-free language-bias remedies applied to stored embeddings, between encode and search.

Recent work removes language identity from embeddings after encoding, without re-encoding or training:

* ``center``: per-language mean centring. The mean embedding of each language (queries and passages
  apart: their prompts differ) is subtracted from every embedding of that language.
* ``shift``: "Shift" (Jang, Hong, Moon & Lim 2026, "Semantic Harmonization via Index-side Feature
  Transformation for Multilingual Information Retrieval", arXiv:2606.18801): from parallel translation
  pairs, a relative language vector per target language t with respect to a source language s
  (English) is estimated, ``v_t = mean(e_t - e_s)``, and subtracted from the DOCUMENT embeddings of
  language t at indexing time; queries are left as they are.
* ``leace``: LEACE, least-squares linear concept erasure (Belrose et al., NeurIPS 2023,
  arXiv:2306.03819, the ``concept-erasure`` package) of the language label, as Fan et al. 2025 ("The
  Medium Is Not the Message: Deconfounding Document Embeddings via Linear Concept Erasure",
  arXiv:2507.01234) apply it to retrieval: one affine eraser fitted on queries and passages of the fit
  data together, applied to both, so no linear classifier can recover the language afterwards.

Every transform is FITTED on other data than the evaluated benchmark (``--debias-fit``, e.g.
``xquad-r:train``): a benchmark sharing a passage with the evaluated one is refused before anything is
encoded. Fit data: the first ``max_queries`` question ids of the fit benchmark, their queries in the
evaluated languages (plus English for Shift) and their gold passages (one per language: the parallel
pairs Shift needs). After each
transform the rows are L2-normalised again (the models score by cosine). Fitted transforms are cached
by (model fingerprint, method, fit data) under ``<cache>/debias/`` with a sha256 checksum, verified on
every read.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..data.records import Benchmark, DataError
from ..errors import ConfigError
from ..paths import atomic_path, atomic_write_text

logger = logging.getLogger(__name__)

METHODS = ("center", "shift", "leace")
SHIFT_SOURCE = "en"  # Shift's source language: the relative vectors point from English to each language
_FORMAT = "polyret-debias/1"


def check_debias_options(method: str | None, fit: str | None, max_queries: int | None, benchmark: str | None) -> None:
    """Check a remedy's options before anything loads; a ``ConfigError`` names the key.

    Args:
        method: None or one of :data:`METHODS`.
        fit: the benchmark id the remedy is fitted on.
        max_queries: how many parallel questions of ``fit`` are used (None: all), >= 2.
        benchmark: the evaluated benchmark id (fitting on it, or on the same dataset unsplit, is refused).
    """
    if method is None:
        if fit is not None:
            raise ConfigError(f"debias_fit: {fit!r} given without a remedy (--debias {'|'.join(METHODS)})")
        return
    if method not in METHODS:
        raise ConfigError(f"debias: unknown remedy {method!r}; choose from {', '.join(METHODS)}")
    if not fit:
        raise ConfigError(f"debias_fit: remedy {method!r} needs the data it is fitted on, e.g. --debias-fit xquad-r:train")
    if max_queries is not None and (isinstance(max_queries, bool) or not isinstance(max_queries, int) or max_queries < 2):
        raise ConfigError(f"debias_fit_max_queries must be an integer >= 2 or None, got {max_queries!r}")
    from ..data.registry import benchmark_info

    try:
        benchmark_info(fit)
    except DataError as exc:
        raise ConfigError(f"debias_fit: {exc}") from None
    if benchmark:
        fit_set, _, fit_split = fit.partition(":")
        eval_set, _, eval_split = benchmark.partition(":")
        if fit == benchmark or (fit_set == eval_set and (not fit_split or not eval_split)):
            raise ConfigError(
                f"debias_fit: {fit!r} is (or contains) the evaluated benchmark {benchmark!r}; fit the remedy on other "
                "data (e.g. xquad-r:train for xquad-r:test)"
            )


def check_disjoint(fit: Benchmark, evaluated: Benchmark) -> None:
    """Refuse fit data that shares a passage (candidate id) with the evaluated benchmark.

    Args:
        fit: the fit benchmark.
        evaluated: the evaluated benchmark.

    Raises:
        ConfigError naming both benchmarks and one shared passage.
    """
    ids = fit.candidates.id_list()
    where = evaluated.candidates.positions(ids)
    shared = [i for i, w in zip(ids, where) if w >= 0]
    if shared:
        raise ConfigError(
            f"debias_fit: {fit.id!r} shares {len(shared)} passage(s) with the evaluated benchmark {evaluated.id!r} "
            f"(first: {shared[0]}); fit the remedy on disjoint data"
        )


@dataclass
class FitData:
    """The texts a remedy is fitted on.

    Args:
        query_texts, query_langs, query_groups: the queries (group = question id).
        passage_texts, passage_langs, passage_groups: their gold passages (group = question id).
    """

    query_texts: list[str]
    query_langs: np.ndarray
    query_groups: np.ndarray
    passage_texts: list[str]
    passage_langs: np.ndarray
    passage_groups: np.ndarray


def fit_data(bench: Benchmark, max_queries: int | None, languages: Sequence[str] | None = None) -> FitData:
    """The first ``max_queries`` question ids of ``bench`` (benchmark order): their queries and their
    gold passages (each once) in ``languages``.

    Args:
        bench: the fit benchmark.
        max_queries: how many question ids (None: all).
        languages: the languages kept (None: all of the fit benchmark's).
    """
    wanted = set(languages) if languages else None
    qids = list(dict.fromkeys(q.id for q in bench.queries))
    keep = set(qids[:max_queries] if max_queries else qids)
    queries = [q for q in bench.queries if q.id in keep and (wanted is None or q.lang in wanted)]
    gold: dict[str, str] = {}  # docid -> question id
    for qid in dict.fromkeys(q.id for q in queries):
        for docid, rel in bench.qrels.get(qid, {}).items():
            if rel > 0:
                gold.setdefault(docid, qid)
    docids = list(gold)
    pos = bench.candidates.positions(docids)
    langs = bench.candidates.langs
    rows = [(p, d) for p, d in zip(pos.tolist(), docids) if p >= 0 and (wanted is None or str(langs[p]) in wanted)]
    texts = bench.candidates.text_list()
    return FitData(
        query_texts=[q.text for q in queries],
        query_langs=np.asarray([q.lang for q in queries], dtype=str),
        query_groups=np.asarray([q.id for q in queries], dtype=str),
        passage_texts=[texts[p] for p, _ in rows],
        passage_langs=np.asarray([str(langs[p]) for p, _ in rows], dtype=str),
        passage_groups=np.asarray([gold[d] for _, d in rows], dtype=str),
    )


def _normalise(x: np.ndarray) -> np.ndarray:
    n = np.linalg.norm(x, axis=1, keepdims=True)
    return (x / np.where(n > 0, n, 1.0)).astype(np.float32)


@dataclass
class Transform:
    """A fitted remedy: ``apply(embeddings, langs, kind)`` -> transformed, L2-normalised float32 rows.

    Args:
        method: ``center``, ``shift`` or ``leace``.
        arrays: the fitted parameters (per-language means, relative vectors, or the eraser's matrices).
        langs: the languages the transform knows, in the order of the per-language arrays.
        info: what results.json records (fit data, sizes, cache file and checksum).
    """

    method: str
    arrays: dict[str, np.ndarray]
    langs: list[str]
    info: dict[str, Any] = field(default_factory=dict)

    def _lang_rows(self, langs: np.ndarray) -> np.ndarray:
        idx = {lg: i for i, lg in enumerate(self.langs)}
        missing = sorted(set(langs.tolist()) - set(idx))
        if missing:
            raise ConfigError(
                f"debias_fit: the fit data has no {', '.join(missing)} (it has {', '.join(self.langs)}); "
                f"{self.method} needs every evaluated language"
            )
        return np.asarray([idx[lg] for lg in langs.tolist()], dtype=np.int64)

    def apply(self, emb: np.ndarray, langs: np.ndarray, kind: str) -> np.ndarray:
        """The transformed embeddings.

        Args:
            emb: rows aligned with ``langs``.
            langs: the language of each row.
            kind: ``"query"`` or ``"passage"``.
        """
        x = np.asarray(emb, dtype=np.float32)
        langs = np.asarray(langs, dtype=str)
        if self.method == "center":
            mu = self.arrays["query_means" if kind == "query" else "passage_means"]
            return _normalise(x - mu[self._lang_rows(langs)])
        if self.method == "shift":
            if kind == "query":
                return x.astype(np.float32, copy=True)  # Shift changes the index side only
            return _normalise(x - self.arrays["shift_vectors"][self._lang_rows(langs)])
        left, right, bias = self.arrays["proj_left"], self.arrays["proj_right"], self.arrays["bias"]
        out = x.astype(np.float64) - ((x.astype(np.float64) - bias) @ right.T) @ left.T
        return _normalise(out)


def fit_transform(method: str, q_emb: np.ndarray, p_emb: np.ndarray, data: FitData) -> Transform:
    """Fit ``method`` on the fit data's embeddings (pure: no disk).

    Args:
        method: one of :data:`METHODS`.
        q_emb: embeddings of ``data.query_texts``.
        p_emb: embeddings of ``data.passage_texts``.
        data: the fit data.

    Raises:
        ConfigError: the fit data lacks what the method needs (Shift: English passages).
    """
    langs = sorted(set(data.query_langs.tolist()) | set(data.passage_langs.tolist()))
    if method == "center":
        qm = np.stack(
            [
                q_emb[data.query_langs == lg].mean(0) if (data.query_langs == lg).any() else np.zeros(q_emb.shape[1])
                for lg in langs
            ]
        )
        pm = np.stack(
            [
                p_emb[data.passage_langs == lg].mean(0) if (data.passage_langs == lg).any() else np.zeros(p_emb.shape[1])
                for lg in langs
            ]
        )
        return Transform(method, {"query_means": qm.astype(np.float32), "passage_means": pm.astype(np.float32)}, langs)
    if method == "shift":
        src = data.passage_langs == SHIFT_SOURCE
        if not src.any():
            raise ConfigError(f"debias_fit: shift needs {SHIFT_SOURCE} passages in the fit data (its source language)")
        src_of = {g: p_emb[i] for i, g in zip(np.flatnonzero(src), data.passage_groups[src].tolist())}
        vecs = []
        for lg in langs:
            rows = [i for i in np.flatnonzero(data.passage_langs == lg) if data.passage_groups[i] in src_of]
            if lg == SHIFT_SOURCE or not rows:
                vecs.append(np.zeros(p_emb.shape[1]))
                continue
            vecs.append(np.mean([p_emb[i] - src_of[data.passage_groups[i]] for i in rows], axis=0))
        return Transform(method, {"shift_vectors": np.stack(vecs).astype(np.float32)}, langs)
    if method == "leace":
        x = np.concatenate([q_emb, p_emb]).astype(np.float64)
        lab = np.concatenate([data.query_langs, data.passage_langs])
        z = (lab[:, None] == np.asarray(langs)[None, :]).astype(np.float64)
        left, right, bias = leace_eraser(x, z)
        return Transform(method, {"proj_left": left, "proj_right": right, "bias": bias}, langs)
    raise ConfigError(f"debias: unknown remedy {method!r}; choose from {', '.join(METHODS)}")


def leace_eraser(x: np.ndarray, z: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """LEACE's eraser ``x -> x - ((x - bias) @ right.T) @ left.T`` fitted with the ``concept-erasure``
    package (``LeaceEraser.fit``, float64).

    Args:
        x: the representations, one row each.
        z: the concept, one-hot rows.

    Raises:
        ConfigError: the package is not installed (``pip install 'polyret[debias]'``).
    """
    try:
        import torch
        from concept_erasure import LeaceEraser
    except ImportError:
        raise ConfigError("debias: leace needs the concept-erasure package: pip install 'polyret[debias]'") from None
    eraser = LeaceEraser.fit(torch.from_numpy(x), torch.from_numpy(z))
    bias = eraser.bias if eraser.bias is not None else torch.zeros(x.shape[1], dtype=torch.float64)
    return eraser.proj_left.numpy(), eraser.proj_right.numpy(), bias.numpy()


# --------------------------------------------------------------------------------------------- cache
def _digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def cache_file(
    root: Path, fingerprint: str, method: str, fit: str, max_queries: int | None, languages: Sequence[str] | None = None
) -> Path:
    """``<root>/debias/<fingerprint>/<method>__<fit slug>__q<max_queries|all>[__<langs>].npz``.

    Args:
        root: the cache root.
        fingerprint: the model fingerprint.
        method: the remedy.
        fit: the fit benchmark id.
        max_queries: the fit data's size limit.
        languages: the fit data's languages (None: all).
    """
    slug = fit.replace(":", "_").replace("/", "_")
    langs = f"__{'-'.join(sorted(languages))}" if languages else ""
    return Path(root) / "debias" / fingerprint / f"{method}__{slug}__q{max_queries if max_queries else 'all'}{langs}.npz"


def save_transform(tr: Transform, path: Path) -> str:
    """Write ``tr`` to ``path`` (atomic) and its sha256 to ``path.sha256``; returns the checksum."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.savez(fh, header=np.asarray(json.dumps({"format": _FORMAT, "method": tr.method, "langs": tr.langs})), **tr.arrays)
    digest = _digest(path)
    atomic_write_text(path.with_suffix(".npz.sha256"), digest + "\n")
    return digest


def load_transform(path: Path) -> Transform | None:
    """The cached transform at ``path``, or None when absent or when its checksum does not match."""
    check = path.with_suffix(".npz.sha256")
    if not path.is_file() or not check.is_file():
        return None
    digest = _digest(path)
    if check.read_text().strip() != digest:
        logger.warning("%s: checksum mismatch; fitting the remedy again", path)
        return None
    with np.load(path, allow_pickle=False) as z:
        header = json.loads(str(z["header"]))
        if header.get("format") != _FORMAT:
            return None
        arrays = {k: z[k] for k in z.files if k != "header"}
    return Transform(header["method"], arrays, list(header["langs"]), {"sha256": digest})


def fitted_transform(
    model,
    method: str,
    fit_bench: Benchmark,
    *,
    fingerprint: str,
    max_queries: int | None,
    cache_root: Path | None,
    embed_cache=None,
    encode_options: dict | None = None,
    languages: Sequence[str] | None = None,
) -> Transform:
    """The remedy fitted on ``fit_bench`` with ``model``: read from the cache when there (checksum
    verified), else encoded, fitted and cached.

    Args:
        model: the loaded SentenceTransformer.
        method: one of :data:`METHODS`.
        fit_bench: the fit benchmark (already checked disjoint from the evaluated one).
        fingerprint: the model fingerprint (part of the cache key).
        max_queries: the fit data's size limit.
        cache_root: the cache root (None: nothing cached).
        embed_cache: the model's per-text embedding cache (None: none).
        encode_options: ``batch_size``, ``max_tokens``, ``precision`` for :func:`polyret.encode.encode`.
        languages: the evaluated languages: the fit data keeps these (plus Shift's source language);
            None: all of the fit benchmark's.
    """
    from ..encode import encode

    if languages is not None:
        languages = sorted({*languages, SHIFT_SOURCE}) if method == "shift" else sorted(set(languages))
    path = cache_file(cache_root, fingerprint, method, fit_bench.id, max_queries, languages) if cache_root else None
    data = fit_data(fit_bench, max_queries, languages)
    info = {
        "method": method,
        "fit": fit_bench.id,
        "fit_max_queries": max_queries,
        "fit_languages": languages or "all",
        "n_fit_queries": len(data.query_texts),
        "n_fit_passages": len(data.passage_texts),
        **({"source_language": SHIFT_SOURCE} if method == "shift" else {}),
    }
    if path is not None:
        cached = load_transform(path)
        if cached is not None and cached.method == method:
            cached.info = {**info, "cache_file": str(path), "sha256": cached.info["sha256"], "from_cache": True}
            return cached
    opts = encode_options or {}
    q = encode(model, data.query_texts, kind="query", cache=embed_cache, **opts)
    p = encode(model, data.passage_texts, kind="passage", cache=embed_cache, **opts)
    tr = fit_transform(method, q, p, data)
    tr.info = dict(info)
    if path is not None:
        tr.info.update({"cache_file": str(path), "sha256": save_transform(tr, path), "from_cache": False})
    return tr
