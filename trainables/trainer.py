"""The training loop: a small :class:`Trainer` whose ``fit`` reads top to bottom.

``fit`` is the core: 1-based epochs, ``epochs`` a total, ``val_*`` metrics. ``train`` is a
thin face over it with the numbering and names of the architecture-agnostic trainer the
project grew from (see :mod:`trainables.train_call` and ``docs/seeds.md``).
"""

from __future__ import annotations

import enum
import math
import time
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader

from trainables.callbacks import Callback, GradientClipping, History
from trainables.callbacks.host import CallbackHost
from trainables.devices import resolve_device
from trainables.distributed import all_reduce_sums, unwrap_model, world_info
from trainables.optim import build_loss, build_optimizer
from trainables.steps import accumulate as _accumulate
from trainables.steps import batch_size as _batch_size
from trainables.steps import means as _means
from trainables.steps import shape_of as _shape
from trainables.steps import share_rank0_buffers as _share_rank0_buffers
from trainables.steps import split_loss as _split_loss
from trainables.train_call import TrainCallMixin
from trainables.trainer_checkpoints import CheckpointMixin
from trainables.training_config import config_to_dict, training_options

__all__ = ["Trainer", "StepInterval", "NonFinitePolicy", "NonFiniteLossError", "ShapeError", "NothingToTrainWarning"]

OptimizerArg = str | torch.optim.Optimizer | Sequence[torch.optim.Optimizer]
SchedulerArg = Any  # an LRScheduler, a factory ``f(optimizer) -> scheduler``, or None


class StepInterval(str, enum.Enum):
    """When the LR scheduler steps."""

    BATCH = "batch"
    EPOCH = "epoch"


class NonFinitePolicy(str, enum.Enum):
    """What a NaN or infinite training loss does: stop the fit (status ``diverged``) or raise."""

    STOP = "stop"
    RAISE = "raise"


class NonFiniteLossError(FloatingPointError):
    """The training loss became NaN or infinite (with ``on_nonfinite="raise"``)."""


class ShapeError(ValueError):
    """The model or the loss rejected a batch because shapes do not match."""


class NothingToTrainWarning(UserWarning):
    """``fit`` was asked for a total of epochs the trainer has already completed."""


class Trainer(CallbackHost, CheckpointMixin, TrainCallMixin):
    """Train a PyTorch model: ``train_step`` / ``eval_step`` per batch, ``fit`` for a run.

    ``fit(loader, epochs, val_loader)`` is the loop (1-based epochs, ``epochs`` a total,
    ``val_*`` metrics, a :class:`History` back); ``train(train_dataloader, num_epochs, ...)``
    runs it with the names of the seed trainer (``num_epochs`` more, 0-based epochs,
    ``eval_*`` metrics, a dict of lists back; see ``docs/seeds.md``). The first six
    arguments may be given by position, in that trainer's order.

    Args:
        model: the module to train (may be wrapped in ``DistributedDataParallel``).
        optimizer: a name (``adam``, ``adamw``, ``sgd``, ``rmsprop``), an optimizer, or a
            list of optimizers (all are stepped together, as in feature selection).
        loss_fn: a name (``cross_entropy``, ``mse``, ...), a callable ``(outputs, targets)``,
            or None to use the loss the model returns itself (``outputs.loss``, as
            Hugging Face models do when given ``labels``).
        config: the run's settings (a mapping, a dataclass or an object with attributes),
            stored in every checkpoint. Its ``training`` section is read: ``weight_decay``,
            ``max_grad_norm`` (adds gradient clipping) and ``scheduler_step_per_batch``;
            any other key there is an error (:mod:`trainables.training_config`).
        device: ``"cpu"``, ``"cuda"``, ``"mps"``, a :class:`torch.device`, or None to detect.
        scheduler: an LR scheduler, or a factory ``f(optimizer) -> scheduler``.
        lr, weight_decay: used when ``optimizer`` is a name (``weight_decay`` also comes
            from ``config.training.weight_decay``, which then applies to given optimizers too).
        scheduler_interval: ``"epoch"`` (default) or ``"batch"``.
        callbacks: :class:`Callback` objects or plain functions ``f(trainer, epoch, metrics)``
            (1-based epochs, ``val_*`` names). Each is registered once however often it is passed.
        on_nonfinite: ``"stop"`` ends the fit with status ``diverged``; ``"raise"`` raises.
        train_accuracy: also measure each training batch's accuracy (for 2-d logits and
            integer targets), so that ``train_step`` returns ``accuracy``, callbacks'
            ``on_train_batch_end`` sees it and each epoch's metrics hold ``train_accuracy``.
            Off by default: an argmax, a comparison and a read back to the host (a sync on
            a GPU) every step cost about 20 µs on a CPU, several per cent of a small model's
            step. Evaluation measures accuracy either way (``val_accuracy`` in ``fit``).
    """

    def __init__(
        self,
        model: nn.Module,
        optimizer: OptimizerArg = "adam",
        loss_fn: str | Callable[..., torch.Tensor] | None = "cross_entropy",
        config: Any = None,
        device: str | torch.device | None = None,
        scheduler: SchedulerArg = None,
        *,
        lr: float = 1e-3,
        weight_decay: float = 0.0,
        scheduler_interval: str | StepInterval | None = None,
        callbacks: Iterable[Callback | Callable[..., Any]] | None = None,
        on_nonfinite: str | NonFinitePolicy = NonFinitePolicy.STOP,
        train_accuracy: bool = False,
    ) -> None:
        self.config = config_to_dict(config)
        options = training_options(self.config)
        if options.weight_decay is not None:
            if weight_decay not in (0.0, options.weight_decay):
                raise ValueError(f"weight_decay={weight_decay} disagrees with config.training.weight_decay="
                                 f"{options.weight_decay}; give one of them")
            weight_decay = options.weight_decay
        self.device = resolve_device(device)
        self.model = model.to(self.device)
        self.optimizers = self._build_optimizers(optimizer, lr, weight_decay)
        if options.weight_decay is not None and not isinstance(optimizer, str):
            for opt in self.optimizers:  # the config's value applies to optimizers built by the caller too
                for group in opt.param_groups:
                    group["weight_decay"] = options.weight_decay
        self.loss_fn = build_loss(loss_fn)
        self.schedulers = self._build_schedulers(scheduler)
        self.scheduler_interval = _scheduler_interval(scheduler_interval, options.scheduler_step_per_batch)
        self.on_nonfinite = NonFinitePolicy(on_nonfinite)
        self.train_accuracy = train_accuracy
        self.history = History()
        self.callbacks: list[Callback] = []
        extra: list[Callback] = []
        if options.max_grad_norm is not None:
            if any(isinstance(cb, GradientClipping) for cb in callbacks or []):
                raise ValueError("config.training.max_grad_norm and a GradientClipping callback both clip "
                                 "gradients; keep one of them")
            extra.append(GradientClipping(max_norm=options.max_grad_norm))
        self.add_callbacks([self.history, *extra, *(callbacks or [])])
        self.epoch = 0  # last completed epoch (1-based), so a resumed fit starts at epoch + 1
        self.global_step = 0
        self.max_epochs: int | None = None
        self.should_stop = False
        self.stop_reason: str | None = None
        self._train_loader: DataLoader | None = None
        self._pending_loader_state: torch.Tensor | None = None

    # ------------------------------------------------------------------ setup
    def _build_optimizers(self, optimizer: OptimizerArg, lr: float, weight_decay: float) -> list[torch.optim.Optimizer]:
        if isinstance(optimizer, str):
            return [build_optimizer(optimizer, self.model.parameters(), lr=lr, weight_decay=weight_decay)]
        if isinstance(optimizer, torch.optim.Optimizer):
            return [optimizer]
        optimizers = list(optimizer)
        if not optimizers or not all(isinstance(o, torch.optim.Optimizer) for o in optimizers):
            raise TypeError("optimizer must be a name, a torch.optim.Optimizer or a non-empty list of them")
        return optimizers

    def _build_schedulers(self, scheduler: SchedulerArg) -> list[Any]:
        if scheduler is None:
            return []
        if callable(scheduler) and not hasattr(scheduler, "step"):
            scheduler = scheduler(self.optimizer)
        return list(scheduler) if isinstance(scheduler, (list, tuple)) else [scheduler]

    @property
    def optimizer(self) -> torch.optim.Optimizer:
        return self.optimizers[0]

    @property
    def is_main_process(self) -> bool:
        return world_info().is_main

    def parameters(self) -> Iterator[nn.Parameter]:
        """Every parameter any optimizer updates (what gradient clipping covers)."""
        for opt in self.optimizers:
            for group in opt.param_groups:
                yield from group["params"]

    def request_stop(self, reason: str) -> None:
        """Ask the loop to stop after the current epoch (callbacks call this)."""
        self.should_stop = True
        self.stop_reason = self.stop_reason or reason

    # ------------------------------------------------------------- per batch
    def _prepare_batch(self, batch: Any) -> tuple[Any, Any]:
        """Split a batch into (inputs, targets) on the trainer's device.

        Handles ``(inputs, targets)`` pairs, dicts (``labels`` is the target, and
        stays in the inputs so models that compute their own loss see it), and a
        bare tensor (no targets).
        """
        if isinstance(batch, (list, tuple)):
            if len(batch) != 2:
                raise ShapeError(f"expected batches of (inputs, targets), got a sequence of {len(batch)} items; "
                                 "override _prepare_batch for other layouts")
            return batch[0].to(self.device, non_blocking=True), batch[1].to(self.device, non_blocking=True)
        if isinstance(batch, Mapping):
            inputs = {k: v.to(self.device, non_blocking=True) if torch.is_tensor(v) else v for k, v in batch.items()}
            return inputs, inputs.get("labels")
        return batch.to(self.device, non_blocking=True), None

    def _forward_pass(self, inputs: Any) -> Any:
        """The model's outputs for ``inputs`` (override to change the forward pass).

        Without gradients (evaluation) it runs the module inside a DDP wrapper: see :meth:`eval_step`.
        """
        return self._forward(inputs, None if torch.is_grad_enabled() else unwrap_model(self.model))

    def _forward(self, inputs: Any, model: nn.Module | None = None) -> Any:
        model = self.model if model is None else model
        try:
            return model(**inputs) if isinstance(inputs, Mapping) else model(inputs)
        except RuntimeError as exc:
            if "shape" not in str(exc) and "size" not in str(exc):
                raise
            raise ShapeError(f"model {type(unwrap_model(self.model)).__name__} rejected inputs of shape "
                             f"{_shape(inputs)}: {exc}") from exc

    def _compute_loss(self, outputs: Any, targets: Any) -> torch.Tensor | tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The loss to minimise; may return ``(loss, parts)`` to also log loss components."""
        if self.loss_fn is None:
            loss = getattr(outputs, "loss", None)
            if loss is None and isinstance(outputs, Mapping):
                loss = outputs.get("loss")
            if loss is None:
                raise ValueError("loss_fn=None needs a model that returns its own loss (outputs.loss or "
                                 "outputs['loss'], e.g. a Hugging Face model given labels); pass a loss_fn instead")
            return loss
        try:
            return self.loss_fn(outputs, targets)
        except (RuntimeError, ValueError, IndexError) as exc:
            raise ShapeError(f"loss {type(self.loss_fn).__name__} failed on outputs of shape {_shape(outputs)} "
                             f"and targets of shape {_shape(targets)}: {exc}") from exc

    def _step_metrics(self, outputs: Any, targets: Any, loss: torch.Tensor, parts: Mapping[str, torch.Tensor],
                      accuracy: bool = True) -> dict[str, float]:
        """A batch's ``loss``, loss parts and size ``n``, plus ``accuracy`` when asked and defined."""
        n = _batch_size(targets, outputs)
        metrics = {"loss": loss.item(), "n": n}
        for name, value in parts.items():
            metrics[name] = float(value)
        if accuracy:
            logits = getattr(outputs, "logits", outputs)
            if torch.is_tensor(targets) and torch.is_tensor(logits) and logits.dim() == 2 and targets.dim() == 1 \
                    and not targets.is_floating_point():
                metrics["accuracy"] = (logits.argmax(dim=1) == targets).sum().item() / n
        return metrics

    def train_step(self, batch: Any) -> dict[str, float]:
        """One optimisation step on ``batch``; returns the batch's loss and size ``n``.

        Also its ``accuracy`` with ``train_accuracy=True``, and the loss's parts when
        ``_compute_loss`` returns ``(loss, parts)``.
        """
        inputs, targets = self._prepare_batch(batch)
        for opt in self.optimizers:
            opt.zero_grad(set_to_none=True)
        outputs = self._forward_pass(inputs)
        loss, parts = _split_loss(self._compute_loss(outputs, targets))
        loss.backward()
        # Per-batch hooks are called only when a callback overrides them (most fits: none);
        # a small model's step is short enough for even an empty call to show in its time.
        if self._hooked["on_after_backward"]:
            self._notify("on_after_backward")
        for opt in self.optimizers:
            opt.step()
        if self.scheduler_interval is StepInterval.BATCH:
            for sched in self.schedulers:
                sched.step()
        self.global_step += 1
        if self.train_accuracy and torch.is_tensor(outputs):
            outputs = outputs.detach()
        return self._step_metrics(outputs, targets, loss.detach(), parts, accuracy=self.train_accuracy)

    @torch.no_grad()
    def eval_step(self, batch: Any) -> dict[str, float]:
        """Loss (and accuracy) of ``batch`` without updating anything; includes its size ``n``.

        Under DDP it runs the module inside the wrapper: DDP's forward broadcasts buffers
        (BatchNorm's running statistics) from rank 0, a collective per batch, and evaluation
        shards differ in length (:class:`~trainables.distributed.ShardSampler`, no padding),
        so through the wrapper the ranks would hang waiting for each other.
        """
        inputs, targets = self._prepare_batch(batch)
        outputs = self._forward_pass(inputs)  # under no_grad: the module inside a DDP wrapper
        loss, parts = _split_loss(self._compute_loss(outputs, targets))
        return self._step_metrics(outputs, targets, loss, parts)

    # ------------------------------------------------------------- per epoch
    def train_epoch(self, loader: Iterable[Any], eval_dataloader: Iterable[Any] | int | None = None,
                    epoch: int | None = None) -> dict[str, float]:
        """Train over ``loader`` once; returns ``train_*`` metrics averaged over samples.

        Args:
            loader: the training batches.
            eval_dataloader: evaluate on it after the epoch and add ``eval_*`` metrics (the
                seed trainer's names; ``fit`` evaluates itself and names them ``val_*``).
                An int here is taken as ``epoch`` (the older ``train_epoch(loader, epoch)``).
            epoch: the epoch's number, for messages and distributed shuffling (default:
                the next one, ``self.epoch + 1``).
        """
        if isinstance(eval_dataloader, int) and not isinstance(eval_dataloader, bool):
            if epoch is not None:
                raise TypeError("train_epoch: epoch given twice (as the second argument and as epoch=)")
            eval_dataloader, epoch = None, eval_dataloader
        epoch = self.epoch + 1 if epoch is None else epoch
        metrics = self._train_epoch(loader, epoch)
        if eval_dataloader is not None:
            metrics.update({f"eval_{k}": v for k, v in self.evaluate(eval_dataloader).items()})
        return metrics

    def _train_epoch(self, loader: Iterable[Any], epoch: int) -> dict[str, float]:
        self.model.train()
        sampler = getattr(loader, "sampler", None)
        if hasattr(sampler, "set_epoch"):  # DistributedSampler: a new shuffle each epoch
            sampler.set_epoch(epoch)
        distributed = world_info().is_distributed
        sums: dict[str, float] = {}
        first_bad: tuple[float, int] | None = None
        for batch_idx, batch in enumerate(loader):
            step = self.train_step(batch)
            _accumulate(sums, step)
            if not math.isfinite(step["loss"]) and first_bad is None:
                first_bad = (step["loss"], batch_idx)
                # Under DDP every rank must run the same collectives: a rank that left the
                # epoch alone would hang the others in their next backward. So all ranks
                # finish the epoch and decide together from the all-reduced loss below.
                if not distributed:
                    break
            if self._hooked["on_train_batch_end"]:
                self._notify("on_train_batch_end", batch_idx, step)
        metrics = {f"train_{k}": v for k, v in _means(all_reduce_sums(sums, self.device)).items()}
        loss = metrics.get("train_loss", 0.0)
        if first_bad is not None or not math.isfinite(loss):
            value, batch_idx = first_bad if first_bad is not None else (loss, -1)
            self._handle_nonfinite(value, epoch, batch_idx)
        return metrics

    def evaluate(self, loader: Iterable[Any]) -> dict[str, float]:
        """Exact metrics over the whole of ``loader`` (weighted by batch size, summed over ranks)."""
        was_training = self.model.training
        self.model.eval()
        _share_rank0_buffers(self.model)
        sums: dict[str, float] = {}
        for batch in loader:
            _accumulate(sums, self.eval_step(batch))
        self.model.train(was_training)
        return _means(all_reduce_sums(sums, self.device))

    def _handle_nonfinite(self, value: float, epoch: int, batch_idx: int) -> None:
        where = f"batch {batch_idx}" if batch_idx >= 0 else "another rank"
        message = (f"training loss became {value} at epoch {epoch}, {where} (global step {self.global_step}); "
                   "lower the learning rate or clip gradients (GradientClipping)")
        if self.on_nonfinite is NonFinitePolicy.RAISE:
            raise NonFiniteLossError(message)
        self.nonfinite_message = message
        self.request_stop("diverged")

    # ------------------------------------------------------------------- fit
    def fit(
        self,
        train_loader: Iterable[Any],
        epochs: int,
        val_loader: Iterable[Any] | None = None,
        *,
        callbacks: Iterable[Callback | Callable[..., Any]] | None = None,
    ) -> History:
        """Train until ``epochs`` (a total: a resumed trainer continues from ``self.epoch + 1``).

        ``callbacks`` are added to the trainer's (once each, however often passed). When
        ``epochs`` is not above the epochs already completed, nothing trains and a
        :class:`NothingToTrainWarning` says why (``train(loader, num_epochs)`` counts
        epochs from where the trainer is instead).

        Returns the :class:`History`; ``history.status`` says why the fit ended.
        """
        if epochs < 1:
            raise ValueError(f"epochs must be >= 1, got {epochs}")
        if epochs <= self.epoch:
            warnings.warn(f"fit: nothing to train: epochs={epochs} is a total and this trainer has already "
                          f"completed epoch {self.epoch}; pass a larger total, or use "
                          f"train(loader, num_epochs) to train num_epochs more", NothingToTrainWarning, stacklevel=2)
        if callbacks:
            self.add_callbacks(callbacks)
        self.max_epochs, self.should_stop, self.stop_reason = epochs, False, None
        self._attach_loader(train_loader)
        self._notify("on_fit_start")
        try:
            for epoch in range(self.epoch + 1, epochs + 1):
                self._notify("on_epoch_start", epoch)
                started = time.perf_counter()
                metrics: dict[str, Any] = {"epoch": epoch, **self.train_epoch(train_loader, epoch=epoch)}
                if val_loader is not None:
                    metrics.update({f"val_{k}": v for k, v in self.evaluate(val_loader).items()})
                metrics["lr"] = self.optimizer.param_groups[0]["lr"]
                metrics["epoch_time_s"] = time.perf_counter() - started
                self._step_epoch_schedulers(metrics)
                self.epoch = epoch
                self._notify("on_epoch_end", epoch, metrics)
                if self.should_stop:
                    break
        except BaseException as exc:
            self._notify("on_exception", exc)
            raise
        self._notify("on_fit_end")
        return self.history

    def _step_epoch_schedulers(self, metrics: Mapping[str, Any]) -> None:
        if self.scheduler_interval is not StepInterval.EPOCH:
            return
        for sched in self.schedulers:
            if isinstance(sched, torch.optim.lr_scheduler.ReduceLROnPlateau):
                key = "val_loss" if "val_loss" in metrics else "train_loss"
                sched.step(metrics[key])
            else:
                sched.step()


def _scheduler_interval(interval: str | StepInterval | None, per_batch: bool | None) -> StepInterval:
    """The constructor's ``scheduler_interval`` and ``config.training.scheduler_step_per_batch`` agreed."""
    from_config = None if per_batch is None else (StepInterval.BATCH if per_batch else StepInterval.EPOCH)
    given = None if interval is None else StepInterval(interval)
    if given is not None and from_config is not None and given is not from_config:
        raise ValueError(f"scheduler_interval={given.value!r} disagrees with config.training."
                         f"scheduler_step_per_batch={per_batch}; give one of them")
    return given or from_config or StepInterval.EPOCH
