"""Where training runs: the device, the process group ``torchrun`` describes, and what a record says of both."""

from __future__ import annotations

import os
import platform

import torch
import torch.distributed as dist

from mke_theory.core.errors import MKEError


def resolve_device(device: str = "auto") -> torch.device:
    """``auto`` → CUDA when there is one, else CPU; ``cuda`` without a GPU is an error."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise MKEError("--device cuda was asked for but no CUDA device is available; use --device cpu or auto")
    return torch.device(device)


def distributed() -> tuple[int, int]:
    """(rank, world size); (0, 1) outside ``torchrun``."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def distributed_init() -> bool:
    """Join the process group ``torchrun`` describes in the environment (gloo on CPU, NCCL on GPU)."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1 or dist.is_initialized():
        return dist.is_initialized()
    dist.init_process_group(backend="nccl" if torch.cuda.is_available() else "gloo")
    return True


def hardware(device) -> str:
    """What a record says the run ran on: ``cuda <GPU name>`` or ``cpu <machine> x<cores>``."""
    if device.type == "cuda":
        return f"cuda {torch.cuda.get_device_name(device)}"
    return f"cpu {platform.machine()} x{os.cpu_count()}"
