"""Trainer: steps, epochs, fit, optimizers, losses, devices, schedulers, hooks and failures."""

from __future__ import annotations

import math
from dataclasses import dataclass
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from trainables import Callback, NonFiniteLossError, ShapeError, Trainer


# ----------------------------------------------------------------- steps
def test_train_step_returns_batch_loss_and_size_and_updates_weights(toy_xy, make_model):
    x, y = toy_xy[0][:16], toy_xy[1][:16]
    model = make_model()
    with torch.no_grad():
        expected_loss = F.cross_entropy(model(x), y).item()
    before = [p.detach().clone() for p in model.parameters()]

    step = Trainer(model, lr=0.01, device="cpu").train_step((x, y))

    assert set(step) == {"loss", "n"}  # training accuracy is opt-in: train_accuracy=True
    assert step["n"] == 16
    assert step["loss"] == pytest.approx(expected_loss, rel=1e-6)
    assert all(not torch.equal(b, p) for b, p in zip(before, model.parameters()))


def test_train_step_with_train_accuracy_also_returns_the_batch_accuracy(toy_xy, make_model):
    x, y = toy_xy[0][:16], toy_xy[1][:16]
    model = make_model()
    with torch.no_grad():
        logits = model(x)

    step = Trainer(model, lr=0.01, train_accuracy=True).train_step((x, y))

    assert set(step) == {"loss", "accuracy", "n"}
    assert step["loss"] == pytest.approx(F.cross_entropy(logits, y).item(), rel=1e-6)
    # The accuracy of the outputs the step trained on, i.e. before its update.
    assert step["accuracy"] == pytest.approx((logits.argmax(1) == y).float().mean().item())


def test_eval_step_reports_the_same_metrics_without_updating(toy_xy, make_model):
    x, y = toy_xy[0][:10], toy_xy[1][:10]
    model = make_model()
    before = [p.detach().clone() for p in model.parameters()]
    trainer = Trainer(model, device="cpu")

    step = trainer.eval_step((x, y))

    with torch.no_grad():
        logits = model(x)
    assert step["n"] == 10
    assert step["loss"] == pytest.approx(F.cross_entropy(logits, y).item(), rel=1e-6)
    assert step["accuracy"] == pytest.approx((logits.argmax(1) == y).float().mean().item())
    assert all(torch.equal(b, p) for b, p in zip(before, model.parameters()))
    assert trainer.global_step == 0


def test_regression_step_has_no_accuracy():
    torch.manual_seed(0)
    step = Trainer(nn.Linear(3, 1), loss_fn="mse").train_step((torch.randn(8, 3), torch.randn(8, 1)))
    assert set(step) == {"loss", "n"}
    assert step["n"] == 8


def test_a_batch_of_three_items_asks_for_a_prepare_batch_override(toy_xy, make_model):
    x, y = toy_xy
    with pytest.raises(ShapeError, match="3 items; override _prepare_batch"):
        Trainer(make_model()).train_step((x, y, y))


# ---------------------------------------------------------------- epochs
def test_evaluate_is_exact_over_the_whole_set_with_an_unequal_last_batch(toy_xy, make_model):
    x, y = toy_xy[0][:16], toy_xy[1][:16]
    model = make_model()
    loader = DataLoader(TensorDataset(x, y), batch_size=5)  # 5, 5, 5, 1

    metrics = Trainer(model, device="cpu").evaluate(loader)

    with torch.no_grad():
        logits = model(x)
    full_loss = F.cross_entropy(logits, y).item()
    full_acc = (logits.argmax(1) == y).float().mean().item()
    assert metrics["loss"] == pytest.approx(full_loss, rel=1e-6)
    assert metrics["accuracy"] == pytest.approx(full_acc)
    # The test means something only if a mean of batch means would have been wrong.
    with torch.no_grad():
        batch_means = [F.cross_entropy(model(bx), by).item() for bx, by in loader]
    assert abs(sum(batch_means) / len(batch_means) - full_loss) > 1e-3


def test_evaluate_restores_training_mode(toy_loaders, make_model):
    trainer = Trainer(make_model(dropout=0.5))
    trainer.model.train()
    trainer.evaluate(toy_loaders[1])
    assert trainer.model.training


@pytest.mark.parametrize("train_accuracy", [False, True])
def test_train_epoch_returns_sample_weighted_train_metrics(toy_loaders, make_model, train_accuracy):
    train, _ = toy_loaders
    steps = []

    class Steps(Callback):
        def on_train_batch_end(self, trainer, batch_idx, metrics):
            steps.append(dict(metrics))

    trainer = Trainer(make_model(), lr=0.01, callbacks=[Steps()], train_accuracy=train_accuracy)
    metrics = trainer.train_epoch(train, epoch=1)

    assert set(metrics) == ({"train_loss", "train_accuracy"} if train_accuracy else {"train_loss"})
    assert [s["n"] for s in steps] == [16, 16, 16, 6]
    for key in metrics:
        expected = sum(s[key.removeprefix("train_")] * s["n"] for s in steps) / 54
        assert metrics[key] == pytest.approx(expected, rel=1e-9), key
    assert trainer.global_step == 4


def test_fit_records_per_epoch_metrics_and_the_loss_goes_down(toy_loaders, make_model):
    train, val = toy_loaders
    trainer = Trainer(make_model(), lr=0.05, train_accuracy=True)

    history = trainer.fit(train, 12, val)

    assert history is trainer.history
    assert history.status == "completed"
    assert history["epoch"] == list(range(1, 13))
    assert trainer.epoch == 12
    for key in ("train_loss", "train_accuracy", "val_loss", "val_accuracy", "lr", "epoch_time_s"):
        assert len(history[key]) == 12 and all(isinstance(v, float) for v in history[key]), key
    assert history["lr"] == [0.05] * 12
    assert history["train_loss"][-1] < 0.5 * history["train_loss"][0]
    assert history["val_loss"][-1] < history["val_loss"][0]
    assert history["train_accuracy"][-1] > 0.8


def test_fit_without_train_accuracy_records_the_other_metrics(toy_loaders, make_model):
    history = Trainer(make_model(), lr=0.05).fit(toy_loaders[0], 2, toy_loaders[1])
    assert set(history.keys()) == {"epoch", "train_loss", "val_loss", "val_accuracy", "lr", "epoch_time_s"}


def test_fit_rejects_zero_epochs(toy_loaders, make_model):
    with pytest.raises(ValueError, match="epochs must be >= 1, got 0"):
        Trainer(make_model()).fit(toy_loaders[0], 0)


# ------------------------------------------------- optimizers and losses
@pytest.mark.parametrize(("name", "cls"), [("adam", torch.optim.Adam), ("adamw", torch.optim.AdamW),
                                           ("SGD", torch.optim.SGD), ("rmsprop", torch.optim.RMSprop)])
def test_optimizer_by_name_gets_lr_and_weight_decay(name, cls, make_model):
    model = make_model()
    trainer = Trainer(model, name, lr=0.02, weight_decay=0.125)
    assert type(trainer.optimizer) is cls
    group = trainer.optimizer.param_groups[0]
    assert group["lr"] == 0.02
    assert group["weight_decay"] == 0.125
    assert {id(p) for p in group["params"]} == {id(p) for p in model.parameters()}
    if name.lower() in ("sgd", "rmsprop"):
        assert group["momentum"] == 0.9


def test_weight_decay_is_applied_by_the_step(make_model):
    model = make_model()
    before = [p.detach().clone() for p in model.parameters()]
    # A zero loss leaves only the decay term: w <- w - lr * wd * w on the first SGD step.
    trainer = Trainer(model, "sgd", loss_fn=lambda out, y: 0.0 * out.sum(), lr=0.1, weight_decay=0.5, device="cpu")
    trainer.train_step((torch.randn(4, 6), torch.zeros(4)))
    for b, p in zip(before, model.parameters()):
        torch.testing.assert_close(p.detach(), b * (1 - 0.1 * 0.5))


def test_an_optimizer_object_is_used_as_given(make_model):
    model = make_model()
    opt = torch.optim.SGD(model.parameters(), lr=0.3)
    trainer = Trainer(model, opt)
    assert trainer.optimizer is opt
    assert trainer.optimizers == [opt]


def test_a_list_of_non_optimizers_is_refused(make_model):
    with pytest.raises(TypeError, match="optimizer must be a name"):
        Trainer(make_model(), [object()])


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"optimizer": "adma"}, "unknown optimizer 'adma'; did you mean 'adam'"),
    ({"optimizer": "sdg"}, "did you mean 'sgd'"),
    ({"loss_fn": "cross_entropi"}, "unknown loss 'cross_entropi'; did you mean 'cross_entropy'"),
])
def test_unknown_names_suggest_the_closest_choice(kwargs, message, make_model):
    with pytest.raises(ValueError, match=message) as info:
        Trainer(make_model(), **kwargs)
    assert "choices:" in str(info.value)


def test_loss_by_name():
    trainer = Trainer(nn.Linear(3, 1), loss_fn="l1", device="cpu")
    x, y = torch.ones(4, 3), torch.zeros(4, 1)
    with torch.no_grad():
        expected = trainer.model(x).abs().mean().item()
    assert trainer.eval_step((x, y))["loss"] == pytest.approx(expected, rel=1e-6)


def test_loss_as_a_callable_is_called_with_outputs_and_targets(toy_xy, make_model):
    calls = []

    def halved_ce(outputs, targets):
        calls.append((tuple(outputs.shape), tuple(targets.shape)))
        return 0.5 * F.cross_entropy(outputs, targets)

    x, y = toy_xy[0][:8], toy_xy[1][:8]
    model = make_model()
    with torch.no_grad():
        expected = 0.5 * F.cross_entropy(model(x), y).item()
    step = Trainer(model, loss_fn=halved_ce).eval_step((x, y))
    assert calls == [((8, 3), (8,))]
    assert step["loss"] == pytest.approx(expected, rel=1e-6)


# ------------------------------------------------------------------ device
def test_device_override_cpu(make_model):
    trainer = Trainer(make_model(), device="cpu")
    assert trainer.device == torch.device("cpu")
    assert all(p.device.type == "cpu" for p in trainer.model.parameters())


@pytest.mark.skipif(torch.cuda.is_available() or torch.backends.mps.is_available(), reason="an accelerator is present")
def test_device_auto_detection_is_cpu_without_accelerators(make_model):
    assert Trainer(make_model()).device == torch.device("cpu")
    assert Trainer(make_model(), device="auto").device == torch.device("cpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is available")
def test_requesting_cuda_without_cuda_is_a_clear_error(make_model):
    with pytest.raises(ValueError, match="device 'cuda' requested but CUDA is not available; use device='cpu'"):
        Trainer(make_model(), device="cuda")


# -------------------------------------------------------------- schedulers
def test_scheduler_stepped_per_batch(toy_loaders, make_model):
    train, _ = toy_loaders  # 4 batches per epoch
    trainer = Trainer(make_model(), "sgd", lr=0.1, scheduler_interval="batch",
                      scheduler=lambda opt: torch.optim.lr_scheduler.StepLR(opt, step_size=2, gamma=0.5))
    history = trainer.fit(train, 2)
    # The epoch's lr is read after its batches: 4 batch steps -> 2 halvings, 8 -> 4.
    assert history["lr"] == pytest.approx([0.1 * 0.5**2, 0.1 * 0.5**4])
    assert trainer.optimizer.param_groups[0]["lr"] == pytest.approx(0.1 * 0.5**4)


def test_scheduler_stepped_per_epoch(toy_loaders, make_model):
    train, _ = toy_loaders
    model = make_model()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=2, gamma=0.5)
    trainer = Trainer(model, opt, scheduler=sched)
    history = trainer.fit(train, 5)
    # history["lr"] is the lr each epoch trained with.
    assert history["lr"] == pytest.approx([0.1, 0.1, 0.05, 0.05, 0.025])
    assert trainer.schedulers == [sched]
    assert sched.last_epoch == 5


def test_reduce_lr_on_plateau_follows_val_loss(toy_loaders, make_model):
    train, val = toy_loaders
    model = make_model()
    seen = []
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    # Only a val_loss drop of more than 10 counts: every epoch after the first is a plateau.
    plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, factor=0.5, patience=0, threshold=10.0,
                                                         threshold_mode="abs")
    plateau.step = lambda value, _step=plateau.step: seen.append(value) or _step(value)
    trainer = Trainer(model, opt, scheduler=plateau)
    history = trainer.fit(train, 4, val)
    assert history["lr"] == pytest.approx([0.1, 0.1, 0.05, 0.025])
    assert seen == history["val_loss"]


# ------------------------------------------------ models with their own loss
@dataclass
class ModelOutput:
    loss: torch.Tensor | None
    logits: torch.Tensor


class SelfLossModel(nn.Module):
    """Hugging Face style: keyword inputs, returns an object with ``loss`` and ``logits``."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.linear = nn.Linear(6, 3)

    def forward(self, features: torch.Tensor, labels: torch.Tensor | None = None) -> ModelOutput:
        logits = self.linear(features)
        loss = F.cross_entropy(logits, labels) if labels is not None else None
        return ModelOutput(loss=loss, logits=logits)


def test_loss_fn_none_uses_the_loss_the_model_returns(toy_xy):
    x, y = toy_xy
    batches = [{"features": x[i:i + 16], "labels": y[i:i + 16]} for i in range(0, 70, 16)]
    model = SelfLossModel()
    trainer = Trainer(model, loss_fn=None, lr=0.05, device="cpu")

    with torch.no_grad():
        out = model(x[:16], y[:16])
    step = trainer.eval_step(batches[0])
    assert step["loss"] == pytest.approx(out.loss.item(), rel=1e-6)
    assert step["accuracy"] == pytest.approx((out.logits.argmax(1) == y[:16]).float().mean().item())
    assert step["n"] == 16

    history = trainer.fit(batches, 10, batches)
    assert history["val_loss"][-1] < history["val_loss"][0]
    with torch.no_grad():
        full = model(x, y)
    # 70 samples in batches of 16, 16, 16, 16, 6: still the exact full-set mean.
    assert trainer.evaluate(batches)["loss"] == pytest.approx(full.loss.item(), rel=1e-5)


def test_loss_fn_none_accepts_a_namespace_output():
    model = nn.Linear(2, 2)

    class Wrapped(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inner = model

        def forward(self, x, labels):
            logits = self.inner(x)
            return SimpleNamespace(loss=F.cross_entropy(logits, labels), logits=logits)

    trainer = Trainer(Wrapped(), loss_fn=None, train_accuracy=True)
    step = trainer.train_step({"x": torch.ones(3, 2), "labels": torch.tensor([0, 1, 1])})
    assert step["n"] == 3 and math.isfinite(step["loss"]) and "accuracy" in step


def test_loss_fn_none_without_a_model_loss_says_what_to_do(toy_xy, make_model):
    with pytest.raises(ValueError, match="loss_fn=None needs a model that returns its own loss"):
        Trainer(make_model(), loss_fn=None).train_step(toy_xy)


# ------------------------------------------------------- overridable hooks
class WeightedTrainer(Trainer):
    """Batches are (x, y, weight); the loss weighs each sample."""

    def _prepare_batch(self, batch):
        x, y, w = batch
        return x.to(self.device), (y.to(self.device), w.to(self.device))

    def _compute_loss(self, outputs, targets):
        y, w = targets
        return (F.cross_entropy(outputs, y, reduction="none") * w).sum() / w.sum()

    def _step_metrics(self, outputs, targets, loss, parts):
        return super()._step_metrics(outputs, targets[0], loss, parts)


def test_prepare_batch_and_compute_loss_can_be_overridden(toy_xy, make_model):
    x, y = toy_xy[0][:8], toy_xy[1][:8]
    w = torch.tensor([1.0, 0, 0, 0, 0, 0, 0, 0])
    model = make_model()
    with torch.no_grad():
        only_first = F.cross_entropy(model(x[:1]), y[:1]).item()

    step = WeightedTrainer(model).eval_step((x, y, w))

    assert step["loss"] == pytest.approx(only_first, rel=1e-6)
    assert step["n"] == 8


# ------------------------------------------------------------------ shapes
def test_model_input_shape_mismatch_names_the_shapes():
    trainer = Trainer(nn.Linear(10, 2))
    with pytest.raises(ShapeError, match=r"model Linear rejected inputs of shape \(4, 12\)") as info:
        trainer.train_step((torch.randn(4, 12), torch.zeros(4, dtype=torch.long)))
    assert "10" in str(info.value)


def test_target_shape_mismatch_names_both_shapes():
    trainer = Trainer(nn.Linear(10, 2))
    with pytest.raises(ShapeError, match=r"loss CrossEntropyLoss failed on outputs of shape \(4, 2\) "
                                         r"and targets of shape \(4, 1\)"):
        trainer.train_step((torch.randn(4, 10), torch.zeros(4, 1, dtype=torch.long)))


# --------------------------------------------------------- non-finite loss
def _nan_from_training_call(n: int):
    """Cross-entropy that turns NaN on the ``n``-th training call (evaluation calls do not count)."""
    calls = {"train": 0}

    def loss(outputs, targets):
        value = F.cross_entropy(outputs, targets)
        if torch.is_grad_enabled():
            calls["train"] += 1
            if calls["train"] >= n:
                return value * float("nan")
        return value

    return loss


def test_nonfinite_loss_stops_the_fit_as_diverged(toy_loaders, make_model):
    train, val = toy_loaders  # 4 batches per epoch: the 6th call is epoch 2, batch 1
    trainer = Trainer(make_model(), loss_fn=_nan_from_training_call(6), on_nonfinite="stop")

    history = trainer.fit(train, 5, val)

    assert history.status == "diverged"
    assert len(history) == 2 < 5
    assert trainer.epoch == 2
    assert math.isfinite(history["train_loss"][0]) and math.isnan(history["train_loss"][1])
    assert "epoch 2, batch 1" in trainer.nonfinite_message


def test_nonfinite_loss_raises_when_asked(toy_loaders, make_model):
    seen = []
    trainer = Trainer(make_model(), loss_fn=_nan_from_training_call(6), on_nonfinite="raise",
                      callbacks=[lambda t, epoch, metrics: seen.append(epoch)])
    with pytest.raises(NonFiniteLossError, match=r"training loss became nan at epoch 2, batch 1"):
        trainer.fit(toy_loaders[0], 5)
    assert seen == [1]


def test_an_unknown_nonfinite_policy_is_refused(make_model):
    with pytest.raises(ValueError, match="'explode'"):
        Trainer(make_model(), on_nonfinite="explode")


# --------------------------------------------------------------- callbacks
def test_function_callbacks_are_called_every_epoch(toy_loaders, make_model):
    calls = []

    def record(trainer, epoch, metrics):
        calls.append((trainer, epoch, dict(metrics)))
        metrics["custom"] = epoch * 10  # a callback may add keys for later ones (and the history)

    train, val = toy_loaders
    trainer = Trainer(make_model(), callbacks=[record])
    history = trainer.fit(train, 3, val)

    assert [c[1] for c in calls] == [1, 2, 3]
    assert all(c[0] is trainer for c in calls)
    assert [c[2]["val_loss"] for c in calls] == history["val_loss"]
    assert history["custom"] == [10, 20, 30]


def test_fit_accepts_extra_callbacks(toy_loaders, make_model):
    epochs = []
    Trainer(make_model()).fit(toy_loaders[0], 2, callbacks=[lambda t, e, m: epochs.append(e)])
    assert epochs == [1, 2]


def test_a_non_callable_callback_is_refused(make_model):
    with pytest.raises(TypeError, match="neither a Callback nor a function"):
        Trainer(make_model(), callbacks=[42])


def test_request_stop_stops_after_the_current_epoch(toy_loaders, make_model):
    def stop_at_two(trainer, epoch, metrics):
        if epoch == 2:
            trainer.request_stop("enough")

    trainer = Trainer(make_model(), callbacks=[stop_at_two])
    history = trainer.fit(toy_loaders[0], 10)

    assert len(history) == 2
    assert trainer.epoch == 2
    assert trainer.should_stop and trainer.stop_reason == "enough"
    assert history.status == "enough"


def test_a_new_fit_clears_the_previous_stop(toy_loaders, make_model):
    trainer = Trainer(make_model(), callbacks=[lambda t, e, m: e == 1 and t.request_stop("first")])
    assert trainer.fit(toy_loaders[0], 3).status == "first"
    history = trainer.fit(toy_loaders[0], 3)  # continues from epoch 2
    assert history["epoch"] == [1, 2, 3]
    assert history.status == "completed"
