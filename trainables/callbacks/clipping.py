"""Gradient clipping by total norm, with statistics."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from trainables.callbacks.base import Callback

if TYPE_CHECKING:
    from trainables.trainer import Trainer

__all__ = ["GradientClipping", "GradientClipCallback", "clip_grad_norm"]


def clip_grad_norm(
    parameters: Iterable[torch.Tensor] | torch.Tensor,
    max_norm: float,
    norm_type: float = 2.0,
    error_if_nonfinite: bool = False,
) -> float:
    """Clip the gradients' total norm to ``max_norm`` in place; return the norm before clipping."""
    if max_norm <= 0:
        raise ValueError(f"max_norm must be > 0, got {max_norm}")
    norm = torch.nn.utils.clip_grad_norm_(
        parameters, max_norm, norm_type=norm_type, error_if_nonfinite=error_if_nonfinite
    )
    return float(norm)


class GradientClipping(Callback):
    """Clip all of the trainer's parameters' gradients after backward, before the step.

    Records every step's pre-clip norm (as running statistics, not a list, so
    memory stays flat over long runs) and the fraction of steps that were clipped.
    Adds ``grad_norm_mean``, ``grad_norm_max`` and ``clip_fraction`` for the epoch
    to the epoch metrics.

    In a hand-written loop: ``set_model(model)`` once, then ``on_after_backward()``
    (no argument) between ``loss.backward()`` and ``optimizer.step()``; it returns the
    pre-clip norm. :class:`GradientClipCallback` is the same class under the seed's name.

    Args:
        max_norm: largest total gradient norm allowed (> 0).
        norm_type: the norm's order (2.0: L2).
        error_if_nonfinite: raise on a NaN or infinite norm instead of clipping.
        verbose: print a line the first time a step is clipped and at every non-finite
            norm. None (default): on in a hand-written loop, off in a trainer (whose epoch
            metrics carry the statistics).
    """

    order = 10

    def __init__(self, max_norm: float = 5.0, norm_type: float = 2.0, error_if_nonfinite: bool = False,
                 *, verbose: bool | None = None) -> None:
        if max_norm <= 0:
            raise ValueError(f"GradientClipping: max_norm must be > 0, got {max_norm}")
        self.max_norm = max_norm
        self.norm_type = norm_type
        self.error_if_nonfinite = error_if_nonfinite
        self.verbose = verbose
        self.total_steps = 0
        self.clipped_steps = 0
        self.last_norm = math.nan
        self.max_seen_norm = 0.0
        self._epoch_sum = 0.0
        self._epoch_steps = 0
        self._epoch_clipped = 0
        self._epoch_max = 0.0
        self._model: nn.Module | None = None

    def set_model(self, model: nn.Module) -> GradientClipping:
        """Clip ``model``'s gradients in a hand-written loop; returns self."""
        self._model = model
        return self

    def on_epoch_start(self, trainer: Trainer, epoch: int) -> None:
        self._epoch_sum, self._epoch_steps, self._epoch_clipped, self._epoch_max = 0.0, 0, 0, 0.0

    def on_fit_start(self, trainer: Trainer) -> None:
        self._params = list(trainer.parameters())  # fixed for the fit: not rebuilt every step

    def on_after_backward(self, trainer: Trainer | None = None) -> float:  # type: ignore[override]
        """Clip now; returns the pre-clip norm (NaN when no parameter has a gradient).

        ``trainer`` is None in a hand-written loop: the model given to :meth:`set_model` is clipped.
        """
        if trainer is None:
            if self._model is None:
                raise RuntimeError("GradientClipping: call set_model(model) before on_after_backward() "
                                   "in a hand-written loop")
            source: Iterable[torch.Tensor] = self._model.parameters()
        else:
            source = getattr(self, "_params", None) or trainer.parameters()
        params = [p for p in source if p.grad is not None]
        if not params:
            return math.nan
        norm = clip_grad_norm(params, self.max_norm, self.norm_type, self.error_if_nonfinite)
        self.last_norm = norm
        self.total_steps += 1
        self._epoch_steps += 1
        if math.isfinite(norm):
            self._epoch_sum += norm
            self._epoch_max = max(self._epoch_max, norm)
            self.max_seen_norm = max(self.max_seen_norm, norm)
        elif self._verbose(trainer):
            print(f"GradientClipping: non-finite gradient norm ({norm}) at step {self.total_steps}", flush=True)
        if norm > self.max_norm:
            if self.clipped_steps == 0 and self._verbose(trainer):
                print(f"GradientClipping: gradient norm {norm:.4g} > max_norm {self.max_norm:g} at step "
                      f"{self.total_steps}: clipped (further clips are counted in statistics())", flush=True)
            self.clipped_steps += 1
            self._epoch_clipped += 1
        return norm

    def _verbose(self, trainer: Trainer | None) -> bool:
        return self.verbose if self.verbose is not None else trainer is None

    def on_epoch_end(self, trainer: Trainer, epoch: int, metrics: dict[str, Any]) -> None:
        steps = max(self._epoch_steps, 1)
        metrics["grad_norm_mean"] = self._epoch_sum / steps
        metrics["grad_norm_max"] = self._epoch_max
        metrics["clip_fraction"] = self._epoch_clipped / steps

    @property
    def clip_fraction(self) -> float:
        """Fraction of all steps so far whose gradient norm exceeded ``max_norm``."""
        return self.clipped_steps / self.total_steps if self.total_steps else 0.0

    def statistics(self) -> dict[str, float]:
        return {
            "total_steps": self.total_steps,
            "clipped_steps": self.clipped_steps,
            "clip_fraction": self.clip_fraction,
            "max_norm_seen": self.max_seen_norm,
            "last_norm": self.last_norm,
        }

    def state_dict(self) -> dict[str, Any]:
        return {"total_steps": self.total_steps, "clipped_steps": self.clipped_steps,
                "max_seen_norm": self.max_seen_norm, "last_norm": self.last_norm}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.total_steps = state["total_steps"]
        self.clipped_steps = state["clipped_steps"]
        self.max_seen_norm = state["max_seen_norm"]
        self.last_norm = state["last_norm"]


#: The seed document's name for :class:`GradientClipping` (the same class).
GradientClipCallback = GradientClipping
