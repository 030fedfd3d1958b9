"""Helpers for running the trainer, or your own loop, under ``torch.distributed`` (DDP).

Everything degrades to a no-op in a single process, so the trainer calls these
unconditionally. :func:`prepare_model` and :func:`prepare_data_loader` are the public pair for
your own model (Ray Train's names, no Ray here): wrap and place the model, shard the rows.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sized
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader, Dataset, DistributedSampler, IterableDataset, Sampler

from trainables.devices import resolve_device

__all__ = ["WorldInfo", "world_info", "is_main_process", "all_reduce_sums", "unwrap_model", "ShardSampler",
           "SeededDistributedSampler", "DeviceLoader", "prepare_model", "prepare_data_loader"]


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


# ----------------------------------------------------------------- public helpers for your own model
def _auto_device(device: str | torch.device | None) -> torch.device:
    """``device``, or this process's own: its current CUDA device (Ray Train sets each worker's), MPS, else CPU.

    A bare ``"cuda"`` becomes the current device's index, so that DDP is told one device.
    """
    dev = resolve_device(device)
    if dev.type == "cuda" and dev.index is None:
        dev = torch.device("cuda", torch.cuda.current_device())
    return dev


def prepare_model(model: nn.Module, device: str | torch.device | None = None, *,
                  find_unused_parameters: bool = False) -> nn.Module:
    """Move ``model`` to this rank's device and, under DDP, wrap it in ``DistributedDataParallel``.

    In one process (no process group, or a group of one) the model comes back moved and
    otherwise unchanged, so the same training function runs with and without DDP. Under a
    process group of two or more ranks it comes back wrapped: its ``backward`` averages the
    gradients over the ranks, and its construction copied rank 0's parameters and buffers to
    every rank. A model that is already wrapped is only moved.

    Args:
        model: The module to train.
        device: Where to put it; None picks this process's device: its current CUDA device
            (Ray Train makes it each worker's own GPU; under ``torchrun`` call
            ``torch.cuda.set_device(local_rank)`` first, or pass ``device``), else MPS, else the CPU.
            A CUDA device becomes the current one, as Ray Train's ``prepare_model`` does, so a
            ``Trainer`` built with ``device=None`` agrees with it.
        find_unused_parameters: Passed to ``DistributedDataParallel``; needed when some
            parameters get no gradient in a step (a branch not taken), at some cost per step.

    Raises:
        TypeError: ``model`` is not an ``nn.Module``.
        ValueError: the device is not available on this machine.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"prepare_model: expected a torch.nn.Module, got {type(model).__name__}")
    dev = _auto_device(device)
    if dev.type == "cuda" and dev.index != torch.cuda.current_device():
        torch.cuda.set_device(dev)
    model = model.to(dev)
    if not world_info().is_distributed or isinstance(model, nn.parallel.DistributedDataParallel):
        return model
    return nn.parallel.DistributedDataParallel(model, device_ids=[dev.index] if dev.type == "cuda" else None,
                                               find_unused_parameters=find_unused_parameters)


class SeededDistributedSampler(DistributedSampler):
    """A ``DistributedSampler`` that reshuffles every pass by itself.

    Each rank takes a disjoint shard of one seeded permutation, the same on every rank
    (padded with repeated rows to equal lengths, or cut with ``drop_last``). The plain
    ``DistributedSampler`` gives the same order every epoch unless ``set_epoch`` is called;
    here a pass without a ``set_epoch`` since the previous pass is the next epoch (the first
    pass is epoch 0), and ``set_epoch(e)`` (what :meth:`Trainer.fit
    <trainables.trainer.Trainer.fit>` calls, from 1) still decides the pass that follows it. Seed and
    epoch alone fix a pass's shard, so a resumed run sees the same rows.
    """

    def __init__(self, dataset: Sized, num_replicas: int, rank: int, *, shuffle: bool = True, seed: int = 0,
                 drop_last: bool = False) -> None:
        super().__init__(dataset, num_replicas=num_replicas, rank=rank,  # type: ignore[arg-type]  (any Sized)
                         shuffle=shuffle, seed=seed, drop_last=drop_last)
        self._epoch_given = False
        self._passes = 0

    def set_epoch(self, epoch: int) -> None:
        super().set_epoch(epoch)
        self._epoch_given = True

    def __iter__(self) -> Iterator[int]:
        if self._epoch_given:
            self._epoch_given = False
        elif self._passes:
            self.epoch += 1  # nobody said which epoch this is: the one after the last pass
        self._passes += 1
        return super().__iter__()


class DeviceLoader(DataLoader):
    """A ``DataLoader`` whose batches (tensors, and tensors in lists, tuples and dicts) arrive on ``device``."""

    def __init__(self, *args: Any, device: torch.device | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.device = device

    def __iter__(self) -> Iterator[Any]:  # type: ignore[override]
        batches = super().__iter__()
        if self.device is None or self.device.type == "cpu":
            return batches
        return (_to_device(batch, self.device) for batch in batches)


def _to_device(batch: Any, device: torch.device) -> Any:
    if torch.is_tensor(batch):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, Mapping):
        return {k: _to_device(v, device) for k, v in batch.items()}
    if isinstance(batch, (list, tuple)) and not hasattr(batch, "_fields"):  # a namedtuple keeps its type below
        return type(batch)(_to_device(v, device) for v in batch)
    if isinstance(batch, tuple):
        return type(batch)(*(_to_device(v, device) for v in batch))
    return batch


def prepare_data_loader(loader_or_dataset: DataLoader | Dataset, *, batch_size: int | None = None,
                        shuffle: bool | None = None, seed: int = 0, drop_last: bool = False, evaluation: bool = False,
                        device: str | torch.device | None = None) -> DataLoader:
    """This rank's batches of a data set, on this rank's device.

    Under a process group of two or more ranks, each rank gets a disjoint shard:
    :class:`SeededDistributedSampler` (one seeded permutation, the same on every rank,
    reshuffled every pass; ``Trainer.fit`` also calls ``set_epoch``). In one process a
    ``DataLoader`` comes back as it is (its own order and batch size) when its batches are
    already on the device, and a ``Dataset`` gets a plain seeded loader.

    Args:
        loader_or_dataset: A ``DataLoader`` (its dataset, batch size, collate function,
            workers and the like are kept; :meth:`DataSplits.loader
            <trainables.data.DataSplits.loader>`'s batches stay sliced from tensors) or a
            map-style ``Dataset``.
        batch_size: Rows per batch, per rank; needed for a ``Dataset``, refused for a
            ``DataLoader`` (it keeps its own).
        shuffle: Reshuffle every epoch; by default True, False with ``evaluation``.
        seed: Seeds the permutation; give every rank the same.
        drop_last: Under DDP, drop the last rows so that every rank has as many, instead of
            repeating rows to pad the shards (``DistributedSampler``'s ``drop_last``). A loader
            keeps its own ``drop_last`` for a last, smaller batch.
        evaluation: Shard for evaluation: every row exactly once, rank r taking rows r,
            r + world, ... (:class:`ShardSampler`, no padding to skew the metrics); shards may
            differ by a row, which :meth:`Trainer.evaluate <trainables.trainer.Trainer.evaluate>`
            allows (it sums over ranks). Never for training: under DDP every rank must take as
            many steps.
        device: Where batches arrive; None: this process's device, as :func:`prepare_model` picks it.

    Raises:
        ValueError: a missing or refused ``batch_size``, ``shuffle=True`` with ``evaluation``, or
            under DDP a data set that cannot be sharded by row (an ``IterableDataset``, a loader
            with its own batch sampler).
    """
    from trainables.data.batches import TensorBatches

    if evaluation and shuffle:
        raise ValueError("prepare_data_loader: evaluation=True shards rows in a fixed order; drop shuffle=True")
    shard = _Shard(not evaluation if shuffle is None else shuffle, seed, drop_last, evaluation)
    dev = _auto_device(device)
    world = world_info()
    if not isinstance(loader_or_dataset, DataLoader):
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"prepare_data_loader: a Dataset needs batch_size, a positive integer "
                             f"(got {batch_size!r})")
        dataset = loader_or_dataset
        if world.is_distributed:
            return DeviceLoader(dataset, batch_size=batch_size, sampler=shard.sampler(dataset, world), device=dev)
        return DeviceLoader(dataset, batch_size=batch_size, generator=torch.Generator().manual_seed(seed),
                            shuffle=shard.shuffle and not isinstance(dataset, IterableDataset), device=dev)
    loader = loader_or_dataset
    if batch_size is not None:
        raise ValueError(f"prepare_data_loader: batch_size={batch_size!r} is for a Dataset; a DataLoader keeps its "
                         f"own ({loader.batch_size}): build it with the batch size you want per rank")
    if world.is_distributed:
        if loader.batch_size is None and loader.batch_sampler is not None:
            raise ValueError("prepare_data_loader: cannot shard a DataLoader with its own batch_sampler by row under "
                             "DDP; pass its Dataset and a batch_size instead")
        sampler = shard.sampler(loader.dataset, world)
    elif getattr(loader, "device", None) == dev or (dev.type == "cpu" and not isinstance(loader, TensorBatches)):
        return loader  # one process, batches already where they belong
    else:
        sampler = loader.sampler  # one process: the loader's own order, on another device
    if isinstance(loader, TensorBatches):
        x, y = loader.dataset.tensors
        return TensorBatches(x, y, loader.batch_size, sampler=sampler, drop_last=loader.drop_last,
                             generator=loader.generator, device=dev)
    return _rebuilt(loader, sampler, dev)


@dataclass(frozen=True)
class _Shard:
    """How :func:`prepare_data_loader` shards rows under DDP."""

    shuffle: bool
    seed: int
    drop_last: bool
    evaluation: bool

    def sampler(self, dataset: Any, world: WorldInfo) -> Sampler[int]:
        if isinstance(dataset, IterableDataset):
            raise ValueError(f"prepare_data_loader: cannot shard {type(dataset).__name__}, an IterableDataset, by "
                             "row under DDP; give a map-style Dataset, or split the stream per rank yourself "
                             "(trainables.distributed.world_info() has the rank)")
        n = len(dataset)
        if self.evaluation:
            return ShardSampler(n, world.rank, world.world_size)
        return SeededDistributedSampler(range(n), world.world_size, world.rank, shuffle=self.shuffle, seed=self.seed,
                                        drop_last=self.drop_last)


def _rebuilt(loader: DataLoader, sampler: Sampler[int] | Any, device: torch.device) -> DeviceLoader:
    """``loader`` with another sampler, yielding on ``device``: every other setting kept."""
    kwargs: dict[str, Any] = {
        "num_workers": loader.num_workers, "collate_fn": loader.collate_fn, "pin_memory": loader.pin_memory,
        "timeout": loader.timeout, "worker_init_fn": loader.worker_init_fn,
        "multiprocessing_context": loader.multiprocessing_context, "generator": loader.generator,
        "prefetch_factor": loader.prefetch_factor if loader.num_workers else None,
        "persistent_workers": loader.persistent_workers, "pin_memory_device": loader.pin_memory_device,
        "in_order": getattr(loader, "in_order", True),
    }
    if loader.batch_size is None and loader.batch_sampler is not None:  # its own (one process: refused under DDP)
        return DeviceLoader(loader.dataset, batch_sampler=loader.batch_sampler, device=device, **kwargs)
    if isinstance(loader.dataset, IterableDataset):  # one process: the stream in its own order
        return DeviceLoader(loader.dataset, batch_size=loader.batch_size, drop_last=loader.drop_last, device=device,
                            **kwargs)
    return DeviceLoader(loader.dataset, batch_size=loader.batch_size, sampler=sampler, drop_last=loader.drop_last,
                        device=device, **kwargs)
