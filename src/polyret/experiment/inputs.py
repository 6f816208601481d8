"""Disk checks of an experiment's inputs, cheap and before any work: the model spec and the training
sources (nothing is loaded or parsed)."""

from __future__ import annotations

from pathlib import Path

from ..vocabulary import check_languages


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
    """Refuse a training source ``load_pairs`` could not open, without reading it: an unknown id or split,
    a language the dataset lacks, a missing file or mMARCO folder.

    Args:
        spec: ``xquad-r:train``, ``mlqa-r[:split]``, ``file.jsonl``, ``mmarco`` or ``mmarco:<folder>``.
        languages: the training languages (None: all).

    Raises:
        DataError naming the source.
    """
    from ..data.lareqa import LAREQA_LANGUAGES, SPLITS
    from ..data.pairs import mmarco_local_files
    from ..data.records import DataError

    dataset, _, split = spec.partition(":")
    if dataset in LAREQA_LANGUAGES:
        if split and split not in SPLITS:
            raise DataError(f"training source {spec!r}: unknown split {split!r}; known: {', '.join(SPLITS)}")
        if languages:
            check_languages(languages, LAREQA_LANGUAGES[dataset], where=f"training source {spec!r}", error=DataError)
        return
    if dataset == "mmarco":
        if split:
            mmarco_local_files(split)
        elif languages is None:
            raise DataError(
                f"training source {spec!r}: mmarco from the Hugging Face hub needs an explicit language list (set `languages`)"
            )
        return
    path = Path(spec).expanduser()
    if path.is_file():
        return
    if spec.endswith(".jsonl"):
        raise DataError(f"training source {spec!r}: no such file" + (" (it is a folder)" if path.is_dir() else ""))
    raise DataError(
        f"unknown training source {spec!r}; use xquad-r:train, mlqa-r:train (or :test / whole), "
        "a .jsonl file, mmarco (Hub) or mmarco:<local folder>"
    )
