"""MTEB ``TaskResult`` files from polyret's ``Results``: the layout MTEB's own result cache reads.

Layout (under a results root, e.g. ``<evaluation>/mteb``)::

    results/<model name, "/" -> "__">/<revision>/<Task>.json
    results/<model name, "/" -> "__">/<revision>/model_meta.json

``mteb.ResultCache(root).load_results(...)`` and ``mteb.TaskResult.from_disk(file)`` read them. One
task per benchmark (``Polyret-xquad-r-test``: polyret's pooled settings are not an MTEB task), one split
(the benchmark's), and one score entry per setting, ``hf_subset`` naming the query and pool language
(``de-de`` monolingual, ``de-en`` cross-lingual, ``de-all`` the multilingual pool), ``languages`` in
MTEB's ``xxx-Scrp`` codes. Measure names follow MTEB's retrieval evaluator (``ndcg_at_10``,
``map_at_20``, ``recall_at_100``, ``precision_at_5``, ``mrr_at_10``, ``hit_rate_at_k``); ``main_score``
is ``ndcg_at_10``, MTEB's main score for retrieval. What MTEB has no name for goes under ``polyret_``
keys: full (no-cutoff) ``polyret_map``, ``polyret_ndcg``, ``polyret_mrr``, the number of queries, and in
multilingual entries the language-bias measures (``polyret_max_rank_distance``,
``polyret_same_language_rate``, ``polyret_same_language_chance``, and those of
``polyret.evaluation.bias_measures``: ``polyret_peer``, ``polyret_max_at_r``, ``polyret_lpr``,
``polyret_lpr_chance``, ``polyret_lang_ndcg``, ``polyret_mrc``). Scores are fractions, as MTEB's.

No import of ``mteb`` here: the files are plain JSON that mteb validates on load (tests read them back
with the ``mteb`` package itself).
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

from ..paths import atomic_write_text

__all__ = ["MTEB_LANGUAGES", "MTEB_RESULTS_DIR", "mteb_measure_name", "mteb_task_name", "task_result", "write_mteb_results"]

MTEB_RESULTS_DIR = "mteb"  # inside an evaluation's output folder
MAIN_SCORE = "ndcg_at_10"  # MTEB's main score for retrieval tasks
NO_REVISION = "no_revision_available"  # what MTEB writes when a model has no revision
MTEB_VERSION_WRITTEN = "2.0.0"  # the TaskResult format these files follow (mteb >= 2)

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
    from ..evaluation.metrics import parse_measure

    m = parse_measure(measure)
    if m.cutoff is None:
        return f"polyret_{m.kind}"
    return f"{_KIND_NAMES[m.kind]}_{m.cutoff}"


def mteb_task_name(benchmark: str) -> str:
    """The task name (and file stem) of a polyret benchmark id: ``xquad-r:test`` -> ``Polyret-xquad-r-test``.

    Args:
        benchmark: the benchmark id.
    """
    return "Polyret-" + re.sub(r"[^A-Za-z0-9]+", "-", benchmark).strip("-")


def _split(benchmark: str) -> str:
    _, sep, split = benchmark.partition(":")
    return split if sep and split else "test"


def _language(code: str) -> str:
    return MTEB_LANGUAGES.get(code, code)


def _subset(name: str) -> tuple[str, list[str], str, str]:
    """Setting name -> (hf_subset, [query lang, pool lang] codes, family, query lang)."""
    from ..evaluation.settings import split_setting

    family, query, pool = split_setting(name)
    return f"{query}-{pool}", [query, pool], family, query


def task_result(results: Any, *, evaluation_time: float | None = None) -> dict[str, Any]:
    """The MTEB ``TaskResult`` dict of one polyret evaluation (see the module docstring).

    Args:
        results: a ``polyret.evaluation.Results``.
        evaluation_time: seconds (None: ``results.timing["total_s"]`` when known).

    Returns:
        A JSON-ready dict that ``mteb.TaskResult.from_dict`` validates.
    """
    names = {m: mteb_measure_name(m) for m in results.measures}
    entries = []
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
        entries.append(entry)
    if evaluation_time is None:
        evaluation_time = (results.timing or {}).get("total_s")
    return {
        "dataset_revision": results.extra.get("dataset_revision", NO_REVISION) if results.extra else NO_REVISION,
        "task_name": mteb_task_name(results.benchmark),
        "mteb_version": MTEB_VERSION_WRITTEN,
        "scores": {_split(results.benchmark): entries},
        "evaluation_time": evaluation_time,
        "kg_co2_emissions": None,
    }


def _model_meta(results: Any, revision: str) -> dict[str, Any]:
    """A ``model_meta.json`` that MTEB's result cache reads (name and revision identify the model)."""
    return {
        "name": results.model,
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
    """A model name as MTEB's cache names its folder (``org/name`` -> ``org__name``; a local path: its folder).

    Args:
        model: the model spec or name.
    """
    text = model.rstrip("/\\")
    if Path(text).is_absolute() or text.startswith((".", "~")):
        text = Path(text).name or "model"
    return text.replace("/", "__").replace(" ", "_").replace(":", "-")


def write_mteb_results(results: Any, root: str | Path) -> dict[str, Path]:
    """Write ``results`` as MTEB result-cache files under ``root`` (atomically, file by file).

    The revision folder is the model fingerprint (MTEB's "revision" of a model that is not on the Hub),
    else ``no_revision_available``.

    Args:
        results: a ``polyret.evaluation.Results``.
        root: the results root (``mteb.ResultCache(root)`` reads ``root/results/...``).

    Returns:
        ``{"mteb_task": <Task>.json path, "mteb_model_meta": model_meta.json path}``.
    """
    revision = results.fingerprint or NO_REVISION
    folder = Path(root) / "results" / model_path_name(results.model or "model") / revision
    folder.mkdir(parents=True, exist_ok=True)
    data = task_result(results)
    task_file = folder / f"{data['task_name']}.json"
    meta_file = folder / "model_meta.json"
    atomic_write_text(task_file, json.dumps(data, indent=2, ensure_ascii=False))
    atomic_write_text(meta_file, json.dumps(_model_meta(results, revision), indent=2, ensure_ascii=False))
    return {"mteb_task": task_file, "mteb_model_meta": meta_file}
