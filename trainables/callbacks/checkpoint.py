"""Save checkpoints during a fit: the best by a metric, every N epochs, and the last."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trainables.callbacks.base import Callback
from trainables.callbacks.monitor import Mode, is_improvement, read_metric, worst_value

if TYPE_CHECKING:
    from trainables.trainer import Trainer

__all__ = ["ModelCheckpoint"]


class ModelCheckpoint(Callback):
    """Write ``best.pt``, ``last.pt`` and ``epoch_{N:04d}.pt`` under ``dirpath``.

    Each file holds everything :meth:`Trainer.load_checkpoint` needs to resume
    (model, every optimizer and scheduler, epoch, best score, config, callback and RNG
    states). Under DDP only rank 0 writes.

    Args:
        dirpath: folder for the files.
        monitor: metric deciding "best"; None disables ``best.pt``.
        mode: ``"min"`` or ``"max"``.
        save_best / save_last: write those files.
        every_n_epochs: also keep ``epoch_NNNN.pt`` every N epochs (0: never).
    """

    order = 60  # after EarlyStopping, so its updated state lands in the same file

    def __init__(
        self,
        dirpath: str | os.PathLike[str],
        monitor: str | None = "val_loss",
        mode: str | Mode = "min",
        *,
        save_best: bool = True,
        save_last: bool = True,
        every_n_epochs: int = 0,
    ) -> None:
        if every_n_epochs < 0:
            raise ValueError(f"ModelCheckpoint: every_n_epochs must be >= 0, got {every_n_epochs}")
        self.dirpath = Path(dirpath)
        self.monitor = monitor
        self.mode = Mode.parse(mode)
        self.save_best = save_best and monitor is not None
        self.save_last = save_last
        self.every_n_epochs = every_n_epochs
        self.best_score = worst_value(self.mode)
        self.best_path: Path | None = None
        self.last_path: Path | None = None

    def on_epoch_end(self, trainer: Trainer, epoch: int, metrics: dict[str, Any]) -> None:
        improved = False
        if self.save_best:
            value = read_metric(metrics, self.monitor, "ModelCheckpoint")  # type: ignore[arg-type]
            improved = is_improvement(value, self.best_score, self.mode)
            if improved:
                self.best_score = value
        if not trainer.is_main_process:
            return
        if improved:
            self.best_path = self._write(trainer, self.dirpath / self.file_name("best", epoch), epoch)
        if self.every_n_epochs and epoch % self.every_n_epochs == 0:
            self._write(trainer, self.dirpath / self.file_name("epoch", epoch), epoch)
        if self.save_last:
            self.last_path = self._write(trainer, self.dirpath / self.file_name("last", epoch), epoch)

    def file_name(self, kind: str, epoch: int) -> str:
        """The file for ``kind`` (``best``, ``epoch``, ``last``) at ``epoch`` (1-based)."""
        return f"epoch_{epoch:04d}.pt" if kind == "epoch" else f"{kind}.pt"

    def _write(self, trainer: Trainer, path: Path, epoch: int) -> Path:
        return trainer.save_checkpoint(path, best_score=self.best_score)

    def state_dict(self) -> dict[str, Any]:
        return {"best_score": self.best_score, "best_path": str(self.best_path) if self.best_path else None}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.best_score = state["best_score"]
        self.best_path = Path(state["best_path"]) if state.get("best_path") else None
