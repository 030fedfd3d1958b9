"""Optimizers, losses and schedulers chosen by name (or passed in as objects)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import nn

from trainables.suggest import close_match

__all__ = ["OPTIMIZERS", "LOSSES", "build_optimizer", "build_loss", "unknown_name_message"]

#: name -> optimizer class. SGD gets momentum (0.9 by default) and Nesterov off.
OPTIMIZERS: dict[str, type[torch.optim.Optimizer]] = {
    "adam": torch.optim.Adam,
    "adamw": torch.optim.AdamW,
    "sgd": torch.optim.SGD,
    "rmsprop": torch.optim.RMSprop,
}

LOSSES: dict[str, Callable[[], nn.Module]] = {
    "cross_entropy": nn.CrossEntropyLoss,
    "mse": nn.MSELoss,
    "l1": nn.L1Loss,
    "bce_with_logits": nn.BCEWithLogitsLoss,
    "nll": nn.NLLLoss,
}


def unknown_name_message(kind: str, name: str, choices: Iterable[str]) -> str:
    """'unknown optimizer 'adma'; did you mean 'adam'? choices: adam, adamw, ...'."""
    choices = sorted(choices)
    close = close_match(name.lower(), choices)
    hint = f"; did you mean {close!r}?" if close else ""
    return f"unknown {kind} {name!r}{hint} (choices: {', '.join(choices)})"


def build_optimizer(
    name: str,
    params: Iterable[torch.nn.Parameter] | Iterable[dict[str, Any]],
    *,
    lr: float = 1e-3,
    weight_decay: float = 0.0,
    momentum: float = 0.9,
) -> torch.optim.Optimizer:
    """Build an optimizer by name (``adam``, ``adamw``, ``sgd``, ``rmsprop``)."""
    key = name.lower()
    if key not in OPTIMIZERS:
        raise ValueError(unknown_name_message("optimizer", name, OPTIMIZERS))
    if lr <= 0:
        raise ValueError(f"learning rate must be > 0, got lr={lr}")
    kwargs: dict[str, Any] = {"lr": lr, "weight_decay": weight_decay}
    if key in ("sgd", "rmsprop"):
        kwargs["momentum"] = momentum
    return OPTIMIZERS[key](params, **kwargs)


def build_loss(loss: str | Callable[..., torch.Tensor] | None) -> Callable[..., torch.Tensor] | None:
    """A loss by name, a callable as is, or None (the model computes its own loss)."""
    if loss is None or callable(loss):
        return loss
    key = loss.lower()
    if key not in LOSSES:
        raise ValueError(unknown_name_message("loss", loss, LOSSES))
    return LOSSES[key]()
