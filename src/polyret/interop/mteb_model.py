"""Models for ``mteb``: a polyret model folder runs there unchanged; any polyret spec through :func:`load_for_mteb`.

MTEB's sentence-transformers wrapper reads a model's ``prompts`` by prompt type, ``"query"`` and
``"document"``, and calls ``encode_query`` / ``encode_document`` (so Router models route). A folder that
polyret trains is saved from a model loaded by :func:`polyret.models.load`, which always sets
``prompts["document"]`` (equal to the passage prompt), so MTEB applies the same prompts polyret does. A
folder that declares only ``"passage"`` (older folders, the builtin me5-small conversion) would get NO
document prompt in MTEB; :func:`load_for_mteb` settles the prompts as polyret does and hands MTEB only
the keys it understands.

Example::

    import mteb
    from polyret.interop.mteb_model import load_for_mteb

    model = load_for_mteb("runs/hybrid/model")          # or builtin:me5-small, a Hub id
    mteb.evaluate(model, tasks=mteb.get_tasks(tasks=["XQuADRetrieval"]))
"""

from __future__ import annotations

import os
from typing import Any

__all__ = ["MTEB_PROMPT_TYPES", "load_for_mteb"]

MTEB_PROMPT_TYPES = ("query", "document")


def load_for_mteb(spec: str, *, device: str | None = None, cache_dir: str | os.PathLike | None = None, **load_kwargs: Any):
    """A SentenceTransformer for ``mteb.evaluate``, with the prompts polyret would use.

    Args:
        spec: ``builtin:me5-small``, a model folder or a Hub id (as for ``polyret.models.load``).
        device: the torch device (None: the best available).
        cache_dir: polyret's cache root (where builtin models are built).
        load_kwargs: further ``polyret.models.load`` options (``query_prompt``, ``passage_prompt``,
            ``max_seq_length``).

    Returns:
        The model, whose ``prompts`` hold ``"query"`` and ``"document"`` (the passage prompt) and no
        ``"passage"`` key (MTEB warns about keys it does not know and ignores them).
    """
    from polyret import models

    model = models.load(spec, device=device, cache_dir=cache_dir, **load_kwargs)
    prompts = dict(model.prompts or {})
    prompts["document"] = prompts.pop("passage", prompts.get("document", ""))
    model.prompts = prompts
    model.polyret_spec = spec
    return model
