"""A real (tiny) training: a same-size edit of the newest checkpoint's trainer_state.json is not resumed from
(the run falls back to the previous complete checkpoint and reaches the straight run's weights), and a
balanced hybrid run records exactly round(alpha x steps) mono steps (issue 21 §1b, §2)."""

from __future__ import annotations

import json
import logging

import pytest
import torch

from polyret.batchlog import batch_log_path, read_batch_log
from polyret.training import train
from polyret.training.checkpoints import last_checkpoint
from tests.helpers.training import StopAt, small_config, weights


@pytest.mark.slow
def test_an_edited_checkpoint_is_passed_over_for_the_previous_one(tiny_model, pairs_file, tmp_path, caplog):
    kw = dict(max_steps=6, save_steps=2, save_total_limit=2, alpha_schedule="balanced")
    straight = train(small_config(tiny_model, pairs_file, tmp_path / "straight", **kw))
    split = small_config(tiny_model, pairs_file, tmp_path / "split", **kw)
    train(split, callbacks=[StopAt(4)])  # "crashes" after the step-4 checkpoint
    newest = last_checkpoint(tmp_path / "split")
    assert newest.name == "checkpoint-4"
    marker = json.loads((newest / ".complete.json").read_text())
    assert "trainer_state.json" in marker["sha256"] and "model.safetensors" in marker["sha256"]
    state = newest / "trainer_state.json"
    text = state.read_text()
    edited = text.replace('"global_step": 4', '"global_step": 5')
    assert edited != text and len(edited) == len(text)
    state.write_text(edited)  # the same size: the marker's sizes still match
    caplog.set_level(logging.WARNING)
    out = train(split.replace(resume=True))
    assert any(str(state) in r.getMessage() for r in caplog.records)
    saved = json.loads((out / "polyret_train.json").read_text())
    assert saved["resumed_from"] == "checkpoint-2" and saved["global_step"] == 6
    a, b = weights(straight), weights(out)
    for key in a:
        torch.testing.assert_close(a[key], b[key], atol=1e-5, rtol=1e-4)
    # balanced: exactly round(.5 x 6) = 3 mono steps, recorded as what the run did
    kinds = [e["kind"] for e in read_batch_log(batch_log_path(tmp_path / "split"))]
    assert len(kinds) == 6 and kinds.count("mono") == 3
    assert saved["step_kinds"] == {"cross": 3, "mono": 3} and saved["realized_mono_share"] == 0.5
    assert "realized: 3 of 6 steps monolingual = 0.50" in (out / "README.md").read_text()
