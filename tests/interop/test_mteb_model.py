"""A polyret model folder evaluates in ``mteb`` unchanged: a tiny retrieval task built here, no network,
and MTEB's numbers equal polyret's on the same data."""

from __future__ import annotations

import random

import pytest

from polyret.data.records import Benchmark, Candidate, Query
from polyret.evaluation import evaluate

mteb = pytest.importorskip("mteb")

WORDS = "the capital city of river year country people war king church music school water language history".split()


def tiny_data(seed: int = 0, n: int = 12):
    rng = random.Random(seed)
    queries, corpus, qrels = {}, {}, {}
    for i in range(n):
        topic = rng.sample(WORDS, 3)
        queries[f"q{i}"] = " ".join(topic + rng.sample(WORDS, 2))
        corpus[f"d{i}"] = " ".join(topic + rng.sample(WORDS, 5))
        corpus[f"x{i}"] = " ".join(rng.sample(WORDS, 7))
        qrels[f"q{i}"] = {f"d{i}": 1}
    return queries, corpus, qrels


def tiny_task():
    from datasets import Dataset
    from mteb.abstasks.retrieval import AbsTaskRetrieval
    from mteb.abstasks.retrieval_dataset_loaders import RetrievalSplitData
    from mteb.abstasks.task_metadata import TaskMetadata

    queries, corpus, qrels = tiny_data()

    class PolyretTinyRetrieval(AbsTaskRetrieval):
        metadata = TaskMetadata(
            name="PolyretTinyRetrieval", type="Retrieval", main_score="ndcg_at_10", category="t2t", modalities=["text"],
            description="A tiny English retrieval task built in polyret's tests.", reference="https://example.org",
            dataset={"path": "NA", "revision": "NA"}, eval_splits=["test"], eval_langs=["eng-Latn"],
            date=("2024-01-01", "2024-01-01"), dialect=[], domains=[], task_subtypes=[], license="cc-by-4.0",
            annotations_creators="derived", sample_creation="found", bibtex_citation="",
        )  # fmt: skip

        def load_data(self, num_proc=None, **kwargs):
            split = RetrievalSplitData(
                queries=Dataset.from_list([{"id": k, "text": v} for k, v in queries.items()]),
                corpus=Dataset.from_list([{"id": k, "text": v, "title": ""} for k, v in corpus.items()]),
                relevant_docs=qrels,
                top_ranked=None,
            )
            self.dataset = {"default": {"test": split}}
            self.data_loaded = True

    return PolyretTinyRetrieval()


def _mteb_scores(model) -> dict:
    result = mteb.evaluate(model, tasks=[tiny_task()], cache=None, show_progress_bar=False)
    (task_result,) = result.task_results
    return task_result.scores["test"][0]


@pytest.fixture(scope="module")
def polyret_numbers(tiny_model_dir):
    queries, corpus, qrels = tiny_data()
    bench = Benchmark("tiny-en", ("en",), [Query(k, "en", v) for k, v in queries.items()],
                      [Candidate(k, "en", v) for k, v in corpus.items()], qrels, families=("mono",))  # fmt: skip
    ours = evaluate(tiny_model_dir, bench, progress=False, cache=False, device="cpu",
                    measures=["ndcg@10", "map@10", "recall@10", "mrr@10"])  # fmt: skip
    return ours.per_setting["mono:en"]


def _agree(scores: dict, mono: dict) -> None:
    # the same prompts ("query: " / "passage: "), the same cosine ranking: the same numbers
    assert scores["main_score"] == pytest.approx(mono["ndcg@10"], abs=1e-4)
    assert scores["map_at_10"] == pytest.approx(mono["map@10"], abs=1e-4)
    assert scores["recall_at_10"] == pytest.approx(mono["recall@10"], abs=1e-4)
    assert scores["mrr_at_10"] == pytest.approx(mono["mrr@10"], abs=1e-4)
    assert 0 < mono["ndcg@10"] < 1


def test_a_polyret_model_folder_runs_in_mteb_unchanged_and_agrees_with_polyret(tiny_model_dir, polyret_numbers, tmp_path):
    import json
    import warnings

    from sentence_transformers import SentenceTransformer

    from polyret import models
    from polyret.training.card import write_final_model
    from polyret.training.config import TrainConfig

    folder = tmp_path / "run" / "model"
    info = {"languages": ["en"], "train_groups": 1, "dev_groups": 0, "global_step": 1, "world_size": 1, "precision": "fp32",
            "loss": "InfoNCE"}  # fmt: skip
    config = TrainConfig(model=tiny_model_dir, output_dir=str(tmp_path / "run"))
    write_final_model(
        models.load(tiny_model_dir, device="cpu"), folder, config, info, tmp_path / "none.jsonl"
    )  # the trainer's save
    prompts = json.loads((folder / "config_sentence_transformers.json").read_text())["prompts"]
    assert prompts == {"query": "query: ", "document": "passage: "}  # no "passage" key MTEB rejects
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        scores = _mteb_scores(SentenceTransformer(str(folder), device="cpu"))
    assert not [w for w in caught if "passage is not valid" in str(w.message)]
    _agree(scores, polyret_numbers)


def test_load_for_mteb_settles_prompts_of_any_spec(tiny_model_dir, polyret_numbers):
    from polyret.interop.mteb_model import load_for_mteb

    model = load_for_mteb(tiny_model_dir, device="cpu")  # this folder declares "passage" only
    assert model.prompts["document"] == "passage: " and "passage" not in model.prompts
    _agree(_mteb_scores(model), polyret_numbers)


def test_two_models_through_mtebs_result_cache_each_get_their_own_scores(tiny_model_dir, tmp_path):
    import torch

    from polyret import models
    from polyret.interop.mteb_model import load_for_mteb

    other = tmp_path / "runs" / "other" / "model"
    changed = models.load(tiny_model_dir, device="cpu")
    with torch.no_grad():
        for p in changed.parameters():
            p.add_(torch.randn_like(p) * 0.5, alpha=1.0) if p.dim() > 1 else None
    changed.save(str(other))
    (other / "polyret_train.json").write_text("{}")
    a, b = load_for_mteb(tiny_model_dir, device="cpu"), load_for_mteb(str(other), device="cpu")
    assert a.model_card_data.model_name == "local/tiny-bert" and b.model_card_data.model_name == "local/other"
    assert a.model_card_data.base_model_revision == models.fingerprint(models.load(tiny_model_dir, device="cpu"))
    assert a.model_card_data.base_model_revision != b.model_card_data.base_model_revision
    own_b = _mteb_scores(b)["main_score"]
    cache = mteb.ResultCache(tmp_path / "mteb-cache")
    first = mteb.evaluate(a, tasks=[tiny_task()], cache=cache, show_progress_bar=False).task_results[0]
    second = mteb.evaluate(b, tasks=[tiny_task()], cache=cache, show_progress_bar=False).task_results[0]
    assert second.scores["test"][0]["main_score"] == pytest.approx(own_b, abs=1e-9)  # not the first model's
    assert first.scores["test"][0]["main_score"] != pytest.approx(own_b, abs=1e-6)
    loaded = cache.load_results(include_remote=False)
    assert {m.model_name for m in loaded.model_results} >= {"local/tiny-bert", "local/other"}


def test_a_trained_folder_saves_only_prompt_types_mteb_knows(tiny_model_dir, tmp_path):
    import json

    from polyret import models
    from polyret.interop.mteb_model import mteb_prompts

    model = models.load(tiny_model_dir, device="cpu")
    assert set(model.prompts) == {"query", "passage", "document"}
    assert mteb_prompts(model.prompts) == {"query": "query: ", "document": "passage: "}
    model.prompts = mteb_prompts(model.prompts)  # what write_final_model saves
    model.save(str(tmp_path / "m"))
    saved = json.loads((tmp_path / "m" / "config_sentence_transformers.json").read_text())["prompts"]
    assert set(saved) == {"query", "document"}
    again = models.load(str(tmp_path / "m"), device="cpu")  # polyret reads the passage prompt back from "document"
    assert again.prompts["passage"] == "passage: " and models.fingerprint(again) == models.fingerprint(
        models.load(tiny_model_dir, device="cpu")
    )
