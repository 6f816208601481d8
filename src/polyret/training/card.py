"""The final model folder of a training run: saved whole (or not at all), with polyret's model card.

``output_dir/model/`` is the sentence-transformers model plus ``README.md`` (sentence-transformers' card
with polyret's section: strategy, data, languages, steps, loss, best checkpoint), ``polyret_train.json``
(the config and the run's numbers), the rank-0 batch log and ``.complete.json``. It is written into a
temporary sibling and swapped in, so a crash never leaves a half-written model.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path
from typing import Any

from polyret.interop.model_card import training_metadata, write_front_matter
from polyret.interop.mteb_model import mteb_prompts
from polyret.paths import mark_complete, share_mode
from polyret.training.config import TrainConfig

logger = logging.getLogger(__name__)

RUN_CONFIG = "polyret_train.json"
MODEL_DIR = "model"


def _batch_words(config: TrainConfig, info: dict[str, Any]) -> str:
    """A step's batch as ``batch_scope`` counts it: the global batch (and its split over the devices) or per device.

    Args:
        config: the run's config (``batch_scope``, ``batch_size``).
        info: the run's numbers (``global_batch``, ``per_device_batch``, ``world_size``, ``grad_accum_steps``).
    """
    world, accum = info["world_size"], info.get("grad_accum_steps", 1)
    per_device = info.get("per_device_batch", config.batch_size if config.batch_scope == "per_device" else None)
    steps = f" x {accum} accumulation steps" if accum > 1 else ""
    if config.batch_scope == "global":
        total = info.get("global_batch", config.batch_size)
        split = f" ({per_device} per device x {world} device(s){steps})" if per_device and (world > 1 or accum > 1) else ""
        return f"each of {total} pairs in all{split}"
    return f"each of {per_device} pairs per device x {world} device(s){steps}"


def _alpha_words(config: TrainConfig, info: dict[str, Any]) -> str:
    """A hybrid run's nominal alpha, its schedule and the share of monolingual steps it REALLY had.

    Args:
        config: the run's config (``alpha``, ``alpha_schedule``).
        info: the run's numbers (``step_kinds``, ``realized_mono_share`` from the batch log).
    """
    if config.strategy != "hybrid":
        return ""
    schedule = (
        "exactly round(alpha x steps) monolingual steps, in a seeded order"
        if config.alpha_schedule == "balanced"
        else "each step monolingual with probability alpha"
    )
    text = f" (alpha = {config.alpha}, schedule {config.alpha_schedule}: {schedule}"
    share, kinds = info.get("realized_mono_share"), info.get("step_kinds") or {}
    if share is not None:
        text += f"; realized: {kinds.get('mono', 0)} of {sum(kinds.values())} steps monolingual = {share:.2f}"
    return text + ")"


def model_card(config: TrainConfig, info: dict[str, Any]) -> str:
    """polyret's section of the model card (markdown).

    Args:
        config: the run's config.
        info: the run's numbers (languages, groups, steps, loss, best checkpoint...), as in
            ``polyret_train.json``.
    """
    langs = ", ".join(info["languages"])
    lines = [
        "## polyret training",
        "",
        f"- strategy: **{config.strategy}**" + _alpha_words(config, info),
        f"- base model: `{config.model}`",
        f"- training data: {', '.join(f'`{s}`' for s in config.train)}"
        + (f" (max {config.max_groups} groups per source)" if config.max_groups else "")
        + (f" (mMARCO: first {config.max_triples_per_query} triples per query)" if config.max_triples_per_query else ""),
        f"- languages: {langs}",
        f"- parallel groups: {info['train_groups']} train, {info['dev_groups']} held out for dev loss",
        f"- steps: {info['global_step']} optimizer steps, {_batch_words(config, info)}",
        f"- recipe: {config.recipe or 'custom'}; lr {config.lr}, AdamW weight decay {config.weight_decay}, "
        f"warmup ratio {config.warmup_ratio}, temperature {config.temperature}, precision {info['precision']}",
        f"- loss: InfoNCE with in-batch negatives ({info['loss']})"
        + (f", {config.num_negatives} hard negative(s) per pair" if config.num_negatives else ""),
        f"- frozen word embeddings: {'yes' if config.freeze_word_embeddings else 'no'}",
    ]
    if config.dev:
        lines.append(f"- dev benchmark: `{config.dev}`")
    if info.get("best_checkpoint"):
        lines.append(
            f"- best checkpoint: {info['best_checkpoint']} ({info['metric_for_best_model']} = {info['best_metric']:.4f})"
        )
    lines += ["", "Full configuration: `polyret_train.json`; per-step batch kinds: `batches.jsonl`.", ""]
    return "\n".join(lines)


def write_final_model(model, target: Path, config: TrainConfig, info: dict[str, Any], batch_log: Path) -> None:
    """Save into a temporary sibling folder, then swap it in: a crash never leaves a half-written model.

    Args:
        model: the trained sentence-transformers model.
        target: the final model folder (``output_dir/model``).
        config: the run's config (written to ``polyret_train.json`` and the card).
        info: the run's numbers (see :func:`model_card`).
        batch_log: rank 0's batch log, copied in when it exists.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.parent / f".{target.name}.tmp-{os.getpid()}"
    old = target.parent / f".{target.name}.old-{os.getpid()}"
    for leftover in [tmp, old, *target.parent.glob(f".{target.name}.tmp-*"), *target.parent.glob(f".{target.name}.old-*")]:
        if leftover.exists():  # also what a killed earlier run (another pid) left behind
            shutil.rmtree(leftover)
    prompts = model.prompts
    model.prompts = mteb_prompts(prompts)  # saved as "query" / "document" only: the prompt types MTEB knows
    try:
        try:
            model.save(str(tmp), create_model_card=True)
        except Exception as error:  # noqa: BLE001 - the generated card is a nicety; never lose a trained model over it
            logger.warning("sentence-transformers model card failed (%s); writing polyret's card only", error)
            shutil.rmtree(tmp, ignore_errors=True)
            model.save(str(tmp), create_model_card=False)
        card = model_card(config, info)
        readme = tmp / "README.md"
        if readme.exists():
            text = readme.read_text(encoding="utf-8")
            head, sep, body = text.partition("\n---\n") if text.startswith("---") else ("", "", text)
            readme.write_text(f"{head}{sep}\n{card}\n{body}", encoding="utf-8")
        else:
            readme.write_text(f"# polyret model\n\n{card}", encoding="utf-8")
        write_front_matter(tmp, training_metadata(config, info))  # hub metadata: ISO languages, strategy/alpha/data
        (tmp / RUN_CONFIG).write_text(json.dumps({"config": config.to_dict(), **info}, indent=2), encoding="utf-8")
        if batch_log.exists():
            shutil.copyfile(batch_log, tmp / batch_log.name)
        share_mode(tmp)
        mark_complete(tmp, global_step=info.get("global_step"))  # last: the folder is whole
        if target.exists():
            os.replace(target, old)
        os.replace(tmp, target)
    finally:
        model.prompts = prompts
        for leftover in (tmp, old):
            if leftover.exists():
                shutil.rmtree(leftover, ignore_errors=True)


# what a trained model folder's weights are (model_identity hashes the same files): removed by prune_weights
WEIGHT_SUFFIXES = (".safetensors", ".bin")


def weight_files(listed: dict[str, Any]) -> list[str]:
    """The weight files among a completion marker's ``files`` (names relative to the folder), sorted.

    Args:
        listed: a marker's ``files`` mapping.
    """
    return sorted(n for n in listed if n.endswith(WEIGHT_SUFFIXES))


def prune_weights(folder: str | os.PathLike, *, reason: str, model_weights: str | None) -> int:
    """Remove a finished model folder's weight files, keeping its records; returns the bytes freed.

    The completion marker is rewritten FIRST (atomically): it keeps every other file's entry as it was
    (their recorded sizes and sha256, so a later edit is still noticed), its provenance, and records under
    ``weights_pruned`` each removed file's size and sha256, ``model_weights`` (the identity the folder's
    evaluations recorded) and ``reason``. Then the weights are deleted: a kill between the two leaves
    unlisted weight files, which the next call removes. The folder is then no loadable model
    (:func:`polyret.models.resolve` says why); its ``polyret_train.json``, ``batches.jsonl`` and card stay.

    Args:
        folder: a finished model folder (``write_final_model``'s), its marker checked by the caller.
        reason: why, in words (recorded).
        model_weights: the folder's identity before pruning (``polyret.experiment.runner.model_identity``).

    Raises:
        ValueError: the folder has no completion marker, or lists no weight file.
    """
    from polyret.models import WEIGHTS_PRUNED
    from polyret.paths import COMPLETE_MARKER, atomic_write_text, file_sha256, read_marker

    folder = Path(folder)
    marker = read_marker(folder)
    if marker is None:
        raise ValueError(f"{folder}: no completion marker; only a finished model's weights are removed")
    done = marker.get(WEIGHTS_PRUNED)
    if isinstance(done, dict):  # pruned before: remove what a kill after the marker left
        names = sorted(done.get("files") or {})
    else:
        names = weight_files(marker["files"])
        if not names:
            raise ValueError(f"{folder}: its completion marker lists no weight file")
        removed = {}
        for name in names:
            entry = marker["files"][name]
            if isinstance(entry, dict) and isinstance(entry.get("sha256"), str):
                removed[name] = {"size": entry.get("size"), "sha256": entry["sha256"]}
            else:  # an older polyret's marker records sizes only: the identity hashes the file, so here too
                removed[name] = {"size": entry if not isinstance(entry, dict) else entry.get("size"),
                                 "sha256": file_sha256(folder / name)}  # fmt: skip
        kept = {n: e for n, e in marker["files"].items() if n not in removed}
        info = {k: v for k, v in marker.items() if k != "files"}
        info[WEIGHTS_PRUNED] = {
            "files": removed,
            "model_weights": model_weights,
            "bytes": sum(int(e["size"] or 0) for e in removed.values()),
            "reason": reason,
        }
        atomic_write_text(folder / COMPLETE_MARKER, json.dumps({"files": kept, **info}, indent=2, ensure_ascii=False))
    freed = 0
    for name in names:
        path = folder / name
        try:
            size = path.stat().st_size
            path.unlink()
            freed += size
        except FileNotFoundError:
            pass
    return freed
