"""Atomic, resumable trainer checkpoints: how a run's ``checkpoints/`` folder is written, trusted and cleaned.

Each checkpoint is written as ``checkpoints/.tmp-checkpoint-<step>/``, gets its ``.complete.json`` marker
(every file's size and sha256) last and is then renamed to ``checkpoint-<step>``, so resume
(:func:`last_checkpoint`) and rotation only ever see complete ones, and one whose content changed afterwards
(a same-size edit of ``trainer_state.json``) is passed over, with a warning naming the file, for the
previous complete one; :func:`clean_checkpoints` removes what an interrupted run left. The trainer
subclass (:func:`polyret_trainer_class`) saves this way and records whether each step's loss was finite;
:func:`divergence_guard` stops a run with :class:`~polyret.training.config.TrainingDiverged` before a
non-finite step is checkpointed.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
from pathlib import Path

import torch

from polyret.integrity import folder_checksums, verify_checksums
from polyret.paths import COMPLETE_MARKER, is_complete, mark_complete, share_mode
from polyret.training.config import TrainConfig, TrainingDiverged

logger = logging.getLogger(__name__)

CHECKPOINT_DIR = "checkpoints"
CHECKPOINT_STAGING = ".tmp-"  # a checkpoint being written: checkpoints/.tmp-checkpoint-<step>/
_CHECKPOINT_DELETING = ".del-"  # a checkpoint being removed (renamed first, so it vanishes at once)
_CHECKPOINT_RE = re.compile(r"^checkpoint-(\d+)$")
# Files a trainer checkpoint written before polyret had completion markers must hold (anywhere in the
# folder: a module may live in a subfolder) to be trusted on resume; trainer_state.json is written last.
_LEGACY_FILES = ("trainer_state.json", "optimizer.pt", "scheduler.pt", "modules.json", "tokenizer_config.json")


def _legacy_checkpoint_ok(folder: Path) -> bool:
    """A checkpoint without a completion marker (from a polyret before markers) is trusted when its trainer
    state (transformers writes it last) parses and names this step, the optimizer, scheduler, module list
    and tokenizer config are there and non-empty, and it has weights whose safetensors header parses."""
    match = _CHECKPOINT_RE.match(folder.name)
    try:
        state = json.loads((folder / "trainer_state.json").read_text(encoding="utf-8"))
        if not match or int(state.get("global_step", -1)) != int(match.group(1)):
            return False
        files = [p for p in folder.rglob("*") if p.is_file()]
        for name in _LEGACY_FILES:
            if not any(p.name == name and p.stat().st_size > 0 for p in files):
                return False
        weights = [p for p in files if p.suffix == ".safetensors"]
        if not weights:
            return any(p.name == "pytorch_model.bin" and p.stat().st_size > 0 for p in files)
        from safetensors import safe_open

        for path in weights:
            with safe_open(str(path), framework="pt") as fh:
                fh.keys()
        return True
    except Exception:  # noqa: BLE001 - missing file, truncated JSON or safetensors header: not a checkpoint to trust
        return False


_VERIFIED: dict[str, tuple] = {}  # folder -> the stat of its files when their checksums last matched (this process)


def _files_stat(folder: Path) -> tuple:
    return tuple(
        (p.relative_to(folder).as_posix(), st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
        for p in sorted(folder.rglob("*"))
        if p.is_file() and (st := p.stat())
    )


def _content_ok(folder: Path) -> bool:
    """The files of a marked checkpoint match the sha256 its marker records (a checkpoint of a polyret that
    recorded sizes only: its trainer state parses and names this step). A failure is logged naming the
    file: resume then falls back to the previous complete checkpoint. Checked once per process while no
    file's stat changes (the files are read again after any write to them)."""
    key, stat = str(folder.resolve()), _files_stat(folder)
    if _VERIFIED.get(key) == stat:
        return True
    try:
        marker = json.loads((folder / COMPLETE_MARKER).read_text(encoding="utf-8"))
        recorded = marker.get("sha256") if isinstance(marker, dict) else None
    except (OSError, ValueError):
        recorded = None
    if recorded is not None:
        problem = verify_checksums(folder, recorded)
    else:  # sizes only: at least the trainer state (what resume reads first) must be this step's
        problem = None
        match = _CHECKPOINT_RE.match(folder.name)
        try:
            state = json.loads((folder / "trainer_state.json").read_text(encoding="utf-8"))
            if not match or int(state.get("global_step", -1)) != int(match.group(1)):
                problem = f"{folder / 'trainer_state.json'}: global_step {state.get('global_step')!r} is not this step's"
        except (OSError, ValueError, AttributeError, TypeError) as exc:
            problem = f"{folder / 'trainer_state.json'}: unreadable ({type(exc).__name__}: {exc})"
    if problem is not None:
        logger.warning("checkpoint %s is not used: %s", folder.name, problem)
        return False
    _VERIFIED[key] = stat
    return True


def checkpoint_is_complete(folder: str | os.PathLike) -> bool:
    """True iff ``folder`` is a finished trainer checkpoint: its completion marker lists every file with
    its size and sha256 and the files match (polyret's checkpoints), or, without a marker and with no
    marked sibling (a folder of an older polyret), it passes the legacy check above.

    Args:
        folder: a ``checkpoint-<step>`` folder.
    """
    folder = Path(folder)
    if (folder / COMPLETE_MARKER).exists():
        return is_complete(folder, content=False) and _content_ok(folder)
    # a run of this polyret marks every checkpoint: a marker-less one beside marked ones lost its marker
    # while being deleted (rotation, or transformers removing non-best checkpoints at the end), not a legacy one
    if any((p / COMPLETE_MARKER).exists() for p in folder.parent.glob("checkpoint-*")):
        return False
    return _legacy_checkpoint_ok(folder)


def _checkpoints(folder: Path) -> list[tuple[int, Path]]:
    """Every ``checkpoint-<step>`` folder (complete or not), by step."""
    if not folder.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in folder.iterdir() if p.is_dir() and (m := _CHECKPOINT_RE.match(p.name))]
    return sorted(found)


def last_checkpoint(output_dir: str | os.PathLike) -> Path | None:
    """The newest COMPLETE trainer checkpoint under ``output_dir/checkpoints`` (None: none to resume from).

    A checkpoint killed while being saved never has the name ``checkpoint-<step>`` (it is written as
    ``.tmp-checkpoint-<step>`` and renamed when its completion marker is in), and a folder with a marker
    whose files are missing or of another size is skipped, so resume never loads a half-written one.

    Args:
        output_dir: the training ``output_dir``.
    """
    for _, path in reversed(_checkpoints(Path(output_dir) / CHECKPOINT_DIR)):
        if checkpoint_is_complete(path):
            return path
    return None


def checkpoint_step(folder: Path) -> int:
    """The step number in a ``checkpoint-<step>`` folder's name.

    Args:
        folder: a ``checkpoint-<step>`` folder.
    """
    return int(_CHECKPOINT_RE.match(folder.name).group(1))


def _remove_tree(path: Path) -> None:
    """Rename ``path`` out of sight first, then delete it: a kill mid-way never leaves a half-deleted
    folder under its old name."""
    if not path.exists():
        return
    doomed = path.parent / f"{_CHECKPOINT_DELETING}{path.name}"
    if doomed.exists():
        shutil.rmtree(doomed, ignore_errors=True)
    os.replace(path, doomed)
    shutil.rmtree(doomed, ignore_errors=True)


def clean_checkpoints(output_dir: str | os.PathLike) -> list[str]:
    """Remove what an interrupted run left under ``output_dir/checkpoints``: staging and half-deleted
    folders, and ``checkpoint-<step>`` folders that are not complete. Returns the names removed.

    Args:
        output_dir: the training ``output_dir``.
    """
    folder = Path(output_dir) / CHECKPOINT_DIR
    if not folder.is_dir():
        return []
    removed = []
    for path in sorted(folder.iterdir()):
        if path.is_dir() and path.name.startswith((CHECKPOINT_STAGING, _CHECKPOINT_DELETING)):
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path.name)
    for _, path in _checkpoints(folder):
        if not checkpoint_is_complete(path):
            logger.warning("removing incomplete checkpoint %s (interrupted while being saved or deleted)", path)
            _remove_tree(path)
            removed.append(path.name)
    return removed


def remove_checkpoints(output_dir: str | os.PathLike) -> int:
    """Delete ``output_dir/checkpoints`` (every checkpoint, each renamed out of sight first); returns the
    bytes freed. Called once the final model's completion marker is written: the optimizer states are
    then no longer needed to resume (``keep_checkpoints`` keeps them).

    Args:
        output_dir: the training ``output_dir``.
    """
    folder = Path(output_dir) / CHECKPOINT_DIR
    if not folder.is_dir():
        return 0
    freed = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
    for path in sorted(folder.iterdir()):
        if path.is_dir() and path.name.startswith(_CHECKPOINT_DELETING):
            shutil.rmtree(path, ignore_errors=True)
        elif path.is_dir():
            _remove_tree(path)
        else:
            path.unlink(missing_ok=True)
    shutil.rmtree(folder, ignore_errors=True)
    return freed


def _rotate(run_dir: Path, limit: int | None, best: str | None) -> None:
    """Keep the newest ``limit`` complete checkpoints (always the newest and the best), by step number."""
    if not limit:
        return
    found = [p for _, p in _checkpoints(run_dir)]
    protected = {found[-1]} if found else set()
    if best:
        protected.add(Path(best))
    keep = max(limit, len(protected))
    remaining = len(found)
    for path in found:
        if remaining <= keep:
            break
        if path not in protected:
            _remove_tree(path)
            remaining -= 1


def _save_checkpoint_atomically(trainer, trial) -> None:
    """What ``transformers.Trainer._save_checkpoint`` does, but into ``.tmp-checkpoint-<step>``, which gets
    its completion marker last and is then renamed to ``checkpoint-<step>``; then old ones are rotated."""
    from transformers.trainer_callback import ExportableState
    from transformers.trainer_utils import SaveStrategy

    args, state = trainer.args, trainer.state
    run_dir = Path(trainer._get_output_dir(trial=trial))
    name = f"checkpoint-{state.global_step}"
    final, staging = run_dir / name, run_dir / f"{CHECKPOINT_STAGING}{name}"
    if args.should_save and staging.exists():
        shutil.rmtree(staging)
    trainer.accelerator.wait_for_everyone()
    staging.mkdir(parents=True, exist_ok=True)
    if trainer.hp_search_backend is None and trial is None:
        trainer.store_flos()
    trainer.save_model(str(staging), _internal_call=True)
    if args.save_strategy in (SaveStrategy.STEPS, SaveStrategy.EPOCH, SaveStrategy.BEST) and state.best_global_step:
        best = run_dir / f"checkpoint-{state.best_global_step}"
        if best == final or best.exists():  # this very checkpoint: its final name, which it is about to get
            state.best_model_checkpoint = str(best)
    if not args.save_only_model:
        trainer._save_optimizer_and_scheduler(str(staging))
        trainer._save_scaler(str(staging))
        trainer._save_rng_state(str(staging))
    if args.should_save:
        for cb in [cb for cb in trainer.callback_handler.callbacks + [trainer.control] if isinstance(cb, ExportableState)]:
            cb_name, cb_state = cb.__class__.__name__, cb.state()
            if isinstance(state.stateful_callbacks[cb_name], list):
                state.stateful_callbacks[cb_name].append(cb_state)
            else:
                state.stateful_callbacks[cb_name] = cb_state
        state.save_to_json(str(staging / "trainer_state.json"))
    trainer.accelerator.wait_for_everyone()  # every rank's files (rng_state_<rank>.pth) are in
    if args.should_save:
        share_mode(staging)
        mark_complete(staging, step=state.global_step, sha256=folder_checksums(staging))  # checked on resume
        if final.exists():  # e.g. a run restarted from an earlier step saves this step again
            _remove_tree(final)
        os.replace(staging, final)
        _rotate(run_dir, args.save_total_limit, state.best_model_checkpoint)
    trainer.accelerator.wait_for_everyone()


def polyret_trainer_class():
    """sentence-transformers' trainer with atomic checkpoints and a per-step finiteness check.

    A function returning the class so that importing this module does not import sentence-transformers'
    trainer; the class takes ``SentenceTransformerTrainer``'s arguments.
    """
    from sentence_transformers import SentenceTransformerTrainer

    class PolyretTrainer(SentenceTransformerTrainer):
        step_loss_finite = True

        def training_step(self, model, inputs, num_items_in_batch=None):
            loss = super().training_step(model, inputs, num_items_in_batch)
            self.step_loss_finite = bool(torch.isfinite(loss.detach()).all())
            return loss

        def _save_checkpoint(self, model, trial) -> None:
            _save_checkpoint_atomically(self, trial)

        def _load_from_checkpoint(self, checkpoint_path, *args, **kwargs) -> None:
            from polyret.training.lora import has_lora, load_lora_checkpoint

            model = getattr(self.model, "_orig_mod", self.model)
            if has_lora(model):  # a fresh load would build the plain architecture: load into this one
                return load_lora_checkpoint(model, checkpoint_path)
            return super()._load_from_checkpoint(checkpoint_path, *args, **kwargs)

        def _run_epoch(self, *args, **kwargs):
            # transformers trains one step past max_steps when resumed from the last step's checkpoint (the
            # epoch loop checks the step count only after a step): a run killed after its final checkpoint,
            # before the final model was written, would otherwise end one step later than a straight run
            if 0 < self.state.max_steps <= self.state.global_step:
                self.control.should_training_stop = True
                return None
            return super()._run_epoch(*args, **kwargs)

    return PolyretTrainer


def divergence_guard(config: TrainConfig):
    """Stops training with :class:`TrainingDiverged` at the first step whose loss or trained weights are
    not finite; it runs before that step's checkpoint is saved, so no checkpoint holds such weights.

    Args:
        config: the run's config (named in the message: lr, temperature, precision).
    """
    from transformers import TrainerCallback

    class DivergenceGuard(TrainerCallback):
        trainer = None

        def on_step_end(self, args, state, control, model=None, **kwargs):
            loss_ok = self.trainer is None or self.trainer.step_loss_finite
            if self.trainer is not None and args.world_size > 1:
                # the loss is per rank: decide together, or one rank raises while the others wait in the
                # next all-reduce (weights are the same on every rank after the synchronised step)
                flag = torch.tensor([0.0 if loss_ok else 1.0], device=args.device)
                loss_ok = bool(self.trainer.accelerator.reduce(flag, reduction="sum").item() == 0)
            bad = [] if loss_ok else ["the loss"]
            if model is not None:
                weights = [n for n, p in model.named_parameters() if p.requires_grad and not torch.isfinite(p).all()]
                if weights:
                    bad.append(f"{len(weights)} weight tensor(s) (e.g. {weights[0]})")
            if bad:
                raise TrainingDiverged(
                    f"training diverged at step {state.global_step}: {' and '.join(bad)} became NaN/inf "
                    f"(lr={config.lr:g}, temperature={config.temperature:g}, precision={config.precision}); "
                    "no model was written. Lower lr or raise temperature."
                )

    return DivergenceGuard()
