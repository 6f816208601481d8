"""Shared fixtures: a tiny random BERT, the converted builtin me5-small, and no network for any test."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

_OFFLINE = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}

# A few hundred words in many scripts, so the tiny tokenizer sees every language the tests use.
TINY_WORDS = """
query passage the a of in and is was what who when where how many which city river capital country year
people war king church music school water language history science world first new old large small
der die das und ist war wer wann wo wie viele welche stadt fluss hauptstadt land jahr menschen krieg könig
le la les et est était qui quand où combien ville fleuve capitale pays année peuple guerre roi église
el los las y es fue quién cuándo dónde cuántos ciudad río país año pueblo guerra rey iglesia
город река столица страна год люди война король церковь музыка школа вода язык история кто когда где
مدينة نهر عاصمة بلد سنة الناس حرب ملك كنيسة موسيقى مدرسة ماء لغة تاريخ من متى أين كم
शहर नदी राजधानी देश वर्ष लोग युद्ध राजा चर्च संगीत विद्यालय पानी भाषा इतिहास कौन कब कहाँ कितने
เมือง แม่น้ำ เมืองหลวง ประเทศ ปี ผู้คน สงคราม กษัตริย์ โบสถ์ ดนตรี โรงเรียน น้ำ ภาษา ประวัติศาสตร์
πόλη ποταμός πρωτεύουσα χώρα έτος άνθρωποι πόλεμος βασιλιάς εκκλησία μουσική σχολείο νερό γλώσσα
şehir nehir başkent ülke yıl insanlar savaş kral kilise müzik okul su dil tarih kim ne zaman nerede
thành phố sông thủ đô quốc gia năm người chiến tranh vua nhà thờ âm nhạc trường học nước ngôn ngữ
城市 河流 首都 国家 年份 人民 战争 国王 教堂 音乐 学校 水 语言 历史 谁 什么 时候 哪里 多少
""".split()


def build_tiny_model(path: Path, *, seed: int = 0, hidden: int = 32, max_seq_length: int = 64) -> Path:
    """A 2-layer random BERT (seeded) + a fixed WordPiece vocabulary of TINY_WORDS (words and their
    characters), saved as a sentence-transformers folder (mean pooling, prompts ``query: `` / ``passage: ``).
    The same folder contents in every process, whatever ran before."""
    import torch
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Pooling, Transformer
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
    from transformers import BertConfig, BertModel, PreTrainedTokenizerFast

    # A fixed vocabulary, not a trained one: tokenizers' WordPiece trainer breaks ties between equally
    # frequent merges in hash order, so a trained vocabulary (and every token's random embedding with it)
    # differed from one process to the next (see tests/training/test_train.py::test_tiny_model_is_the_same_in_every_build).
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    normalizer, pre = normalizers.BertNormalizer(lowercase=True), pre_tokenizers.BertPreTokenizer()
    words = sorted(
        {
            piece
            for w in TINY_WORDS + ["query", "passage", *":?.,!;-'()"]
            for piece, _ in pre.pre_tokenize_str(normalizer.normalize_str(w))
        }
    )  # as the tokenizer sees them
    chars = sorted({c for w in words for c in w})
    vocab = {t: i for i, t in enumerate(dict.fromkeys(specials + words + chars + [f"##{c}" for c in chars]))}
    tok = Tokenizer(models.WordPiece(vocab=vocab, unk_token="[UNK]"))
    tok.normalizer = normalizer
    tok.pre_tokenizer = pre
    cls_id, sep_id = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1", special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)]
    )
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        unk_token="[UNK]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
        model_max_length=max_seq_length,
    )
    torch.manual_seed(seed)
    cfg = BertConfig(
        vocab_size=fast.vocab_size,
        hidden_size=hidden,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=2 * hidden,
        max_position_embeddings=max(128, max_seq_length),
    )
    hf = path.parent / (path.name + "-hf")
    BertModel(cfg, add_pooling_layer=False).save_pretrained(hf)
    fast.save_pretrained(hf)
    modules = [Transformer(str(hf), max_seq_length=max_seq_length), Pooling(hidden, "mean")]
    model = SentenceTransformer(
        modules=modules, prompts={"query": "query: ", "passage": "passage: "}, similarity_fn_name="cosine", device="cpu"
    )
    model.save(str(path))
    return path


@pytest.fixture(scope="session", autouse=True)
def _offline_hub():
    """No test may touch the network: the hub is unreachable here and tests must not depend on it."""
    saved = {k: os.environ.get(k) for k in _OFFLINE}
    os.environ.update(_OFFLINE)
    try:  # huggingface_hub reads the variable once, at import
        from huggingface_hub import constants
    except ImportError:
        constants = None
    saved_const = getattr(constants, "HF_HUB_OFFLINE", None)
    if constants is not None:
        constants.HF_HUB_OFFLINE = True
    yield
    if constants is not None:
        constants.HF_HUB_OFFLINE = saved_const
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture(scope="session", autouse=True)
def _cpu_without_bf16():
    """Every test, and every process a test starts (torchrun, the command line), sees a CPU without native
    bf16 (``POLYRET_CPU_BF16=0``), so precision ``auto`` means fp32 on any machine: numbers and cache
    folders do not depend on where the suite runs. Tests of ``auto`` itself (tests/test_precision.py)
    drop the variable and patch the capabilities they need."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("POLYRET_CPU_BF16", "0")
        yield


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> str:
    """Path (str) of a tiny random sentence-transformers model: hidden 32, 2 layers, vocab ~600."""
    return str(build_tiny_model(tmp_path_factory.mktemp("tiny-model") / "tiny-bert"))


@pytest.fixture(scope="session")
def me5_small_dir(tmp_path_factory) -> str:
    """Path (str) of builtin:me5-small converted into a test-private cache (not the user cache)."""
    from polyret.me5_convert import me5_small_dir as build

    return str(build(tmp_path_factory.mktemp("polyret-cache")))
