"""The ``training`` section of a trainer's ``config``: the keys the :class:`~trainables.trainer.Trainer` reads.

A trainer's ``config`` describes the run and is stored in every checkpoint; the trainer
itself reads one section of it, ``training``, whose keys it knows:

* ``weight_decay`` (float >= 0): the optimizers' weight decay;
* ``max_grad_norm`` (float > 0, or None): clip gradients to this total norm every step
  (adds a :class:`~trainables.callbacks.GradientClipping`);
* ``scheduler_step_per_batch`` (bool): step the LR scheduler after every batch (True) or
  every epoch (False).

Any other key in ``training`` is an error that names it, so a typo never goes
unnoticed. Other sections (``model``, ``data``, ...) belong to the caller and are only
stored. ``config`` may be a mapping, a dataclass, an object with ``to_dict()`` or plain
attributes (``types.SimpleNamespace``, a custom ``Config`` class), nested the same way.
"""

from __future__ import annotations

import dataclasses
import enum
import numbers
from collections.abc import Mapping
from typing import Any

from trainables.suggest import did_you_mean

__all__ = ["TrainingOptions", "ConfigKeyError", "config_to_dict", "training_options"]


class ConfigKeyError(ValueError):
    """A trainer's config holds a key the trainer does not know, or a value of the wrong kind."""


@dataclasses.dataclass(frozen=True)
class TrainingOptions:
    """What ``config["training"]`` sets; None: not set (the constructor's arguments decide)."""

    weight_decay: float | None = None
    max_grad_norm: float | None = None
    scheduler_step_per_batch: bool | None = None


TRAINING_KEYS = tuple(f.name for f in dataclasses.fields(TrainingOptions))


def config_to_dict(config: Any) -> dict[str, Any]:
    """A config object as a plain nested dict (what checkpoints store)."""
    if config is None:
        return {}
    value = _plain(config)
    if not isinstance(value, dict):
        raise ConfigKeyError(f"config must be a mapping or an object with attributes, got {type(config).__name__}")
    return value


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    to_dict = getattr(value, "to_dict", None)
    if callable(to_dict):
        return _plain(to_dict())
    if type(value) in (list, tuple):  # exactly: a namedtuple's constructor takes fields, not an iterable
        return type(value)(_plain(v) for v in value)
    if hasattr(value, "__dict__") and not isinstance(value, (type, enum.Enum)) and not callable(value) \
            and not _is_tensor_like(value):
        return {k: _plain(v) for k, v in vars(value).items() if not k.startswith("_")}
    return value


def _is_tensor_like(value: Any) -> bool:
    return type(value).__module__.startswith(("torch", "numpy", "pathlib"))


def training_options(config: Mapping[str, Any]) -> TrainingOptions:
    """Read and check ``config["training"]``.

    Raises:
        ConfigKeyError: an unknown key (with a "did you mean" hint) or a value of the wrong
            kind; every problem is listed.
    """
    section = config.get("training")
    if section is None:
        return TrainingOptions()
    if not isinstance(section, Mapping):
        raise ConfigKeyError(f"config.training must be a section of keys, got {section!r}")
    problems = [f"config.training.{key}: unknown key{did_you_mean(key, TRAINING_KEYS)}; "
                f"the trainer reads {', '.join(TRAINING_KEYS)}" for key in sorted(set(section) - set(TRAINING_KEYS))]
    weight_decay = section.get("weight_decay")
    if weight_decay is not None and not (_is_number(weight_decay) and weight_decay >= 0):
        problems.append(f"config.training.weight_decay must be a number >= 0, got {weight_decay!r}")
    max_norm = section.get("max_grad_norm")
    if max_norm is not None and not (_is_number(max_norm) and max_norm > 0):
        problems.append(f"config.training.max_grad_norm must be a number > 0 (or None), got {max_norm!r}")
    per_batch = section.get("scheduler_step_per_batch")
    if per_batch is not None and not isinstance(per_batch, bool):
        problems.append(f"config.training.scheduler_step_per_batch must be True or False, got {per_batch!r}")
    if problems:
        raise ConfigKeyError("; ".join(problems))
    return TrainingOptions(weight_decay=None if weight_decay is None else float(weight_decay),
                           max_grad_norm=None if max_norm is None else float(max_norm),
                           scheduler_step_per_batch=per_batch)


def _is_number(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)
