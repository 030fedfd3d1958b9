"""Optimizers, losses and schedulers chosen by name (or passed in as objects).

Two spellings name the same thing: our short names (``adam``, ``cross_entropy``) and
PyTorch's class names (``Adam``, ``AdamW``, ``Adagrad``, ``CrossEntropyLoss``,
``SmoothL1Loss``, ...). Any optimizer class in :mod:`torch.optim` and any loss class in
:mod:`torch.nn` is accepted by its class name, so the seed trainers' options
(``optim_function='Adam'``, ``loss_function='CrossEntropyLoss'``) work unchanged.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import torch
from torch import nn

from trainables.suggest import unknown_name_message

__all__ = [
    "OPTIMIZERS",
    "LOSSES",
    "build_optimizer",
    "build_loss",
    "optimizer_class",
    "loss_class",
    "unknown_name_message",
]

#: short name -> optimizer class. SGD and RMSprop get momentum (0.9 by default).
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


def _torch_optimizers() -> dict[str, type[torch.optim.Optimizer]]:
    """PyTorch's optimizer classes by class name (``Adam``, ``SGD``, ``Adagrad``, ...)."""
    return {name: cls for name, cls in vars(torch.optim).items()
            if isinstance(cls, type) and issubclass(cls, torch.optim.Optimizer) and cls is not torch.optim.Optimizer}


def _torch_losses() -> dict[str, type[nn.Module]]:
    """PyTorch's loss classes by class name (``CrossEntropyLoss``, ``MSELoss``, ...)."""
    base = nn.modules.loss._Loss
    return {name: cls for name, cls in vars(nn).items() if isinstance(cls, type) and issubclass(cls, base)}


def optimizer_class(name: str) -> type[torch.optim.Optimizer]:
    """The optimizer class for a short name (``adam``) or a :mod:`torch.optim` class name (``Adam``)."""
    return _by_name("optimizer", name, OPTIMIZERS, _torch_optimizers())


def loss_class(name: str) -> Callable[[], nn.Module]:
    """The loss class for a short name (``cross_entropy``) or a :mod:`torch.nn` class name (``CrossEntropyLoss``)."""
    return _by_name("loss", name, LOSSES, _torch_losses())


def _by_name(kind: str, name: str, short: Mapping[str, Any], classes: Mapping[str, Any]) -> Any:
    """A short name first (case-insensitive), then PyTorch's own class name; else an error listing both."""
    if name.lower() in short:
        return short[name.lower()]
    if name in classes:
        return classes[name]
    raise ValueError(unknown_name_message(kind, name, [*short, *classes]))


def build_optimizer(
    name: str,
    params: Iterable[torch.nn.Parameter] | Iterable[dict[str, Any]],
    *,
    lr: float = 1e-3,
    weight_decay: float = 0.0,
    momentum: float = 0.9,
) -> torch.optim.Optimizer:
    """Build an optimizer by name.

    Args:
        name: a short name (``adam``, ``adamw``, ``sgd``, ``rmsprop``) or any
            :mod:`torch.optim` class name (``Adam``, ``Adagrad``, ``NAdam``, ...).
        params: the parameters (or parameter groups) to optimise.
        lr: learning rate (> 0).
        weight_decay: passed to optimizers that take it.
        momentum: passed to optimizers that take it (SGD, RMSprop); the others have none.

    Raises:
        ValueError: an unknown name (the message lists the choices) or ``lr <= 0``.
    """
    cls = optimizer_class(name)
    if lr <= 0:
        raise ValueError(f"learning rate must be > 0, got lr={lr}")
    accepted = inspect.signature(cls.__init__).parameters
    kwargs: dict[str, Any] = {"lr": lr}
    if "weight_decay" in accepted:
        kwargs["weight_decay"] = weight_decay
    elif weight_decay:
        raise ValueError(f"optimizer {name!r} takes no weight_decay (got {weight_decay})")
    if "momentum" in accepted:
        kwargs["momentum"] = momentum
    return cls(params, **kwargs)


def build_loss(loss: str | Callable[..., torch.Tensor] | None) -> Callable[..., torch.Tensor] | None:
    """A loss by name (short or :mod:`torch.nn` class name), a callable as is, or None (the model's own loss)."""
    if loss is None or callable(loss):
        return loss
    return loss_class(loss)()
