"""Helpers for running the trainer under ``torch.distributed`` (DDP).

Everything degrades to a no-op in a single process, so the trainer calls these
unconditionally.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import Sampler

__all__ = ["WorldInfo", "world_info", "is_main_process", "all_reduce_sums", "unwrap_model", "ShardSampler"]


@dataclass(frozen=True)
class WorldInfo:
    """Where this process sits in a distributed run."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def is_distributed(self) -> bool:
        return self.world_size > 1


def world_info() -> WorldInfo:
    """The current process's rank and world size (0 and 1 outside a process group)."""
    if dist.is_available() and dist.is_initialized():
        return WorldInfo(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", 0)))
    return WorldInfo()


def is_main_process() -> bool:
    return world_info().is_main


def all_reduce_sums(sums: Mapping[str, float], device: torch.device) -> dict[str, float]:
    """Sum each value across all ranks, so every rank sees the global totals.

    The ranks first agree on the keys (a rank with an empty shard has none; a metric may be
    missing on one rank): every rank then reduces one tensor of the same length, in the same
    order, a missing key counting 0. Two small collectives for the whole dict, not one per metric.
    """
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return dict(sums)
    gathered: list[list[str] | None] = [None] * dist.get_world_size()
    dist.all_gather_object(gathered, sorted(sums))
    keys = sorted({k for ks in gathered for k in (ks or [])})
    # gloo cannot reduce CUDA tensors and NCCL cannot reduce CPU ones: follow the backend.
    reduce_device = device if dist.get_backend() == "nccl" else torch.device("cpu")
    packed = torch.tensor([float(sums.get(k, 0.0)) for k in keys], dtype=torch.float64, device=reduce_device)
    dist.all_reduce(packed, op=dist.ReduceOp.SUM)
    return dict(zip(keys, packed.tolist()))


def unwrap_model(model: nn.Module) -> nn.Module:
    """The module inside a DDP / DataParallel wrapper, so checkpoints load anywhere."""
    return model.module if isinstance(model, (nn.parallel.DistributedDataParallel, nn.DataParallel)) else model


class ShardSampler(Sampler[int]):
    """Deterministic, non-padding shard of ``range(n)`` for evaluation under DDP.

    ``DistributedSampler`` pads the last shard with repeated samples, which skews
    metrics; here rank r takes indices r, r + world, r + 2*world, ... so that the
    all-reduced sums cover every sample exactly once.
    """

    def __init__(self, n: int, rank: int, world_size: int) -> None:
        self.indices = list(range(rank, n, world_size))

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices)

    def __len__(self) -> int:
        return len(self.indices)
