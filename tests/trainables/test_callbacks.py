"""Callbacks: early stopping, gradient clipping, history, thresholds, progress, hook order, state."""

from __future__ import annotations

import io
import json
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from trainables import (
    Callback,
    EarlyStopping,
    GradientClipping,
    History,
    ModelCheckpoint,
    ProgressPrinter,
    StopAtThreshold,
    Trainer,
    clip_grad_norm,
)
from trainables.callbacks import MissingMetricError


class StubTrainer:
    """Just what the epoch-end callbacks touch."""

    def __init__(self) -> None:
        self.model = nn.Linear(2, 1)
        self.should_stop = False
        self.stop_reason: str | None = None
        self.is_main_process = True
        self.max_epochs = None

    def request_stop(self, reason: str) -> None:
        self.should_stop = True
        self.stop_reason = self.stop_reason or reason


def feed(callback: Callback, values: list[float], key: str = "val_loss") -> tuple[StubTrainer, list[dict]]:
    """Run ``callback.on_epoch_end`` over ``values`` until it asks to stop; return the epoch metrics."""
    trainer = StubTrainer()
    rows = []
    for epoch, value in enumerate(values, start=1):
        metrics = {"epoch": epoch, key: value, "train_loss": 1.0}
        callback.on_epoch_end(trainer, epoch, metrics)
        rows.append(metrics)
        if trainer.should_stop:
            break
    return trainer, rows


class Scripted(Callback):
    """Puts ``values[epoch - 1]`` into the metrics as ``score`` (before early stopping reads it)."""

    order = 1

    def __init__(self, values: list[float]) -> None:
        self.values = values

    def on_epoch_end(self, trainer, epoch, metrics):
        metrics["score"] = self.values[epoch - 1]


# ----------------------------------------------------------- early stopping
def test_early_stopping_waits_patience_epochs_after_the_best():
    early = EarlyStopping("val_loss", patience=3, min_delta=0.0, restore_best_weights=False)
    trainer, rows = feed(early, [1.0, 0.9, 0.95, 0.96, 0.97, 0.5])

    assert len(rows) == 5  # stopped before seeing the sixth value
    assert trainer.stop_reason == "early_stopping"
    assert early.stopped_epoch == 5
    assert (early.best_epoch, early.best_score) == (2, 0.9)
    assert [r["epochs_since_improvement"] for r in rows] == [0, 0, 1, 2, 3]


def test_an_improvement_smaller_than_min_delta_does_not_reset_the_counter():
    early = EarlyStopping("val_loss", patience=3, min_delta=0.1, restore_best_weights=False)
    trainer, rows = feed(early, [1.0, 0.95, 0.93, 0.91, 0.5])
    assert trainer.should_stop and len(rows) == 4
    assert (early.best_epoch, early.best_score) == (1, 1.0)

    # Without min_delta every one of those small drops is an improvement.
    plain = EarlyStopping("val_loss", patience=3, min_delta=0.0, restore_best_weights=False)
    trainer, rows = feed(plain, [1.0, 0.95, 0.93, 0.91])
    assert not trainer.should_stop
    assert (plain.best_epoch, plain.best_score, plain.wait) == (4, 0.91, 0)


def test_an_improvement_larger_than_min_delta_resets_the_counter():
    early = EarlyStopping("val_loss", patience=2, min_delta=0.1, restore_best_weights=False)
    trainer, rows = feed(early, [1.0, 0.95, 0.85, 0.84])
    assert not trainer.should_stop
    assert [r["epochs_since_improvement"] for r in rows] == [0, 1, 0, 1]
    assert early.best_epoch == 3


def test_early_stopping_mode_max():
    early = EarlyStopping("val_accuracy", mode="max", patience=2, min_delta=0.0, restore_best_weights=False)
    trainer, rows = feed(early, [0.5, 0.7, 0.6, 0.65, 0.9], key="val_accuracy")
    assert len(rows) == 4 and trainer.should_stop
    assert (early.best_epoch, early.best_score) == (2, 0.7)


def test_nan_is_never_an_improvement():
    early = EarlyStopping("val_loss", patience=5, restore_best_weights=False)
    feed(early, [1.0, float("nan")])
    assert (early.best_epoch, early.wait) == (1, 1)


def test_get_best_metrics_is_the_best_epochs_row():
    early = EarlyStopping("val_loss", patience=5, min_delta=0.0, restore_best_weights=False)
    _, rows = feed(early, [1.0, 0.4, 0.6])
    best = early.get_best_metrics()
    assert best["epoch"] == 2 and best["val_loss"] == 0.4
    assert best["best_score"] == 0.4 and best["best_epoch"] == 2


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"patience": 0}, "patience must be >= 1, got 0"),
    ({"min_delta": -0.1}, "min_delta must be >= 0"),
    ({"mode": "maximum"}, "mode must be 'min' or 'max', got 'maximum'"),
])
def test_early_stopping_rejects_bad_settings(kwargs, message):
    with pytest.raises(ValueError, match=message):
        EarlyStopping(**kwargs)


def test_restore_best_weights_loads_the_best_epochs_weights(toy_loaders, make_model):
    snapshots = {}

    def snapshot(trainer, epoch, metrics):
        snapshots[epoch] = {k: v.clone() for k, v in trainer.model.state_dict().items()}

    early = EarlyStopping("score", mode="max", patience=10, restore_best_weights=True)
    trainer = Trainer(make_model(), lr=0.05, callbacks=[Scripted([1.0, 3.0, 2.0, 2.0, 2.0]), early, snapshot])
    trainer.fit(toy_loaders[0], 5)

    assert early.best_epoch == 2
    final = trainer.model.state_dict()
    assert all(torch.equal(final[k], snapshots[2][k]) for k in final)
    assert not all(torch.equal(final[k], snapshots[5][k]) for k in final)


def test_without_restore_the_last_weights_stay(toy_loaders, make_model):
    snapshots = {}
    early = EarlyStopping("score", mode="max", patience=10, restore_best_weights=False)
    trainer = Trainer(make_model(), lr=0.05, callbacks=[
        Scripted([1.0, 3.0, 2.0]), early,
        lambda t, e, m: snapshots.__setitem__(e, {k: v.clone() for k, v in t.model.state_dict().items()})])
    trainer.fit(toy_loaders[0], 3)
    assert all(torch.equal(v, snapshots[3][k]) for k, v in trainer.model.state_dict().items())


def test_a_misspelled_monitor_lists_the_metrics_and_suggests_one(toy_loaders, make_model):
    train, val = toy_loaders
    trainer = Trainer(make_model(), callbacks=[EarlyStopping("val_acuracy", mode="max")])
    with pytest.raises(MissingMetricError) as info:
        trainer.fit(train, 3, val)
    message = str(info.value)
    assert "EarlyStopping: monitored metric 'val_acuracy' is not produced" in message
    assert "Did you mean 'val_accuracy'?" in message
    assert "Available: epoch, epoch_time_s, lr, train_loss, val_accuracy, val_loss" in message
    assert trainer.epoch == 1


def test_a_val_metric_without_a_val_loader_says_so(toy_loaders, make_model):
    trainer = Trainer(make_model(), callbacks=[EarlyStopping("val_loss")])
    with pytest.raises(MissingMetricError, match=r"validation metrics need a val_loader passed to fit"):
        trainer.fit(toy_loaders[0], 2)


# ------------------------------------------------------------ clipping
def _grads(module: nn.Module) -> list[torch.Tensor]:
    return [p.grad for p in module.parameters() if p.grad is not None]


def _total_norm(grads: list[torch.Tensor]) -> float:
    return torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads])).item()


def test_clip_grad_norm_returns_the_pre_clip_norm_and_clips():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 7), nn.Linear(7, 2))
    (model(torch.randn(4, 5)).pow(2).sum() * 100).backward()
    before = _total_norm(_grads(model))
    assert before > 1.0

    returned = clip_grad_norm(model.parameters(), max_norm=1.0)

    assert isinstance(returned, float)
    assert returned == pytest.approx(before, rel=1e-6)
    assert _total_norm(_grads(model)) == pytest.approx(1.0, rel=1e-4)


def test_clip_grad_norm_leaves_small_gradients_alone():
    p = nn.Parameter(torch.zeros(3))
    p.grad = torch.tensor([0.3, 0.0, 0.4])
    assert clip_grad_norm([p], max_norm=1.0) == pytest.approx(0.5)
    torch.testing.assert_close(p.grad, torch.tensor([0.3, 0.0, 0.4]))


def test_clip_grad_norm_rejects_a_non_positive_max_norm():
    with pytest.raises(ValueError, match="max_norm must be > 0, got 0"):
        clip_grad_norm([nn.Parameter(torch.zeros(1))], 0)
    with pytest.raises(ValueError, match="max_norm must be > 0"):
        GradientClipping(max_norm=-1)


def _huge_loss(outputs, targets):
    return 1e4 * F.cross_entropy(outputs, targets)


def test_clipping_happens_after_backward_and_before_the_step(toy_xy, make_model):
    x, y = toy_xy[0][:16], toy_xy[1][:16]
    seen = {}

    class AfterClip(Callback):
        order = 20  # after GradientClipping (10): sees the clipped gradients, before the step

        def on_after_backward(self, trainer):
            seen["norm"] = _total_norm([p.grad for p in trainer.parameters()])
            seen["params"] = [p.detach().clone() for p in trainer.parameters()]

    model = make_model()
    before = [p.detach().clone() for p in model.parameters()]
    clip = GradientClipping(max_norm=0.5)
    trainer = Trainer(model, torch.optim.SGD(model.parameters(), lr=0.1), loss_fn=_huge_loss,
                      callbacks=[AfterClip(), clip], device="cpu")
    trainer.train_step((x, y))

    assert seen["norm"] <= 0.5 * (1 + 1e-5)
    assert all(torch.equal(b, s) for b, s in zip(before, seen["params"]))  # not stepped yet
    step = torch.linalg.vector_norm(torch.cat([(p.detach() - b).flatten() for p, b in zip(model.parameters(), before)]))
    assert step.item() <= 0.1 * 0.5 * (1 + 1e-5)  # lr * max_norm, against a raw gradient norm in the thousands
    assert clip.last_norm > 100


def test_gradient_clipping_records_norms_and_clip_fraction(toy_xy, make_model):
    x, y = toy_xy[0][:16], toy_xy[1][:16]
    model = make_model()
    model.zero_grad()
    _huge_loss(model(x), y).backward()
    expected = _total_norm(_grads(model))
    model.zero_grad()

    clip = GradientClipping(max_norm=1.0)
    trainer = Trainer(model, "sgd", loss_fn=_huge_loss, lr=1e-6, callbacks=[clip])
    trainer.train_step((x, y))

    assert clip.last_norm == pytest.approx(expected, rel=1e-5)
    assert clip.statistics()["total_steps"] == 1
    assert clip.clip_fraction == 1.0
    assert clip.max_seen_norm == pytest.approx(expected, rel=1e-5)


def test_gradient_clipping_adds_epoch_metrics(toy_loaders, make_model):
    train, _ = toy_loaders  # 4 steps per epoch
    clip = GradientClipping(max_norm=1e9)
    history = Trainer(make_model(), callbacks=[clip]).fit(train, 2)
    assert history["clip_fraction"] == [0.0, 0.0]
    assert all(0 < mean <= top for mean, top in zip(history["grad_norm_mean"], history["grad_norm_max"]))
    assert clip.total_steps == 8 and clip.clipped_steps == 0

    clip = GradientClipping(max_norm=1e-6)
    history = Trainer(make_model(), callbacks=[clip]).fit(train, 2)
    assert history["clip_fraction"] == [1.0, 1.0]
    assert clip.clip_fraction == 1.0


# ------------------------------------------------------------- history
def test_history_lists_metrics_by_epoch():
    history = History()
    trainer = StubTrainer()
    history.on_fit_start(trainer)
    history.on_epoch_end(trainer, 1, {"epoch": 1, "loss": 0.5})
    history.on_epoch_end(trainer, 2, {"epoch": 2, "loss": 0.25, "extra": 1})
    history.on_fit_end(trainer)

    assert history["loss"] == [0.5, 0.25]
    assert history["extra"] == [None, 1]
    assert history.keys() == ["epoch", "loss", "extra"]
    assert len(history) == 2 and list(history)[1]["epoch"] == 2
    assert history.status == "completed"
    with pytest.raises(KeyError, match="no metric 'los' in history; recorded: epoch, loss, extra"):
        history["los"]


def test_history_json_round_trip_keeps_nan_and_inf(tmp_path):
    history = History()
    history.status = "diverged"
    history.epochs = [{"epoch": 1, "train_loss": 0.75, "stop_reason": ""},
                      {"epoch": 2, "train_loss": float("nan"), "val_loss": float("inf"), "stop_reason": "diverged"}]

    path = history.save(tmp_path / "sub" / "history.json")

    def no_constants(name):
        raise AssertionError(f"{name} is not JSON")

    raw = json.loads(path.read_text(), parse_constant=no_constants)  # strict JSON: no bare NaN
    assert raw["status"] == "diverged"
    assert [p.name for p in path.parent.iterdir()] == ["history.json"]
    loaded = History.load(path)
    assert loaded.status == "diverged"
    assert loaded["epoch"] == [1, 2]
    assert loaded["train_loss"][0] == 0.75 and math.isnan(loaded["train_loss"][1])
    assert loaded["val_loss"] == [None, math.inf]
    assert loaded["stop_reason"] == ["", "diverged"]


def test_fit_history_saves_and_loads(tmp_path, toy_loaders, make_model):
    history = Trainer(make_model()).fit(toy_loaders[0], 2, toy_loaders[1])
    loaded = History.load(history.save(tmp_path / "h.json"))
    assert loaded.epochs == history.epochs
    assert loaded.status == "completed"


# ------------------------------------------------------- threshold, progress
def test_stop_at_threshold_stops_when_reached(toy_loaders, make_model):
    stop = StopAtThreshold("epoch", 2, mode="max")
    history = Trainer(make_model(), callbacks=[stop]).fit(toy_loaders[0], 10)
    assert len(history) == 2
    assert history.status == "threshold"
    assert stop.reached_epoch == 2


def test_stop_at_threshold_mode_min():
    stop = StopAtThreshold("val_loss", 0.3, mode="min")
    trainer, rows = feed(stop, [0.5, 0.31, 0.3, 0.1])
    assert len(rows) == 3 and trainer.stop_reason == "threshold" and stop.reached_epoch == 3


def test_progress_printer_writes_one_line_per_epoch(toy_loaders, make_model):
    stream = io.StringIO()
    Trainer(make_model(), callbacks=[ProgressPrinter(stream=stream)]).fit(toy_loaders[0], 3, toy_loaders[1])
    lines = stream.getvalue().splitlines()
    assert len(lines) == 3
    for epoch, line in enumerate(lines, start=1):
        assert line.startswith(f"epoch {epoch}/3 [")
        assert "train_loss=" in line and "val_loss=" in line and "val_accuracy=" in line


def test_progress_printer_every_n_epochs(toy_loaders, make_model):
    stream = io.StringIO()
    Trainer(make_model(), callbacks=[ProgressPrinter(keys=("train_loss",), stream=stream, every=2)]).fit(
        toy_loaders[0], 4)
    lines = stream.getvalue().splitlines()
    assert [line.split()[1] for line in lines] == ["2/4", "4/4"]
    assert all("val_loss" not in line for line in lines)


# ----------------------------------------------------------- hooks
def test_hooks_are_called_in_order(toy_loaders, make_model):
    calls = []

    class Recorder(Callback):
        def on_fit_start(self, trainer):
            calls.append("fit_start")

        def on_epoch_start(self, trainer, epoch):
            calls.append(f"epoch_start {epoch}")

        def on_after_backward(self, trainer):
            calls.append("after_backward")

        def on_train_batch_end(self, trainer, batch_idx, metrics):
            calls.append(f"batch_end {batch_idx} n={metrics['n']}")

        def on_epoch_end(self, trainer, epoch, metrics):
            calls.append(f"epoch_end {epoch}")

        def on_fit_end(self, trainer):
            calls.append("fit_end")

    Trainer(make_model(), callbacks=[Recorder()]).fit(toy_loaders[0], 1)
    assert calls == ["fit_start", "epoch_start 1",
                     "after_backward", "batch_end 0 n=16", "after_backward", "batch_end 1 n=16",
                     "after_backward", "batch_end 2 n=16", "after_backward", "batch_end 3 n=6",
                     "epoch_end 1", "fit_end"]


def test_on_exception_sees_the_error_and_it_propagates(toy_loaders, make_model):
    seen = []

    class Watcher(Callback):
        def on_exception(self, trainer, exc):
            seen.append(exc)

    def boom(trainer, epoch, metrics):
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        Trainer(make_model(), callbacks=[Watcher(), boom]).fit(toy_loaders[0], 2)
    assert len(seen) == 1 and str(seen[0]) == "boom"


def test_callbacks_run_in_ascending_order(make_model):
    trainer = Trainer(make_model(), callbacks=[ProgressPrinter(), ModelCheckpoint("unused"), EarlyStopping(),
                                               GradientClipping()])
    names = [type(c).__name__ for c in trainer.callbacks]
    assert names == ["GradientClipping", "EarlyStopping", "History", "ModelCheckpoint", "ProgressPrinter"]


# ------------------------------------------------------------ state round trips
def _trained_early_stopping() -> EarlyStopping:
    early = EarlyStopping("val_loss", patience=4, min_delta=0.0, restore_best_weights=True)
    feed(early, [1.0, 0.5, 0.7])
    return early


def test_early_stopping_state_round_trip_continues_the_count():
    state = _trained_early_stopping().state_dict()
    restored = EarlyStopping("val_loss", patience=4, min_delta=0.0)
    restored.load_state_dict(state)

    assert (restored.best_score, restored.best_epoch, restored.wait) == (0.5, 2, 1)
    assert restored.best_metrics["epoch"] == 2
    assert state["best_weights"].keys() == restored._best_weights.keys()
    assert restored.state_dict()["wait"] == 1
    trainer = StubTrainer()
    for epoch in (4, 5, 6):  # three more non-improvements after the restored one: patience 4 reached
        restored.on_epoch_end(trainer, epoch, {"val_loss": 0.9})
    assert trainer.should_stop and restored.stopped_epoch == 6


def test_gradient_clipping_state_round_trip(toy_xy, make_model):
    clip = GradientClipping(max_norm=1.0)
    Trainer(make_model(), loss_fn=_huge_loss, callbacks=[clip]).train_step(toy_xy)
    restored = GradientClipping(max_norm=1.0)
    restored.load_state_dict(clip.state_dict())
    assert restored.statistics() == clip.statistics()
    assert restored.total_steps == 1 and restored.clip_fraction == 1.0


def test_history_state_round_trip():
    history = History()
    history.status = "running"
    history.epochs = [{"epoch": 1, "loss": 0.5}]
    restored = History()
    restored.load_state_dict(history.state_dict())
    assert restored.epochs == history.epochs and restored.status == "running"
    restored.epochs[0]["loss"] = 9.0  # a copy, not shared rows
    assert history.epochs[0]["loss"] == 0.5


def test_model_checkpoint_and_threshold_state_round_trip(tmp_path):
    ckpt = ModelCheckpoint(tmp_path, monitor="val_loss")
    ckpt.best_score, ckpt.best_path = 0.25, tmp_path / "best.pt"
    restored = ModelCheckpoint(tmp_path, monitor="val_loss")
    restored.load_state_dict(ckpt.state_dict())
    assert restored.best_score == 0.25 and restored.best_path == tmp_path / "best.pt"

    stop = StopAtThreshold("val_accuracy", 0.9)
    feed(stop, [0.5, 0.95], key="val_accuracy")
    restored_stop = StopAtThreshold("val_accuracy", 0.9)
    restored_stop.load_state_dict(stop.state_dict())
    assert restored_stop.reached_epoch == 2
