"""Models for ``mteb``: a polyret model folder runs there unchanged; any polyret spec through :func:`load_for_mteb`.

MTEB's sentence-transformers wrapper reads a model's ``prompts`` by prompt type, ``"query"`` and
``"document"``, and calls ``encode_query`` / ``encode_document`` (so Router models route). A folder that
polyret trains is saved from a model loaded by :func:`polyret.models.load`, which always sets
``prompts["document"]`` (equal to the passage prompt), so MTEB applies the same prompts polyret does. A
folder that declares only ``"passage"`` (older folders, the builtin me5-small conversion) would get NO
document prompt in MTEB; :func:`load_for_mteb` settles the prompts as polyret does and hands MTEB only
the keys it understands.

MTEB identifies a model by ``model_card_data.model_name`` and a revision; without them every polyret
model is ``no_model_name/available`` and MTEB's result cache hands the second model the FIRST one's
scores. :func:`load_for_mteb` names the model as polyret's MTEB files do
(:func:`polyret.evaluation.mteb_export.mteb_model_name`: a Hub id, ``local/<folder>``,
``polyret/builtin-me5-small``) and gives its fingerprint (weights, tokenizer, prompts) as the revision.

Example::

    import mteb
    from polyret.interop.mteb_model import load_for_mteb

    model = load_for_mteb("runs/hybrid/model")          # or builtin:me5-small, a Hub id
    mteb.evaluate(model, tasks=mteb.get_tasks(tasks=["XQuADRetrieval"]))
"""

from __future__ import annotations

import os
from typing import Any

__all__ = ["MTEB_PROMPT_TYPES", "load_for_mteb", "mteb_prompts"]

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
        ``"passage"`` key (MTEB warns about keys it does not know and ignores them), named and revised
        for MTEB (``model_card_data.model_name``, ``model_card_data.base_model_revision``).
    """
    from polyret import models

    from ..evaluation.mteb_export import mteb_model_name

    model = models.load(spec, device=device, cache_dir=cache_dir, **load_kwargs)
    revision = models.fingerprint(model)  # of the model polyret evaluates (its prompts included)
    model.prompts = mteb_prompts(model.prompts)
    model.polyret_spec = spec
    model.model_card_data.model_name = mteb_model_name(spec)
    model.model_card_data.base_model_revision = revision  # what MTEB reads as the model's revision
    return model


def mteb_prompts(prompts: dict[str, str] | None) -> dict[str, str]:
    """``prompts`` with only the prompt types MTEB knows: ``"passage"`` becomes ``"document"``.

    Args:
        prompts: a model's prompts (polyret's ``query`` / ``passage`` / ``document``).
    """
    out = dict(prompts or {})
    out["document"] = out.pop("passage", out.get("document", ""))
    out.setdefault("query", "")
    return out
