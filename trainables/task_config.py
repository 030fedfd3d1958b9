"""The built-in feature-selection trainable's config: its keys, defaults and checks, without torch.

:mod:`trainables.tasks` re-exports it; :mod:`trainables.task_training` trains with it.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from trainables.suggest import did_you_mean, unknown_name_message

__all__ = ["ConfigError", "FeatureSelectionConfig", "OPTIMIZER_NAMES"]

#: The optimizers a config names (:data:`trainables.optim.OPTIMIZERS`' short names; a test keeps them equal).
OPTIMIZER_NAMES = ("adam", "adamw", "sgd", "rmsprop")


class ConfigError(ValueError):
    """A training config has unknown keys or out-of-range values."""


#: Config keys that must be numbers or integers (numpy's included); bools are neither.
_NUMERIC_KEYS: dict[str, type] = {
    **dict.fromkeys(("lr", "selector_lr_ratio", "sparsity_lambda", "min_delta", "max_norm", "dropout",
                     "weight_decay", "gate_sigma", "checkpoint_every_s"), numbers.Real),
    **dict.fromkeys(("patience", "epochs", "batch_size", "seed", "checkpoint_every"), numbers.Integral),
}


@dataclass(frozen=True)
class FeatureSelectionConfig:
    """Settings of :func:`train_feature_selection` (defaults from the seed trainers)."""

    lr: float = 1e-3
    selector_lr_ratio: float = 10.0
    sparsity_lambda: float = 0.01
    patience: int = 10
    min_delta: float = 1e-4
    max_norm: float | None = 5.0
    epochs: int = 50
    batch_size: int = 64
    hidden_sizes: tuple[int, ...] = (64,)
    dropout: float = 0.0
    weight_decay: float = 0.0
    optimizer: str = "adam"
    gate_sigma: float = 0.5
    monitor: str = "val_task_loss"  # the loss without λ·penalty, which keeps falling as gates close
    monitor_mode: str = "min"
    seed: int = 0
    checkpoint_every: int = 1
    # Besides the best and the last epoch, at most one checkpoint every this many seconds (0: every
    # ``checkpoint_every``-th epoch): what a crash can cost a trial, against a checkpoint per epoch.
    checkpoint_every_s: float = 10.0
    on_nonfinite: str = "stop"
    device: str | None = None
    data: Mapping[str, Any] = field(default_factory=lambda: {"name": "madelon"})

    @classmethod
    def from_mapping(cls, config: Mapping[str, Any]) -> FeatureSelectionConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        problems = []
        for key in sorted(set(config) - known):
            problems.append(f"unknown key {key!r}{did_you_mean(key, sorted(known))}")
        values = {k: v for k, v in config.items() if k in known}
        for key in sorted(values):  # wrong types: report them, and range-check the defaults instead
            wanted = _NUMERIC_KEYS.get(key)
            value = values[key]
            if wanted and not (value is None and key == "max_norm") and (
                    isinstance(value, bool) or not isinstance(value, wanted)):
                kind = "an integer" if wanted is numbers.Integral else "a number"
                problems.append(f"{key} must be {kind}, got {value!r}")
                del values[key]
        if isinstance(values.get("hidden_sizes"), int):
            values["hidden_sizes"] = (values["hidden_sizes"],)
        elif "hidden_sizes" in values:
            values["hidden_sizes"] = tuple(int(h) for h in values["hidden_sizes"])
        if isinstance(values.get("data"), str):
            values["data"] = {"name": values["data"]}
        cfg = cls(**values)
        problems += cfg._range_problems()
        if problems:
            raise ConfigError("feature_selection config: " + "; ".join(problems) +
                              f". Accepted keys: {', '.join(sorted(known))}")
        return cfg

    def _range_problems(self) -> list[str]:
        checks = [
            (self.lr > 0, f"lr must be > 0, got {self.lr}"),
            (self.selector_lr_ratio > 0, f"selector_lr_ratio must be > 0, got {self.selector_lr_ratio}"),
            (self.sparsity_lambda >= 0, f"sparsity_lambda must be >= 0, got {self.sparsity_lambda}"),
            (self.gate_sigma > 0, f"gate_sigma must be > 0, got {self.gate_sigma}"),
            (self.weight_decay >= 0, f"weight_decay must be >= 0, got {self.weight_decay}"),
            (self.min_delta >= 0, f"min_delta must be >= 0, got {self.min_delta}"),
            (str(self.optimizer).lower() in OPTIMIZER_NAMES,
             unknown_name_message("optimizer", str(self.optimizer), OPTIMIZER_NAMES)),
            (self.patience >= 1, f"patience must be >= 1, got {self.patience}"),
            (self.max_norm is None or self.max_norm > 0, f"max_norm must be > 0 or null, got {self.max_norm}"),
            (self.epochs >= 1, f"epochs must be >= 1, got {self.epochs}"),
            (self.batch_size >= 1, f"batch_size must be >= 1, got {self.batch_size}"),
            (all(h >= 1 for h in self.hidden_sizes), f"hidden_sizes must be positive, got {self.hidden_sizes}"),
            (0 <= self.dropout < 1, f"dropout must be in [0, 1), got {self.dropout}"),
            (self.monitor_mode in ("min", "max"), f"monitor_mode must be 'min' or 'max', got {self.monitor_mode!r}"),
            (self.checkpoint_every >= 0, f"checkpoint_every must be >= 0, got {self.checkpoint_every}"),
            (0 <= self.checkpoint_every_s < math.inf,
             f"checkpoint_every_s must be >= 0 seconds and finite, got {self.checkpoint_every_s}"),
            (self.on_nonfinite in ("stop", "raise"), f"on_nonfinite must be 'stop' or 'raise', got {self.on_nonfinite!r}"),
        ]
        return [message for ok, message in checks if not ok]
