"""Model cards: training metadata (ISO languages, strategy/alpha/data) and a model-index block of the
evaluation numbers, read back with huggingface_hub's own card parser."""

from __future__ import annotations

import json

import numpy as np
from huggingface_hub import ModelCard
from typer.testing import CliRunner

from polyret.cli import app
from polyret.data.records import Benchmark, Candidate, Query
from polyret.evaluation import score
from polyret.interop.model_card import add_evaluation, training_metadata, write_front_matter
from polyret.paths import is_complete, mark_complete
from polyret.training.config import TrainConfig

ST_README = (
    "---\ntags:\n- sentence-transformers\n- feature-extraction\nlibrary_name: sentence-transformers\n---\n"
    "\n# Model\n\nbody text\n"
)


def _results():
    langs = ("de", "en")
    queries = [Query(f"q{i}", x, f"question {i}") for i in range(6) for x in langs]
    cands = [Candidate(f"{x}:{i}", x, f"answer {i}") for i in range(6) for x in langs]
    bench = Benchmark("tiny", langs, queries, cands, {f"q{i}": {f"{x}:{i}": 1 for x in langs} for i in range(6)})
    rng = np.random.default_rng(0)
    q = rng.normal(size=(len(queries), 8)).astype(np.float32)
    c = rng.normal(size=(len(cands), 8)).astype(np.float32)
    res, _ = score(bench, q, c, measures=["map", "ndcg@10", "recall@10"], model_name="tiny")
    return res


def test_training_metadata_is_what_the_hub_parses(tmp_path):
    (tmp_path / "README.md").write_text(ST_README)
    config = TrainConfig(model="intfloat/multilingual-e5-small", train=("xquad-r:train",), strategy="hybrid", alpha=0.3,
                         output_dir=str(tmp_path / "runs" / "hybrid-a0.3"))  # fmt: skip
    info = {"languages": ["de", "en", "zh"], "global_step": 40, "realized_mono_share": 0.25}
    write_front_matter(tmp_path, training_metadata(config, info))
    card = ModelCard.load(tmp_path / "README.md")
    assert card.data.language == ["de", "en", "zh"]
    assert {"sentence-transformers", "polyret", "strategy-hybrid"} <= set(card.data.tags)
    assert card.data.base_model == "intfloat/multilingual-e5-small"
    assert card.data.model_name == "hybrid-a0.3"  # the training output folder, not "model"
    poly = card.data.to_dict()["polyret"]
    assert poly == {"base_model_spec": "intfloat/multilingual-e5-small", "strategy": "hybrid", "alpha": 0.3,
                    "alpha_schedule": "draw", "realized_mono_share": 0.25,
                    "training_data": ["xquad-r:train"], "languages": ["de", "en", "zh"], "steps": 40}  # fmt: skip
    assert "body text" in card.text


def test_the_builtin_base_is_named_by_its_hub_id_with_a_note(tmp_path):
    (tmp_path / "README.md").write_text(ST_README)
    config = TrainConfig(model="builtin:me5-small", output_dir=str(tmp_path / "run"))
    write_front_matter(tmp_path, training_metadata(config, {"languages": ["de"], "global_step": 1}))
    card = ModelCard.load(tmp_path / "README.md")
    assert card.data.base_model == "intfloat/multilingual-e5-small"
    note = card.data.to_dict()["polyret"]["base_model_note"]
    assert "4-bit" in note and "dequantized" in note


def test_model_index_round_trips_and_the_folder_stays_complete(tmp_path):
    model = tmp_path / "model"
    model.mkdir()
    (model / "README.md").write_text(ST_README)
    mark_complete(model, global_step=3)
    res = _results()
    add_evaluation(model, [res], model_name="org/tiny")
    assert is_complete(model)  # re-marked after the README changed
    card = ModelCard.load(model / "README.md")
    assert card.data.model_name == "org/tiny"
    got = {(r.dataset_config, r.metric_type): r.metric_value for r in card.data.eval_results}
    assert len(got) == len(res.per_setting) * 3
    assert got[("de-en", "ndcg_at_10")] == round(res.per_setting["cross:de-en"]["ndcg@10"], 6)
    assert got[("de-all", "polyret_map")] == round(res.per_setting["multi:de"]["map"], 6)
    assert {r.task_type for r in card.data.eval_results} == {"Retrieval"}
    assert {r.dataset_name for r in card.data.eval_results} >= {"Polyret-tiny-mono (mono:de)", "Polyret-tiny-multi (multi:en)"}
    assert "tags" in card.data.to_dict()  # the earlier front matter is kept


def test_card_command_writes_model_index_and_refuses_another_models_results(tmp_path, tiny_model_dir):
    import shutil

    from polyret import models

    model = tmp_path / "model"
    shutil.copytree(tiny_model_dir, model)
    fp = models.fingerprint(models.load(str(model), device="cpu"))
    res = _results()
    res.fingerprint = fp
    res.write(tmp_path / "eval", heatmap=False)
    runner = CliRunner()
    r = runner.invoke(app, ["card", "--model", str(model), "--results", str(tmp_path / "eval")])
    assert r.exit_code == 0, r.output
    assert ModelCard.load(model / "README.md").data.eval_results
    r = runner.invoke(app, ["card", "--model", str(model), "--results", str(tmp_path / "nope")])
    assert r.exit_code == 2 and "is not a finished evaluation" in r.output
    assert json.loads((tmp_path / "eval" / "results.json").read_text())["model"] == "tiny"
    other = _results()
    other.fingerprint = "0" * 16  # results of another model
    other.write(tmp_path / "other", heatmap=False)
    before = (model / "README.md").read_text()
    r = runner.invoke(app, ["card", "--model", str(model), "--results", str(tmp_path / "other")])
    assert r.exit_code == 2 and "another model's" in r.output and "0000000000000000" in r.output and fp in r.output
    assert (model / "README.md").read_text() == before  # nothing written
