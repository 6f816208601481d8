"""LoRA for large models on one GPU: peft's adapter injected into the transformers backbone, merged at the end.

:func:`add_lora` injects a LoRA adapter with peft (``inject_adapter_in_model``: every other weight is
frozen); sentence-transformers' ``model.add_adapter`` is the same peft call through transformers'
integration, which this transformers release gates on a peft newer than PyPI has, so polyret calls peft
directly. Checkpoints then hold the backbone's state with its adapter (``...query.base_layer.weight``,
``...query.lora_A.default.weight``); :func:`load_lora_checkpoint` loads one back into the running model
(resume, best checkpoint). :func:`merge_lora` folds the adapter into the base weights, so the final model
folder is a plain model that loads without peft.
"""

from __future__ import annotations

from pathlib import Path

from polyret.training.config import ConfigError, TrainConfig

__all__ = ["add_lora", "has_lora", "load_lora_checkpoint", "merge_lora"]


def _backbones(model) -> list[tuple[int, object]]:
    """(module number, transformers backbone) for each transformers module of a sentence-transformers model."""
    from transformers import PreTrainedModel

    out = []
    for i, module in enumerate(model):
        backbone = getattr(module, "model", None) or getattr(module, "auto_model", None)
        if isinstance(backbone, PreTrainedModel):
            out.append((i, backbone))
    return out


def add_lora(model, config: TrainConfig) -> int:
    """Inject a LoRA adapter into the model's transformers backbone(s); returns the trainable parameter count.

    Args:
        model: a sentence-transformers model with a transformers module.
        config: ``lora_r``, ``lora_alpha``, ``lora_dropout``, ``lora_target_modules``.

    Raises:
        ConfigError: peft is missing, the model has no transformers module, or the target modules are not in it.
    """
    try:
        from peft import LoraConfig, inject_adapter_in_model
    except ImportError:
        raise ConfigError("lora_r > 0 needs the peft package: pip install 'polyret[lora]' (peft>=0.21)") from None
    backbones = _backbones(model)
    if not backbones:
        raise ConfigError(f"LoRA cannot be added to {config.model}: it has no transformers module")
    for param in model.parameters():
        param.requires_grad_(False)
    for _, backbone in backbones:
        lora = LoraConfig(r=config.lora_r, lora_alpha=config.lora_alpha, lora_dropout=config.lora_dropout,
                          target_modules=list(config.lora_target_modules) if config.lora_target_modules else None)  # fmt: skip
        try:
            inject_adapter_in_model(lora, backbone)
        except ValueError as error:  # target modules the model does not have, an architecture peft does not know
            raise ConfigError(f"LoRA cannot be added to {config.model}: {error}") from None
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def has_lora(model) -> bool:
    """Whether any module of ``model`` is a peft LoRA layer.

    Args:
        model: a sentence-transformers model.
    """
    try:
        from peft.tuners.lora import LoraLayer
    except ImportError:
        return False
    return any(isinstance(m, LoraLayer) for m in model.modules())


def load_lora_checkpoint(model, checkpoint: str | Path) -> None:
    """Load a checkpoint written during a LoRA run into ``model`` (same adapter), strictly.

    Args:
        model: the running sentence-transformers model with its adapter.
        checkpoint: a trainer checkpoint folder (a saved sentence-transformers model).
    """
    import json

    from safetensors.torch import load_file

    checkpoint = Path(checkpoint)
    paths = {}
    modules_file = checkpoint / "modules.json"
    if modules_file.is_file():
        paths = {int(m["idx"]): m.get("path", "") for m in json.loads(modules_file.read_text(encoding="utf-8"))}
    for i, backbone in _backbones(model):
        folder = checkpoint / paths.get(i, "")
        files = sorted(folder.glob("*.safetensors"))
        if not files:
            raise ConfigError(f"{folder}: no weights (*.safetensors) in this checkpoint")
        state = {}
        for file in files:
            state.update(load_file(str(file)))
        backbone.load_state_dict(state, strict=True)


def merge_lora(model) -> int:
    """Fold every LoRA adapter into its base weights and put the plain layers back, so the model saves as
    a plain one (loadable without peft). Returns the number of layers merged.

    Args:
        model: a sentence-transformers model with LoRA adapters (:func:`add_lora`).
    """
    from peft.tuners.lora import LoraLayer

    merged = 0
    for _, backbone in _backbones(model):
        for name, module in list(backbone.named_modules()):
            if isinstance(module, LoraLayer):
                module.merge()
                parent_name, _, child = name.rpartition(".")
                parent = backbone.get_submodule(parent_name) if parent_name else backbone
                setattr(parent, child, module.get_base_layer())
                merged += 1
        if hasattr(backbone, "peft_config"):
            del backbone.peft_config
    return merged
