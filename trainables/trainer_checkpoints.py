"""Saving and restoring a :class:`~trainables.trainer.Trainer`: the checkpoint half of the trainer."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch.utils.data import DataLoader

from trainables.checkpoint import (
    CHECKPOINT_FORMAT,
    CheckpointError,
    atomic_save,
    check_compatible,
    read_checkpoint,
    rng_state,
    weights_safe,
    set_rng_state,
)
from trainables.distributed import unwrap_model

if TYPE_CHECKING:
    from trainables.callbacks import Callback

__all__ = ["CheckpointMixin"]


class CheckpointMixin:
    """``checkpoint_state`` / ``save_checkpoint`` / ``load_checkpoint`` for the trainer (its base class)."""

    model: torch.nn.Module
    optimizers: list[torch.optim.Optimizer]
    schedulers: list[Any]
    callbacks: list[Callback]
    config: dict[str, Any]
    epoch: int
    global_step: int
    _train_loader: DataLoader | None
    _pending_loader_state: torch.Tensor | None

    def _attach_loader(self, loader: Iterable[Any]) -> None:
        """Remember the train loader so checkpoints carry its shuffling RNG (exact resume)."""
        self._train_loader = loader if isinstance(loader, DataLoader) else None
        generator = getattr(self._train_loader, "generator", None)
        if self._pending_loader_state is not None and generator is not None:
            generator.set_state(self._pending_loader_state)
        self._pending_loader_state = None

    # ----------------------------------------------------------- checkpoints
    def checkpoint_state(self, best_score: float | None = None) -> dict[str, Any]:
        """Everything needed to resume: see :meth:`load_checkpoint`."""
        generator = getattr(self._train_loader, "generator", None)
        return weights_safe({  # read back with torch.load(weights_only=True): no code runs on load
            "format": CHECKPOINT_FORMAT,
            "model_class": type(unwrap_model(self.model)).__qualname__,
            "model": unwrap_model(self.model).state_dict(),
            "optimizers": [opt.state_dict() for opt in self.optimizers],
            "schedulers": [sched.state_dict() for sched in self.schedulers],
            "epoch": self.epoch,
            "global_step": self.global_step,
            "best_score": best_score,
            "config": self.config,
            "callbacks": {cb.state_key: cb.state_dict() for cb in self.callbacks},
            "rng": rng_state(),
            "loader_rng": generator.get_state() if generator is not None else None,
        })

    def save_checkpoint(self, path: str | os.PathLike[str], best_score: float | None = None, *,
                        durable: bool = True) -> Path:
        """Write a checkpoint; returns its path. Call on rank 0 only under DDP.

        Atomically and fsynced by default, so a crash leaves the previous file. ``durable=False``
        writes it straight, for a private folder that is copied elsewhere and then deleted (a
        checkpoint reported to Tune: Tune's copy is the one that lasts); it saves the fsync, a
        millisecond or more per checkpoint.
        """
        if durable:
            return atomic_save(self.checkpoint_state(best_score), path)
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save(self.checkpoint_state(best_score), path)
        return path

    def _save_checkpoint(self, path: str, epoch: int, metric_value: float | None = None) -> None:
        """The protected hook ``train``'s checkpoints go through (override to add to them).

        Args:
            path: the file to write.
            epoch: the epoch just finished, 0-based as ``train`` numbers them (the file records
                ``epoch + 1`` completed epochs, so a loaded trainer continues after it).
            metric_value: the best value so far of ``best_model_metric``, if any.
        """
        self.save_checkpoint(path, best_score=metric_value)

    def load_checkpoint(
        self,
        path: str | os.PathLike[str],
        load_optimizer: bool = True,
        load_scheduler: bool = True,
        load_callbacks: bool = True,
        *,
        trusted: bool = False,
    ) -> dict[str, Any]:
        """Restore a checkpoint so that ``fit`` continues exactly where it stopped.

        The file is read with ``torch.load(weights_only=True)`` (no code runs); ``trusted=True``
        also reads a checkpoint written before version 0.2 (see :func:`read_checkpoint`).

        Raises:
            CheckpointError: the file is missing, damaged, or not one of ours.
            CheckpointMismatchError: its weights belong to a different model.
        """
        # Read onto the CPU whatever the device: RNG states must stay CPU byte tensors (a CUDA
        # one is refused by set_state), and load_state_dict copies weights and optimizer state
        # to their parameters' device anyway.
        data = read_checkpoint(path, trusted=trusted)
        model = unwrap_model(self.model)
        check_compatible(model, data["model"], path)
        model.load_state_dict(data["model"])
        if load_optimizer:
            if len(data["optimizers"]) != len(self.optimizers):
                raise CheckpointError(f"checkpoint {path} holds {len(data['optimizers'])} optimizer states, "
                                      f"this trainer has {len(self.optimizers)}")
            for opt, state in zip(self.optimizers, data["optimizers"]):
                opt.load_state_dict(state)
        if load_scheduler:
            for sched, state in zip(self.schedulers, data["schedulers"]):
                sched.load_state_dict(state)
        if load_callbacks:
            for cb in self.callbacks:
                if cb.state_key in data["callbacks"]:
                    cb.load_state_dict(data["callbacks"][cb.state_key])
        self.epoch, self.global_step = data["epoch"], data["global_step"]
        set_rng_state(data["rng"])
        self._pending_loader_state = data.get("loader_rng")
        return data


