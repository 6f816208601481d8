"""A per-device memory estimate of a training run, without loading the model's weights.

The model's shape comes from its transformers ``config.json`` (a local folder, a ``builtin:`` model, the
Hub cache or the Hub itself); when none of those is reachable (offline) the few published configs in
:data:`KNOWN_CONFIGS` stand in for the models polyret's presets name. Parameters are counted exactly by
building the architecture on PyTorch's ``meta`` device (no memory is allocated).

The estimate, per device, in bytes:

* weights: 4 per parameter (fp32 master weights; bf16/fp16 training autocasts, the weights stay fp32);
* gradients: 4 per trainable parameter; AdamW: 8 per trainable parameter (two fp32 moments);
* activations: per encoder layer and sequence of ``s`` tokens, ``s*h*(34 + 5*a*s/h)`` bytes in 16-bit
  (Korthikanti et al. 2022, "Reducing Activation Recomputation in Large Transformer Models": sbh(34 + 5as/h);
  twice that in fp32). With gradient checkpointing only each layer's input (``2*s*h``) is kept, plus one
  layer's full activations while it is recomputed. The sequences held at once are every text of the
  device's micro-batch (anchor, positive, hard negatives), or one of GradCache's mini-batches (at most
  ``mini_batch_size`` texts of one column) with ``cached_loss``. Every text counts at ``max_seq_length`` tokens: an upper bound.

It is an estimate for planning (is batch 100 of XLM-R large on one 80 GB device plausible?), not a
measurement; the allocator's fragmentation and CUDA's context (~0.5-1 GB) come on top.
"""

from __future__ import annotations

import functools
import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

GIB = 1024**3

# Published transformers configs of the models polyret's presets name (used only when the config cannot
# be read from a folder, the Hub cache or the Hub): the architecture fields that decide the parameter count.
KNOWN_CONFIGS: dict[str, dict[str, Any]] = {
    "FacebookAI/xlm-roberta-large": {
        "model_type": "xlm-roberta",
        "vocab_size": 250002,
        "hidden_size": 1024,
        "num_hidden_layers": 24,
        "num_attention_heads": 16,
        "intermediate_size": 4096,
        "max_position_embeddings": 514,
        "type_vocab_size": 1,
        "pad_token_id": 1,
    },
    "FacebookAI/xlm-roberta-base": {
        "model_type": "xlm-roberta",
        "vocab_size": 250002,
        "hidden_size": 768,
        "num_hidden_layers": 12,
        "num_attention_heads": 12,
        "intermediate_size": 3072,
        "max_position_embeddings": 514,
        "type_vocab_size": 1,
        "pad_token_id": 1,
    },
}
KNOWN_CONFIGS["xlm-roberta-large"] = KNOWN_CONFIGS["FacebookAI/xlm-roberta-large"]
KNOWN_CONFIGS["xlm-roberta-base"] = KNOWN_CONFIGS["FacebookAI/xlm-roberta-base"]


@dataclass(frozen=True)
class ModelShape:
    """What the estimate needs of a model: its parameter count and encoder shape.

    Args:
        parameters: all parameters of the backbone.
        embedding_parameters: those of the input (word) embedding matrix.
        hidden, layers, heads: the encoder's width, depth and attention heads.
        max_positions: position embeddings (the longest input the model takes).
        source: where the shape came from (a file, the Hub, polyret's table).
    """

    parameters: int
    embedding_parameters: int
    hidden: int
    layers: int
    heads: int
    max_positions: int
    source: str


@dataclass(frozen=True)
class MemoryEstimate:
    """Bytes per device, by what holds them (see the module docstring for the formulas).

    Args:
        weights, gradients, optimizer, activations: the four parts, in bytes.
        trainable_parameters: parameters that get gradients and AdamW state.
        sequences_at_once: texts whose activations are alive together.
        seq_length: the token length every text is counted at.
        shape: the model shape the estimate used.
    """

    weights: int
    gradients: int
    optimizer: int
    activations: int
    trainable_parameters: int
    sequences_at_once: int
    seq_length: int
    shape: ModelShape

    @property
    def total(self) -> int:
        return self.weights + self.gradients + self.optimizer + self.activations

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["total"] = self.total
        out["total_gib"] = round(self.total / GIB, 2)
        return out

    def summary(self) -> str:
        parts = ", ".join(
            f"{name} {getattr(self, name) / GIB:.2f}" for name in ("weights", "gradients", "optimizer", "activations")
        )
        return (
            f"{self.total / GIB:.1f} GiB per device ({parts} GiB; {self.trainable_parameters:,} of "
            f"{self.shape.parameters:,} parameters trained; {self.sequences_at_once} texts of {self.seq_length} "
            f"tokens alive at once; model shape from {self.shape.source})"
        )


def _read_config(spec: str) -> tuple[dict[str, Any], str] | None:
    """The transformers config of ``spec`` as a dict, and where it came from; None when unreachable."""
    path = Path(spec).expanduser()
    if spec.startswith("builtin:"):
        from polyret.models import resolve

        path = Path(resolve(spec))
    if path.is_dir():
        candidates = [path / "config.json"]
        modules = path / "modules.json"
        if modules.is_file():
            try:
                for module in json.loads(modules.read_text(encoding="utf-8")):
                    candidates.insert(0, path / module.get("path", "") / "config.json")
            except (ValueError, AttributeError):
                pass
        for candidate in candidates:
            if candidate.is_file():
                try:
                    data = json.loads(candidate.read_text(encoding="utf-8"))
                except ValueError:
                    continue
                if isinstance(data, dict) and "model_type" in data:
                    return data, str(candidate)
        return None
    try:  # the Hub cache, or the Hub when online
        from transformers import AutoConfig

        return AutoConfig.from_pretrained(spec).to_dict(), f"the Hugging Face Hub ({spec})"
    except Exception as error:  # noqa: BLE001 - offline, unknown id, gated: fall back to the table
        logger.info("model config of %s not reachable (%s)", spec, error)
    if spec in KNOWN_CONFIGS:
        return dict(KNOWN_CONFIGS[spec]), f"polyret's table of published configs ({spec}; offline)"
    return None


@functools.lru_cache(maxsize=16)
def model_shape(spec: str) -> ModelShape | None:
    """The shape of the model ``spec`` names, counted on the meta device; None when its config is unreachable.

    Args:
        spec: a model spec for :func:`polyret.models.load` (folder, ``builtin:``, Hub id).
    """
    found = _read_config(spec)
    if found is None:
        return None
    data, source = found
    import torch
    from transformers import AutoConfig, AutoModel

    data = {k: v for k, v in data.items() if k not in ("architectures", "transformers_version", "_name_or_path")}
    model_type = data.pop("model_type")
    try:
        config = AutoConfig.for_model(model_type, **data)
        with torch.device("meta"):
            backbone = AutoModel.from_config(config)
    except Exception as error:  # noqa: BLE001 - an architecture transformers cannot build: no estimate
        logger.info("cannot build %s (%s) on the meta device: %s", spec, model_type, error)
        return None
    total = sum(p.numel() for p in backbone.parameters())
    embedding = sum(p.numel() for p in backbone.get_input_embeddings().parameters())
    return ModelShape(
        parameters=int(total),
        embedding_parameters=int(embedding),
        hidden=int(getattr(config, "hidden_size", 0) or 0),
        layers=int(getattr(config, "num_hidden_layers", 0) or 0),
        heads=int(getattr(config, "num_attention_heads", 1) or 1),
        max_positions=int(getattr(config, "max_position_embeddings", 512) or 512),
        source=source,
    )


def lora_parameters(shape: ModelShape, r: int, targets: int = 2) -> int:
    """LoRA adapter parameters: ``r * (in + out)`` per wrapped ``h x h`` projection, ``targets`` per layer
    (peft's default for BERT-like encoders wraps ``query`` and ``value``).

    Args:
        shape: the model shape.
        r: the LoRA rank.
        targets: wrapped projections per layer.
    """
    return shape.layers * targets * r * 2 * shape.hidden


def estimate_memory(
    shape: ModelShape,
    *,
    per_device_batch: int,
    columns: int,
    seq_length: int,
    precision: str,
    cached_loss: bool,
    mini_batch_size: int,
    gradient_checkpointing: bool,
    trainable_parameters: int | None = None,
) -> MemoryEstimate:
    """The per-device estimate (module docstring) for one micro-batch.

    Args:
        shape: the model shape (:func:`model_shape`).
        per_device_batch: examples per device per micro-step.
        columns: texts per example (anchor + positive + hard negatives).
        seq_length: tokens every text is counted at (an upper bound: ``max_seq_length``).
        precision: ``fp32``, ``bf16`` or ``fp16`` (16-bit activations under autocast).
        cached_loss: GradCache: ``mini_batch_size`` texts' activations at once.
        mini_batch_size: GradCache's mini-batch.
        gradient_checkpointing: keep only each layer's input.
        trainable_parameters: parameters with gradients (None: all).
    """
    trainable = shape.parameters if trainable_parameters is None else int(trainable_parameters)
    texts = per_device_batch * columns
    alive = min(per_device_batch, mini_batch_size) if cached_loss else texts  # GradCache chunks each column
    s, h, a = seq_length, max(shape.hidden, 1), shape.heads
    per_layer_16 = s * h * 34 + 5 * a * s * s  # bytes per sequence per layer, 16-bit activations
    factor = 1 if precision in ("bf16", "fp16") else 2
    if gradient_checkpointing:
        per_sequence = factor * (shape.layers * 2 * s * h + per_layer_16)
    else:
        per_sequence = factor * shape.layers * per_layer_16
    per_sequence += factor * 2 * s * h  # embeddings output
    return MemoryEstimate(
        weights=4 * shape.parameters,
        gradients=4 * trainable,
        optimizer=8 * trainable,
        activations=int(alive * per_sequence),
        trainable_parameters=trainable,
        sequences_at_once=alive,
        seq_length=s,
        shape=shape,
    )
