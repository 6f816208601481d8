"""``run_experiment``: train each strategy, evaluate base and trained models everywhere, report.

Only a loop over the data flow (DESIGN.md). Every step leaves a completion marker that is written last
(a trained model folder with ``polyret_train.json``, an evaluation folder with ``.complete.json``), so
running the same command again skips finished work and resumes an interrupted training run from its
last checkpoint. Every path comes from ``layout``.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..evaluation.results import is_done as eval_done
from ..paths import atomic_write_text
from ..training.config import upgrade_keys
from ..vocabulary import BASELINE
from . import layout
from .config import EXTENDABLE, ExperimentConfig, System

logger = logging.getLogger(__name__)


def _progress(msg: str, echo: Callable[[str], None] | None) -> None:
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


def run_experiment(
    config: ExperimentConfig, *, echo: Callable[[str], None] | None = None, progress: bool = True
) -> dict[str, Any]:
    """Run (or continue) the experiment; returns paths of the report files and what was (re)done.

    Args:
        config: what to train and evaluate (validated again here, then the inputs are checked on disk).
        echo: called with one line per step (training, evaluating, writing the report), rank 0 only.
        progress: show the evaluations' progress bars.

    Returns:
        ``{"report": build_report's files, "done": {"trained", "evaluated", "reused"}: labels,
        "seconds": float, "output": Path, "rank": int}``.

    Raises:
        ValueError (or a subclass) naming the key, file or folder at fault, before any work is done.
    """
    from ..evaluation import evaluate
    from ..models import load
    from ..report import build_report, load_entries
    from ..training import train
    from ..training.checkpoints import last_checkpoint

    # everything is checked before the folder or experiment.json is written: a typo fixed in the next
    # run is then not "a different configuration"
    config.validate()
    config.check_inputs()
    precision = experiment_precision(config)  # resolved (never "auto"): recorded in experiment.json
    record = {**config.to_dict(), "precision": precision.precision}
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
        defaults = json.loads(json.dumps(dataclasses.asdict(ExperimentConfig())))
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

    done: dict[str, list[str]] = {"trained": [], "evaluated": [], "reused": []}
    started = time.perf_counter()

    def eval_into(model_obj_or_path, target: Path, bench: str, label: str, **remedy: Any) -> None:
        if _agreed(eval_done(target)):  # its completion marker, written last; a folder without one is redone
            done["reused"].append(f"eval {label} {bench}")
            return
        _progress(f"evaluating {label} on {bench}", echo)
        langs = config.eval_languages.get(bench) or config.languages
        evaluate(
            model_obj_or_path,
            bench,
            output=target,
            progress=progress,
            languages=list(langs) if langs else None,
            data_dir=config.data_dir,
            batch_size=config.eval_batch_size,
            max_seq_length=config.eval_max_seq_length,
            precision=precision.precision,
            **remedy,
        )
        done["evaluated"].append(f"{label} {bench}")

    def remedy_evals(model_obj_or_path, system: str, seed: int | None) -> None:
        """The remedies applied to ``system``'s embeddings (polyret.evaluation.debias): systems of their own."""
        for name, target_system, method in config.remedy_systems():
            if target_system != system:
                continue
            for bench in config.benchmarks:
                label = name if seed is None else f"{name} seed {seed}"
                remedy = {
                    "debias": method,
                    "debias_fit": config.remedy_fit,
                    "debias_fit_max_queries": config.remedy_fit_max_queries,
                }
                eval_into(model_obj_or_path, layout.eval_dir(out, name, seed, bench), bench, label, **remedy)

    if rank != 0:
        echo = None  # rank 0 speaks for the run

    def base_evals() -> None:
        """The base model, loaded once for all benchmarks."""
        base_targets = {b: layout.eval_dir(out, BASELINE, None, b) for b in config.benchmarks}
        remedy_targets = [
            layout.eval_dir(out, name, None, b)
            for name, system, _ in config.remedy_systems()
            if system == BASELINE
            for b in config.benchmarks
        ]
        if _agreed(any(not eval_done(t) for t in [*base_targets.values(), *remedy_targets])):
            base = load(config.model, max_seq_length=config.eval_max_seq_length)
            base.polyret_spec = config.model
            for bench, target in base_targets.items():
                eval_into(base, target, bench, BASELINE)
            remedy_evals(base, BASELINE, None)
            del base
        else:
            done["reused"] += [f"eval {BASELINE} {b}" for b in config.benchmarks]

    def train_one(system: System, seed: int) -> Path:
        """Train (or resume, or reuse) one system; returns its final model folder."""
        label = f"{system.name} seed {seed}"
        run_dir = layout.model_dir(out, system.name, seed)
        final = layout.final_model_dir(run_dir)
        if not (final / "polyret_train.json").exists():
            resume = last_checkpoint(run_dir) is not None
            _progress(f"training {label}" + (" (resuming)" if resume else ""), echo)
            tcfg = base_train.replace(
                strategy=system.strategy, alpha=system.alpha, seed=seed, output_dir=str(run_dir), resume=resume
            )
            train(tcfg)
            done["trained"].append(label)
        else:
            done["reused"].append(f"train {label}")
        return final

    def system_evals(system: System, seed: int, final: Path) -> None:
        for bench in config.benchmarks:
            eval_into(str(final), layout.eval_dir(out, system.name, seed, bench), bench, f"{system.name} seed {seed}")
        remedy_evals(str(final), system.name, seed)

    base_train = config.base_train_config()
    runs = [(system, seed) for system in config.systems() for seed in config.seed_values()]
    if world_size == 1:
        # base first, then each system x seed trained and evaluated at once: early results
        base_evals()
        for system, seed in runs:
            system_evals(system, seed, train_one(system, seed))
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
