"""Joint training of a classifier and learnable feature gates.

Stochastic gates after Yamada et al., "Feature Selection using Stochastic Gates"
(ICML 2020): each feature d has a gate ``z_d = clamp(mu_d + eps_d + 0.5, 0, 1)`` with
``eps_d ~ N(0, sigma^2)`` during training (a Gaussian relaxation of a Bernoulli gate)
and ``eps_d = 0`` at evaluation. The sparsity penalty is the expected number of open
gates, ``sum_d P(z_d > 0) = sum_d Phi((mu_d + 0.5) / sigma)``.

Gates can be frozen (:meth:`StochasticGates.freeze`): each feature is then scaled by its evaluation
gate in training too, with no noise and ``mu`` no longer learned, so a classifier can be retrained
on exactly the features, and gates, an earlier training selected (the built-in refit does;
:func:`saved_gate_means` reads those gates from a checkpoint).
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from trainables.callbacks import Callback, EarlyStopping, GradientClipping, History, ModelCheckpoint
from trainables.checkpoint import read_checkpoint
from trainables.distributed import unwrap_model
from trainables.optim import build_optimizer
from trainables.train_call import metric_mode
from trainables.trainer import Trainer

__all__ = ["StochasticGates", "FeatureSelectionModel", "GatedClassifier", "FeatureSelectionTrainer", "saved_gate_means"]

#: What the trainer needs from a selector: gates with a differentiable penalty.
SELECTOR_METHODS = ("penalty", "open_probabilities", "selected_mask")


class StochasticGates(nn.Module):
    """One relaxed-Bernoulli gate per input feature, multiplied into the input."""

    def __init__(self, num_features: int, sigma: float = 0.5, init_mean: float = 0.0) -> None:
        super().__init__()
        if sigma <= 0:
            raise ValueError(f"StochasticGates: sigma must be > 0, got {sigma}")
        self.sigma = sigma
        self.mu = nn.Parameter(torch.full((num_features,), float(init_mean)))
        #: Set by :meth:`freeze`: no noise, ``mu`` fixed. Not in the state dict: evaluation draws no
        #: noise anyway, so a model loaded from a frozen one's state gates its inputs the same.
        self.frozen = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] != self.mu.shape[0]:
            raise ValueError(f"StochasticGates expects {self.mu.shape[0]} features, got inputs of shape {tuple(x.shape)}")
        z = self.mu + 0.5
        if self.training and not self.frozen:
            z = z + self.sigma * torch.randn_like(x)
        return x * z.clamp(0.0, 1.0)

    def freeze(self, mask: torch.Tensor | Sequence[bool] | None = None) -> None:
        """Fix the gates at their evaluation values: no noise in training, and ``mu`` no longer learned.

        Each feature is then scaled by exactly the gate it has at evaluation, ``clamp(mu + 0.5, 0, 1)``,
        in training too: the gates a classifier was validated with. ``mask``: the features to keep, when
        not those selected now (:meth:`selected_mask`): a kept feature whose gate is shut opens fully
        (``mu`` 0.5), a dropped one whose gate is open is shut (``mu`` -0.5); the other gates keep their
        ``mu``. :meth:`selected_mask` is the mask afterwards, also in a model loaded from the state dict.
        """
        if mask is not None:
            keep = torch.as_tensor(mask, dtype=torch.bool).to(self.mu.device)
            if keep.shape != self.mu.shape:
                raise ValueError(f"StochasticGates.freeze: a mask of {tuple(keep.shape)} for {self.mu.shape[0]} gates")
            now = self.selected_mask()
            with torch.no_grad():
                self.mu[keep & ~now] = 0.5
                self.mu[~keep & now] = -0.5
        self.mu.requires_grad_(False)
        self.frozen = True

    def open_probabilities(self) -> torch.Tensor:
        """P(gate > 0) per feature: the probability that the feature is used."""
        return 0.5 * (1 + torch.erf((self.mu + 0.5) / (self.sigma * math.sqrt(2))))

    def penalty(self) -> torch.Tensor:
        """Expected number of open gates (differentiable in ``mu``)."""
        return self.open_probabilities().sum()

    def selected_mask(self) -> torch.Tensor:
        """Features whose deterministic (evaluation) gate is open: ``mu + 0.5 > 0``."""
        return (self.mu.detach() + 0.5) > 0


class FeatureSelectionModel(nn.Module):
    """Gates followed by an MLP classifier; ``forward`` returns logits."""

    def __init__(self, num_features: int, num_classes: int, hidden_sizes: Sequence[int] = (64,),
                 dropout: float = 0.0, sigma: float = 0.5) -> None:
        super().__init__()
        self.gates = StochasticGates(num_features, sigma=sigma)
        layers: list[nn.Module] = []
        width = num_features
        for hidden in hidden_sizes:
            layers += [nn.Linear(width, hidden), nn.ReLU()]
            if dropout:
                layers.append(nn.Dropout(dropout))
            width = hidden
        layers.append(nn.Linear(width, num_classes))
        self.classifier = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.gates(x))


class GatedClassifier(nn.Module):
    """A selector and a classifier given apart, run one after the other: ``classifier(gates(x))``.

    Args:
        selector: the feature gates (a :class:`StochasticGates`, or any module with
            ``penalty()``, ``open_probabilities()`` and ``selected_mask()``).
        classifier: any module taking the gated features and returning logits.
    """

    def __init__(self, selector: nn.Module, classifier: nn.Module) -> None:
        super().__init__()
        self.gates = selector
        self.classifier = classifier

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.gates(x))


def _is_selector(module: Any) -> bool:
    return isinstance(module, nn.Module) and all(callable(getattr(module, m, None)) for m in SELECTOR_METHODS)


class _SelectionMetrics(Callback):
    """Adds ``num_selected`` and the gates' expected open count to each epoch's metrics."""

    order = 5

    def on_epoch_end(self, trainer: Trainer, epoch: int, metrics: dict[str, Any]) -> None:
        gates = trainer.gates  # type: ignore[attr-defined]
        metrics["num_selected"] = int(gates.selected_mask().sum())
        metrics["expected_open_gates"] = float(gates.penalty().detach())


class FeatureSelectionTrainer(Trainer):
    """Train a classifier and its feature selector jointly, with two optimizers.

    Give the model either whole (a :class:`FeatureSelectionModel`, or any module with a
    ``gates`` selector) or as two modules, ``FeatureSelectionTrainer(classifier, selector)``
    (they are joined in a :class:`GatedClassifier`, the trainer's ``model``).

    The classifier's optimizer uses ``lr`` (0.001); the selector's ``selector_lr``, by
    default ``selector_lr_ratio * lr`` (10x: 0.01; the gates must move from "all open" to
    a sparse set within the time the classifier takes to fit). The loss is the task loss
    (cross-entropy) plus ``sparsity_lambda`` times the expected number of open gates.

    Built in: gradient clipping (``max_norm``, on at 5.0; None disables it) over both
    parameter sets; the history (``trainer.history``, returned by ``fit``); early stopping
    (``patience``, off unless given, with ``min_delta``, restoring the best weights at the
    end); best-model checkpointing (``checkpoint_dir``: ``best.pt`` and ``last.pt``). Early
    stopping and the best checkpoint follow ``monitor`` (``val_task_loss``; in a fit without
    a validation loader, its ``train_`` twin). Early stopping is off by default because the
    built-in search trainable passes its own :class:`EarlyStopping`; a trainer given both
    ``patience`` and an EarlyStopping callback refuses.

    λ's scale: the penalty is the *sum* of the gates' open probabilities, where the STG
    paper's code (Yamada et al., 2020) takes their *mean*; so λ here ≈ λ_STG / d for d
    features (λ_STG = 0.5 on 500 features is 0.001 here). The built-in trainable's early
    stopping and best epoch follow ``val_task_loss`` (without the penalty), because the
    penalty keeps falling as gates close and would keep patience from firing.

    Each epoch's metrics add ``train_task_loss``, ``train_penalty``, ``num_selected``
    and ``expected_open_gates`` to the base trainer's. Other keyword arguments go to
    :class:`~trainables.trainer.Trainer` (``device``, ``train_accuracy``, ``on_nonfinite``, ...).
    """

    def __init__(
        self,
        model: FeatureSelectionModel | nn.Module,
        selector: nn.Module | None = None,
        *,
        lr: float = 1e-3,
        selector_lr: float | None = None,
        selector_lr_ratio: float | None = None,
        sparsity_lambda: float = 0.01,
        max_norm: float | None = 5.0,
        optimizer: str = "adam",
        weight_decay: float = 0.0,
        feature_names: Sequence[str] | None = None,
        patience: int | None = None,
        min_delta: float = 1e-4,
        monitor: str = "val_task_loss",
        checkpoint_dir: str | os.PathLike[str] | None = None,
        callbacks: Iterable[Any] | None = None,
        **kwargs: Any,
    ) -> None:
        if selector is not None:
            if not _is_selector(selector):
                raise TypeError(f"FeatureSelectionTrainer: selector {type(selector).__name__} is not a feature "
                                f"selector (a module with {', '.join(SELECTOR_METHODS)}, e.g. StochasticGates)")
            if _is_selector(getattr(unwrap_model(model), "gates", None)):
                raise TypeError("FeatureSelectionTrainer: the model already has `gates`; pass a selector only "
                                "with a classifier that has none")
            model = GatedClassifier(selector, model)
        inner = unwrap_model(model)
        if not _is_selector(getattr(inner, "gates", None)):
            raise TypeError("FeatureSelectionTrainer needs a model with a `gates` StochasticGates module "
                            "(e.g. FeatureSelectionModel), or a classifier and a selector given apart")
        if selector_lr is not None and selector_lr_ratio is not None:
            raise ValueError("give selector_lr or selector_lr_ratio, not both")
        ratio = 10.0 if selector_lr_ratio is None else selector_lr_ratio
        if ratio <= 0:
            raise ValueError(f"selector_lr_ratio must be > 0, got {ratio}")
        if sparsity_lambda < 0:
            raise ValueError(f"sparsity_lambda must be >= 0, got {sparsity_lambda}")
        self.gates: StochasticGates = inner.gates
        self._eval_penalty: torch.Tensor | None = None
        self.sparsity_lambda = sparsity_lambda
        self.selector_lr_ratio = ratio if selector_lr is None else selector_lr / lr
        num = int(self.gates.selected_mask().numel())
        if feature_names is not None and len(feature_names) != num:
            raise ValueError(f"{len(feature_names)} feature names given for a model with {num} gates")
        self.feature_names = tuple(feature_names) if feature_names is not None else tuple(f"f{i}" for i in range(num))
        gate_params = list(self.gates.parameters())
        gate_ids = {id(p) for p in gate_params}
        other = [p for p in model.parameters() if id(p) not in gate_ids]
        optimizers = [
            build_optimizer(optimizer, other, lr=lr, weight_decay=weight_decay),
            # No weight decay on gates: the sparsity penalty is their regulariser.
            build_optimizer(optimizer, gate_params, lr=lr * ratio if selector_lr is None else selector_lr,
                            weight_decay=0.0),
        ]
        extra: list[Any] = [_SelectionMetrics()]
        if max_norm is not None:
            extra.append(GradientClipping(max_norm=max_norm))
        self._monitor = monitor
        self._monitored = _built_in_monitors(patience, min_delta, monitor, checkpoint_dir, callbacks)
        super().__init__(model, optimizers, "cross_entropy", callbacks=[*extra, *self._monitored, *(callbacks or [])],
                         **kwargs)

    def set_hyperparameters(self, *, lr: float | None = None, selector_lr_ratio: float | None = None,
                            sparsity_lambda: float | None = None, weight_decay: float | None = None,
                            max_norm: float | None = None) -> None:
        """Change training settings in place, keeping the optimizers' state (Adam's moments).

        What a trial restored from another's checkpoint under new settings needs (population-based
        training): the classifier's ``lr`` and ``weight_decay``, the gates' ``lr * selector_lr_ratio``,
        ``sparsity_lambda`` and the clipping norm. None leaves a setting as it is.
        """
        if selector_lr_ratio is not None:
            if selector_lr_ratio <= 0:
                raise ValueError(f"selector_lr_ratio must be > 0, got {selector_lr_ratio}")
            self.selector_lr_ratio = selector_lr_ratio
        classifier, selector = self.optimizers
        for group in classifier.param_groups:
            group["lr"] = lr if lr is not None else group["lr"]
            group["weight_decay"] = weight_decay if weight_decay is not None else group["weight_decay"]
        if lr is not None or selector_lr_ratio is not None:
            for group in selector.param_groups:
                group["lr"] = classifier.param_groups[0]["lr"] * self.selector_lr_ratio
        if sparsity_lambda is not None:
            if sparsity_lambda < 0:
                raise ValueError(f"sparsity_lambda must be >= 0, got {sparsity_lambda}")
            self.sparsity_lambda = sparsity_lambda
        if max_norm is not None:
            for cb in self.callbacks:
                if isinstance(cb, GradientClipping):
                    cb.max_norm = max_norm

    @property
    def early_stopping(self) -> EarlyStopping | None:
        """The built-in early stopping (``patience``), or None."""
        return next((cb for cb in self._monitored if isinstance(cb, EarlyStopping)), None)

    @property
    def best_checkpoint(self) -> Path | None:
        """The best epoch's checkpoint file (with ``checkpoint_dir``), once written."""
        return next((cb.best_path for cb in self._monitored if isinstance(cb, ModelCheckpoint)), None)

    def fit(self, train_loader: Iterable[Any], epochs: int, val_loader: Iterable[Any] | None = None,
            *, callbacks: Iterable[Any] | None = None) -> History:
        """As :meth:`Trainer.fit`; the built-ins watch ``monitor``'s ``train_`` twin when there is no ``val_loader``."""
        monitor = self._monitor
        if val_loader is None and monitor.startswith("val_"):
            monitor = "train_" + monitor.removeprefix("val_")
        for cb in self._monitored:
            cb.monitor = monitor  # type: ignore[attr-defined]
        return super().fit(train_loader, epochs, val_loader, callbacks=callbacks)

    @property
    def classifier_optimizer(self) -> torch.optim.Optimizer:
        return self.optimizers[0]

    @property
    def selector_optimizer(self) -> torch.optim.Optimizer:
        return self.optimizers[1]

    def _compute_loss(self, outputs: Any, targets: Any) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        task = super()._compute_loss(outputs, targets)
        # The penalty depends on the gates only: during evaluation compute it once, not per batch.
        penalty = self._eval_penalty if self._eval_penalty is not None else self.gates.penalty()
        return task + self.sparsity_lambda * penalty, {"task_loss": task.detach(), "penalty": penalty.detach()}

    def evaluate(self, loader: Iterable[Any]) -> dict[str, float]:
        with torch.no_grad():
            self._eval_penalty = self.gates.penalty()
        try:
            return super().evaluate(loader)
        finally:
            self._eval_penalty = None

    def gate_probabilities(self) -> dict[str, float]:
        """Feature name -> probability that its gate is open."""
        probs = self.gates.open_probabilities().detach().cpu().tolist()
        return dict(zip(self.feature_names, probs))

    def selected_features(self) -> list[str]:
        """Names of the features whose evaluation-time gate is open."""
        mask = self.gates.selected_mask().cpu().tolist()
        return [name for name, keep in zip(self.feature_names, mask) if keep]

    def selection_summary(self) -> dict[str, Any]:
        """Feature names, their gates' open probabilities and the selected names (JSON-ready)."""
        return {"feature_names": list(self.feature_names),
                "gate_probabilities": list(self.gate_probabilities().values()),
                "selected": self.selected_features()}


def saved_gate_means(checkpoint: str | os.PathLike[str]) -> torch.Tensor:
    """The gates' ``mu`` in a saved checkpoint (a folder or its ``checkpoint.pt``), read weights-only.

    ``saved_gate_means(path) + 0.5 > 0`` is the selection the checkpoint's model makes.

    Raises:
        CheckpointError: the file is missing or not a weights-only checkpoint.
        ValueError: its model has no gates (``gates.mu``).
    """
    model = read_checkpoint(checkpoint, map_location="cpu").get("model", {})
    mu = model.get("gates.mu") if isinstance(model, dict) else None
    if not isinstance(mu, torch.Tensor):
        raise ValueError(f"{checkpoint}: its model has no feature gates (no `gates.mu` in its state)")
    return mu


def _built_in_monitors(patience: int | None, min_delta: float, monitor: str,
                       checkpoint_dir: str | os.PathLike[str] | None,
                       callbacks: Iterable[Any] | None) -> list[Callback]:
    """The built-in early stopping and best-model checkpoint, as asked for."""
    made: list[Callback] = []
    if patience is not None:
        if any(isinstance(cb, EarlyStopping) for cb in callbacks or []):
            raise ValueError("FeatureSelectionTrainer: patience= turns on the built-in early stopping, and an "
                             "EarlyStopping callback was passed too; keep one of them")
        made.append(EarlyStopping(monitor, metric_mode(monitor), patience, min_delta, restore_best_weights=True))
    if checkpoint_dir is not None:
        made.append(ModelCheckpoint(checkpoint_dir, monitor, metric_mode(monitor)))
    return made
