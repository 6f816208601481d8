"""Disk checks of an experiment's inputs, cheap and before any work: the model spec and the training
sources (nothing is loaded or parsed)."""

from __future__ import annotations


def check_model_spec(spec: str) -> None:
    """Refuse a model spec that cannot name a model, without loading (or building) it: an unknown
    ``builtin:``, a local path that does not exist or is a file. A plausible Hub id passes.

    Args:
        spec: ``builtin:<name>``, a model folder or a Hugging Face Hub id.

    Raises:
        ModelError (a ValueError) naming the spec.
    """
    from ..models import BUILTIN, BUILTIN_PREFIX, resolve

    if spec.startswith(BUILTIN_PREFIX) and spec[len(BUILTIN_PREFIX) :] in BUILTIN:
        return  # resolve() would build it
    resolve(spec)


def check_train_source(spec: str, languages: tuple[str, ...] | list[str] | None = None) -> None:
    """Refuse a training source the trainer could not open, without reading it
    (:func:`polyret.data.pairs.check_source`: the one spec parser's check).

    Args:
        spec: ``xquad-r:train``, ``mlqa-r[:split]``, ``file.jsonl``, ``mmarco`` or ``mmarco:<folder>``.
        languages: the training languages (None: all).

    Raises:
        DataError naming the source.
    """
    from ..data.pairs import check_source

    check_source(spec, languages)
