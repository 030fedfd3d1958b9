"""The callback base class: a handful of no-op hooks the trainer notifies."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from trainables.trainer import Trainer

__all__ = ["Callback", "FunctionCallback", "HOOKS"]

#: Every hook name the trainer may notify; ``Trainer._notify`` refuses any other.
HOOKS = (
    "on_fit_start",
    "on_epoch_start",
    "on_after_backward",
    "on_train_batch_end",
    "on_epoch_end",
    "on_fit_end",
    "on_exception",
)


class Callback:
    """Base class for cross-cutting training behaviour.

    Override the hooks you need. Stop training cooperatively by setting
    ``trainer.should_stop = True`` (and ``trainer.stop_reason``), never by raising.
    A callback with state worth resuming implements :meth:`state_dict` and
    :meth:`load_state_dict`; the trainer saves it inside every checkpoint.
    """

    #: Callbacks run in ascending order: metric producers first, then deciders
    #: (early stopping), then writers (checkpoints) that read the deciders' state.
    order: int = 50

    def on_fit_start(self, trainer: Trainer) -> None: ...

    def on_epoch_start(self, trainer: Trainer, epoch: int) -> None: ...

    def on_after_backward(self, trainer: Trainer) -> None:
        """After ``loss.backward()``, before the optimizer step (clip gradients here)."""

    def on_train_batch_end(self, trainer: Trainer, batch_idx: int, metrics: Mapping[str, float]) -> None: ...

    def on_epoch_end(self, trainer: Trainer, epoch: int, metrics: dict[str, Any]) -> None:
        """``metrics`` is the epoch's dict; a callback may add keys for later ones."""

    def on_fit_end(self, trainer: Trainer) -> None: ...

    def on_exception(self, trainer: Trainer, exc: BaseException) -> None: ...

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:  # noqa: B027 - optional override
        pass

    @property
    def state_key(self) -> str:
        """Key under which this callback's state is stored in a checkpoint."""
        return type(self).__name__


class FunctionCallback(Callback):
    """Wraps a plain function ``f(trainer, epoch, metrics)`` called at each epoch end."""

    order = 80

    def __init__(self, fn: Callable[[Trainer, int, Mapping[str, Any]], Any]) -> None:
        self.fn = fn

    def on_epoch_end(self, trainer: Trainer, epoch: int, metrics: dict[str, Any]) -> None:
        self.fn(trainer, epoch, metrics)

    @property
    def state_key(self) -> str:
        return f"FunctionCallback[{getattr(self.fn, '__qualname__', repr(self.fn))}]"
