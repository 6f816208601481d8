"""What precision ``auto`` means, in one place, for training and for inference.

``auto`` is the default of ``polyret evaluate``, ``mine``, ``train`` (and its dev evaluation), the Python
API's ``encode`` / ``evaluate`` and so of every experiment preset:

* on a CUDA device: bf16 where the GPU has it natively (Ampere and later), else fp16;
* on a CPU: bf16 where the CPU has native bf16 instructions (x86 AMX-BF16 or AVX512-BF16, Arm BF16),
  as torch reports them (``torch.cpu.get_capabilities()``; ``/proc/cpuinfo`` flags on a torch without
  it; ``POLYRET_CPU_BF16=0|1`` overrides), else fp32: emulated bf16 is several times slower than fp32,
  so ``auto`` never picks it;
* on any other device (``mps`` ...): fp32.

bf16 autocast keeps the weights in float32 and the embeddings L2-normalised in float32; on me5-small
it moves cosines to fp32 by less than 1e-4 and XQuAD-R's mAP by less than .002 (bench/RESULTS.md,
issue 27), at about twice the encoding speed. ``fp32`` stays the reference and always works. An
explicit ``bf16`` on a CPU without native bf16 runs (emulated) after an
:class:`EmulatedPrecisionWarning`.

Whatever is recorded (results.json, polyret_train.json, experiment.json, the report, the model card)
and whatever keys a cache is the RESOLVED precision, never ``auto``.
"""

from __future__ import annotations

import functools
import os
import sys
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PRECISIONS = ("fp32", "bf16", "fp16")  # what a run actually uses
CHOICES = ("auto", *PRECISIONS)  # what a user may ask for
CPU_BF16_ENV = "POLYRET_CPU_BF16"  # 0 / 1: override the CPU's detected native bf16

__all__ = [
    "CHOICES",
    "CPU_BF16_ENV",
    "PRECISIONS",
    "EmulatedPrecisionWarning",
    "Resolved",
    "cpu_native_bf16",
    "cuda_native_bf16",
    "resolve",
]


class EmulatedPrecisionWarning(UserWarning):
    """bf16 asked for on a CPU without bf16 instructions: it runs, emulated, several times slower."""


@dataclass(frozen=True)
class Resolved:
    """A resolved precision and why it was chosen.

    Args:
        precision: ``fp32``, ``bf16`` or ``fp16`` (never ``auto``).
        reason: why, in a few words (``"CPU has AMX"``, ``"requested"``).
        requested: what was asked for (``auto`` or one of ``PRECISIONS``).
    """

    precision: str
    reason: str
    requested: str = "auto"

    def describe(self) -> str:
        """``"bf16 (auto: CPU has AMX)"``: the line ``--dry-run`` and the start-up plan print."""
        return f"{self.precision} ({'auto: ' if self.requested == 'auto' else ''}{self.reason})"


@functools.lru_cache(maxsize=1)
def _cpu_capabilities() -> Mapping[str, Any]:
    """The CPU's features: torch's own detection (cpuinfo), else the flags of /proc/cpuinfo.

    Importing torch costs ~1.5 s, which a run that needs no model (a cached evaluation) would pay only to
    learn this; so torch's answer is remembered in the cache (:func:`remembered_capabilities`), keyed by
    this machine's /proc/cpuinfo flags and torch's version: another CPU or another torch asks torch again.
    """
    if not Path("/proc/cpuinfo").is_file():
        return _torch_capabilities()
    from .paths import cache_dir

    try:
        memo = cache_dir() / "cpu_capabilities.json"
    except OSError:  # pragma: no cover - no usable cache folder: ask torch
        return _torch_capabilities()
    return remembered_capabilities(memo, _cpuinfo_flags_line(), _torch_capabilities)


def _torch_capabilities() -> dict[str, Any]:
    import torch

    get = getattr(getattr(torch, "cpu", None), "get_capabilities", None)  # torch >= 2.8
    if callable(get):
        try:
            return dict(get())
        except Exception:  # noqa: BLE001 - a detection failure means "unknown", never a crash
            pass
    return _proc_cpuinfo_flags()


def _cpuinfo_flags_line(path: str | Path = "/proc/cpuinfo") -> str:
    """The first ``flags`` / ``Features`` line of cpuinfo (empty where unreadable)."""
    try:
        text = Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
    return next((line for line in text.splitlines() if line.partition(":")[0].strip().lower() in ("flags", "features")), "")


def _torch_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("torch")
    except PackageNotFoundError:  # pragma: no cover - torch is a dependency
        return "unknown"


def remembered_capabilities(memo: Path, flags_line: str, ask: Callable[[], Mapping[str, Any]]) -> dict[str, Any]:
    """``ask()``'s answer (torch's CPU capabilities), remembered in ``memo`` under the key (sha256 of
    ``flags_line``, torch's version): a memo with another key, or unreadable, is asked again and
    rewritten; a memo that cannot be written costs only the next run's import.

    Args:
        memo: the memo file (JSON).
        flags_line: this machine's /proc/cpuinfo flags line (what identifies the CPU's features).
        ask: the detection to remember.
    """
    import hashlib
    import json

    from .paths import atomic_write_text

    key = {"flags_sha256": hashlib.sha256(flags_line.encode()).hexdigest(), "torch": _torch_version()}
    try:
        saved = json.loads(memo.read_text(encoding="utf-8"))
        if isinstance(saved, dict) and saved.get("key") == key and isinstance(saved.get("capabilities"), dict):
            return dict(saved["capabilities"])
    except (OSError, ValueError):
        pass
    caps = dict(ask())
    try:
        memo.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(memo, json.dumps({"key": key, "capabilities": caps}, sort_keys=True, default=str))
    except OSError:
        pass
    return caps


def _proc_cpuinfo_flags(path: str | Path = "/proc/cpuinfo") -> dict[str, bool]:
    """Linux's CPU flags (x86 ``flags``, Arm ``Features``) as ``{flag: True}``; empty where unreadable.

    Args:
        path: the cpuinfo file.
    """
    return {flag: True for flag in _cpuinfo_flags_line(path).partition(":")[2].split()}


def cpu_native_bf16() -> str | None:
    """The CPU's native bf16 instructions by name (``"AMX"``, ``"AVX512-BF16"``, ``"Arm BF16"``), or None.

    ``POLYRET_CPU_BF16=0`` (or ``1``) overrides the detection, e.g. in a VM that reports flags its host
    does not let it use; the test suite sets 0 so ``auto`` is fp32 in every test process on any machine.
    """
    forced = os.environ.get(CPU_BF16_ENV, "").strip().lower()
    if forced in ("0", "false", "no", "off"):
        return None
    if forced in ("1", "true", "yes", "on"):
        return f"native bf16 ({CPU_BF16_ENV}={forced})"
    caps = _cpu_capabilities()
    if caps.get("amx_bf16"):
        return "AMX"
    if caps.get("avx512_bf16"):
        return "AVX512-BF16"
    if caps.get("bf16") or caps.get("sve_bf16"):  # Arm (torch's keys and /proc/cpuinfo's "Features")
        return "Arm BF16"
    return None


def cuda_native_bf16() -> bool:
    """bf16 in the GPU's hardware (Ampere and later); torch's plain check also counts emulation on older GPUs."""
    import torch

    try:
        return bool(torch.cuda.is_bf16_supported(including_emulation=False))
    except TypeError:  # pragma: no cover - torch before the keyword
        return bool(torch.cuda.is_bf16_supported())


# Device nodes without one of which no CUDA (NVIDIA), ROCm (AMD, torch's "cuda") or WSL2 GPU can be used
GPU_DEVICE_NODES = ("/dev/nvidiactl", "/dev/nvidia0", "/dev/kfd", "/dev/dxg")


def gpu_device_nodes() -> list[str]:
    """The GPU device nodes present (Linux); on other systems a placeholder, so torch is asked (MPS on macOS)."""
    if not sys.platform.startswith("linux"):
        return ["(not Linux: ask torch)"]
    return [node for node in GPU_DEVICE_NODES if os.path.exists(node)]


def _device_type(device: Any) -> str:
    """``"cuda"``, ``"cpu"``, ``"mps"``... of a device spec (None: where a model goes by default, as
    sentence-transformers picks it: CUDA, else Apple's MPS, else the CPU)."""
    if device is None:
        if "torch" not in sys.modules and not gpu_device_nodes():
            return "cpu"  # no GPU the driver exposes: CUDA cannot be available; not importing torch saves ~1.5 s
        import torch

        if torch.cuda.is_available():
            return "cuda"
        mps = getattr(torch.backends, "mps", None)
        return "mps" if mps is not None and mps.is_available() else "cpu"
    kind = getattr(device, "type", None)
    if isinstance(kind, str):
        return kind
    return str(device).split(":", 1)[0].strip().lower() or "cpu"


def resolve(requested: str = "auto", device: Any = None, *, training: bool = False) -> Resolved:
    """The precision a run uses on ``device`` when ``requested`` is asked for.

    Args:
        requested: ``auto``, ``fp32``, ``bf16`` or ``fp16``.
        device: where the model runs: a torch device, ``"cpu"``, ``"cuda:1"``..., or None (CUDA when
            available, else CPU: where polyret puts a model by default).
        training: for training: fp16 then needs CUDA (autocast with a gradient scaler), and bf16 on a
            GPU without it is refused (an emulated training run is many times slower).

    Returns:
        The resolved :class:`Resolved`; an explicit ``bf16`` on a CPU without bf16 instructions first
        warns (:class:`EmulatedPrecisionWarning`, one line).

    Raises:
        ValueError: an unknown ``requested``; fp16 training without CUDA; bf16 training on a GPU
            without native bf16 (the message names the option and what to use instead).
    """
    if requested not in CHOICES:
        raise ValueError(f"precision: unknown {requested!r}; choose from {', '.join(CHOICES)}")
    kind = _device_type(device)
    if requested == "auto":
        if kind == "cuda":
            if cuda_native_bf16():
                return Resolved("bf16", "the GPU has native bf16")
            return Resolved("fp16", "the GPU has no native bf16")
        if kind == "cpu":
            feature = cpu_native_bf16()
            if feature:
                return Resolved("bf16", f"CPU has {feature}")
            return Resolved("fp32", "CPU has no native bf16 (no AMX or AVX512-BF16); emulated bf16 would be slower")
        return Resolved("fp32", f"reduced precision only on CUDA and on CPUs with native bf16, not on {kind}")
    if requested == "fp16" and training and kind != "cuda":
        raise ValueError("precision fp16 needs a CUDA device (fp16 autocast with a gradient scaler); use fp32 or bf16 on CPU")
    if requested == "bf16" and kind == "cuda" and training and not cuda_native_bf16():
        import torch

        raise ValueError(
            f"precision bf16: {torch.cuda.get_device_name()} has no native bf16 (it would be emulated, "
            "many times slower); use fp16 or auto"
        )
    if requested == "bf16" and kind == "cpu" and cpu_native_bf16() is None:
        warnings.warn(
            "precision bf16: this CPU has no native bf16 (no AMX or AVX512-BF16), so bf16 would be emulated, "
            "several times slower than fp32; use auto or fp32",
            EmulatedPrecisionWarning,
            stacklevel=2,
        )
        return Resolved("bf16", "requested; emulated: the CPU has no native bf16", requested)
    return Resolved(requested, "requested", requested)
