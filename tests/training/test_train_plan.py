"""polyret.training.plan: what a config means on N devices (batch, negatives, steps, schedule, memory),
and ``--dry-run`` of ``polyret train`` / ``polyret experiment`` (the paper preset at a simulated world size 8)."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from typer.testing import CliRunner

from polyret.cli import app
from polyret.training.config import RECIPES, ConfigError, TrainConfig
from polyret.training.memory import KNOWN_CONFIGS, estimate_memory, model_shape
from polyret.training.plan import dry_run, resolve_batch
from tests.helpers.models import build_tiny_model
from tests.helpers.pairs import MMARCO_WORDS as WORDS
from tests.helpers.pairs import PAPER_LANGS, write_mmarco, write_pairs


# ------------------------------------------------------------------------------------------ batch
@pytest.mark.parametrize("world, per_device", [(1, 100), (2, 50), (4, 25), (5, 20)])
def test_a_global_batch_is_split_over_the_devices(world, per_device):
    plan = resolve_batch(TrainConfig(batch_size=100), world)
    assert (plan.per_device, plan.global_batch, plan.rounded) == (per_device, 100, False)
    assert plan.gather is (world > 1) and plan.negatives_batch == 100  # a step's negatives are its batch


def test_a_global_batch_that_does_not_divide_says_what_to_change():
    expected = (r"100 does not divide by world_size 8 x grad_accum_steps 1 = 8: set batch_size=96 \(12 per device\) "
                r"or batch_size=104 \(13 per device\).*1, 2, 4, 5, 10, 20, 25, 50")  # fmt: skip
    with pytest.raises(ConfigError, match=expected):
        resolve_batch(TrainConfig(batch_size=100), 8)
    nearest = resolve_batch(TrainConfig(batch_size=100, batch_rounding="nearest"), 8)
    assert (nearest.per_device, nearest.global_batch, nearest.rounded) == (13, 104, True)
    assert resolve_batch(TrainConfig(batch_size=100, batch_rounding="nearest"), 7).global_batch == 98
    with pytest.raises(ConfigError, match="smaller than world_size 8"):
        resolve_batch(TrainConfig(batch_size=4), 8)


def test_per_device_scope_and_accumulation():
    per = resolve_batch(TrainConfig(batch_size=100, batch_scope="per_device"), 8)
    assert (per.per_device, per.global_batch, per.negatives_batch) == (100, 800, 800)
    accum = resolve_batch(TrainConfig(batch_size=100, grad_accum_steps=5), 2)
    assert (accum.per_device, accum.micro_batch, accum.global_batch) == (10, 20, 100)
    off = resolve_batch(TrainConfig(batch_size=100, gather_across_devices=False), 4)
    assert not off.gather and off.negatives_batch == 25
    with pytest.raises(ConfigError, match="leaves no in-batch negative"):
        resolve_batch(TrainConfig(batch_size=8, gather_across_devices=False), 8)


# ------------------------------------------------------------------------------------- dry run
@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "model")


@pytest.fixture(scope="module")
def pairs_file(tmp_path_factory) -> Path:
    return write_pairs(tmp_path_factory.mktemp("pairs") / "pairs.jsonl", 60)


def test_source_size_checks_scale_with_the_world_size_and_say_what_to_change(tiny_model, pairs_file, tmp_path):
    config = TrainConfig(model=str(tiny_model), train=(str(pairs_file),), output_dir=str(tmp_path), batch_size=16,
                         batch_scope="per_device", strategy="cross", max_steps=4)  # fmt: skip
    assert dry_run(config, world_size=2).batch.global_batch == 32
    with pytest.raises(ConfigError, match=r"at world size 8 \(global batch 128 = 16 per device\).*batch_scope=global"):
        dry_run(config, world_size=8)
    plan = dry_run(config.replace(batch_scope="global"), world_size=8)
    assert (plan.batch.per_device, plan.batch.global_batch, plan.batch.gather) == (2, 16, True)


def test_eval_and_save_steps_are_derived_from_the_run_length(tiny_model, pairs_file, tmp_path):
    base = TrainConfig(model=str(tiny_model), train=(str(pairs_file),), output_dir=str(tmp_path), batch_size=8,
                       dev_groups=8, epochs=3.0)  # fmt: skip
    plan = dry_run(base, world_size=1)
    assert plan.steps_per_epoch == 52 // 8 and plan.total_steps == 3 * (52 // 8)
    assert plan.eval_steps == plan.save_steps == 2 and plan.dev_per_device == 8  # ceil(18 / 10)
    assert plan.warmup_steps == 2 and not plan.warnings
    late = dry_run(base.replace(save_steps=500), world_size=1)
    assert late.save_steps == 500 and "never fires in a run of 18 steps" in late.warnings[0]
    with pytest.raises(ConfigError, match=r"dev_groups=8 is too small for one dev batch of 16 groups"):
        dry_run(base.replace(batch_size=16), world_size=2)


def test_the_memory_estimate_reacts_to_each_saving_as_it_should(tiny_model):
    shape = model_shape(str(tiny_model))
    assert shape is not None and shape.hidden == 32 and shape.layers == 2 and "config.json" in shape.source
    kw = dict(per_device_batch=100, columns=2, seq_length=128, precision="fp32", mini_batch_size=10)
    full = estimate_memory(shape, cached_loss=False, gradient_checkpointing=False, **kw)
    cached = estimate_memory(shape, cached_loss=True, gradient_checkpointing=False, **kw)
    ckpt = estimate_memory(shape, cached_loss=False, gradient_checkpointing=True, **kw)
    half = estimate_memory(shape, cached_loss=False, gradient_checkpointing=False, **{**kw, "precision": "bf16"})
    assert full.activations == 20 * cached.activations  # 200 texts alive vs one mini-batch of 10
    assert ckpt.activations < full.activations and half.activations * 2 == full.activations
    assert full.weights == 4 * shape.parameters and full.optimizer == 8 * shape.parameters
    lora = estimate_memory(shape, cached_loss=True, gradient_checkpointing=False, trainable_parameters=1000, **kw)
    assert (lora.gradients, lora.optimizer, lora.weights) == (4000, 8000, full.weights)


def test_xlm_roberta_large_shape_offline_is_its_published_size():
    shape = model_shape("FacebookAI/xlm-roberta-large")  # the hub is unreachable in tests: polyret's table
    assert shape is not None and "offline" in shape.source
    assert 559_000_000 < shape.parameters < 561_000_000  # XLM-R large: 560M parameters
    assert shape.embedding_parameters == KNOWN_CONFIGS["FacebookAI/xlm-roberta-large"]["vocab_size"] * 1024


def paper_config_file(tmp_path: Path) -> Path:
    """The paper preset on local files: a tiny mMARCO copy plus a translated-QA JSONL file."""
    mmarco = write_mmarco(tmp_path / "mmarco", 400)
    qa = tmp_path / "qa.jsonl"
    rng = random.Random(1)
    with open(qa, "w", encoding="utf-8") as fh:
        for g in range(300):
            topic = " ".join(rng.choice(WORDS) for _ in range(4))
            for lang in PAPER_LANGS:
                fh.write(json.dumps({"id": f"qa{g}", "lang": lang, "query": f"{topic}?", "positive": f"{topic} {lang}"}) + "\n")
    config = {"preset": "paper", "train": [f"mmarco:{mmarco}", str(qa)], "output": str(tmp_path / "exp"), "seeds": 1}
    path = tmp_path / "paper.json"
    path.write_text(json.dumps(config))
    return path


def test_paper_preset_dry_run_resolves_at_world_size_8(tmp_path):
    from polyret.experiment import ExperimentConfig
    from polyret.experiment.plan import plan_experiment

    config = ExperimentConfig.from_file(paper_config_file(tmp_path))
    plan = plan_experiment(config, world_size=8)
    assert [name for name, _, _ in plan.runs] == ["mono", "cross", "hybrid", "mixed", "hybrid-a0.4", "hybrid-a0.6"]
    assert plan.trainings == 6 and plan.evaluations == 7 * 10
    hybrid = dict((name, p) for name, _, p in plan.runs)["hybrid"]
    b = hybrid.batch
    assert (b.world_size, b.per_device, b.global_batch, b.gather, b.rounded) == (8, 13, 104, True, True)
    # 208 dev groups drawn across both sources; the QA file's share (< one dev batch of 104) trains instead
    assert 104 <= hybrid.dev_groups < 208 and hybrid.train_groups + hybrid.dev_groups == 400 + 300
    assert hybrid.steps_per_epoch == sum(s.steps_per_epoch for s in hybrid.sources) >= 2
    assert hybrid.eval_steps == hybrid.save_steps == 1  # 10 evaluations requested, fewer steps than that
    assert {s.languages for s in hybrid.sources} == {PAPER_LANGS}
    memory = hybrid.memory
    assert memory is not None and 559e6 < memory.shape.parameters < 561e6
    assert memory.sequences_at_once == 13 and memory.seq_length == 512  # a column's 13 texts: one GradCache chunk
    assert memory.total < 80 * 1024**3  # batch 13 per device of XLM-R large with GradCache fits an 80 GB GPU
    one = plan_experiment(config, world_size=1).runs[2][2]
    assert (one.batch.per_device, one.batch.global_batch, one.batch.rounded) == (100, 100, False)
    assert one.memory.sequences_at_once == 32 and one.memory.total < 80 * 1024**3  # batch 100 on one GPU too
    assert not (tmp_path / "exp").exists()  # nothing written


def test_cli_dry_runs(tmp_path, tiny_model, pairs_file):
    runner = CliRunner()
    result = runner.invoke(app, ["experiment", "--config", str(paper_config_file(tmp_path)), "--dry-run", "--world-size", "8"])
    assert result.exit_code == 0, result.output
    assert "batch: 104 pairs per optimizer step = 13 per device x 8 device(s)" in result.output
    assert "rounded" in result.output and "memory:" in result.output and "nothing trained" in result.output
    one = runner.invoke(app, ["experiment", "--config", str(paper_config_file(tmp_path / "k")), "--dry-run", "--world-size",
                              "8", "--set", "max_triples_per_query=1"])  # fmt: skip
    assert one.exit_code == 0, one.output  # the README's way to keep one mMARCO triple per query
    base = ["train", "--model", str(tiny_model), "--train", str(pairs_file), "--output", str(tmp_path / "run")]
    result = runner.invoke(app, base + ["--batch-size", "8", "--dry-run", "--world-size", "2", "--set", "max_steps=5"])
    assert result.exit_code == 0, result.output
    assert "8 pairs per optimizer step = 4 per device x 2 device(s)" in result.output and "5 in all" in result.output
    assert not (tmp_path / "run").exists()
    result = runner.invoke(app, base + ["--world-size", "2"])
    assert result.exit_code == 2 and "--world-size only plans" in result.output
    result = runner.invoke(app, base + ["--batch-size", "9", "--dry-run", "--world-size", "2"])
    assert result.exit_code == 2 and "batch_size 9 does not divide by world_size 2" in result.output


def test_the_paper_recipe_states_its_batch_semantics():
    paper = RECIPES["paper"]
    assert (paper.batch_size, paper.batch_scope, paper.batch_rounding, paper.cached_loss) == (100, "global", "nearest", True)
    assert paper.save_steps is None and paper.eval_points == 10 and paper.gather_across_devices is None


def test_dry_run_draws_the_batches_the_run_would_fail_on(tmp_path, tiny_model):
    # 20 distinct positives, but group i's hard negative is group i+1's positive: at most 10 fit one batch,
    # which the sampler finds only when it draws a batch; the dry run draws them as the run would
    ring = tmp_path / "ring.jsonl"
    with open(ring, "w", encoding="utf-8") as fh:
        for i in range(20):
            for lang in ("de", "en"):
                nxt = (i + 1) % 20
                row = {"id": f"g{i}", "lang": lang, "query": f"q{i} {lang}", "positive": f"p{i} {lang}",
                       "negative": f"p{nxt} {lang}", "positive_id": f"P{i}", "negative_id": f"P{nxt}"}  # fmt: skip
                fh.write(json.dumps(row) + "\n")
    base = ["train", "--model", str(tiny_model), "--train", str(ring), "--strategy", "mixed", "--output",
            str(tmp_path / "run"), "--set", "negatives=1", "--set", "dev_groups=0", "--set", "max_steps=3",
            "--dry-run"]  # fmt: skip
    result = CliRunner().invoke(app, [*base, "--batch-size", "12"])
    assert result.exit_code == 2, result.output
    assert "a batch of the run cannot be formed" in result.output and "20 distinct passages" in result.output
    result = CliRunner().invoke(app, [*base, "--batch-size", "6"])
    assert result.exit_code == 0, result.output
    assert not (tmp_path / "run").exists()
