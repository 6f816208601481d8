"""polyret.training: config, losses and train() on a tiny random BERT (CPU, a few steps per run)."""

from __future__ import annotations

import json
import os
import random
from pathlib import Path

import pytest
import torch
from transformers import TrainerCallback

from polyret.batchlog import batch_log_path, read_batch_log
from polyret.data.records import Benchmark, Candidate, DataError, Query
from polyret.paths import COMPLETE_MARKER, is_complete
from polyret.training import TrainingDiverged, train
from polyret.training.__main__ import main
from polyret.training.checkpoints import (
    checkpoint_is_complete,
    clean_checkpoints,
    last_checkpoint,
)
from polyret.training.config import RECIPES, ConfigError, TrainConfig
from polyret.training.dev import best_metric_name
from polyret.training.losses import LengthSortedCachedMNRL, LengthSortedMNRL, build_loss
from polyret.training.trainer import freeze_word_embeddings
from tests.helpers.models import build_tiny_model
from tests.helpers.pairs import PAIR_LANGS as LANGS
from tests.helpers.pairs import PAIR_WORDS as WORDS
from tests.helpers.training import StopAt, small_config, weights


def fixed_batch_loss(model_dir: Path, pairs_file: Path) -> float:
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.losses import (
        MultipleNegativesRankingLoss,
    )

    rows = [json.loads(line) for line in pairs_file.read_text().splitlines()[:48:3]]  # 16 groups, German
    model = SentenceTransformer(str(model_dir), device="cpu")
    model.eval()
    loss = MultipleNegativesRankingLoss(model)
    feats = [model.preprocess(["query: " + r["query"] for r in rows]),
             model.preprocess(["passage: " + r["positive"] for r in rows])]  # fmt: skip
    with torch.no_grad():
        return float(loss(feats, None))


class PromptSpy(TrainerCallback):
    def __init__(self) -> None:
        self.prompts = None

    def on_train_begin(self, args, state, control, train_dataloader=None, **kwargs):
        self.prompts = dict(train_dataloader.collate_fn.prompts)


# ------------------------------------------------------------------------------------------- config
def test_recipes_and_overrides():
    paper = RECIPES["paper"]
    assert (paper.lr, paper.weight_decay, paper.batch_size, paper.alpha, paper.strategy) == (3e-5, 0.01, 100, 0.5, "hybrid")
    cpu = RECIPES["cpu"]
    assert cpu.batch_size == 32 and cpu.max_seq_length == 128 and cpu.freeze_word_embeddings and cpu.max_steps
    c = cpu.with_overrides(["alpha=0.25", "languages=de,en", "max-steps=none", "hard_negatives=yes", "lr=1e-4"])
    assert (c.alpha, c.languages, c.max_steps, c.hard_negatives, c.lr) == (0.25, ("de", "en"), None, True, 1e-4)
    assert c.scale == pytest.approx(20.0) and c.recipe == "cpu"


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"alpha": 1.5}, "alpha must be in"),
        ({"strategy": "zigzag"}, "strategy must be one of"),
        ({"batch_size": 1}, "batch_size must be >= 2"),
        ({"temperature": 0}, "temperature must be > 0"),
        ({"precision": "fp8"}, "precision must be one of"),
        ({"languages": "de"}, "needs at least 2 languages"),
        ({"batch_scope": "node"}, "batch_scope must be one of"),
        ({"grad_accum_steps": 0}, "grad_accum_steps must be >= 1"),
        ({"lora_r": 4, "freeze_word_embeddings": True}, "LoRA already trains only the adapter"),
        ({"eval_steps": 7}, "multiple of eval_steps"),
        ({"nonsense": 1}, "unknown training config key"),
        ({"max_steps": "ten"}, "max_steps must be an integer, got 'ten'"),
        ({"languages": "DE,en"}, "language code 'DE' is not canonical; write 'de'"),
        ({"embed_chunk_size": 0}, "embed_chunk_size must be >= 1"),
        ({"dev_pairs": 8}, "'dev_pairs' was renamed to 'dev_groups'"),
    ],
)
def test_bad_config_errors(overrides, message):
    with pytest.raises(ConfigError, match=message):
        RECIPES["cpu"].replace(**overrides)


def test_config_files(tmp_path):
    yaml_file = tmp_path / "run.yaml"
    yaml_file.write_text("recipe: cpu\nalpha: 0.3\ntrain: [a.jsonl, xquad-r:train]\nmax_steps: 7\n")
    c = TrainConfig.from_file(yaml_file)
    assert (c.recipe, c.alpha, c.train, c.max_steps, c.batch_size) == ("cpu", 0.3, ("a.jsonl", "xquad-r:train"), 7, 32)
    json_file = tmp_path / "run.json"
    json_file.write_text(json.dumps({"config": c.to_dict()}))
    assert TrainConfig.from_file(json_file) == c
    (tmp_path / "bad.yaml").write_text("alpha: [unclosed\n")
    with pytest.raises(ConfigError, match="bad.yaml"):
        TrainConfig.from_file(tmp_path / "bad.yaml")
    (tmp_path / "typo.yaml").write_text("alpah: 0.3\n")
    with pytest.raises(ConfigError, match=r"typo.yaml.*alpah"):
        TrainConfig.from_file(tmp_path / "typo.yaml")
    with pytest.raises(ConfigError, match="cannot read"):
        TrainConfig.from_file(tmp_path / "missing.yaml")


def test_an_old_config_with_dev_pairs_is_told_the_new_name(tmp_path):
    (tmp_path / "old.yaml").write_text("recipe: cpu\ndev_pairs: 16\n")
    with pytest.raises(ConfigError, match=r"old.yaml: .*'dev_pairs' was renamed to 'dev_groups'"):
        TrainConfig.from_file(tmp_path / "old.yaml")
    with pytest.raises(ConfigError, match="renamed to 'dev_groups'"):
        TrainConfig().with_overrides(["dev-pairs=4"])
    assert TrainConfig().with_overrides(["dev_groups=4", "save_steps=2"]).dev_groups == 4
    assert RECIPES["paper"].dev_groups == 208 and RECIPES["cpu"].dev_groups == 64


def test_chunk_sizes_have_one_meaning_each(tiny_model):
    """``mini_batch_size`` is GradCache's mini-batch; the plain length-sorted loss chunks by ``embed_chunk_size``."""
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(tiny_model), device="cpu")
    plain = build_loss(model, TrainConfig(embed_chunk_size=3))
    cached = build_loss(model, TrainConfig(cached_loss=True, embed_chunk_size=3, mini_batch_size=5))
    assert isinstance(plain, LengthSortedMNRL) and plain.chunk_size == 3
    assert isinstance(cached, LengthSortedCachedMNRL) and cached.mini_batch_size == 5


# -------------------------------------------------------------------------------------------- losses
def test_length_sorted_cached_loss_equals_plain_loss(tiny_model):
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(tiny_model), device="cpu")
    model.eval()  # no dropout: the three losses must agree exactly up to float error
    rng = random.Random(1)
    cols = [[" ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 40))) for _ in range(13)] for _ in range(3)]
    results = {}
    for name, overrides in [("plain", {"length_sorted": False}),
                            ("plain_sorted", {"length_sorted": True}),
                            ("cached", {"cached_loss": True, "length_sorted": False}),
                            ("sorted", {"cached_loss": True, "length_sorted": True})]:  # fmt: skip
        config = TrainConfig(model="x", mini_batch_size=4, embed_chunk_size=4, **overrides)
        loss_fn = build_loss(model, config)
        model.zero_grad()
        value = loss_fn([model.preprocess(c) for c in cols], None)
        value.backward()
        grads = torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None])
        results[name] = (float(value.detach()), grads)
    assert isinstance(build_loss(model, TrainConfig(cached_loss=True)), LengthSortedCachedMNRL)
    assert isinstance(build_loss(model, TrainConfig()), LengthSortedMNRL)
    assert type(build_loss(model, TrainConfig(length_sorted=False))).__name__ == "MultipleNegativesRankingLoss"
    for name in ("plain_sorted", "cached", "sorted"):
        assert results[name][0] == pytest.approx(results["plain"][0], abs=1e-5)
        torch.testing.assert_close(results[name][1], results["plain"][1], atol=2e-5, rtol=1e-4)
    assert results["plain"][1].abs().sum() > 0


def test_split_dev_holds_out_whole_groups(pairs_file, tmp_path, monkeypatch):
    from polyret.data.pairs import load_pair_source
    from polyret.training.pair_sources import split_dev_sources

    monkeypatch.setenv("POLYRET_CACHE_DIR", str(tmp_path / "cache"))
    pairs = load_pair_source(str(pairs_file))
    train_part, dev_part = split_dev_sources([pairs], 10, seed=1)
    assert sum(len(s) for s in dev_part) == 10 and len(train_part[0]) == len(pairs) - 10
    train_groups, dev_groups = train_part[0].to_pair_groups().groups, dev_part[0].to_pair_groups().groups
    assert not set(train_groups) & set(dev_groups) and all(len(v) == 3 for v in dev_groups.values())
    assert split_dev_sources([pairs], 10, seed=1)[1][0].to_pair_groups().groups.keys() == dev_groups.keys()
    with pytest.raises(ConfigError, match="leaves no training data"):
        split_dev_sources([pairs], len(pairs), seed=1)


# --------------------------------------------------------------------------------------------- train
def test_train_lowers_loss_changes_weights_writes_card(tiny_model, pairs_file, tmp_path):
    spy = PromptSpy()
    config = small_config(tiny_model, pairs_file, tmp_path / "run", max_steps=10, save_steps=5, dev_groups=16)
    out = train(config, callbacks=[spy])
    assert out == tmp_path / "run" / "model"
    before, after = weights(tiny_model), weights(out)
    assert any(not torch.equal(before[k], after[k]) for k in before)
    assert spy.prompts == {"anchor": "query: ", "positive": "passage: "}

    card = (out / "README.md").read_text()
    for needle in ("## polyret training", "strategy: **hybrid**", "alpha = 0.5", str(pairs_file), "de, en, es",
                   "10 optimizer steps", "recipe: custom", "eval_loss"):  # fmt: skip
        assert needle in card
    saved = json.loads((out / "polyret_train.json").read_text())
    assert TrainConfig.from_dict(saved["config"]) == config
    assert saved["global_step"] == 10 and saved["dev_groups"] == 16 and saved["best_checkpoint"].startswith("checkpoint-")
    assert TrainConfig.from_file(out) == config

    log = read_batch_log(batch_log_path(tmp_path / "run"))
    assert [e["step"] for e in log] == list(range(1, 11))
    assert {e["kind"] for e in log} <= {"mono", "cross"} and all(e["size"] == 8 for e in log)
    assert all(e["distinct_groups"] == 8 for e in log)  # never a translation as an in-batch negative
    assert (out / "batches.jsonl").read_text() == batch_log_path(tmp_path / "run").read_text()
    assert not list((tmp_path / "run").glob(".model*"))  # no temp folders left behind


@pytest.mark.skipif(torch.cuda.is_available(), reason="the CPU answer")
def test_auto_trains_in_bf16_where_the_cpu_has_it_and_records_it(tiny_model, pairs_file, tmp_path, monkeypatch):
    from polyret import precision

    monkeypatch.delenv(precision.CPU_BF16_ENV)  # conftest's pin off: a CPU with AMX
    monkeypatch.setattr(precision, "_cpu_capabilities", lambda: {"amx_bf16": True})
    out = train(small_config(tiny_model, pairs_file, tmp_path / "run", max_steps=2, precision="auto"))
    saved = json.loads((out / "polyret_train.json").read_text())
    assert (saved["precision"], saved["precision_reason"]) == ("bf16", "auto: CPU has AMX")
    assert saved["config"]["precision"] == "auto"  # the request stays in the config, the resolved one beside it
    assert "precision bf16" in (out / "README.md").read_text()
    plan = json.loads((tmp_path / "run" / "polyret_train.json").read_text())["plan"]  # the run folder's record
    assert plan["precision"] == "bf16"


def test_frozen_word_embeddings_stay_unchanged(tiny_model, pairs_file, tmp_path):
    config = small_config(tiny_model, pairs_file, tmp_path / "run", max_steps=4, freeze_word_embeddings=True,
                          strategy="mono", hard_negatives=True, cached_loss=True, mini_batch_size=4)  # fmt: skip
    out = train(config)
    before, after = weights(tiny_model), weights(out)
    word = [k for k in before if "word_embeddings" in k]
    assert word and all(torch.equal(before[k], after[k]) for k in word)
    # every other weight matrix the encoder uses moves (the pooler is unused by mean pooling)
    others = [k for k in before if k not in word and k.endswith("weight") and "pooler" not in k]
    assert len(others) > 10 and all(not torch.equal(before[k], after[k]) for k in others)
    assert all(e["kind"] == "mono" for e in read_batch_log(batch_log_path(tmp_path / "run")))
    assert json.loads((out / "polyret_train.json").read_text())["frozen_parameters"] == before[word[0]].numel()


def test_freeze_word_embeddings_counts(tiny_model):
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(tiny_model), device="cpu")
    n = freeze_word_embeddings(model)
    emb = model[0].auto_model.get_input_embeddings().weight
    assert n == emb.numel() and not emb.requires_grad
    assert all(p.requires_grad for name, p in model.named_parameters() if "word_embeddings" not in name)


def test_resume_sees_the_same_batches_and_reaches_the_same_weights(tiny_model, pairs_file, tmp_path):
    straight = small_config(tiny_model, pairs_file, tmp_path / "straight", max_steps=6, save_steps=3)
    out_straight = train(straight)
    split = straight.replace(output_dir=str(tmp_path / "split"))
    train(split, callbacks=[StopAt(3)])  # "crashes" after the step-3 checkpoint
    assert last_checkpoint(tmp_path / "split").name == "checkpoint-3"
    out_split = train(split.replace(resume=True))

    log_straight = read_batch_log(batch_log_path(tmp_path / "straight"))
    log_split = read_batch_log(batch_log_path(tmp_path / "split"))
    assert [e["step"] for e in log_split] == list(range(1, 7))
    assert log_split == log_straight
    a, b = weights(out_straight), weights(out_split)
    for key in a:
        torch.testing.assert_close(a[key], b[key], atol=1e-5, rtol=1e-4)
    assert json.loads((out_split / "polyret_train.json").read_text())["resumed_from"] == "checkpoint-3"

    with pytest.raises(ConfigError, match="different config.*alpha"):
        train(split.replace(resume=True, alpha=0.9))


def test_evaluator_picks_the_best_checkpoint(tiny_model, pairs_file, tmp_path):
    calls = []

    def evaluator(model) -> dict[str, float]:  # best at the first evaluation (step 3), worse after
        calls.append(model.training)
        return {"map": 1.0 if len(calls) == 1 else 0.5, "mrr": 0.1}

    config = small_config(tiny_model, pairs_file, tmp_path / "run", dev="toy:dev", save_steps=3,
                          metric_for_best_model="map")  # fmt: skip
    out = train(config, evaluator=evaluator)
    saved = json.loads((out / "polyret_train.json").read_text())
    assert len(calls) == 2 and saved["best_checkpoint"] == "checkpoint-3" and saved["best_metric"] == 1.0
    assert saved["metric_for_best_model"] == "eval_dev_map"
    torch.testing.assert_close(weights(out), weights(tmp_path / "run" / "checkpoints" / "checkpoint-3"))
    assert "dev benchmark: `toy:dev`" in (out / "README.md").read_text()


def test_train_errors_are_clear(tiny_model, pairs_file, tmp_path):
    with pytest.raises(DataError, match="unknown benchmark 'nonsense'"):  # train() builds the dev evaluator
        train(small_config(tiny_model, pairs_file, tmp_path / "a", dev="nonsense", save_steps=3))
    with pytest.raises(ConfigError, match="needs metric_for_best_model"):
        train(small_config(tiny_model, pairs_file, tmp_path / "c", dev="toy", save_steps=3), evaluator=lambda m: 1.0)
    with pytest.raises(ConfigError, match="too small"):
        train(small_config(tiny_model, pairs_file, tmp_path / "b", dev_groups=4, save_steps=3))


def test_training_lowers_the_loss_on_fixed_pairs(tiny_model, pairs_file, tmp_path):
    """20 steps at lr 1e-3 cut the fixed batch's loss by ~23% (2.56 -> 1.98); 10% leaves 2x headroom.

    The model (fixed vocabulary, seeded weights), the pairs and train() are all seeded, so the numbers do
    not depend on what ran before; the final model is the last step (no dev set picking a checkpoint).
    """
    out = train(small_config(tiny_model, pairs_file, tmp_path / "run", max_steps=20, lr=1e-3))
    before, after = fixed_batch_loss(tiny_model, pairs_file), fixed_batch_loss(out, pairs_file)
    assert after < 0.9 * before, (before, after)


def test_tiny_model_is_the_same_in_every_build(tmp_path):
    a, b = build_tiny_model(tmp_path / "a"), build_tiny_model(tmp_path / "b")
    for name in ("tokenizer.json", "model.safetensors"):
        assert (a / name).read_bytes() == (b / name).read_bytes()


# ------------------------------------------------------------------------------- non-finite values
FLOAT_FIELDS = ("lr", "weight_decay", "temperature", "alpha", "warmup_ratio", "epochs")


@pytest.mark.parametrize("key", FLOAT_FIELDS)
@pytest.mark.parametrize("value", ["inf", "nan", "-inf"])
def test_non_finite_hyperparameters_are_refused(key, value):
    with pytest.raises(ConfigError, match=f"{key} must be a finite number"):
        TrainConfig().with_overrides([f"{key}={value}"])
    with pytest.raises(ConfigError, match=f"{key} must be a finite number"):
        TrainConfig.from_dict({key: float(value)})


@pytest.mark.parametrize("overrides, step", [
    ({"temperature": 1e-40}, 1),  # scale 1e40 overflows float32: the loss is NaN at once
    ({"lr": 1e30}, 2),  # the first update makes the weights huge, the second forward pass overflows
])  # fmt: skip
def test_diverging_training_stops_and_writes_no_model(tiny_model, pairs_file, tmp_path, overrides, step):
    config = small_config(tiny_model, pairs_file, tmp_path / "run", max_steps=6, save_steps=1, save_total_limit=None,
                          **overrides)  # fmt: skip
    with pytest.raises(TrainingDiverged, match=f"training diverged at step {step}: .*NaN/inf"):
        train(config)
    assert not (tmp_path / "run" / "model").exists() and not list((tmp_path / "run").glob(".model*"))
    kept = sorted((tmp_path / "run" / "checkpoints").glob("checkpoint-*"))
    assert [p.name for p in kept] == [f"checkpoint-{i}" for i in range(1, step)]  # only finite steps saved
    for ckpt in kept:
        assert all(torch.isfinite(t).all() for t in weights(ckpt).values())


def test_diverged_is_a_user_error_for_the_command_line_but_not_a_config_error():
    from polyret.errors import PolyretError

    assert issubclass(TrainingDiverged, PolyretError) and not issubclass(TrainingDiverged, ConfigError)


# ------------------------------------------------------------------------------- checkpoints
def test_checkpoints_get_a_marker_and_only_complete_ones_count(tiny_model, pairs_file, tmp_path):
    run = tmp_path / "run"
    old_umask = os.umask(0o022)  # a shared machine's default
    try:
        train(small_config(tiny_model, pairs_file, run, max_steps=4, save_steps=2, save_total_limit=None))
    finally:
        os.umask(old_umask)
    ckpts = run / "checkpoints"
    assert sorted(p.name for p in ckpts.iterdir()) == ["checkpoint-2", "checkpoint-4"]  # no staging left
    assert all(is_complete(ckpts / n) for n in ("checkpoint-2", "checkpoint-4")) and is_complete(run / "model")
    assert last_checkpoint(run) == ckpts / "checkpoint-4"
    # under umask 022 others can read every checkpoint and model file (transformers writes the weights
    # 0600 through a temp file; the staging folder's modes are set before the rename)
    hidden = [p for p in [*ckpts.rglob("*"), *(run / "model").rglob("*")] if not p.stat().st_mode & 0o004]
    assert hidden == []

    # a newer folder that is not complete (a half-written one from a crash) is never picked
    junk = ckpts / "checkpoint-6"
    junk.mkdir()
    (junk / "config.json").write_text("{}")
    assert not checkpoint_is_complete(junk) and last_checkpoint(run) == ckpts / "checkpoint-4"
    # a file changed after the marker was written: incomplete
    tokenizer = ckpts / "checkpoint-4" / "tokenizer.json"
    tokenizer.write_bytes(tokenizer.read_bytes()[:100])
    assert last_checkpoint(run) == ckpts / "checkpoint-2"

    # a marker-less checkpoint beside marked ones lost its marker while being deleted: never trusted
    (ckpts / "checkpoint-2" / COMPLETE_MARKER).unlink()
    assert not checkpoint_is_complete(ckpts / "checkpoint-2") and last_checkpoint(run) is None
    # a folder of an older polyret (no marker on any checkpoint) counts if trainer state, weights,
    # optimizer ... are whole
    (ckpts / "checkpoint-4" / COMPLETE_MARKER).unlink()
    (ckpts / "checkpoint-4" / "trainer_state.json").unlink()  # (the torn checkpoint-4 fails the legacy rule too)
    assert last_checkpoint(run) == ckpts / "checkpoint-2"
    model_file = ckpts / "checkpoint-2" / "model.safetensors"
    whole = model_file.read_bytes()
    model_file.write_bytes(whole[: len(whole) // 2])  # torn weights: the safetensors header does not parse
    assert last_checkpoint(run) is None
    model_file.write_bytes(whole)
    assert last_checkpoint(run) == ckpts / "checkpoint-2"
    state = ckpts / "checkpoint-2" / "trainer_state.json"
    state.write_text(state.read_text()[:50])
    assert last_checkpoint(run) is None

    (ckpts / ".tmp-checkpoint-8").mkdir()
    assert sorted(clean_checkpoints(run)) == [".tmp-checkpoint-8", "checkpoint-2", "checkpoint-4", "checkpoint-6"]
    assert list(ckpts.iterdir()) == []


# --------------------------------------------------------------------------- dev evaluator, metric names
def learnable_benchmark(langs=LANGS, n=6) -> Benchmark:
    queries, cands, qrels = [], [], {}
    for i in range(n):
        topic = " ".join(WORDS[(i + j) % len(WORDS)] for j in range(3))
        for lang in langs:
            queries.append(Query(f"q{i}", lang, f"{topic} {lang}w{i}"))
            cands.append(Candidate(f"{lang}:{i}", lang, f"{topic} {lang}w{i} river"))
        qrels[f"q{i}"] = {f"{lang}:{i}": 1 for lang in langs}
    return Benchmark("xquad-r:test", tuple(langs), queries, cands, qrels)


def test_best_metric_is_named_as_the_evaluator_reports_it():
    from polyret.evaluation.evaluator import PolyretEvaluator

    ev = PolyretEvaluator(learnable_benchmark())
    assert ev.primary_metric == "dev_map" and "dev_map" in ev.metric_names() and "dev_multi_map" in ev.metric_names()
    config = TrainConfig(dev="xquad-r:test", save_steps=2)
    assert best_metric_name(config, ev, has_eval_loss=False) == "eval_dev_map"
    for given in ("map", "dev_map", "eval_dev_map"):
        assert best_metric_name(config.replace(metric_for_best_model=given), ev, has_eval_loss=False) == "eval_dev_map"
    assert best_metric_name(config.replace(metric_for_best_model="cross_ndcg@10"), ev,
                            has_eval_loss=False) == "eval_dev_cross_ndcg@10"  # fmt: skip
    with pytest.raises(ConfigError, match="reports no 'eval_dev_mrr'.*eval_dev_map"):
        best_metric_name(config.replace(metric_for_best_model="mrr"), ev, has_eval_loss=False)
    with pytest.raises(ConfigError, match="needs held-out dev pairs"):
        best_metric_name(config.replace(metric_for_best_model="loss"), ev, has_eval_loss=False)
    assert best_metric_name(TrainConfig(dev_groups=4, save_steps=2), None, has_eval_loss=True) == "eval_loss"


def test_train_builds_polyrets_dev_evaluator_and_keeps_the_best_by_its_map(tiny_model, pairs_file, tmp_path,
                                                                        monkeypatch):  # fmt: skip
    import polyret.data

    loaded = []

    def fake_load(benchmark_id, *, data_dir=None, languages=None, **kwargs):
        loaded.append((benchmark_id, languages))
        return learnable_benchmark(tuple(languages or LANGS))

    monkeypatch.setattr(polyret.data, "load_benchmark", fake_load)
    config = small_config(tiny_model, pairs_file, tmp_path / "run", max_steps=4, save_steps=2, dev="xquad-r:test",
                          languages=("de", "en"))  # fmt: skip
    out = train(config)  # no evaluator passed: train() builds PolyretEvaluator for config.dev
    assert loaded == [("xquad-r:test", ["de", "en"])]
    saved = json.loads((out / "polyret_train.json").read_text())
    assert saved["metric_for_best_model"] == "eval_dev_map" and saved["best_checkpoint"] in ("checkpoint-2", "checkpoint-4")
    assert 0.0 <= saved["best_metric"] <= 1.0


def test_options_are_checked_before_the_model_loads(tiny_model, pairs_file, tmp_path, monkeypatch):
    import polyret.training.trainer as train_mod

    def no_model(config):
        raise AssertionError("the model was loaded before the options were checked")

    monkeypatch.setattr(train_mod, "_load_model", no_model)
    with pytest.raises(DataError, match="missing.jsonl"):
        train(small_config(tiny_model, tmp_path / "missing.jsonl", tmp_path / "a"))
    (tmp_path / "file").write_text("x")
    with pytest.raises(ConfigError, match="output_dir .*file/out cannot be used: .*file exists and is not a folder"):
        train(small_config(tiny_model, pairs_file, tmp_path / "file" / "out"))
    with pytest.raises(DataError, match="unknown benchmark 'xquad-r:dev'"):
        train(small_config(tiny_model, pairs_file, tmp_path / "b", dev="xquad-r:dev", save_steps=2))
    with pytest.raises(ConfigError, match="needs held-out dev pairs"):
        train(small_config(tiny_model, pairs_file, tmp_path / "c", save_steps=2, dev="toy",
                           metric_for_best_model="loss"), evaluator=lambda m: 1.0)  # fmt: skip
    with pytest.raises(ConfigError, match="too small"):
        train(small_config(tiny_model, pairs_file, tmp_path / "d", dev_groups=4, save_steps=3))


# ------------------------------------------------------------------------------- command lines
def test_module_main_exits_2_with_a_plain_message(tiny_model, pairs_file, tmp_path, capsys):
    config = tmp_path / "run.yaml"
    config.write_text(f"model: {tiny_model}\ntrain: [{pairs_file}]\noutput_dir: {tmp_path / 'run'}\n"
                      "batch_size: 8\nmax_steps: 2\nprecision: fp32\n")  # fmt: skip
    assert main(["--config", str(config), "dev=nonsense", "save_steps=1"]) == 2
    assert "unknown benchmark 'nonsense'" in capsys.readouterr().err
    assert main(["--config", str(config), "lr=inf"]) == 2
    assert "lr must be a finite number" in capsys.readouterr().err
    assert main(["--config", str(config), "temperature=1e-40"]) == 2
    err = capsys.readouterr().err
    assert "training diverged at step 1" in err and "Traceback" not in err
    assert not (tmp_path / "run" / "model").exists()


def test_cli_train_validates_options_and_set_together(tiny_model, pairs_file, tmp_path):
    from typer.testing import CliRunner

    from polyret.cli import app

    runner = CliRunner()
    base = ["train", "--model", str(tiny_model), "--train", str(pairs_file), "--output", str(tmp_path / "run")]
    result = runner.invoke(app, base + ["--dev", "nonsense", "--set", "save_steps=1"])
    assert result.exit_code == 2, result.output
    assert "unknown benchmark 'nonsense'" in result.output and "save_steps must be set" not in result.output
    result = runner.invoke(app, base + ["--set", "lr=inf"])
    assert result.exit_code == 2 and "lr must be a finite number" in result.output, result.output


def test_a_fresh_run_into_a_folder_with_an_earlier_runs_checkpoints_is_refused(tiny_model, pairs_file, tmp_path):
    run = tmp_path / "run"
    train(small_config(tiny_model, pairs_file, run, max_steps=2, save_steps=2))
    # without resume, the new run's checkpoints would mix with the old ones (and a later resume load those)
    with pytest.raises(ConfigError, match=r"holds checkpoints of an earlier run \(checkpoint-2\); pass --resume"):
        train(small_config(tiny_model, pairs_file, run, max_steps=4, save_steps=2))


def test_a_torn_last_line_of_the_batch_log_does_not_stop_a_resume(tiny_model, pairs_file, tmp_path):
    run = tmp_path / "run"
    train(small_config(tiny_model, pairs_file, run, max_steps=2, save_steps=2))
    log = batch_log_path(run)
    with open(log, "a", encoding="utf-8") as fh:
        fh.write('{"step": 3, "rank": 0, "kind": "mo')  # killed while appending step 3's line
    train(small_config(tiny_model, pairs_file, run, max_steps=4, save_steps=2, resume=True))
    steps = [e["step"] for e in read_batch_log(log)]
    assert steps == sorted(steps) and steps[-1] == 4 and 3 in steps


# ------------------------------------------------------------------------------------------ public API
def test_the_training_package_exports_the_verb_and_stays_light_to_import():
    import subprocess
    import sys

    import polyret.training
    import polyret.training.trainer

    assert polyret.training.train is polyret.training.trainer.train  # the verb, no module shadowing it
    for name in polyret.training.__all__:
        assert getattr(polyret.training, name) is not None, name
    assert set(polyret.training.__all__) <= set(dir(polyret.training))
    code = "import sys, polyret.training; print('torch' in sys.modules, 'sentence_transformers' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]


def test_a_record_polyret_wrote_with_old_keys_is_upgraded_not_refused(tmp_path):
    # polyret_train.json of polyret 0.1.0: dev_pairs, and mini_batch_size that also chunked the plain loss
    old = {"config": {"recipe": "cpu", "dev_pairs": 16, "mini_batch_size": 8, "cached_loss": False}}
    (tmp_path / "polyret_train.json").write_text(json.dumps(old))
    cfg = TrainConfig.from_file(tmp_path)
    assert (cfg.dev_groups, cfg.embed_chunk_size, cfg.mini_batch_size) == (16, 8, 32)
    # a user's own config with the old key is still told the new name
    (tmp_path / "mine.json").write_text(json.dumps(old["config"]))
    with pytest.raises(ConfigError, match="renamed to 'dev_groups'"):
        TrainConfig.from_file(tmp_path / "mine.json")


def test_mini_batch_size_without_cached_loss_names_embed_chunk_size():
    with pytest.raises(ConfigError, match="embed_chunk_size"):
        TrainConfig(mini_batch_size=8)
    assert TrainConfig(mini_batch_size=8, cached_loss=True).mini_batch_size == 8


def test_the_card_states_the_batch_as_batch_scope_counts_it():
    from polyret.training.card import model_card

    info = {"languages": ["de", "en"], "train_groups": 10, "dev_groups": 0, "global_step": 5, "precision": "fp32",
            "loss": "MNRL", "world_size": 8, "global_batch": 104, "per_device_batch": 13, "grad_accum_steps": 1}  # fmt: skip
    card = model_card(TrainConfig(batch_size=100, batch_rounding="nearest"), info)
    assert "5 optimizer steps, each of 104 pairs in all (13 per device x 8 device(s))" in card
    assert "pairs per device" not in card  # the global batch is not a per-device count
    one = model_card(TrainConfig(batch_size=100), info | {"world_size": 1, "global_batch": 100, "per_device_batch": 100})
    assert "each of 100 pairs in all\n" in one
    two = {"world_size": 2, "global_batch": 64, "per_device_batch": 16, "grad_accum_steps": 2}
    per_device = model_card(TrainConfig(batch_size=16, batch_scope="per_device"), info | two)
    assert "each of 16 pairs per device x 2 device(s) x 2 accumulation steps" in per_device
