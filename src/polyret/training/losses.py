"""InfoNCE with in-batch negatives, as sentence-transformers' (Cached)MultipleNegativesRankingLoss.

The only addition is :class:`LengthSortedCachedMNRL`: GradCache embeds a batch in mini-batches, and
sentence-transformers trims each mini-batch's trailing padding. Sorting each column by token count
before cutting mini-batches makes that trimming bite (on CPU, padding dominates step time); the
embeddings are put back in the original order before the loss, so the loss is the same function.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from sentence_transformers import SentenceTransformer
from sentence_transformers.sentence_transformer.losses import (
    CachedMultipleNegativesRankingLoss,
    MultipleNegativesRankingLoss,
)
from torch import Tensor, nn

from polyret.training.config import TrainConfig


class LengthSortedCachedMNRL(CachedMultipleNegativesRankingLoss):
    """CachedMultipleNegativesRankingLoss whose mini-batches hold texts of similar length.

    Args:
        model: the sentence-transformers model.
        **kwargs: as for ``CachedMultipleNegativesRankingLoss`` (``scale``, ``mini_batch_size``,
            ``gather_across_devices``, ...).
    """

    def __init__(self, model: SentenceTransformer, **kwargs: Any) -> None:
        super().__init__(model, **kwargs)
        # Set by forward() and read by calculate_loss() within the same call: the backward hook
        # replays the sorted features it was given, so nothing here outlives one forward pass.
        self._orders: list[Tensor] | None = None

    def forward(self, sentence_features: Iterable[dict[str, Tensor]], labels: Tensor) -> Tensor:
        features = list(sentence_features)
        if len(features) < 2:
            raise ValueError(f"Expected at least 2 inputs, got {len(features)}")
        sorted_features, orders = [], []
        for feature in features:
            order = _length_order(feature)
            orders.append(order)
            sorted_features.append(_take_rows(feature, order) if order is not None else feature)
        self._orders = orders
        try:
            return self.forward_cached(sorted_features, labels)
        finally:
            self._orders = None

    def calculate_loss(self, reps: list[list[Tensor]], labels: Tensor | None = None, *, with_backward: bool = False) -> Tensor:
        orders = self._orders or [None] * len(reps)
        restored, leaves = [], []
        for column, order in zip(reps, orders):
            stacked = torch.cat(column)
            if order is not None:
                inverse = torch.empty_like(order)
                inverse[order] = torch.arange(len(order), device=order.device)
                stacked = stacked[inverse.to(stacked.device)]
            restored.append(stacked)
        if not with_backward:
            return super().calculate_loss([[r] for r in restored], labels)
        # The parent back-propagates chunk by chunk, so it needs leaves of its own; their gradients
        # are then carried through the inverse permutation to the mini-batch leaves in one step.
        leaves = [r.detach().requires_grad_() for r in restored]
        loss = super().calculate_loss([[leaf] for leaf in leaves], labels, with_backward=True)
        pairs = [(r, leaf.grad) for r, leaf in zip(restored, leaves) if leaf.grad is not None]
        if pairs:
            torch.autograd.backward([r for r, _ in pairs], [g for _, g in pairs])
        return loss


class LengthSortedMNRL(MultipleNegativesRankingLoss):
    """MultipleNegativesRankingLoss that embeds each column in length-sorted, padding-trimmed chunks.

    Same loss and gradients as the plain loss (one backward over the whole batch, no GradCache
    re-forward); only the padding changes. On 2 CPU cores padding dominates a step: a batch of XQuAD-R
    sentences padded to its longest member costs about twice the sorted chunks (bench/RESULTS.md).

    Args:
        model: the sentence-transformers model.
        chunk_size: rows embedded per forward pass (``TrainConfig.embed_chunk_size``).
        **kwargs: as for ``MultipleNegativesRankingLoss`` (``scale``, ``gather_across_devices``, ...).
    """

    def __init__(self, model: SentenceTransformer, *, chunk_size: int = 8, **kwargs: Any) -> None:
        super().__init__(model, **kwargs)
        self.chunk_size = chunk_size

    def forward(self, sentence_features: Iterable[dict[str, Tensor]], labels: Tensor) -> Tensor:
        embeddings = [self._embed_sorted(feature) for feature in sentence_features]
        return self.compute_loss_from_embeddings(embeddings, labels)

    def _embed_sorted(self, feature: dict[str, Any]) -> Tensor:
        order = _length_order(feature)
        rows = _take_rows(feature, order) if order is not None else feature
        n = rows["attention_mask"].shape[0]
        chunks = []
        for start in range(0, n, self.chunk_size):
            chunk = _slice_rows(rows, start, min(n, start + self.chunk_size))
            chunks.append(self.model(chunk)["sentence_embedding"])
        emb = torch.cat(chunks)
        if order is None:
            return emb
        inverse = torch.empty_like(order)
        inverse[order] = torch.arange(len(order), device=order.device)
        return emb[inverse.to(emb.device)]


def _slice_rows(feature: dict[str, Any], start: int, stop: int) -> dict[str, Any]:
    """Rows start:stop with the columns of trailing padding (all-zero attention) cut off."""
    mask = feature["attention_mask"]
    batch, width = mask.shape
    used = int(mask[start:stop].sum(dim=1).max().item()) if stop > start else width
    out = {}
    for key, value in feature.items():
        if isinstance(value, Tensor) and value.ndim >= 1 and value.shape[0] == batch:
            value = value[start:stop]
            if value.ndim >= 2 and value.shape[1] == width:
                value = value[:, :used]
            out[key] = value
        else:
            out[key] = value
    return out


def _length_order(feature: dict[str, Any]) -> Tensor | None:
    """Row order by descending token count, or None when the rows cannot be reordered safely."""
    mask = feature.get("attention_mask")
    if not isinstance(mask, Tensor) or mask.ndim != 2:
        return None
    lengths = mask.sum(dim=1)
    order = torch.sort(lengths, descending=True, stable=True).indices
    if torch.equal(order, torch.arange(len(order), device=order.device)):
        return None
    return order


def _take_rows(feature: dict[str, Any], order: Tensor) -> dict[str, Any]:
    batch = feature["attention_mask"].shape[0]
    out = {}
    for key, value in feature.items():
        if isinstance(value, Tensor) and value.ndim >= 1 and value.shape[0] == batch:
            out[key] = value[order.to(value.device)]
        else:
            out[key] = value
    return out


def build_loss(model: SentenceTransformer, config: TrainConfig, *, gather: bool | None = None) -> nn.Module:
    """InfoNCE over cosine similarity at ``1 / temperature``, plain or cached, as the config asks.

    The loss of Elmahdy, Lin, Ahmad 2024 (arXiv 2408.10536): in-batch negatives, so the batch sampler's
    mono / cross choice decides what the negatives are.

    Args:
        model: the sentence-transformers model being trained.
        config: ``temperature``, ``gather_across_devices``, ``cached_loss`` (with ``mini_batch_size``)
            and ``length_sorted`` (with ``embed_chunk_size`` for the plain loss).
        gather: the resolved ``gather_across_devices`` (:func:`polyret.training.plan.resolve_batch`; None:
            the config's value, off when unset).
    """
    if gather is None:
        gather = bool(config.gather_across_devices)
    common = dict(scale=config.scale, gather_across_devices=gather)
    if not config.cached_loss:
        if config.length_sorted:
            return LengthSortedMNRL(model, chunk_size=config.embed_chunk_size, **common)
        return MultipleNegativesRankingLoss(model, **common)
    cls = LengthSortedCachedMNRL if config.length_sorted else CachedMultipleNegativesRankingLoss
    return cls(model, mini_batch_size=config.mini_batch_size, **common)
