"""Asymmetric (``Router``) models: which route each training column takes.

A sentence-transformers ``Router`` model has a ``"query"`` and a ``"document"`` route (different
modules per input kind). At encoding time ``polyret.models.encode_batch`` calls ``encode_query`` /
``encode_document``; at training time the trainer's data collator needs ``router_mapping``, column
name -> route, or every column would take the default route.
"""

from __future__ import annotations

from typing import Any

from polyret.models import has_router

QUERY_ROUTE = "query"
DOCUMENT_ROUTE = "document"


def router_mapping(model: Any, negative_columns: tuple[str, ...] | list[str] = ()) -> dict[str, str]:
    """``{"anchor": "query", "positive": "document", <negatives>: "document"}`` for a Router model, else ``{}``.

    Args:
        model: the model being trained.
        negative_columns: the dataset's hard-negative column names (``pairs_dataset.negative_columns``).

    Returns:
        The mapping for ``SentenceTransformerTrainingArguments(router_mapping=...)``; empty (the
        trainer's default) when the model has no Router, so symmetric models train exactly as before.
    """
    if not has_router(model):
        return {}
    mapping = {"anchor": QUERY_ROUTE, "positive": DOCUMENT_ROUTE}
    mapping.update({column: DOCUMENT_ROUTE for column in negative_columns})
    return mapping
