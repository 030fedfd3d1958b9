"""What ``Trainer.train(...)`` adds over ``fit``: its own numbering, names and built-in callbacks.

:meth:`~trainables.trainer.Trainer.fit` is the core loop: epochs are 1-based and
``epochs`` is a total (a resumed trainer continues to it), validation metrics are named
``val_*``, and function callbacks see those. :meth:`~trainables.trainer.Trainer.train`
is the face the architecture-agnostic trainer documents (seed 004): ``num_epochs`` more
epochs, epochs numbered from 0 and evaluation metrics named ``eval_*`` in its history,
in the function callbacks passed to it and in ``best_model_metric``. The helpers here
translate between the two; nothing here trains.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trainables.callbacks import Callback, EarlyStopping, FunctionCallback, History, ModelCheckpoint
from trainables.callbacks.monitor import Mode

if TYPE_CHECKING:
    from trainables.trainer import Trainer

__all__ = ["TrainCallMixin", "to_train_names", "history_lists", "core_metric", "metric_mode", "train_callbacks",
           "TrainFunctionCallback", "TrainCheckpoint"]

_HIGHER_IS_BETTER = ("accuracy", "acc", "f1", "auc", "precision", "recall")


def to_train_names(metrics: Mapping[str, Any]) -> dict[str, Any]:
    """An epoch's metrics as ``train`` names them: ``val_*`` -> ``eval_*``, ``epoch`` 0-based."""
    out: dict[str, Any] = {}
    for key, value in metrics.items():
        if key == "epoch":
            out[key] = value - 1
        elif key.startswith("val_"):
            out["eval_" + key.removeprefix("val_")] = value
        else:
            out[key] = value
    return out


def history_lists(rows: Iterable[Mapping[str, Any]]) -> dict[str, list[Any]]:
    """Epoch rows as ``{metric: [value per epoch]}``, in ``train``'s names (NaN where a row lacks one)."""
    rows = [to_train_names(r) for r in rows]
    keys: dict[str, None] = {}
    for row in rows:
        keys.update(dict.fromkeys(k for k, v in row.items() if isinstance(v, (int, float)) and not isinstance(v, bool)))
    return {k: [row.get(k, math.nan) for row in rows] for k in keys}


def core_metric(name: str, has_eval: bool) -> str:
    """``train``'s metric name in ``fit``'s names.

    ``eval_loss`` is ``val_loss``; without an evaluation loader an ``eval_*`` metric does
    not exist, and the same metric on the training data (``train_loss``) is used instead,
    so the documented default ``best_model_metric="eval_loss"`` works for a train without
    ``eval_dataloader``.
    """
    if name.startswith("eval_"):
        return ("val_" if has_eval else "train_") + name.removeprefix("eval_")
    return name


def metric_mode(name: str) -> Mode:
    """``max`` for accuracy-like names (accuracy, acc, f1, auc, precision, recall), else ``min``."""
    last = name.rsplit("_", 1)[-1].lower()
    return Mode.MAX if last in _HIGHER_IS_BETTER else Mode.MIN


class TrainFunctionCallback(FunctionCallback):
    """A function ``f(trainer, epoch, metrics)`` passed to ``train``: 0-based epochs, ``eval_*`` names."""

    def on_epoch_end(self, trainer: Trainer, epoch: int, metrics: dict[str, Any]) -> None:
        self.fn(trainer, epoch - 1, to_train_names(metrics))


class TrainCheckpoint(ModelCheckpoint):
    """``train``'s checkpoints: ``best_model.pt`` and ``checkpoint_epoch_{N}.pt`` after N epochs.

    Every file goes through the trainer's protected hook ``_save_checkpoint(path, epoch,
    metric_value)`` (``epoch`` 0-based, as ``train`` numbers them), so a subclass that
    overrides it sees every save.
    """

    def file_name(self, kind: str, epoch: int) -> str:
        return "best_model.pt" if kind == "best" else f"checkpoint_epoch_{epoch}.pt"

    def _write(self, trainer: Trainer, path: Path, epoch: int) -> Path:
        value = None if self.best_score in (math.inf, -math.inf) else self.best_score
        trainer._save_checkpoint(str(path), epoch - 1, value)
        return path


def train_callbacks(
    *,
    has_eval: bool,
    save_dir: str | None,
    save_freq: int,
    best_model_metric: str | None,
    early_stopping_patience: int | None,
    callbacks: Iterable[Callback | Callable[..., Any]] | None,
) -> list[Callback]:
    """The callbacks one ``train`` call registers (and removes when it returns)."""
    if save_freq < 0:
        raise ValueError(f"train: save_freq must be >= 0 (0: only the best model), got {save_freq}")
    if early_stopping_patience is not None and early_stopping_patience < 1:
        raise ValueError(f"train: early_stopping_patience must be >= 1 (or None), got {early_stopping_patience}")
    monitor = core_metric(best_model_metric, has_eval) if best_model_metric else None
    made: list[Callback] = []
    if early_stopping_patience is not None:
        if monitor is None:
            raise ValueError("train: early_stopping_patience needs a best_model_metric to watch")
        # Any improvement counts, and the weights stay those of the last epoch: the seed's
        # trainer keeps its best model in save_dir's best_model.pt, not in memory.
        made.append(EarlyStopping(monitor, metric_mode(monitor), early_stopping_patience, min_delta=0.0,
                                  restore_best_weights=False))
    if save_dir is not None:
        made.append(TrainCheckpoint(save_dir, monitor, metric_mode(monitor) if monitor else "min",
                                    save_last=False, every_n_epochs=save_freq))
    for cb in callbacks or []:
        if isinstance(cb, Callback):
            made.append(cb)
        elif callable(cb):
            made.append(TrainFunctionCallback(cb))
        else:
            raise TypeError(f"callback {cb!r} is neither a Callback nor a function f(trainer, epoch, metrics)")
    return made


class TrainCallMixin:
    """``Trainer.train(...)``: the seed trainer's entry point over ``fit`` (the trainer's base class)."""

    epoch: int
    history: History

    def train(
        self,
        train_dataloader: Iterable[Any],
        num_epochs: int,
        eval_dataloader: Iterable[Any] | None = None,
        save_dir: str | os.PathLike[str] | None = None,
        save_freq: int = 1,
        best_model_metric: str | None = "eval_loss",
        early_stopping_patience: int | None = None,
        callbacks: Iterable[Callback | Callable[..., Any]] | None = None,
    ) -> dict[str, list[float]]:
        """Train ``num_epochs`` more epochs: ``fit`` with the seed trainer's names (see ``docs/seeds.md``).

        Args:
            train_dataloader: the training batches.
            num_epochs: how many epochs to run now (>= 1), counted from where the trainer
                is (a second call, or one after ``load_checkpoint``, continues).
            eval_dataloader: evaluate after every epoch (``eval_*`` metrics).
            save_dir: write ``best_model.pt`` and ``checkpoint_epoch_{N}.pt`` here.
            save_freq: write ``checkpoint_epoch_{N}.pt`` every this many epochs (0: only the best).
            best_model_metric: the metric deciding ``best_model.pt`` and early stopping
                (lower is better, except accuracy-like names); an ``eval_*`` metric without
                ``eval_dataloader`` falls back to its ``train_*`` twin.
            early_stopping_patience: stop after this many epochs without improvement.
            callbacks: functions ``f(trainer, epoch, metrics)`` with 0-based ``epoch`` and
                ``train_*`` / ``eval_*`` metrics, or :class:`Callback` objects (which see
                ``fit``'s names). Registered for this call only.

        Returns:
            ``{metric: [value per epoch]}`` for the epochs this call ran (``epoch`` 0-based).
        """
        if num_epochs < 1:
            raise ValueError(f"train: num_epochs must be >= 1 (the number of epochs to run now), got {num_epochs}")
        made = train_callbacks(has_eval=eval_dataloader is not None,
                               save_dir=None if save_dir is None else str(save_dir),
                               save_freq=save_freq, best_model_metric=best_model_metric,
                               early_stopping_patience=early_stopping_patience, callbacks=callbacks)
        added = self.add_callbacks(made)  # type: ignore[attr-defined]
        first = len(self.history)
        try:
            self.fit(train_dataloader, self.epoch + num_epochs, eval_dataloader)  # type: ignore[attr-defined]
        finally:
            self.remove_callbacks(added)  # type: ignore[attr-defined]
        return history_lists(self.history.epochs[first:])

