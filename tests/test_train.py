"""polyret.training: config, losses and train() on a tiny random BERT (CPU, a few steps per run)."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from transformers import TrainerCallback

from polyret.data.records import DataError
from polyret.training.config import RECIPES, ConfigError, TrainConfig
from polyret.training.losses import LengthSortedCachedMNRL, LengthSortedMNRL, build_loss
from polyret.training.train import (
    batch_log_path,
    freeze_word_embeddings,
    last_checkpoint,
    read_batch_log,
    split_dev,
    train,
)

LANGS = ("de", "en", "es")
WORDS = "the capital city of river mountain country der die stadt fluss la ciudad rio".split()


# ------------------------------------------------------------------------------------------ fixtures
def build_tiny_model(path: Path) -> Path:
    """A 2-layer, 32-dim random BERT with a WordPiece vocabulary trained on WORDS; me5-style prompts."""
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Normalize, Pooling, Transformer
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import BertConfig, BertModel, PreTrainedTokenizerFast

    torch.manual_seed(0)
    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    words = WORDS + ["query", "passage", ":"] + [f"{lang}w{i}" for lang in LANGS for i in range(10)]
    tok.train_from_iterator([" ".join(words)] * 5, trainers.WordPieceTrainer(vocab_size=200, special_tokens=specials))
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B [SEP]",
        special_tokens=[("[CLS]", tok.token_to_id("[CLS]")), ("[SEP]", tok.token_to_id("[SEP]"))],
    )  # fmt: skip
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]",
                                   sep_token="[SEP]", mask_token="[MASK]", model_max_length=64)  # fmt: skip
    cfg = BertConfig(vocab_size=fast.vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                     intermediate_size=64, max_position_embeddings=64)  # fmt: skip
    hf = path.parent / (path.name + "-hf")
    BertModel(cfg).save_pretrained(hf)
    fast.save_pretrained(hf)
    modules = [Transformer(str(hf), max_seq_length=64), Pooling(32, "mean"), Normalize()]
    SentenceTransformer(modules=modules, prompts={"query": "query: ", "passage": "passage: "}).save(str(path))
    return path


def write_pairs(path: Path, groups: int, seed: int = 0) -> Path:
    """Parallel pairs in 3 languages; a group's query and passage share a 3-word topic (learnable)."""
    rng = random.Random(seed)
    with open(path, "w", encoding="utf-8") as fh:
        for g in range(groups):
            topic = [rng.choice(WORDS) for _ in range(3)] + [f"{LANGS[g % 3]}w{g % 10}"]
            for lang in LANGS:
                query = " ".join(topic + [rng.choice(WORDS) for _ in range(rng.randint(1, 4))] + [f"{lang}w0"])
                positive = " ".join(topic + [rng.choice(WORDS) for _ in range(rng.randint(2, 30))])
                negative = " ".join(rng.choice(WORDS) for _ in range(8))
                row = {"id": f"g{g}", "lang": lang, "query": query, "positive": positive, "negative": negative}
                fh.write(json.dumps(row) + "\n")
    return path


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "model")


@pytest.fixture(scope="module")
def pairs_file(tmp_path_factory) -> Path:
    return write_pairs(tmp_path_factory.mktemp("pairs") / "pairs.jsonl", 60)


def small_config(tiny_model: Path, pairs_file: Path, out: Path, **overrides) -> TrainConfig:
    base = dict(model=str(tiny_model), train=[str(pairs_file)], output_dir=str(out), batch_size=8, lr=5e-4,
                warmup_ratio=0.0, max_steps=6, logging_steps=2, precision="fp32", seed=3)  # fmt: skip
    base.update(overrides)
    return TrainConfig(**base)


def fixed_batch_loss(model_dir: Path, pairs_file: Path) -> float:
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss

    rows = [json.loads(line) for line in pairs_file.read_text().splitlines()[:48:3]]  # 16 groups, German
    model = SentenceTransformer(str(model_dir), device="cpu")
    model.eval()
    loss = MultipleNegativesRankingLoss(model)
    feats = [model.preprocess(["query: " + r["query"] for r in rows]),
             model.preprocess(["passage: " + r["positive"] for r in rows])]  # fmt: skip
    with torch.no_grad():
        return float(loss(feats, None))


def weights(model_dir: Path) -> dict[str, torch.Tensor]:
    return load_file(str(model_dir / "model.safetensors"))


class PromptSpy(TrainerCallback):
    def __init__(self) -> None:
        self.prompts = None

    def on_train_begin(self, args, state, control, train_dataloader=None, **kwargs):
        self.prompts = dict(train_dataloader.collate_fn.prompts)


class StopAt(TrainerCallback):
    """Simulates a crash right after the checkpoint at ``step``."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step >= self.step:
            control.should_training_stop = True
        return control


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
        ({"save_steps": None}, "save_steps must be set"),
        ({"eval_steps": 7}, "multiple of eval_steps"),
        ({"nonsense": 1}, "unknown training config key"),
        ({"max_steps": "ten"}, "cannot parse 'ten'"),
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
        config = TrainConfig(model="x", mini_batch_size=4, **overrides)
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


def test_split_dev_holds_out_whole_groups(pairs_file):
    from polyret.data.pairs import load_pairs

    pairs = load_pairs(str(pairs_file))
    train_part, dev_part = split_dev([pairs], 10, seed=1)
    assert sum(len(s) for s in dev_part) == 10 and len(train_part[0]) == len(pairs) - 10
    assert not set(train_part[0].groups) & set(dev_part[0].groups)
    assert split_dev([pairs], 10, seed=1)[1][0].groups.keys() == dev_part[0].groups.keys()
    with pytest.raises(ConfigError, match="leaves no training data"):
        split_dev([pairs], len(pairs), seed=1)


# --------------------------------------------------------------------------------------------- train
def test_train_lowers_loss_changes_weights_writes_card(tiny_model, pairs_file, tmp_path):
    spy = PromptSpy()
    config = small_config(tiny_model, pairs_file, tmp_path / "run", max_steps=10, save_steps=5, dev_pairs=16)
    out = train(config, callbacks=[spy])
    assert out == tmp_path / "run" / "model"
    assert fixed_batch_loss(out, pairs_file) < fixed_batch_loss(tiny_model, pairs_file) - 0.05
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
        train(small_config(tiny_model, pairs_file, tmp_path / "b", dev_pairs=4, save_steps=3))
