"""Process-group facts for code that may run under ``torchrun`` / ``accelerate launch``.

One place answers "which rank am I, how many are we, wait for the others", so encoding, evaluation
and training agree. Without a process group (a plain ``python`` run) every answer is the one-process
answer; nothing here initialises a group by itself except :func:`init_from_env`.
"""

from __future__ import annotations

import os
import sys


def _dist():
    if "torch.distributed" not in sys.modules:  # never imported: no process group exists (and no 1.5 s import)
        return None
    try:
        import torch.distributed as dist
    except ImportError:  # pragma: no cover - torch is a hard dependency
        return None
    return dist if dist.is_available() and dist.is_initialized() else None


def rank() -> int:
    """This process's global rank (0 without a process group)."""
    d = _dist()
    return d.get_rank() if d is not None else 0


def world_size() -> int:
    """Number of processes (1 without a process group)."""
    d = _dist()
    return d.get_world_size() if d is not None else 1


def is_main() -> bool:
    """True on rank 0 (and in a one-process run)."""
    return rank() == 0


def barrier() -> None:
    """Wait for every rank (no-op without a process group)."""
    d = _dist()
    if d is not None:
        d.barrier()


def launched() -> bool:
    """True when a launcher (torchrun, accelerate) started this process as one of several."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def init_from_env(backend: str | None = None) -> bool:
    """Initialise the default process group from torchrun's environment when launched and not yet done.

    Args:
        backend: ``"nccl"`` / ``"gloo"``; default nccl when CUDA is available, else gloo.

    Returns:
        True when a group is (now) initialised.
    """
    if _dist() is not None:
        return True
    if not launched():
        return False
    import torch
    import torch.distributed as dist

    if backend is None:
        backend = "nccl" if torch.cuda.is_available() else "gloo"
    if backend == "nccl":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    dist.init_process_group(backend=backend)
    return True


def all_ok(ok: bool) -> bool:
    """A barrier that also says whether every rank got there in good order.

    Every rank calls it with its own ``ok``; all get True only when every rank passed True. A rank
    whose work failed calls it with False before raising, so the others raise too instead of waiting
    at the next barrier until the process group's timeout.

    Args:
        ok: this rank's verdict.

    Returns:
        ``ok`` without a process group; otherwise the AND over all ranks.
    """
    d = _dist()
    if d is None:
        return bool(ok)
    import torch

    flag = torch.tensor([0 if ok else 1], dtype=torch.int64)
    if d.get_backend() == "nccl":
        flag = flag.cuda()
    d.all_reduce(flag, op=d.ReduceOp.SUM)
    return int(flag.item()) == 0
