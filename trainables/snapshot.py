"""Snapshots in the distributed trainer's layout (seed 002): ``MODEL`` / ``TRAIN_INFO`` / ``GLOBAL_CONFIG``.

A snapshot is a plain ``torch.save`` dict::

    {"MODEL": {"MODEL_CONFIG": ..., "MODEL_STATE": state_dict},
     "TRAIN_INFO": {"EPOCHS_RUN": int, "BEST_LOSS": float | None,
                    "OPTIMIZER_STATE": state_dict, "SCHEDULER_STATE": state_dict | None},
     "GLOBAL_CONFIG": dict}

It holds tensors, numbers, strings and containers only, so :func:`read_snapshot` loads it
with ``weights_only=True``: reading a snapshot runs no code. ``EPOCHS_RUN`` is the number
of completed epochs (``trainer.epoch``), so a trainer restored by :func:`load_snapshot`
continues with the next one; the seed's own loop stored the last epoch's 0-based index
there, which made a resumed run repeat that epoch. A trainer with several optimizers or
schedulers (feature selection has two optimizers) stores a list under the same key.

The library's own checkpoints (:meth:`Trainer.save_checkpoint`) hold more (RNG and
callback states) and resume exactly; a snapshot is for exchanging weights and optimizer
state with code written against the seed's layout.
"""

from __future__ import annotations

import os
import pickle
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from trainables.callbacks import ModelCheckpoint
from trainables.checkpoint import CheckpointError, atomic_save, check_compatible
from trainables.distributed import unwrap_model

if TYPE_CHECKING:
    from trainables.trainer import Trainer

__all__ = ["snapshot_state", "save_snapshot", "read_snapshot", "load_snapshot", "SnapshotCheckpoint"]

SECTIONS = ("MODEL", "TRAIN_INFO", "GLOBAL_CONFIG")


def _one_or_list(states: list[Any]) -> Any:
    if not states:
        return None
    return states[0] if len(states) == 1 else states


def snapshot_state(trainer: Trainer, best_loss: float | None = None, model_config: Any = None,
                   global_config: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The trainer's state in the snapshot layout.

    Args:
        trainer: the trainer to snapshot.
        best_loss: ``TRAIN_INFO.BEST_LOSS``.
        model_config: ``MODEL.MODEL_CONFIG`` (default: the trainer config's ``model`` section, or {}).
        global_config: ``GLOBAL_CONFIG`` (default: the trainer's config).
    """
    config = trainer.config
    return {
        "MODEL": {
            "MODEL_CONFIG": model_config if model_config is not None else config.get("model", {}),
            "MODEL_STATE": unwrap_model(trainer.model).state_dict(),
        },
        "TRAIN_INFO": {
            "EPOCHS_RUN": trainer.epoch,
            "BEST_LOSS": best_loss,
            "OPTIMIZER_STATE": _one_or_list([opt.state_dict() for opt in trainer.optimizers]),
            "SCHEDULER_STATE": _one_or_list([sched.state_dict() for sched in trainer.schedulers]),
        },
        "GLOBAL_CONFIG": dict(global_config) if global_config is not None else dict(config),
    }


def save_snapshot(trainer: Trainer, path: str | os.PathLike[str], best_loss: float | None = None,
                  model_config: Any = None, global_config: Mapping[str, Any] | None = None) -> Path:
    """Write :func:`snapshot_state` to ``path`` atomically; returns the path."""
    return atomic_save(snapshot_state(trainer, best_loss, model_config, global_config), path)


def read_snapshot(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Load a snapshot dict (weights only: no code runs) and check its sections.

    Raises:
        CheckpointError: the file is missing, damaged, or lacks the snapshot sections.
    """
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"snapshot not found: {path}")
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        raise CheckpointError(f"{path} is not a snapshot: it holds objects other than tensors and plain values "
                              "(a trainables checkpoint? Trainer.load_checkpoint reads those)") from None
    except Exception as exc:  # truncated zip, ...
        raise CheckpointError(f"snapshot {path} is damaged or not a snapshot ({type(exc).__name__}: {exc})") from exc
    missing = [s for s in SECTIONS if not isinstance(data, dict) or s not in data]
    if missing:
        raise CheckpointError(f"{path} is not a snapshot: missing {', '.join(missing)} "
                              f"(expected {', '.join(SECTIONS)})")
    return data


def load_snapshot(trainer: Trainer, path: str | os.PathLike[str], load_optimizer: bool = True,
                  load_scheduler: bool = True) -> dict[str, Any]:
    """Restore a snapshot into ``trainer`` (weights, optimizer and scheduler states, epochs run); returns it.

    Raises:
        CheckpointError: unreadable file, or optimizer states that do not match the trainer's.
        CheckpointMismatchError: the weights belong to a different model.
    """
    data = read_snapshot(path)
    model = unwrap_model(trainer.model)
    state = data["MODEL"]["MODEL_STATE"]
    check_compatible(model, state, path)
    model.load_state_dict(state)
    info = data["TRAIN_INFO"]
    if load_optimizer and info.get("OPTIMIZER_STATE") is not None:
        states = info["OPTIMIZER_STATE"]
        states = states if isinstance(states, list) else [states]
        if len(states) != len(trainer.optimizers):
            raise CheckpointError(f"snapshot {path} holds {len(states)} optimizer states, "
                                  f"this trainer has {len(trainer.optimizers)}")
        for opt, opt_state in zip(trainer.optimizers, states):
            opt.load_state_dict(opt_state)
    if load_scheduler and info.get("SCHEDULER_STATE") is not None:
        states = info["SCHEDULER_STATE"]
        for sched, sched_state in zip(trainer.schedulers, states if isinstance(states, list) else [states]):
            sched.load_state_dict(sched_state)
    trainer.epoch = int(info["EPOCHS_RUN"])
    return data


class SnapshotCheckpoint(ModelCheckpoint):
    """Write snapshots during a fit, as the distributed trainer does: the best, every N epochs, the last.

    ``best.pt`` when ``monitor`` (``train_loss`` by default: the seed saves on the best
    training loss) improves, with ``BEST_LOSS`` set; ``epoch_{N:04d}.pt`` every
    ``every_n_epochs`` (the seed's ``save_interval``); ``last.pt`` each epoch when
    ``save_last``. Arguments as :class:`~trainables.callbacks.ModelCheckpoint`.
    """

    def __init__(self, dirpath: str | os.PathLike[str], monitor: str | None = "train_loss", mode: str = "min",
                 *, save_best: bool = True, save_last: bool = True, every_n_epochs: int = 0) -> None:
        super().__init__(dirpath, monitor, mode, save_best=save_best, save_last=save_last,
                         every_n_epochs=every_n_epochs)

    def _write(self, trainer: Trainer, path: Path, epoch: int) -> Path:
        best = None if self.best_score in (float("inf"), float("-inf")) else self.best_score
        return save_snapshot(trainer, path, best_loss=best)
