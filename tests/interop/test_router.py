"""Asymmetric models: a tiny ``Router`` model sends queries and passages down different routes, in
encoding (``models.encode_batch``) and in training (the router mapping)."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from transformers import TrainerCallback

from polyret import models
from polyret.interop.router import has_router, router_mapping
from tests.helpers.models import build_tiny_model


def build_router_model(path: Path) -> Path:
    """A Router model whose query route is tiny BERT seed 0 and document route tiny BERT seed 1."""
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.base.modules import Router

    parts = {}
    for seed in (0, 1):
        folder = build_tiny_model(path.parent / f"{path.name}-route{seed}", seed=seed)
        parts[seed] = list(SentenceTransformer(str(folder), device="cpu"))
    router = Router.for_query_document(query_modules=parts[0], document_modules=parts[1])
    model = SentenceTransformer(modules=[router], prompts={"query": "query: ", "passage": "passage: "}, device="cpu")
    model.save(str(path))
    return path


@pytest.fixture(scope="module")
def router_dir(tmp_path_factory) -> Path:
    return build_router_model(tmp_path_factory.mktemp("router") / "router")


def test_queries_and_passages_take_different_routes(router_dir):
    from sentence_transformers import SentenceTransformer

    model = models.load(str(router_dir), device="cpu")
    assert has_router(model)
    texts = ["what is the capital city", "der fluss", "la ciudad"]
    q = models.encode_batch(model, texts, kind="query", batch_size=2)
    p = models.encode_batch(model, texts, kind="passage", batch_size=2)
    assert q.shape == p.shape == (3, 32)
    assert not np.allclose(q, p, atol=1e-3)  # the same texts, two routes
    # each route is exactly its own encoder (with the model's prompt for the kind)
    route0 = SentenceTransformer(str(router_dir.parent / "router-route0"), device="cpu")
    route1 = SentenceTransformer(str(router_dir.parent / "router-route1"), device="cpu")
    want_q = route0.encode(["query: " + t for t in texts], normalize_embeddings=True)
    want_p = route1.encode(["passage: " + t for t in texts], normalize_embeddings=True)
    np.testing.assert_allclose(q, want_q, atol=1e-5)
    np.testing.assert_allclose(p, want_p, atol=1e-5)


def test_symmetric_models_get_no_mapping_and_keep_their_prompts(tiny_model_dir):
    model = models.load(tiny_model_dir, device="cpu")
    assert not has_router(model) and router_mapping(model, ("negative",)) == {}
    texts = ["the river", "der fluss"]
    got = models.encode_batch(model, texts, kind="passage", batch_size=4)
    want = model.encode(["passage: " + t for t in texts], normalize_embeddings=True)
    np.testing.assert_allclose(got, want, atol=1e-6)
    model.prompts["passage"] = ""
    model.default_prompt_name = "query"  # an empty kind prompt means none, never the default prompt
    got = models.encode_batch(model, texts, kind="passage", batch_size=4)
    np.testing.assert_allclose(got, model.encode(texts, prompt="", normalize_embeddings=True), atol=1e-6)


class MappingSpy(TrainerCallback):
    def __init__(self) -> None:
        self.mapping = None

    def on_train_begin(self, args, state, control, train_dataloader=None, **kwargs):
        self.mapping = dict(train_dataloader.collate_fn.router_mapping)


@pytest.mark.slow
def test_training_sends_each_column_down_its_route(router_dir, tmp_path):
    from polyret.training import train
    from polyret.training.config import TrainConfig

    rng = random.Random(0)
    words = "the capital city of river year country der die stadt fluss la ciudad".split()
    with open(tmp_path / "pairs.jsonl", "w", encoding="utf-8") as fh:
        for g in range(24):
            for lang in ("de", "en"):
                row = {"id": f"g{g}", "lang": lang, "query": " ".join(rng.choices(words, k=4)),
                       "positive": " ".join(rng.choices(words, k=8)), "negative": " ".join(rng.choices(words, k=6))}  # fmt: skip
                fh.write(json.dumps(row) + "\n")
    spy = MappingSpy()
    config = TrainConfig(model=str(router_dir), train=[str(tmp_path / "pairs.jsonl")], output_dir=str(tmp_path / "run"),
                         batch_size=8, lr=1e-3, warmup_ratio=0.0, max_steps=3, logging_steps=1, precision="fp32",
                         seed=0, hard_negatives=True)  # fmt: skip
    out = train(config, callbacks=[spy])
    assert spy.mapping == {"anchor": "query", "positive": "document", "negative": "document"}
    from huggingface_hub import ModelCard

    card = ModelCard.load(out / "README.md")  # the trained model's card carries the hub metadata
    assert card.data.language == ["de", "en"] and "strategy-hybrid" in card.data.tags
    before, after = _route_weights(router_dir), _route_weights(out)
    for route in ("query", "document"):  # both routes learned: the anchors went down the query route
        changed = [k for k in before[route] if not torch.equal(before[route][k], after[route][k])]
        assert changed, route


def _route_weights(folder: Path) -> dict[str, dict[str, torch.Tensor]]:
    """Route name -> the weights of that route's transformer, read from the saved folder."""
    config = json.loads((folder / "router_config.json").read_text())
    out = {}
    for route, module_names in config["structure"].items():
        found = {}
        for name in module_names:
            for f in (folder / name).rglob("*.safetensors"):
                found.update({f"{name}/{k}": v for k, v in load_file(str(f)).items()})
        out[route] = found
    return out


def test_cache_keeps_a_router_models_query_and_passage_rows_apart(router_dir, tmp_path):
    from polyret.encode import EmbeddingCache, encode

    model = models.load(str(router_dir), device="cpu")
    model.prompts = {"query": "", "passage": ""}  # same text, same (empty) prompt, two routes
    texts = ["der fluss", "la ciudad"]
    cache = EmbeddingCache(tmp_path / "cache")
    q = encode(model, texts, kind="query", cache=cache)
    p = encode(model, texts, kind="passage", cache=cache)
    assert not np.allclose(q, p, atol=1e-3)
    np.testing.assert_allclose(p, encode(model, texts, kind="passage", cache=None), atol=1e-5)
