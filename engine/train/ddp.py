"""PyTorch distributed set-up for `edidub train` (DESIGN.md §6): one process per device.

`torchrun --nproc-per-node N [--nnodes M --rdzv-endpoint HOST:PORT] -m bridge.cli train ...`
sets RANK / WORLD_SIZE / LOCAL_RANK / MASTER_ADDR / MASTER_PORT; a plain `edidub train` is a
world of one and initialises nothing. NCCL on CUDA, gloo on CPU (the tests run two CPU
processes with gloo).
"""

from __future__ import annotations

import os
from dataclasses import dataclass


@dataclass(frozen=True)
class DistInfo:
    """Where this process sits in the job."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0
    device: str = "cpu"

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world > 1


def setup(device: str | None = None, backend: str | None = None) -> DistInfo:
    """Join the process group named by torchrun's environment (or stay a world of one).

    `device` None picks `cuda:LOCAL_RANK` when CUDA is available, else CPU; the backend follows
    the device (NCCL for CUDA, gloo for CPU) unless given.
    """
    import torch
    import torch.distributed as dist

    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", str(rank)))
    if device is None:
        device = f"cuda:{local_rank}" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda"):
        torch.cuda.set_device(torch.device(device))
    if world > 1 and not dist.is_initialized():
        if backend is None:
            backend = "nccl" if device.startswith("cuda") else "gloo"
        dist.init_process_group(backend=backend, rank=rank, world_size=world)
    return DistInfo(rank=rank, world=world, local_rank=local_rank, device=device)


def teardown() -> None:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def barrier(info: DistInfo) -> None:
    if info.distributed:
        import torch.distributed as dist

        dist.barrier()


def all_mean(value: float, info: DistInfo) -> float:
    """The mean of a scalar over all ranks (for logging the global loss)."""
    if not info.distributed:
        return float(value)
    import torch
    import torch.distributed as dist

    t = torch.tensor([float(value)], dtype=torch.float64)
    if info.device.startswith("cuda"):
        t = t.to(info.device)
    dist.all_reduce(t)
    return float(t.item()) / info.world
