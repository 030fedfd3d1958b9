"""A trainer configured by keyword options (the configurable base trainer's face, seed 001).

``OptionsTrainer(model, num_epochs=..., learning_rate=..., loss_function="CrossEntropyLoss",
optim_function="Adam", train_dataset=..., ...)`` builds the optimizer, the loss, the data
loaders and the callbacks those options ask for, then is an ordinary
:class:`~trainables.trainer.Trainer`: ``train()`` with no arguments is
``fit(train_loader, num_epochs, val_loader)``. Every option of the seed's constructor is
accepted with its documented default; an unknown option is an error that names it.

How the options map onto the core (see also ``docs/seeds.md``):

* ``num_epochs`` is a total, as ``fit``'s ``epochs``: a trainer restored from a checkpoint
  continues up to it; ``cur_epoch`` is the number of completed epochs (``trainer.epoch``).
* ``save_every``: -1 writes ``{checkpoint_name}_epoch_{N}.pt`` after every epoch; k > 0
  writes ``{checkpoint_name}_iter_{step}.pt`` every k optimisation steps (a mid-epoch
  checkpoint resumes at the start of that epoch). Saving makes ``save_best`` true, as the
  seed's constructor does; ``{checkpoint_name}_best.pt`` follows ``val_accuracy`` (or
  ``train_loss`` without a validation set). ``save_hist`` writes
  ``{checkpoint_name}_history.json`` after every epoch.
* ``early_stop`` is a dict of :class:`~trainables.callbacks.EarlyStopping` arguments
  (``patience``, ``min_delta``, ``monitor``, ``mode``, ``restore_best_weights``);
  ``stop_when_acc`` > 0 stops once ``val_accuracy`` reaches it.
* ``device_id`` -1 is the CPU, N >= 0 is ``cuda:N``; ``device_map`` (several devices) is
  refused unless None. ``lr_scheduler`` and ``mtm_scheduler`` are schedulers (or
  factories ``f(optimizer)``) stepped after every epoch.
* ``momentum`` (0.5) goes to optimizers that have one (SGD, RMSprop); ``verbose`` prints a
  line per epoch and one every ``print_every`` steps.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from torch import nn
from torch.utils.data import DataLoader, Dataset

from trainables.callbacks import Callback, EarlyStopping, History, ModelCheckpoint, ProgressPrinter, StopAtThreshold
from trainables.optim import build_optimizer
from trainables.suggest import did_you_mean
from trainables.trainer import Trainer

__all__ = ["OptionsTrainer", "OPTION_DEFAULTS"]

#: Every option and its default, as the seed's constructor has them.
OPTION_DEFAULTS: dict[str, Any] = {
    "num_epochs": 10, "learning_rate": 1e-4, "momentum": 0.5, "weight_decay": 1e-5,
    "loss_function": "CrossEntropyLoss", "optim_function": "Adam",
    "checkpoint_dir": "checkpoint", "checkpoint_name": "ck", "save_hist": True,
    "verbose": True, "print_every": 10, "save_every": -1, "save_best": False,
    "device_id": -1, "device_map": None,
    "batch_size": 64, "test_batch_size": 0, "train_dataset": None, "test_dataset": None, "val_dataset": None,
    "shuffle": True, "num_workers": 1, "drop_last": True,
    "lr_scheduler": None, "mtm_scheduler": None, "stop_when_acc": 0.0, "early_stop": None,
}

_EARLY_STOP_KEYS = ("patience", "min_delta", "monitor", "mode", "restore_best_weights")


class OptionsTrainer(Trainer):
    """A :class:`~trainables.trainer.Trainer` built from the seed trainer's keyword options.

    Args:
        model: the module to train.
        **options: any of :data:`OPTION_DEFAULTS` (see the module's docstring for each).

    Raises:
        TypeError: an unknown option (named, with a "did you mean") or no model.
        ValueError: an option's value is out of range.
    """

    def __init__(self, model: nn.Module | None = None, **options: Any) -> None:
        unknown = sorted(set(options) - set(OPTION_DEFAULTS))
        if unknown:
            raise TypeError("OptionsTrainer: unknown option(s) " + ", ".join(
                f"{k!r}{did_you_mean(k, OPTION_DEFAULTS)}" for k in unknown))
        if model is None:
            raise TypeError("OptionsTrainer needs a model (the core trainer builds its optimizer from it)")
        opts = {**OPTION_DEFAULTS, **options}
        if opts["device_map"] is not None:
            raise ValueError("OptionsTrainer: device_map is not supported (one device per trainer; use "
                             "device_id, or DistributedDataParallel for several)")
        if opts["num_epochs"] < 1:
            raise ValueError(f"OptionsTrainer: num_epochs must be >= 1, got {opts['num_epochs']}")
        for key, value in opts.items():
            setattr(self, key, value)
        self.train_loader = self._loader(opts["train_dataset"], opts["batch_size"], train=True)
        test_batch = opts["test_batch_size"] or opts["batch_size"]
        self.val_loader = self._loader(opts["val_dataset"], test_batch, train=False)
        self.test_loader = self._loader(opts["test_dataset"], test_batch, train=False)
        if self.save_every != 0 and self.train_loader is not None:
            self.save_best = True  # as the seed's constructor: saving at all implies keeping the best
        device = "cpu" if opts["device_id"] < 0 else f"cuda:{opts['device_id']}"
        optimizer = build_optimizer(opts["optim_function"], model.parameters(), lr=opts["learning_rate"],
                                    weight_decay=opts["weight_decay"], momentum=opts["momentum"])
        schedulers = [s if hasattr(s, "step") else s(optimizer)  # a factory f(optimizer) -> scheduler
                      for s in (opts["lr_scheduler"], opts["mtm_scheduler"]) if s is not None]
        # The optimizer holds the parameters before the trainer moves the model: Module.to moves them in place.
        super().__init__(model, optimizer, opts["loss_function"], device=device, scheduler=schedulers or None,
                         callbacks=self._option_callbacks(),
                         train_accuracy=bool(self.stop_when_acc) and self.val_loader is None)

    # ---------------------------------------------------------------- building
    def _loader(self, dataset: Dataset | None, batch_size: int, *, train: bool) -> DataLoader | None:
        if dataset is None:
            return None
        return DataLoader(dataset, batch_size=batch_size, shuffle=self.shuffle and train,
                          num_workers=self.num_workers, drop_last=self.drop_last and train)

    def _option_callbacks(self) -> list[Callback]:
        made: list[Callback] = []
        if self.early_stop is not None:
            made.append(_early_stopping(self.early_stop, self.val_loader is not None))
        if self.stop_when_acc:
            made.append(StopAtThreshold("val_accuracy" if self.val_loader is not None else "train_accuracy",
                                        self.stop_when_acc, "max"))
        if self.train_loader is not None and self.save_every != 0:
            made.append(_OptionCheckpoint(self))
        if self.save_hist and self.train_loader is not None:
            made.append(_HistoryWriter(Path(self.checkpoint_dir) / f"{self.checkpoint_name}_history.json"))
        if self.verbose:
            made += [ProgressPrinter(stream=sys.stdout), _StepPrinter(self.print_every)]
        return made

    # ------------------------------------------------------------------- running
    @property
    def cur_epoch(self) -> int:
        """Completed epochs (the seed's name for :attr:`epoch`)."""
        return self.epoch

    def train(self, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        """With no arguments: train on the options' datasets up to ``num_epochs`` in all; returns the History.

        With arguments it is :meth:`Trainer.train` (``train(train_dataloader, num_epochs, ...)``).
        """
        if args or kwargs:
            return super().train(*args, **kwargs)
        if self.train_loader is None:
            raise ValueError("OptionsTrainer.train(): no train_dataset was given; pass one to the constructor "
                             "or call train(train_dataloader, num_epochs)")
        return self.fit(self.train_loader, self.num_epochs, self.val_loader)

    def val_epoch(self) -> dict[str, float]:
        """Evaluate on the validation set (the seed's name for ``evaluate(val_loader)``)."""
        if self.val_loader is None:
            raise ValueError("OptionsTrainer.val_epoch(): no val_dataset was given")
        return self.evaluate(self.val_loader)

    def save_history(self, path: str | os.PathLike[str]) -> Path:
        """Write the history as JSON."""
        return self.history.save(path)

    def load_history(self, path: str | os.PathLike[str]) -> History:
        """Replace the history with one saved by :meth:`save_history`."""
        loaded = History.load(path)
        self.history.epochs, self.history.status = loaded.epochs, loaded.status
        return self.history


def _early_stopping(options: Mapping[str, Any], has_val: bool) -> EarlyStopping:
    if not isinstance(options, Mapping):
        raise TypeError(f"OptionsTrainer: early_stop must be a dict of {', '.join(_EARLY_STOP_KEYS)}, got {options!r}")
    unknown = sorted(set(options) - set(_EARLY_STOP_KEYS))
    if unknown:
        raise TypeError("OptionsTrainer: unknown early_stop key(s) " + ", ".join(
            f"{k!r}{did_you_mean(k, _EARLY_STOP_KEYS)}" for k in unknown) + f" (keys: {', '.join(_EARLY_STOP_KEYS)})")
    return EarlyStopping(**{"monitor": "val_loss" if has_val else "train_loss", **options})


class _OptionCheckpoint(ModelCheckpoint):
    """``save_every`` / ``save_best`` as files named after ``checkpoint_name``."""

    def __init__(self, trainer: OptionsTrainer) -> None:
        has_val = trainer.val_loader is not None
        super().__init__(trainer.checkpoint_dir, "val_accuracy" if has_val else "train_loss",
                         "max" if has_val else "min", save_best=trainer.save_best, save_last=False,
                         every_n_epochs=1 if trainer.save_every < 0 else 0)
        self.name = trainer.checkpoint_name
        self.every_n_steps = max(trainer.save_every, 0)

    def file_name(self, kind: str, epoch: int) -> str:
        return f"{self.name}_epoch_{epoch}.pt" if kind == "epoch" else f"{self.name}_{kind}.pt"

    def on_train_batch_end(self, trainer: Trainer, batch_idx: int, metrics: Mapping[str, float]) -> None:
        if self.every_n_steps and trainer.global_step % self.every_n_steps == 0 and trainer.is_main_process:
            trainer.save_checkpoint(self.dirpath / f"{self.name}_iter_{trainer.global_step}.pt", self.best_score)


class _HistoryWriter(Callback):
    """``save_hist``: the history as JSON after every epoch."""

    order = 70

    def __init__(self, path: Path) -> None:
        self.path = path

    def on_epoch_end(self, trainer: Trainer, epoch: int, metrics: dict[str, Any]) -> None:
        if trainer.is_main_process:
            trainer.history.save(self.path)


class _StepPrinter(Callback):
    """``verbose`` with ``print_every``: one line every N optimisation steps."""

    order = 85

    def __init__(self, every: int) -> None:
        self.every = every

    def on_train_batch_end(self, trainer: Trainer, batch_idx: int, metrics: Mapping[str, float]) -> None:
        if self.every > 0 and trainer.global_step % self.every == 0 and trainer.is_main_process:
            print(f"step {trainer.global_step} (epoch {trainer.epoch + 1}, batch {batch_idx}) "
                  f"loss={metrics['loss']:.4g}", flush=True)

