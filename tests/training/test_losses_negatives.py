"""k hard-negative columns: the training index, polyret's losses against sentence-transformers', train()."""

from __future__ import annotations

import json
import random

import pytest
import torch

from polyret.data.records import DataError, Pair, PairGroups
from polyret.training.config import ConfigError, TrainConfig
from polyret.training.losses import build_loss
from polyret.training.pairs_dataset import PairIndex, build_pairs_dataset, negative_columns

WORDS = "the city river capital country year people war king church music school water der die stadt fluss".split()


def source(k: int, groups: int = 6, langs=("de", "en")) -> PairGroups:
    out = {}
    for g in range(groups):
        out[f"g{g}"] = {
            lang: Pair(f"g{g}", lang, f"q{g}{lang}", f"p{g}{lang}",
                       negative=tuple(f"n{g}{lang}{j}" for j in range(k)) or None)
            for lang in langs
        }  # fmt: skip
    return PairGroups(f"s{k}", out)


def test_negative_columns_names():
    assert negative_columns(0) == () and negative_columns(1) == ("negative",)
    assert negative_columns(3) == ("negative_1", "negative_2", "negative_3")


def test_index_gives_k_negative_columns_in_the_passage_language():
    index = PairIndex([source(3)], negatives=3)
    assert index.num_negatives == 3 and index.has_negatives
    rows = index.texts(index.encode_langs([1, 2], [0, 1], [1, 0]))  # g1 de->en, g2 en->de
    assert rows == {"anchor": ["q1de", "q2en"], "positive": ["p1en", "p2de"], "negative_1": ["n1en0", "n2de0"],
                    "negative_2": ["n1en1", "n2de1"], "negative_3": ["n1en2", "n2de2"]}  # fmt: skip
    assert set(build_pairs_dataset(source(3), negatives=3)[0][0]) == {"anchor", "positive", *negative_columns(3)}
    # fewer columns than the pairs have: the first ones; None: as many as every pair has
    assert set(PairIndex([source(3)], negatives=2).texts([0])) == {"anchor", "positive", "negative_1", "negative_2"}
    assert PairIndex([source(3)]).num_negatives == 3
    assert PairIndex([source(3)], negatives=False).texts([0]).keys() == {"anchor", "positive"}
    # hard_negatives=True is k=1 with the old column name
    one = PairIndex([source(1)], negatives=True)
    assert one.texts([0]) == {"anchor": ["q0de"], "positive": ["p0de"], "negative": ["n0de0"]}


def test_index_names_the_pair_with_too_few_negatives():
    src = source(3)
    src.groups["g4"]["en"] = Pair("g4", "en", "q", "p", negative=("a", "b"))
    with pytest.raises(DataError, match=r"negatives=3 but a pair has only 2 \(source 's3': group 'g4', language 'en'\)"):
        PairIndex([src], negatives=3)
    assert PairIndex([src]).num_negatives == 2  # None: what every pair has
    with pytest.raises(DataError, match="no hard negative"):
        PairIndex([source(0)], negatives=1)


def test_config_negatives_field():
    assert TrainConfig().negatives == 0
    assert TrainConfig().with_overrides(["negatives=3"]).negatives == 3
    with pytest.raises(ConfigError, match="negatives must be >= 0"):
        TrainConfig(negatives=-1)


@pytest.fixture(scope="module")
def st_model(tiny_model_dir):
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(tiny_model_dir, device="cpu")
    model.eval()  # no dropout: every loss must agree up to float error
    return model


@pytest.mark.parametrize("k", [0, 1, 3])
def test_polyret_losses_equal_st_mnrl_with_k_negatives(st_model, k):
    from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss

    rng = random.Random(k)
    cols = [[" ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 30))) for _ in range(9)] for _ in range(2 + k)]

    def run(loss_fn):
        st_model.zero_grad()
        value = loss_fn([st_model.preprocess(c) for c in cols], None)
        value.backward()
        grads = torch.cat([p.grad.flatten() for p in st_model.parameters() if p.grad is not None])
        return float(value.detach()), grads

    reference = run(MultipleNegativesRankingLoss(st_model, scale=20.0))
    for overrides in ({"length_sorted": True}, {"cached_loss": True, "length_sorted": False},
                      {"cached_loss": True, "length_sorted": True}):  # fmt: skip
        config = TrainConfig(model="x", mini_batch_size=4, embed_chunk_size=4, temperature=0.05, **overrides)
        value, grads = run(build_loss(st_model, config))
        assert value == pytest.approx(reference[0], abs=1e-5), overrides
        torch.testing.assert_close(grads, reference[1], atol=2e-5, rtol=1e-4)
    assert reference[1].abs().sum() > 0
    if k:  # the negative columns change the loss: they are really used
        fewer = MultipleNegativesRankingLoss(st_model, scale=20.0)
        with torch.no_grad():
            value = float(fewer([st_model.preprocess(c) for c in cols[:-1]], None))
        assert value != pytest.approx(reference[0], abs=1e-4)


def write_mined(path, groups: int, k: int, seed: int = 0):
    rng = random.Random(seed)
    with open(path, "w", encoding="utf-8") as fh:
        for g in range(groups):
            for lang in ("de", "en"):
                row = {"id": f"g{g}", "lang": lang, "query": " ".join(rng.choice(WORDS) for _ in range(4)),
                       "positive": " ".join(rng.choice(WORDS) for _ in range(8)), "positive_id": f"P{g}",
                       "negative": [" ".join(rng.choice(WORDS) for _ in range(6)) for _ in range(k)],
                       "negative_id": [f"N{g}{lang}{j}" for j in range(k)]}  # fmt: skip
                fh.write(json.dumps(row) + "\n")
    return path


def test_two_step_training_with_three_negatives(tiny_model_dir, tmp_path):
    from transformers import TrainerCallback

    from polyret.training import train

    seen: list[int] = []

    class ColumnSpy(TrainerCallback):
        def on_train_begin(self, args, state, control, train_dataloader=None, **kwargs):
            spy.prompts = dict(train_dataloader.collate_fn.prompts)

    spy = ColumnSpy()

    data = write_mined(tmp_path / "mined.jsonl", 12, 3)
    config = TrainConfig(model=tiny_model_dir, train=[str(data)], output_dir=str(tmp_path / "run"), batch_size=4,
                         max_steps=2, warmup_ratio=0.0, logging_steps=1, precision="fp32", seed=1, negatives=3,
                         strategy="hybrid")  # fmt: skip
    from polyret.training import losses

    forward = losses.LengthSortedMNRL.forward

    def counting_forward(self, sentence_features, labels):
        features = list(sentence_features)
        seen.append(len(features))
        return forward(self, features, labels)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(losses.LengthSortedMNRL, "forward", counting_forward)
        out = train(config, callbacks=[spy])
    assert seen == [5, 5]  # anchor, positive and three negatives reach the loss at both steps
    assert spy.prompts == {"anchor": "query: ", "positive": "passage: ", "negative_1": "passage: ",
                           "negative_2": "passage: ", "negative_3": "passage: "}  # fmt: skip
    info = json.loads((out / "polyret_train.json").read_text())
    assert info["global_step"] == 2 and info["config"]["negatives"] == 3
    assert "3 hard negative(s) per pair" in (out / "README.md").read_text()
    # a source without enough negatives fails before training, naming the pair
    with pytest.raises(DataError, match=r"negatives=4 but a pair has only 3 \(source '.*mined\.jsonl': group 'g0'"):
        train(config.replace(negatives=4, output_dir=str(tmp_path / "run4")))
