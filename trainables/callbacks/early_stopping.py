"""Stop when a monitored metric stops improving; optionally restore the best weights."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from torch import nn

from trainables.callbacks.base import Callback
from trainables.callbacks.monitor import Mode, is_improvement, read_metric, worst_value
from trainables.distributed import unwrap_model

if TYPE_CHECKING:
    from trainables.trainer import Trainer

__all__ = ["EarlyStopping"]


class EarlyStopping(Callback):
    """Stop after ``patience`` epochs without an improvement larger than ``min_delta``.

    Works in two places:

    * inside a :class:`~trainables.trainer.Trainer` (``callbacks=[EarlyStopping()]``): it
      reads ``monitor`` from each epoch's metrics and asks the trainer to stop;
    * in a hand-written loop: ``set_model(model)`` once, then call
      ``on_epoch_end(epoch, val_loss)`` each epoch; it returns True when the loop should
      stop, after putting the best weights back into the model (when enabled).

    Args:
        monitor: metric name in the epoch metrics (``val_loss`` by default).
        mode: ``"min"`` or ``"max"``.
        patience: epochs without improvement tolerated before stopping (>= 1).
        min_delta: smallest change that counts as an improvement (>= 0).
        restore_best_weights: load the best epoch's weights back when stopping (in a
            hand-written loop) or when the fit ends (in a trainer).
        verbose: print a line when stopping and when restoring the best weights. None (default):
            on in a hand-written loop, off in a trainer, whose History records the stop.

    After the fit, :attr:`best_score`, :attr:`best_epoch`, :attr:`best_metrics` and
    :attr:`stopped_epoch` tell what happened; :meth:`get_best_metrics` sums them up.
    """

    order = 30

    def __init__(
        self,
        monitor: str = "val_loss",
        mode: str | Mode = "min",
        patience: int = 10,
        min_delta: float = 1e-4,
        restore_best_weights: bool = True,
        *,
        verbose: bool | None = None,
    ) -> None:
        if patience < 1:
            raise ValueError(f"EarlyStopping: patience must be >= 1, got {patience}")
        if min_delta < 0:
            raise ValueError(f"EarlyStopping: min_delta must be >= 0, got {min_delta}")
        self.monitor = monitor
        self.mode = Mode.parse(mode)
        self.patience = patience
        self.min_delta = min_delta
        self.restore_best_weights = restore_best_weights
        self.verbose = verbose
        self.best_score = worst_value(self.mode)
        self.best_epoch: int | None = None
        self.best_metrics: dict[str, Any] = {}
        self.wait = 0
        self.stopped_epoch: int | None = None
        self._best_weights: dict[str, Any] | None = None
        self._model: nn.Module | None = None

    def set_model(self, model: nn.Module) -> EarlyStopping:
        """Watch ``model`` in a hand-written loop (whose weights are saved and restored); returns self."""
        self._model = model
        return self

    def on_epoch_end(  # type: ignore[override]  # also the hand-written loop's (epoch, value) -> bool
        self, trainer: Trainer | int, epoch: int | float, metrics: dict[str, Any] | None = None
    ) -> bool:
        """Record an epoch; True when training should stop.

        In a trainer: ``on_epoch_end(trainer, epoch, metrics)`` (the trainer calls it). In a
        hand-written loop: ``on_epoch_end(epoch, value)`` with the monitored value (the
        validation loss), after :meth:`set_model`.
        """
        if metrics is None:  # the hand-written loop's (epoch, value)
            return self._hand_written_epoch_end(int(trainer), float(epoch))  # type: ignore[arg-type]
        value = read_metric(metrics, self.monitor, "EarlyStopping")
        stop = self._update(int(epoch), value, unwrap_model(trainer.model), metrics)  # type: ignore[union-attr]
        metrics["epochs_since_improvement"] = self.wait
        if stop:
            trainer.request_stop("early_stopping")  # type: ignore[union-attr]
        return stop

    def _hand_written_epoch_end(self, epoch: int, value: float) -> bool:
        if self._model is None:
            raise RuntimeError("EarlyStopping: call set_model(model) before on_epoch_end(epoch, value) "
                               "in a hand-written loop")
        stop = self._update(epoch, value, self._model, {"epoch": epoch, self.monitor: value})
        if stop and self.restore_best_weights and self._best_weights is not None:
            self._model.load_state_dict(self._best_weights)
            self._say(f"restored the weights of epoch {self.best_epoch}", default=True)
        return stop

    def _update(self, epoch: int, value: float, model: nn.Module, metrics: Mapping[str, Any]) -> bool:
        """The decision both call shapes share: record ``value``; True once patience runs out."""
        verbose_default = self._model is not None
        if is_improvement(value, self.best_score, self.mode, self.min_delta):
            self.best_score, self.best_epoch, self.wait = value, epoch, 0
            self.best_metrics = dict(metrics)
            if self.restore_best_weights:
                # A copy on the CPU: the live weights keep changing, and GPU memory is scarcer.
                self._best_weights = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
            return False
        self.wait += 1
        if self.wait < self.patience:
            return False
        self.stopped_epoch = epoch
        self._say(f"no improvement of {self.monitor} for {self.wait} epochs: stopping at epoch {epoch} "
                  f"(best {self.best_score:.6g} at epoch {self.best_epoch})", verbose_default)
        return True

    def _say(self, message: str, default: bool) -> None:
        if self.verbose if self.verbose is not None else default:
            print(f"EarlyStopping: {message}", flush=True)

    def on_fit_end(self, trainer: Trainer) -> None:
        if self.restore_best_weights and self._best_weights is not None:
            unwrap_model(trainer.model).load_state_dict(self._best_weights)

    def get_best_metrics(self) -> dict[str, Any]:
        """The best epoch's metrics, plus ``best_score``, ``best_epoch`` and (for a loss) ``best_loss``.

        ``best_loss`` is ``best_score`` under the name the seed documents use; it is there
        when the monitored metric is a loss (its name ends in ``loss``).
        """
        best = {**self.best_metrics, "best_score": self.best_score, "best_epoch": self.best_epoch}
        if self.monitor.endswith("loss"):
            best["best_loss"] = self.best_score
        return best

    def state_dict(self) -> dict[str, Any]:
        return {
            "best_score": self.best_score,
            "best_epoch": self.best_epoch,
            "best_metrics": copy.deepcopy(self.best_metrics),
            "wait": self.wait,
            "stopped_epoch": self.stopped_epoch,
            "best_weights": self._best_weights,
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.best_score = state["best_score"]
        self.best_epoch = state["best_epoch"]
        self.best_metrics = dict(state["best_metrics"])
        self.wait = state["wait"]
        self.stopped_epoch = state["stopped_epoch"]
        self._best_weights = state.get("best_weights")
