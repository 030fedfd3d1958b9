"""Per-batch arithmetic of the training loop: loss parts, batch sizes, exact epoch means."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

__all__ = ["split_loss", "batch_size", "accumulate", "means", "shape_of", "share_rank0_buffers"]


def split_loss(result: Any) -> tuple[torch.Tensor, Mapping[str, torch.Tensor]]:
    """``_compute_loss``'s result as ``(loss, parts)``: it may return a loss or ``(loss, parts)``."""
    return (result[0], result[1]) if isinstance(result, tuple) else (result, {})


def batch_size(targets: Any, outputs: Any) -> int:
    """Samples in a batch: the targets' (else the outputs') first dimension, else 1."""
    for value in (targets, getattr(outputs, "logits", outputs)):
        if torch.is_tensor(value) and value.dim() > 0:
            return int(value.shape[0])
    return 1


def accumulate(sums: dict[str, float], step: Mapping[str, float]) -> None:
    """Add a batch's per-sample means times its size, so epoch means are exact.

    A step without ``n`` (an overridden ``train_step`` / ``eval_step`` that does not report
    its batch size, as the seed documents' do) counts as one sample: the epoch's value is
    then the mean of the batch means, which is what such a step's author computes by hand.
    """
    n = step.get("n", 1)
    sums["n"] = sums.get("n", 0) + n
    for key, value in step.items():
        if key != "n":
            sums[key] = sums.get(key, 0.0) + float(value) * n


def means(sums: Mapping[str, float]) -> dict[str, float]:
    """Divide :func:`accumulate`'s sums by the sample count (``{}`` for no samples)."""
    n = sums.get("n", 0)
    return {k: v / n for k, v in sums.items() if k != "n"} if n else {}


def shape_of(value: Any) -> Any:
    """A value's shape for error messages (nested for dicts, the type's name otherwise)."""
    if torch.is_tensor(value):
        return tuple(value.shape)
    if isinstance(value, Mapping):
        return {k: shape_of(v) for k, v in value.items()}
    if hasattr(value, "logits"):
        return shape_of(value.logits)
    return type(value).__name__


def share_rank0_buffers(model: nn.Module) -> None:
    """Under DDP, give every rank rank 0's buffers (BatchNorm statistics) before evaluating, once.

    DDP broadcasts them at the start of each training forward, so after the last step each
    rank holds its own update; evaluation runs the inner module (no per-batch collective), so
    without this the ranks would evaluate slightly different models. Every rank calls it.
    """
    if not isinstance(model, nn.parallel.DistributedDataParallel) or not model.broadcast_buffers:
        return
    import torch.distributed as dist

    for buffer in model.module.buffers():
        dist.broadcast(buffer, src=0)
