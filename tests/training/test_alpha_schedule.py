"""alpha_schedule: "balanced" gives exactly round(alpha x steps) mono steps, the same on every rank and on
resume; the realized share is what the card and polyret_train.json report (issue 21 §1b)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from polyret.batchlog import realized_mono_share, step_kinds
from polyret.training.config import ConfigError, TrainConfig
from polyret.training.pairs_dataset import PairIndex
from polyret.training.samplers import ParallelBatchSampler, mono_steps
from tests.helpers.pairs import make_source


@pytest.fixture(scope="module")
def index() -> PairIndex:
    return PairIndex([make_source("x", 400)])  # 400 groups / 8 per step: 50 steps per epoch


def _mono_flags(sampler: ParallelBatchSampler, steps: int) -> list[bool]:
    per_epoch = sampler.steps_per_epoch
    flags: list[bool] = []
    for epoch in range(-(-steps // per_epoch)):
        flags += sampler.step_plan(epoch)[1].tolist()
    return flags[:steps]


@pytest.mark.parametrize("alpha", [0.0, 0.25, 0.5, 0.75, 1.0])
@pytest.mark.parametrize("steps", [1, 5, 20, 73])  # 73: across epochs
def test_balanced_has_exactly_round_alpha_times_steps_mono_steps(index, alpha, steps):
    for seed in range(2):
        sampler = ParallelBatchSampler(index, 8, alpha=alpha, alpha_schedule="balanced", total_steps=steps, seed=seed)
        assert sum(_mono_flags(sampler, steps)) == mono_steps(alpha, steps) == int(np.floor(alpha * steps + 0.5))


def test_draw_is_the_papers_noisy_draw_and_stays_the_default(index):
    shares = [sum(_mono_flags(ParallelBatchSampler(index, 8, alpha=0.5, seed=s), 20)) for s in range(30)]
    assert len(set(shares)) > 3 and min(shares) < 10 < max(shares)  # the per-step coin: far from 10 of 20 at times
    assert TrainConfig().alpha_schedule == "draw"


def test_balanced_order_is_seeded_shuffled_and_the_same_on_every_rank(index):
    def plan(seed, rank=None, world_size=1):
        s = ParallelBatchSampler(index, 4, alpha=0.5, alpha_schedule="balanced", total_steps=20, seed=seed,
                                 world_size=world_size, rank=rank)  # fmt: skip
        return [(i.step, i.kind) for i in s.plan(0) if i.step < 20]

    a, b = plan(0), plan(1)
    assert a == plan(0) and a != b  # seeded
    kinds = [k for _, k in dict(a).items()]
    assert kinds != sorted(kinds)  # shuffled, not all mono first
    ranks = [dict(plan(0, rank=r, world_size=2)) for r in range(2)]
    assert ranks[0] == ranks[1]  # every rank sees the same step types


def test_balanced_resumes_to_the_same_batches(index):
    kw = dict(alpha=0.25, alpha_schedule="balanced", total_steps=30, seed=3)
    full = list(ParallelBatchSampler(index, 8, **kw))
    first = ParallelBatchSampler(index, 8, **kw)
    it = iter(first)
    head = [next(it) for _ in range(7)]
    state = first.state_dict(consumed=7)
    again = ParallelBatchSampler(index, 8, **kw)
    again.load_state_dict(state)
    assert head + list(again) == full
    other = ParallelBatchSampler(index, 8, **{**kw, "total_steps": 31})
    with pytest.raises(ValueError, match="another configuration"):
        other.load_state_dict(state)


def test_alpha_schedule_is_validated():
    with pytest.raises(ConfigError, match="alpha_schedule must be one of"):
        TrainConfig(alpha_schedule="even")
    assert TrainConfig().replace(alpha_schedule="balanced").alpha_schedule == "balanced"


def test_realized_share_is_counted_per_optimizer_step(tmp_path):
    log = tmp_path / "batches.jsonl"
    entries = [{"step": 1, "kind": "mono"}, {"step": 1, "kind": "mono"}, {"step": 2, "kind": "cross"},
               {"step": 3, "kind": "cross"}, {"step": 4, "kind": "mono"}]  # fmt: skip
    log.write_text("".join(json.dumps(e) + "\n" for e in entries) + '{"step": 5, "ki')  # a torn last line
    kinds = step_kinds(log)
    assert kinds == {"cross": 2, "mono": 2} and realized_mono_share(kinds) == 0.5
    assert step_kinds(tmp_path / "none.jsonl") == {} and realized_mono_share({}) is None


def test_card_and_metadata_say_the_realized_share():
    from polyret.interop.model_card import training_metadata
    from polyret.training.card import model_card

    config = TrainConfig(alpha=0.5)
    info = {"languages": ["de", "en"], "train_groups": 10, "dev_groups": 0, "global_step": 20, "world_size": 1,
            "precision": "fp32", "loss": "X", "step_kinds": {"cross": 17, "mono": 3}, "realized_mono_share": 0.15}  # fmt: skip
    card = model_card(config, info)
    assert "alpha = 0.5, schedule draw" in card and "realized: 3 of 20 steps monolingual = 0.15" in card
    meta = training_metadata(config, info)["polyret"]
    assert meta["realized_mono_share"] == 0.15 and meta["alpha_schedule"] == "draw"
