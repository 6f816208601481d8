"""Token counts and token-budget batches: what decides how texts are grouped into batches."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from polyret.errors import EncodeError  # noqa: F401  (re-exported: defined once, in polyret.errors)
from polyret.models import model_dim  # noqa: F401  (re-exported: defined with the other model questions)

TOKENIZE_PIECE = 2048  # texts per tokenizer call when counting tokens


def prompt_of(model, kind: str) -> str:
    """The model's prompt for ``kind`` ("query"/"passage"), ``""`` when it has none.

    Args:
        model: a loaded SentenceTransformer (or anything with a ``prompts`` dict).
        kind: "query" or "passage".
    """
    if kind not in ("query", "passage"):
        raise ValueError(f"kind must be 'query' or 'passage', not {kind!r}")
    return (getattr(model, "prompts", None) or {}).get(kind, "") or ""


def token_budget_batches(lengths_desc: np.ndarray, batch_size: int, max_tokens: int) -> list[tuple[int, int]]:
    """(start, stop) batches over lengths sorted longest-first: at most ``batch_size`` texts and at most
    ``max_tokens`` padded tokens (= texts x longest) per batch, but always at least one text.

    Args:
        lengths_desc: token counts sorted longest-first.
        batch_size: most texts per batch.
        max_tokens: most padded tokens per batch.
    """
    out = []
    start, n = 0, len(lengths_desc)
    while start < n:
        longest = max(int(lengths_desc[start]), 1)
        size = max(1, min(batch_size, max_tokens // longest))
        out.append((start, min(n, start + size)))
        start += size
    return out


def _max_len(model) -> int | None:
    value = getattr(model, "max_seq_length", None)
    try:
        value = float(value) if value is not None else None
    except (TypeError, ValueError):
        return None
    if value is None or not math.isfinite(value) or value <= 0:
        return None  # StaticEmbedding says math.inf: it does not truncate
    return int(value)


def _is_raw_tokenizer(tokenizer) -> bool:
    try:
        from tokenizers import Tokenizer
    except ImportError:  # pragma: no cover - a dependency of transformers
        return False
    return isinstance(tokenizer, Tokenizer)


def token_lengths(model, texts: Sequence[str]) -> np.ndarray:
    """Token counts (truncated like the model truncates), or character counts without a tokenizer.

    A ``transformers`` tokenizer is called as such; a raw ``tokenizers.Tokenizer`` (what
    sentence-transformers' ``StaticEmbedding`` holds) through ``encode_batch`` without special tokens,
    as that module tokenizes. Call it on a bounded window of texts, never a whole corpus: the token ids
    of every text are in memory until it returns.

    Args:
        model: a loaded SentenceTransformer (or a stand-in with ``tokenizer`` / ``max_seq_length``).
        texts: the texts (prompt already prepended).
    """
    texts = list(texts)
    if not texts:
        return np.zeros(0, dtype=np.int64)
    try:
        tokenizer = getattr(model, "tokenizer", None)
    except Exception:  # noqa: BLE001 - a first module without a tokenizer: fall back to characters
        tokenizer = None
    max_len = _max_len(model)
    if tokenizer is None:
        return np.fromiter((len(t) for t in texts), dtype=np.int64, count=len(texts))
    raw = _is_raw_tokenizer(tokenizer)
    counts = np.empty(len(texts), dtype=np.int64)
    for start in range(0, len(texts), TOKENIZE_PIECE):  # only counts are kept: ids of one piece at a time
        piece = texts[start : start + TOKENIZE_PIECE]
        if raw:  # tokenizers.Tokenizer, as StaticEmbedding holds it (it adds no special tokens)
            lengths = [len(e.ids) for e in tokenizer.encode_batch(piece, add_special_tokens=False)]
        else:
            ids = tokenizer(
                piece,
                add_special_tokens=True,
                truncation=max_len is not None,
                max_length=max_len,
                return_attention_mask=False,
                return_token_type_ids=False,
            )["input_ids"]
            lengths = [len(x) for x in ids]
        counts[start : start + len(piece)] = lengths
    if max_len is not None:
        np.minimum(counts, max_len, out=counts)
    return counts
