"""``run_experiment``: train each strategy, evaluate base and trained models everywhere, report.

Only a loop over the data flow (DESIGN.md). Every step leaves a completion marker that is written last
(a trained model folder with ``polyret_train.json``, an evaluation folder with ``.complete.json``), so
running the same command again skips finished work and resumes an interrupted training run from its
last checkpoint. Every path comes from ``layout``.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .. import interrupts
from ..data.download import sources_identity
from ..evaluation.results import not_done_reason
from ..paths import COMPLETE_MARKER, atomic_write_text, claim_output, file_sha256, incomplete_reason, output_lock, read_marker
from ..training.config import upgrade_keys
from ..vocabulary import BASELINE
from . import layout
from .config import EXTENDABLE, ExperimentConfig, System

logger = logging.getLogger(__name__)


def _progress(msg: str, echo: Callable[[str], None] | None) -> None:
    interrupts.check()  # an interrupt swallowed on the way (in a finalizer) stops the run before the next step
    logger.info(msg)
    if echo is not None:
        echo(msg)


def experiment_precision(config: ExperimentConfig):
    """The precision the experiment's evaluations run in: its trainings' (``train_overrides`` ``precision``,
    ``auto`` by default, so ``--set precision=fp32`` makes the whole experiment fp32), resolved for this
    machine (:func:`polyret.precision.resolve`: the one meaning of ``auto``), as its trainings resolve it.

    Args:
        config: the experiment.

    Raises:
        ValueError: a precision its trainings cannot run in here (fp16 without CUDA), before any work.
    """
    from ..precision import resolve

    return resolve(config.base_train_config().precision, training=True)


def evaluation_precision(config: ExperimentConfig):
    """The precision the experiment's evaluations run in: ``eval_overrides`` ``precision`` resolved for this
    machine when it names one, else the trainings' (:func:`experiment_precision`).

    Args:
        config: the experiment.
    """
    if "precision" not in config.eval_overrides:
        return experiment_precision(config)
    from ..precision import resolve

    return resolve(config.eval_overrides["precision"])


def evaluation_options(config: ExperimentConfig) -> dict[str, Any]:
    """The ``eval_overrides`` every evaluation gets (JSON shapes, as an evaluation records its config), the
    precision aside: that is :func:`evaluation_precision`'s, resolved."""
    from ..configs import thaw

    return {key: thaw(value) for key, value in config.eval_overrides.items() if key != "precision"}


def run_experiment(
    config: ExperimentConfig, *, echo: Callable[[str], None] | None = None, progress: bool = True
) -> dict[str, Any]:
    """Run (or continue) the experiment; returns paths of the report files and what was (re)done.

    Args:
        config: what to train and evaluate (validated again here, then the inputs are checked on disk).
        echo: called with one line per step (training, evaluating, writing the report), rank 0 only.
        progress: show the evaluations' progress bars.

    Returns:
        ``{"report": build_report's files, "done": {"trained", "evaluated", "reused", "pruned"}: labels
        (pruned: trained models whose weights were removed once evaluated, ``keep_models`` false),
        "seconds": float, "output": Path, "rank": int}``.

    Raises:
        ValueError (or a subclass) naming the key, file or folder at fault, before any work is done;
        ``FolderBusy`` when another process writes the same folder (the message names it).
    """
    from contextlib import nullcontext

    # everything is checked before the folder or experiment.json is written: a typo fixed in the next
    # run is then not "a different configuration"
    config.validate()
    config.check_inputs()
    out = Path(config.output)
    # one writer per experiment folder: a second experiment on it stops now, naming this one (rank 0
    # holds the lock for the whole run; the other ranks of a torchrun job share it)
    with output_lock(out, "polyret experiment") if _launch_rank()[0] == 0 else nullcontext():
        # an experiment folder has no marker of its own: one that has is another verb's finished output
        claim_output(out, {"kind": "experiment"})
        return _run(config, echo, progress)


def _run(config: ExperimentConfig, echo: Callable[[str], None] | None, progress: bool) -> dict[str, Any]:
    """The body of :func:`run_experiment`, its folder locked."""
    from ..evaluation import evaluate
    from ..models import load
    from ..report import build_report, load_entries
    from ..training import train
    from ..training.checkpoints import last_checkpoint

    precision = experiment_precision(config)  # resolved (never "auto"): recorded in experiment.json
    record = {**config.to_dict(), "precision": precision.precision}
    eval_precision = evaluation_precision(config)  # the trainings' unless eval_overrides names one
    eval_options = evaluation_options(config)  # eval_overrides: every evaluation's, and what a reuse must match
    out = Path(config.output)
    saved = layout.config_path(out)
    if saved.exists():
        try:
            previous = json.loads(saved.read_text(encoding="utf-8"))
            if not isinstance(previous, dict):
                raise ValueError("not a JSON object")
        except ValueError as exc:
            raise ValueError(
                f"{saved}: unreadable experiment record ({exc}); delete it to start this folder afresh, or use another --output"
            ) from None
        if isinstance(previous.get("train_overrides"), dict):  # written by an older polyret: its keys renamed
            previous["train_overrides"] = upgrade_keys(previous["train_overrides"], complete=False)
        previous.setdefault("precision", "fp32")  # an older polyret evaluated in fp32 whatever the machine
        current = json.loads(json.dumps(record))
        defaults = json.loads(json.dumps(ExperimentConfig().to_dict()))
        changed = sorted(
            k
            for k in set(previous) | set(current)
            if k not in EXTENDABLE
            and previous.get(k) != current.get(k)
            # a key an older polyret did not write, left at its default, changes nothing
            and not (k not in previous and current.get(k) == defaults.get(k))
        )
        if changed:
            hint = ""
            if "precision" in changed:
                hint = (f" Its results are {previous['precision']}, this run's would be {precision.describe()}: "
                        f"--set precision={previous['precision']} continues it in {previous['precision']}.")  # fmt: skip
            raise ValueError(
                f"{out} holds an experiment with a different configuration ({saved}: {', '.join(changed)} "
                "differ); use another --output or delete that folder. More seeds, strategies, alphas or "
                "benchmarks may be added to it." + hint
            )
    rank, world_size = _launch_rank()
    out.mkdir(parents=True, exist_ok=True)
    if rank == 0:
        atomic_write_text(saved, json.dumps(record, indent=2))
    _progress(f"precision: {precision.describe()}", echo if rank == 0 else None)
    if eval_precision != precision:
        _progress(f"evaluation precision: {eval_precision.describe()}", echo if rank == 0 else None)

    done: dict[str, list[str]] = {"trained": [], "evaluated": [], "reused": [], "pruned": []}
    started = time.perf_counter()

    def eval_expect(
        target: Path, bench: str, model_spec: str, model_dir: Path | None, remedy: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """What a reusable evaluation in ``target`` must record (its provenance): model, benchmark,
        languages, length, the resolved precision and the remedy (if any)."""
        langs = config.eval_languages.get(bench) or config.languages
        expect: dict[str, Any] = {
            "model": model_spec,
            "benchmark": bench,
            "languages": list(langs) if langs else None,
            "max_seq_length": config.eval_max_seq_length,
            "precision": eval_precision.precision,
            **eval_options,
            **(remedy or {}),
        }
        if model_dir is not None:  # a trained model: the very weights it was evaluated from
            expect["model_weights"] = model_identity(model_dir)
        elif Path(model_spec).expanduser().is_dir():  # a local base model: its weights, not its path
            expect["model_weights"] = folder_weights_identity(Path(model_spec).expanduser())
        data = sources_identity([bench], languages=langs, data_dir=config.data_dir)
        if data:  # the benchmark's files by content: an edited copy is evaluated again
            expect["data"] = data
        return expect

    def eval_reuse(target: Path, expect: dict[str, Any]) -> str | None:
        """None when ``target`` is a finished, consistent evaluation of what ``expect`` says, else why not."""
        why = not_done_reason(target)  # marker with sha256 of every file, results.json against per_query
        if why is not None:
            return why
        marker = read_marker(target) or {}
        recorded = marker.get("config") or {}
        # a trained model is known by its weights' sha256, not by its path: a moved experiment folder
        # keeps its evaluations
        keys = [k for k in expect if k not in ("model_weights", "data") and not (k == "model" and "model_weights" in expect)]
        for key in keys:
            if recorded.get(key) != expect[key]:
                return f"{target}: evaluated with {key} {recorded.get(key)!r}, this experiment wants {expect[key]!r}"
        # (an older polyret's evaluation records no weights: its marker and the config decide)
        if "model_weights" in expect and marker.get("model_weights", expect["model_weights"]) != expect["model_weights"]:
            return f"{target}: evaluated other weights of the model (the model changed since)"
        if "data" in expect and marker.get("data", expect["data"]) != expect["data"]:
            changed = sorted(k for k in expect["data"] if (marker.get("data") or {}).get(k) != expect["data"][k])
            return f"{target}: evaluated other data ({', '.join(changed) or 'other files'} changed since)"
        return None

    def eval_into(model_obj_or_path, target: Path, bench: str, label: str, expect: dict[str, Any]) -> None:
        """Evaluate into ``target`` unless it holds a finished evaluation of exactly ``expect``."""
        why = eval_reuse(target, expect)
        if _agreed(why is None):  # a matching finished evaluation; anything else is redone
            done["reused"].append(f"eval {label} {bench}")
            return
        if (target / COMPLETE_MARKER).exists() or (target / "results.json").exists():
            logger.warning("redoing the evaluation of %s on %s: %s", label, bench, why)
        _progress(f"evaluating {label} on {bench}", echo)
        evaluate(
            model_obj_or_path,
            bench,
            output=target,
            progress=progress,
            languages=expect["languages"],
            data_dir=config.data_dir,
            batch_size=config.eval_batch_size,
            max_seq_length=config.eval_max_seq_length,
            precision=eval_precision.precision,
            **eval_options,
            **{k: expect[k] for k in REMEDY_KEYS if k in expect},
            overwrite=True,  # the experiment owns its evaluation folders and decided this one is not reusable
            provenance={k: expect[k] for k in ("model_weights", "data") if k in expect} or None,
        )
        done["evaluated"].append(f"{label} {bench}")

    def remedy_of(name: str) -> dict[str, Any]:
        """The evaluation options of the remedy system ``name`` (``<system>+<method>``)."""
        method = next(m for n, _, m in config.remedy_systems() if n == name)
        return {"debias": method, "debias_fit": config.remedy_fit, "debias_fit_max_queries": config.remedy_fit_max_queries}

    def remedy_evals(model_obj_or_path, system: str, seed: int | None, model_dir: Path | None) -> None:
        """The remedies applied to ``system``'s embeddings (polyret.evaluation.debias): systems of their own."""
        spec = config.model if model_dir is None else str(model_dir)
        for name, target_system, _ in config.remedy_systems():
            if target_system != system:
                continue
            for bench in config.benchmarks:
                label = name if seed is None else f"{name} seed {seed}"
                target = layout.eval_dir(out, name, seed, bench)
                eval_into(model_obj_or_path, target, bench, label, eval_expect(target, bench, spec, model_dir, remedy_of(name)))

    if rank != 0:
        echo = None  # rank 0 speaks for the run

    def base_evals() -> None:
        """The base model, loaded once for all benchmarks."""
        base_targets = {b: layout.eval_dir(out, BASELINE, None, b) for b in config.benchmarks}
        remedy_targets = {
            (name, b): layout.eval_dir(out, name, None, b)
            for name, system, method in config.remedy_systems()
            if system == BASELINE
            for b in config.benchmarks
        }
        expects = {b: eval_expect(t, b, config.model, None) for b, t in base_targets.items()}
        remedy_expects = {key: eval_expect(t, key[1], config.model, None, remedy_of(key[0])) for key, t in remedy_targets.items()}
        stale = [eval_reuse(t, expects[b]) for b, t in base_targets.items()]
        stale += [eval_reuse(t, remedy_expects[key]) for key, t in remedy_targets.items()]
        if _agreed(any(why is not None for why in stale)):
            prompts = {k: eval_options.get(k) for k in ("device", "query_prompt", "passage_prompt")}
            base = load(config.model, max_seq_length=config.eval_max_seq_length, **prompts)
            base.polyret_spec = config.model
            for bench, target in base_targets.items():
                eval_into(base, target, bench, BASELINE, expects[bench])
            remedy_evals(base, BASELINE, None, None)
            del base
        else:
            done["reused"] += [f"eval {BASELINE} {b}" for b in config.benchmarks]

    def model_evals(system: System, seed: int, final: Path) -> list[tuple[Path, dict[str, Any]]]:
        """(folder, expected provenance) of every evaluation of a trained model: each benchmark, and each
        remedy applied to it (as ``system_evals`` and ``remedy_evals`` run them)."""
        spec = str(final)
        found = []
        for bench in config.benchmarks:
            target = layout.eval_dir(out, system.name, seed, bench)
            found.append((target, eval_expect(target, bench, spec, final)))
        for name, target_system, _ in config.remedy_systems():
            if target_system == system.name:
                for bench in config.benchmarks:
                    target = layout.eval_dir(out, name, seed, bench)
                    found.append((target, eval_expect(target, bench, spec, final, remedy_of(name))))
        return found

    def weights_needed(system: System, seed: int, final: Path) -> str | None:
        """Why a trained model whose weights were removed (keep_models false) must be trained again; None
        when nothing needs them: every evaluation of it is finished and records exactly those weights."""
        if config.keep_models:
            return f"{final}: its weights were removed once an earlier run had evaluated it, and keep_models is now true"
        for target, expect in model_evals(system, seed, final):
            why = eval_reuse(target, expect)
            if why is not None:
                return f"its weights were removed once evaluated, and an evaluation needs them ({why})"
        return None

    def prune(system: System, seed: int, final: Path) -> None:
        """keep_models false: remove a trained model's weights once every evaluation of it is finished (its
        records stay; a rerun reuses the evaluations by the weights' sha256, kept in its marker)."""
        from ..models import weights_pruned
        from ..training.card import prune_weights

        if config.keep_models or rank != 0 or not final.is_dir():
            return
        if weights_pruned(final) is not None:  # removed before: only what a kill mid-way left
            prune_weights(final, reason="", model_weights=None)
            return
        identity = model_identity(final)
        if identity is None:  # no completion marker listing its weights: nothing could match them later
            logger.warning("keeping the weights of %s seed %s: %s lists no weights", system.name, seed, final)
            return
        for target, expect in model_evals(system, seed, final):
            why = eval_reuse(target, expect)
            if why is not None:  # cannot happen after system_evals; never remove what an evaluation needs
                logger.warning("keeping the weights of %s seed %s: %s", system.name, seed, why)
                return
        freed = prune_weights(
            final,
            reason="keep_models false: every evaluation of this model was finished (--keep-models keeps the weights)",
            model_weights=identity,
        )
        done["pruned"].append(f"{system.name} seed {seed}")
        logger.info("removed the weights of %s seed %s (%.0f MB): its evaluations are finished", system.name, seed, freed / 1e6)

    def train_one(system: System, seed: int) -> Path:
        """Train (or resume, or reuse) one system; returns its final model folder."""
        from ..models import weights_pruned

        label = f"{system.name} seed {seed}"
        run_dir = layout.model_dir(out, system.name, seed)
        final = layout.final_model_dir(run_dir)
        tcfg = base_train.replace(strategy=system.strategy, alpha=system.alpha, seed=seed, output_dir=str(run_dir))
        why = _model_mismatch(final, tcfg)  # reuse by provenance: its own marker and its recorded config
        data = sources_identity(tcfg.train, languages=tcfg.languages, data_dir=tcfg.data_dir)
        if Path(tcfg.model).expanduser().is_dir():  # the base model it starts from, by content
            data[f"model {tcfg.model}"] = folder_weights_identity(Path(tcfg.model).expanduser())
        other_data = _data_mismatch(run_dir, data)  # and the training data's content
        pruned = why is None and other_data is None and weights_pruned(final) is not None
        if pruned:  # the right model, its weights removed once evaluated: reused while nothing needs them
            why = weights_needed(system, seed, final)
        if why is None and other_data is None:
            done["reused"].append(f"train {label}")
            return final
        if rank == 0 and (final.exists() or run_dir.exists()):
            # the run folder's config.json and data record: what its checkpoints are of
            started = other_data or _run_mismatch(run_dir, tcfg)
            if final.exists() or started is not None:
                logger.warning("retraining %s: %s", label, started or why)
                # what was evaluated of the old model goes first: a crash after this never pairs them again.
                # The same training of a pruned model: an evaluation recording the weights it was made from
                # stays, reused only if the retrained weights are byte-identical (their sha256 decides)
                for bench in config.benchmarks:
                    target = layout.eval_dir(out, system.name, seed, bench)
                    if not (pruned and started is None and (read_marker(target) or {}).get("model_weights")):
                        shutil.rmtree(target, ignore_errors=True)
                shutil.rmtree(run_dir if started is not None else final, ignore_errors=True)
        if rank == 0 and data:  # what the checkpoints and the model of this folder are trained on
            run_dir.mkdir(parents=True, exist_ok=True)
            atomic_write_text(run_dir / DATA_RECORD, json.dumps({"sha256": data}, indent=2, sort_keys=True))
        resume = last_checkpoint(run_dir) is not None
        _progress(f"training {label}" + (" (resuming)" if resume else ""), echo)
        train(tcfg.replace(resume=resume))
        done["trained"].append(label)
        return final

    def system_evals(system: System, seed: int, final: Path) -> None:
        for bench in config.benchmarks:
            target = layout.eval_dir(out, system.name, seed, bench)
            eval_into(str(final), target, bench, f"{system.name} seed {seed}", eval_expect(target, bench, str(final), final))
        remedy_evals(str(final), system.name, seed, final)

    base_train = config.base_train_config()
    runs = [(system, seed) for system in config.systems() for seed in config.seed_values()]
    if world_size == 1:
        # base first, then each system x seed trained and evaluated at once: early results
        base_evals()
        for system, seed in runs:
            final = train_one(system, seed)
            system_evals(system, seed, final)
            prune(system, seed, final)  # keep_models false: one model's weights on disk at a time
    else:
        # under torchrun every process trains every system together (DDP), then every process
        # evaluates together: each rank encodes its shard, rank 0 searches and writes, the others
        # wait at a barrier without the default group's timeout (``evaluate``); then rank 0 reports
        from .. import distributed

        finals = [train_one(system, seed) for system, seed in runs]
        distributed.init_from_env()  # a run that reused every model trained nothing: no group yet
        base_evals()
        for (system, seed), final in zip(runs, finals):
            system_evals(system, seed, final)
        for (system, seed), final in zip(runs, finals):
            prune(system, seed, final)  # rank 0, once every rank is past its evaluations
        if rank != 0:
            return {"report": {}, "done": done, "seconds": time.perf_counter() - started, "output": out, "rank": rank}

    # 3. the report
    _progress("writing the report", echo)
    wanted = {(BASELINE, None)} | {(system.name, seed) for system, seed in runs}
    for name, system, _ in config.remedy_systems():  # the remedies: systems of their own
        wanted |= {(name, None)} if system == BASELINE else {(name, seed) for s, seed in runs if s.name == system}
    entries = [e for e in load_entries(out) if (e.system, e.seed) in wanted and e.benchmark in config.benchmarks]
    from ..report.setup import collect_setup

    files = build_report(
        entries,
        layout.report_dir(out),
        title=f"polyret experiment: {config.model}, trained on {', '.join(config.train)}",
        setup=collect_setup(out, config),
    )
    return {"report": files, "done": done, "seconds": time.perf_counter() - started, "output": out, "rank": rank}


# the evaluation options of a remedy system (recorded in its results' config, so a reuse is checked on them)
REMEDY_KEYS = ("debias", "debias_fit", "debias_fit_max_queries")

# TrainConfig keys that do not change what a run trains (where it writes, whether it resumes)
_NOT_PROVENANCE = ("output_dir", "resume")


def _config_difference(recorded: dict[str, Any], wanted: dict[str, Any]) -> list[str]:
    keys = (set(recorded) | set(wanted)) - set(_NOT_PROVENANCE)
    return sorted(k for k in keys if json.dumps(recorded.get(k), sort_keys=True) != json.dumps(wanted.get(k), sort_keys=True))


def _recorded_config(path: Path) -> dict[str, Any] | None:
    from ..training.config import TrainConfig

    try:
        return TrainConfig.from_file(path).to_dict()
    except (ValueError, OSError):
        return None


def _model_mismatch(final: Path, tcfg) -> str | None:
    """None when ``final`` is a finished model trained with ``tcfg`` (up to where it was written), else why not.

    The model folder's completion marker must hold (every file's size and sha256: a truncated
    ``model.safetensors`` is retrained, not reused forever) and its ``polyret_train.json`` must record
    the same training config (after ``rm experiment.json`` and ``--set lr=0.5``, models trained at the
    old rate are retrained).
    """
    if not final.exists():
        return f"{final}: not trained yet"
    why = incomplete_reason(final)
    if why is not None:
        return why
    recorded = _recorded_config(final)
    if recorded is None:
        return f"{final / 'polyret_train.json'}: unreadable training record"
    differ = _config_difference(recorded, tcfg.to_dict())
    if differ:
        return f"{final} was trained with other settings ({', '.join(differ)} differ)"
    return None


DATA_RECORD = "training_inputs.json"  # beside a system's checkpoints and model: its data files' and base model's sha256


def _data_mismatch(run_dir: Path, data: dict[str, str]) -> str | None:
    """Why the run in ``run_dir`` was trained on other data or from another base model than ``data`` records
    (None: the same, or no record: a run of an older polyret)."""
    path = run_dir / DATA_RECORD
    if not data or not path.exists():
        return None
    try:
        recorded = json.loads(path.read_text(encoding="utf-8"))["sha256"]
    except (OSError, ValueError, KeyError, TypeError):
        return f"{path}: unreadable training inputs record"
    changed = sorted(k for k in set(recorded) | set(data) if recorded.get(k) != data.get(k))
    return f"{run_dir} was trained on other inputs ({', '.join(changed)} changed since)" if changed else None


def folder_weights_identity(folder: Path) -> str | None:
    """A local model folder's identity by content: :func:`model_identity` when it has a completion marker,
    else one sha256 over its weight files' digests (remembered per file version, so hashed once)."""
    from ..integrity import source_digest

    if read_marker(folder) is not None:
        return model_identity(folder)
    import hashlib

    names = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix in (".safetensors", ".bin"))
    if not names:
        return None
    h = hashlib.sha256()
    for path in names:
        h.update(f"{path.relative_to(folder).as_posix()}:{source_digest(path)}\n".encode())
    return h.hexdigest()


def _run_mismatch(run_dir: Path, tcfg) -> str | None:
    """Why the checkpoints in ``run_dir`` belong to another training config (None: same, or none recorded)."""
    from ..training.card import RUN_CONFIG

    path = run_dir / RUN_CONFIG
    if not path.exists():
        return None
    recorded = _recorded_config(path)
    if recorded is None:
        return f"{path}: unreadable training record"
    differ = _config_difference(recorded, tcfg.to_dict())
    return f"{run_dir} was trained with other settings ({', '.join(differ)} differ)" if differ else None


def model_identity(folder: Path) -> str | None:
    """A trained model's identity: one sha256 over its weight files' sha256s (``*.safetensors``, ``*.bin``).

    Taken from its completion marker, which :func:`~polyret.paths.incomplete_reason` has checked against
    the files (an older polyret's marker, sizes only: the files are hashed). An evaluation records it, so
    a retrained model (other weights in the same folder) is evaluated again. A folder whose weights were
    removed (``keep_models`` false) keeps their sizes and sha256 in its marker: the same identity.

    Args:
        folder: a finished model folder.
    """
    import hashlib

    from ..models import weights_pruned
    from ..training.card import weight_files

    marker = read_marker(folder) or {}
    pruned = weights_pruned(folder)
    # a folder whose weights were removed once evaluated (keep_models false): the identity of what they were
    listed = (pruned.get("files") if pruned is not None else marker.get("files")) or {}
    names = weight_files(listed)
    if not names:
        return None
    h = hashlib.sha256()
    for name in names:
        entry = listed[name]
        try:
            digest = entry["sha256"] if isinstance(entry, dict) else file_sha256(folder / name)
        except (OSError, KeyError):
            return None
        h.update(f"{name}:{digest}\n".encode())
    return h.hexdigest()


def _agreed(flag: bool) -> bool:
    """Rank 0's ``flag`` on every rank (a one-process run: ``flag``), so all ranks take the same branch
    before a collective (an evaluation rank 0 just finished must not look done to a late rank only)."""
    from .. import distributed

    if distributed.world_size() == 1:
        return flag
    import torch.distributed as dist

    box = [bool(flag)]
    dist.broadcast_object_list(box, src=0)
    return bool(box[0])


def _launch_rank() -> tuple[int, int]:
    """(rank, world size) as set by torchrun / accelerate launch; (0, 1) for a plain process."""
    return int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))
