"""MTEB ``TaskResult`` files from polyret's ``Results``: the layout MTEB's own result cache reads.

Layout (under a results root, e.g. ``<evaluation>/mteb``)::

    results/<model name, "/" -> "__">/<revision>/<Task>.json        one per setting family
    results/<model name, "/" -> "__">/<revision>/model_meta.json

* The model is identified as MTEB identifies models, by name and revision, so a cache holding several
  models never mixes them: the name is :func:`mteb_model_name` (a Hub id as it is; a local folder as
  ``local/<folder name>``, a polyret training output ``<run>/model`` as ``local/<run>``; the builtin
  as ``polyret/builtin-me5-small``, which is NOT intfloat's weights but their 4-bit dequantization), the
  revision the model's fingerprint (its weights, tokenizer and prompts).
* One task per benchmark AND setting family (``Polyret-xquad-r-test-mono``, ``...-cross``, ``...-multi``):
  MTEB's task score is the mean of its entries' ``main_score``, so each leaderboard number means one
  thing (mono, cross or multilingual retrieval), never a mean over the three. One split (the
  benchmark's) and one score entry per setting, ``hf_subset`` naming the query and pool language
  (``de-de`` monolingual, ``de-en`` cross-lingual, ``de-all`` the multilingual pool), ``languages`` in
  MTEB's ``xxx-Scrp`` codes.
* Measure names follow MTEB's retrieval evaluator (``ndcg_at_10``, ``map_at_20``, ``recall_at_100``,
  ``precision_at_5``, ``mrr_at_10``, ``hit_rate_at_k``); ``main_score`` is ``ndcg_at_10``, MTEB's main
  score for retrieval. What MTEB has no name for goes under ``polyret_`` keys: full (no-cutoff)
  ``polyret_map``, ``polyret_ndcg``, ``polyret_mrr``, measures computed by ir_measures
  (``polyret_judged_at_10``), the number of queries, and in multilingual entries the language-bias
  measures (``polyret_max_rank_distance``, ``polyret_same_language_rate``, ``polyret_same_language_chance``,
  and those of ``polyret.evaluation.bias_measures``: ``polyret_peer``, ``polyret_max_at_r``, ``polyret_lpr``,
  ``polyret_lpr_chance``, ``polyret_lang_ndcg``, ``polyret_mrc``). Scores are fractions, as MTEB's.
* ``mteb_version`` is the installed mteb's version (the files follow mteb 2's TaskResult format;
  :data:`MTEB_VERSION_WRITTEN` when mteb is not installed).

No import of ``mteb`` here beyond its version: the files are plain JSON that mteb validates on load
(tests read them back with the ``mteb`` package itself).
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

from ..paths import atomic_write_text

__all__ = [
    "MTEB_LANGUAGES",
    "MTEB_RESULTS_DIR",
    "installed_mteb_version",
    "model_path_name",
    "mteb_measure_name",
    "mteb_model_name",
    "mteb_task_name",
    "task_result",
    "task_results",
    "write_mteb_results",
]

MTEB_RESULTS_DIR = "mteb"  # inside an evaluation's output folder
MAIN_SCORE = "ndcg_at_10"  # MTEB's main score for retrieval tasks
NO_REVISION = "no_revision_available"  # what MTEB writes when a model has no revision
MTEB_VERSION_WRITTEN = "2.0.0"  # the TaskResult format these files follow (mteb >= 2), when mteb is not installed
BUILTIN_MTEB_NAMES = {"builtin:me5-small": "polyret/builtin-me5-small"}  # not the Hub weights: a 4-bit dequantization

# ISO 639-1 (polyret's codes) -> MTEB's ISO 639-3 + ISO 15924 script, for every language polyret's
# benchmarks hold (LAReQA XQuAD-R / MLQA-R, MIRACL, mMARCO).
MTEB_LANGUAGES: dict[str, str] = {
    "ar": "ara-Arab", "bn": "ben-Beng", "de": "deu-Latn", "el": "ell-Grek", "en": "eng-Latn", "es": "spa-Latn",
    "fa": "fas-Arab", "fi": "fin-Latn", "fr": "fra-Latn", "hi": "hin-Deva", "id": "ind-Latn", "it": "ita-Latn",
    "ja": "jpn-Jpan", "ko": "kor-Hang", "nl": "nld-Latn", "pt": "por-Latn", "ru": "rus-Cyrl", "sw": "swa-Latn",
    "te": "tel-Telu", "th": "tha-Thai", "tr": "tur-Latn", "vi": "vie-Latn", "yo": "yor-Latn", "zh": "zho-Hans",
}  # fmt: skip

_KIND_NAMES = {"map": "map_at", "ndcg": "ndcg_at", "recall": "recall_at", "p": "precision_at", "mrr": "mrr_at",
               "success": "hit_rate_at"}  # fmt: skip
_BIAS_KEYS = ("max_rank_distance", "same_language_rate", "same_language_chance")


def mteb_measure_name(measure: str) -> str:
    """polyret's measure name -> MTEB's (``ndcg@10`` -> ``ndcg_at_10``); no-cutoff ones -> ``polyret_<name>``.

    Args:
        measure: a polyret measure name (``polyret.evaluation.metrics.parse_measure`` spellings).
    """
    from .metrics import parse_measure

    m = parse_measure(measure)
    if m.kind == "ir":  # a measure ir_measures computes: Judged@10 -> polyret_judged_at_10
        base = re.sub(r"[^a-z0-9]+", "_", m.name.split("@")[0].lower()).strip("_")
        return f"polyret_{base}" + (f"_at_{m.cutoff}" if m.cutoff is not None else "")
    if m.cutoff is None:
        return f"polyret_{m.kind}"
    return f"{_KIND_NAMES[m.kind]}_{m.cutoff}"


def mteb_task_name(benchmark: str, family: str | None = None) -> str:
    """The task name (and file stem) of a polyret benchmark id and setting family:
    ``xquad-r:test`` -> ``Polyret-xquad-r-test``; with ``family="mono"`` -> ``Polyret-xquad-r-test-mono``.

    Args:
        benchmark: the benchmark id.
        family: the setting family (``mono``, ``cross``, ``multi``), or None for the benchmark alone.
    """
    name = "Polyret-" + re.sub(r"[^A-Za-z0-9]+", "-", benchmark).strip("-")
    return f"{name}-{family}" if family else name


def mteb_model_name(model: str) -> str:
    """The ``organization/name`` MTEB identifies a model by (it requires the slash; module docstring).

    Args:
        model: the model spec as results record it: a Hub id, a local folder, ``builtin:...``.
    """
    text = str(model).strip().rstrip("/\\")
    if text in BUILTIN_MTEB_NAMES:
        return BUILTIN_MTEB_NAMES[text]
    if text.startswith("builtin:"):
        return "polyret/builtin-" + re.sub(r"[^A-Za-z0-9._-]+", "-", text.partition(":")[2])
    path = Path(text)
    is_local = path.is_absolute() or text.startswith((".", "~")) or path.exists() or text.count("/") != 1
    if not is_local:
        return text  # a Hub id: org/name
    name = path.name or "model"
    if name == "model" and (path / "polyret_train.json").exists() and path.parent.name:
        name = path.parent.name  # a polyret training output <run>/model: the run's name
    return "local/" + re.sub(r"\s+", "_", name)


def installed_mteb_version() -> str:
    """The installed mteb's version (what ``mteb_version`` records), else :data:`MTEB_VERSION_WRITTEN`."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("mteb")
    except PackageNotFoundError:
        return MTEB_VERSION_WRITTEN


def _split(benchmark: str) -> str:
    _, sep, split = benchmark.partition(":")
    return split if sep and split else "test"


def _language(code: str) -> str:
    return MTEB_LANGUAGES.get(code, code)


def _subset(name: str) -> tuple[str, list[str], str, str]:
    """Setting name -> (hf_subset, [query lang, pool lang] codes, family, query lang)."""
    from .settings import split_setting

    family, query, pool = split_setting(name)
    return f"{query}-{pool}", [query, pool], family, query


def task_results(results: Any, *, evaluation_time: float | None = None) -> dict[str, dict[str, Any]]:
    """The MTEB ``TaskResult`` dicts of one polyret evaluation, one per setting family (module docstring).

    Args:
        results: a ``polyret.evaluation.Results``.
        evaluation_time: seconds (None: ``results.timing["total_s"]`` when known).

    Returns:
        family -> a JSON-ready dict that ``mteb.TaskResult.from_dict`` validates.
    """
    names = {m: mteb_measure_name(m) for m in results.measures}
    entries: dict[str, list[dict[str, Any]]] = {}
    langs_all = list(results.languages)
    bias_langs = (results.bias or {}).get("per_language", {})
    for setting, vals in results.per_setting.items():
        subset, (q, p), family, query = _subset(setting)
        pool_langs = langs_all if family == "multi" else [p]
        entry: dict[str, Any] = {
            "hf_subset": subset,
            "languages": list(dict.fromkeys(_language(x) for x in [q, *pool_langs])),
        }
        for m, key in names.items():
            if m in vals and vals[m] is not None and math.isfinite(float(vals[m])):
                entry[key] = float(vals[m])
        entry["main_score"] = entry.get(MAIN_SCORE, entry.get(names[results.measures[0]]) if results.measures else None)
        entry["polyret_setting"] = setting
        entry["polyret_n_queries"] = int(vals.get("n_queries", 0))
        if MAIN_SCORE not in entry:
            entry["polyret_main_score_measure"] = results.measures[0]
        if family == "multi":
            extra = [k for k in bias_langs.get(query, {}) if k not in _BIAS_KEYS]  # bias_measures' (peer, mrc ...)
            for key in [*_BIAS_KEYS, *extra]:
                v = bias_langs.get(query, {}).get(key)
                if isinstance(v, (int, float)) and math.isfinite(float(v)):
                    entry[f"polyret_{key}"] = float(v)
        entries.setdefault(family, []).append(entry)
    if evaluation_time is None:
        evaluation_time = (results.timing or {}).get("total_s")
    revision = results.extra.get("dataset_revision", NO_REVISION) if results.extra else NO_REVISION
    return {
        family: {
            "dataset_revision": revision,
            "task_name": mteb_task_name(results.benchmark, family),
            "mteb_version": installed_mteb_version(),
            "scores": {_split(results.benchmark): rows},
            "evaluation_time": evaluation_time,
            "kg_co2_emissions": None,
        }
        for family, rows in entries.items()
    }


def task_result(results: Any, family: str, *, evaluation_time: float | None = None) -> dict[str, Any]:
    """The MTEB ``TaskResult`` dict of one setting family of an evaluation (see :func:`task_results`).

    Args:
        results: a ``polyret.evaluation.Results``.
        family: ``mono``, ``cross`` or ``multi``.
        evaluation_time: seconds (None: ``results.timing["total_s"]`` when known).

    Raises:
        KeyError: the evaluation has no setting of that family.
    """
    return task_results(results, evaluation_time=evaluation_time)[family]


def _model_meta(results: Any, revision: str) -> dict[str, Any]:
    """A ``model_meta.json`` that MTEB's result cache reads (name and revision identify the model)."""
    return {
        "name": mteb_model_name(results.model or "model"),
        "revision": revision,
        "release_date": None,
        "languages": [_language(x) for x in results.languages],
        "n_parameters": None,
        "memory_usage_mb": None,
        "max_tokens": None,
        "embed_dim": None,
        "license": None,
        "open_weights": None,
        "public_training_code": None,
        "public_training_data": None,
        "framework": ["Sentence Transformers"],
        "reference": None,
        "similarity_fn_name": "cosine",
        "use_instructions": None,
        "training_datasets": None,
        "modalities": ["text"],
        "loader": None,
    }


def model_path_name(model: str) -> str:
    """A model's folder in MTEB's cache: its :func:`mteb_model_name` with ``/`` -> ``__`` (MTEB's rule).

    Args:
        model: the model spec or name.
    """
    return mteb_model_name(model).replace("/", "__").replace(" ", "_")


def write_mteb_results(results: Any, root: str | Path) -> dict[str, Path]:
    """Write ``results`` as MTEB result-cache files under ``root`` (atomically, file by file).

    The revision folder is the model fingerprint (MTEB's "revision" of a model that is not on the Hub),
    else ``no_revision_available``.

    Args:
        results: a ``polyret.evaluation.Results``.
        root: the results root (``mteb.ResultCache(root)`` reads ``root/results/...``).

    Returns:
        ``{"mteb_task_<family>": <Task>.json path per family, "mteb_model_meta": model_meta.json path}``.
    """
    revision = results.fingerprint or NO_REVISION
    folder = Path(root) / "results" / model_path_name(results.model or "model") / revision
    folder.mkdir(parents=True, exist_ok=True)
    written: dict[str, Path] = {}
    for family, data in task_results(results).items():
        written[f"mteb_task_{family}"] = folder / f"{data['task_name']}.json"
        atomic_write_text(written[f"mteb_task_{family}"], json.dumps(data, indent=2, ensure_ascii=False))
    written["mteb_model_meta"] = folder / "model_meta.json"
    atomic_write_text(written["mteb_model_meta"], json.dumps(_model_meta(results, revision), indent=2, ensure_ascii=False))
    return written
