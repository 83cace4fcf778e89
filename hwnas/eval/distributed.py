"""torchrun support: join the process group torchrun describes (gloo on CPU, NCCL on CUDA) and pick the device.

``torchrun --nproc-per-node K -m hwnas train ...`` sets ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK`` and the
rendezvous address; a plain ``hwnas train`` sets none of them and runs as a single process.
"""
from __future__ import annotations

import datetime as dt
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class Launch:
    """This process's place in the run."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def launched_by_torchrun() -> bool:
    return "RANK" in os.environ and "WORLD_SIZE" in os.environ


def choose_device(requested: str, local_rank: int = 0) -> torch.device:
    """``auto`` (CUDA when present), ``cpu`` or ``cuda``; ``cuda`` without a GPU is an error, not a fallback."""
    if requested not in ("auto", "cpu", "cuda"):
        raise ValueError(f"device={requested!r}; choose auto, cpu or cuda")
    if requested == "cuda" and not torch.cuda.is_available():
        raise ValueError("device='cuda' was requested but torch sees no CUDA device")
    if requested == "cpu" or not torch.cuda.is_available():
        return torch.device("cpu")
    return torch.device("cuda", local_rank % torch.cuda.device_count())


@contextmanager
def process_group(requested_device: str = "auto", timeout_s: float = 1800.0) -> Iterator[Launch]:
    """Join torchrun's process group for the duration (gloo on CPU, NCCL on CUDA); a no-op without torchrun."""
    if not launched_by_torchrun():
        yield Launch(device=choose_device(requested_device))
        return
    rank, world_size = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    local_rank = int(os.environ.get("LOCAL_RANK", rank))
    device = choose_device(requested_device, local_rank)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    backend = "nccl" if device.type == "cuda" else "gloo"
    already = dist.is_initialized()
    if not already:
        dist.init_process_group(backend, rank=rank, world_size=world_size, timeout=dt.timedelta(seconds=timeout_s))
    try:
        yield Launch(rank=rank, world_size=world_size, local_rank=local_rank, device=device)
    finally:
        if not already and dist.is_initialized():
            dist.destroy_process_group()


def barrier() -> None:
    """Wait for every rank (no-op when not distributed)."""
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        dist.barrier()
