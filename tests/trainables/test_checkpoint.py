"""Checkpoints: files written, contents, exact resume, partial loads and damaged files."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from trainables import (
    Callback,
    CheckpointError,
    CheckpointMismatchError,
    EarlyStopping,
    FeatureSelectionModel,
    FeatureSelectionTrainer,
    ModelCheckpoint,
    Trainer,
)
from trainables.checkpoint import atomic_save, read_checkpoint


def _loaders(toy_xy, seed: int = 1) -> tuple[DataLoader, DataLoader]:
    x, y = toy_xy
    train = DataLoader(TensorDataset(x[:54], y[:54]), batch_size=16, shuffle=True,
                       generator=torch.Generator().manual_seed(seed))
    return train, DataLoader(TensorDataset(x[54:], y[54:]), batch_size=5)


def _trainer(model: nn.Module, callbacks=()) -> Trainer:
    return Trainer(model, "adam", lr=0.02, config={"lr": 0.02, "run": "resume-test"},
                   scheduler=lambda opt: torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.7),
                   callbacks=list(callbacks))


def test_model_checkpoint_writes_best_last_and_every_n(tmp_path, toy_loaders, make_model):
    train, val = toy_loaders
    ckpt = ModelCheckpoint(tmp_path, monitor="val_loss", every_n_epochs=2)
    history = Trainer(make_model(), lr=0.05, callbacks=[ckpt]).fit(train, 5, val)

    assert sorted(p.name for p in tmp_path.iterdir()) == ["best.pt", "epoch_0002.pt", "epoch_0004.pt", "last.pt"]
    best_epoch = min(range(5), key=lambda i: history["val_loss"][i]) + 1
    best = read_checkpoint(tmp_path / "best.pt")
    assert best["epoch"] == best_epoch
    assert best["best_score"] == pytest.approx(min(history["val_loss"]))
    assert read_checkpoint(tmp_path / "last.pt")["epoch"] == 5
    assert read_checkpoint(tmp_path / "epoch_0002.pt")["epoch"] == 2
    assert ckpt.best_path == tmp_path / "best.pt" and ckpt.last_path == tmp_path / "last.pt"


def test_model_checkpoint_best_follows_mode_max(tmp_path, toy_loaders, make_model):
    class Score(Callback):
        order = 1

        def on_epoch_end(self, trainer, epoch, metrics):
            metrics["score"] = [0.1, 0.9, 0.5][epoch - 1]

    Trainer(make_model(), callbacks=[Score(), ModelCheckpoint(tmp_path, "score", "max", save_last=False)]).fit(
        toy_loaders[0], 3)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best.pt"]
    assert read_checkpoint(tmp_path / "best.pt")["epoch"] == 2


def test_a_checkpoint_holds_everything_needed_to_resume(tmp_path, small_madelon):
    splits = small_madelon
    model = FeatureSelectionModel(splits.num_features, splits.num_classes, hidden_sizes=(8,))
    early = EarlyStopping("val_loss", patience=5)
    trainer = FeatureSelectionTrainer(
        model, lr=1e-3, feature_names=splits.feature_names, config={"lr": 1e-3, "note": "contents"},
        scheduler=lambda opt: torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5),
        callbacks=[early, ModelCheckpoint(tmp_path)])
    trainer.fit(splits.loader("train", 64), 2, splits.loader("val", 64))

    data = torch.load(tmp_path / "last.pt", weights_only=False)

    assert data["format"] == 1
    assert data["model_class"] == "FeatureSelectionModel"
    assert set(data["model"]) == set(model.state_dict())
    assert torch.equal(data["model"]["gates.mu"], model.gates.mu.detach())
    assert len(data["optimizers"]) == 2
    classifier_group, selector_group = (opt["param_groups"][0] for opt in data["optimizers"])
    assert classifier_group["initial_lr"] == 1e-3
    assert classifier_group["lr"] == pytest.approx(1e-3 * 0.5**2)  # the scheduler's state after 2 epochs
    assert selector_group["lr"] == pytest.approx(1e-2)
    assert data["optimizers"][1]["state"][0]["step"] == trainer.global_step
    assert data["schedulers"][0]["last_epoch"] == 2
    assert data["epoch"] == 2 and data["global_step"] == trainer.global_step == 2 * 3
    assert data["best_score"] == pytest.approx(early.best_score)
    assert data["config"] == {"lr": 1e-3, "note": "contents"}
    assert {"EarlyStopping", "GradientClipping", "History", "ModelCheckpoint"} <= set(data["callbacks"])
    assert data["callbacks"]["EarlyStopping"]["best_epoch"] == early.best_epoch
    assert [row["epoch"] for row in data["callbacks"]["History"]["epochs"]] == [1, 2]
    assert data["callbacks"]["GradientClipping"]["total_steps"] == 6
    assert {"python", "numpy", "torch"} <= set(data["rng"])
    assert data["loader_rng"] is not None


def test_resume_is_exact(tmp_path, toy_xy, make_model):
    """4 epochs straight == 2 epochs, a checkpoint, a new trainer and 2 more (shuffling + dropout)."""
    train, val = _loaders(toy_xy)
    straight = _trainer(make_model(dropout=0.3), [ModelCheckpoint(tmp_path / "a")])
    straight_history = straight.fit(train, 4, val)

    train, val = _loaders(toy_xy)
    first = _trainer(make_model(dropout=0.3), [ModelCheckpoint(tmp_path / "b")])
    first.fit(train, 2, val)

    # A fresh process would start from other RNG states: prove they come from the checkpoint.
    torch.manual_seed(12345)
    train, val = _loaders(toy_xy, seed=999)
    resumed = _trainer(make_model(seed=7, dropout=0.3), [ModelCheckpoint(tmp_path / "b")])
    resumed.load_checkpoint(tmp_path / "b" / "last.pt")
    assert resumed.epoch == 2
    resumed_history = resumed.fit(train, 4, val)

    assert resumed.epoch == 4 and resumed.global_step == straight.global_step == 16
    for name, tensor in straight.model.state_dict().items():
        assert torch.equal(tensor, resumed.model.state_dict()[name]), name
    assert len(resumed_history) == 4

    def values(history):
        return [{k: v for k, v in row.items() if k != "epoch_time_s"} for row in history]

    assert values(resumed_history) == values(straight_history)
    assert resumed.optimizer.param_groups[0]["lr"] == straight.optimizer.param_groups[0]["lr"]


def test_early_stopping_counters_survive_resume(tmp_path, toy_loaders, make_model):
    class Score(Callback):
        order = 1

        def on_epoch_end(self, trainer, epoch, metrics):
            metrics["score"] = [1.0, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.1][epoch - 1]

    def build(model):
        early = EarlyStopping("score", patience=3, min_delta=0.0, restore_best_weights=False)
        return early, Trainer(model, callbacks=[Score(), early, ModelCheckpoint(tmp_path, monitor=None)])

    early, trainer = build(make_model())
    trainer.fit(toy_loaders[0], 3)
    assert (early.best_epoch, early.wait) == (2, 1)

    early, trainer = build(make_model(seed=3))
    trainer.load_checkpoint(tmp_path / "last.pt")
    assert (early.best_epoch, early.best_score, early.wait) == (2, 0.5, 1)
    history = trainer.fit(toy_loaders[0], 8)
    # With the counter reset, epoch 4 would have been a new best and the stop would come at 7.
    assert history.status == "early_stopping"
    assert early.stopped_epoch == 5 and trainer.epoch == 5
    assert history["epoch"] == [1, 2, 3, 4, 5]


def test_load_without_optimizer_leaves_its_state_empty(tmp_path, toy_loaders, make_model):
    trainer = Trainer(make_model(), callbacks=[ModelCheckpoint(tmp_path, monitor=None)])
    trainer.fit(toy_loaders[0], 1)

    fresh = Trainer(make_model(seed=5))
    data = fresh.load_checkpoint(tmp_path / "last.pt", load_optimizer=False)
    assert len(fresh.optimizer.state) == 0
    assert data["epoch"] == fresh.epoch == 1
    for name, tensor in trainer.model.state_dict().items():
        assert torch.equal(tensor, fresh.model.state_dict()[name])

    full = Trainer(make_model(seed=5))
    full.load_checkpoint(tmp_path / "last.pt")
    assert len(full.optimizer.state) == 4
    assert all(int(s["step"]) == 4 for s in full.optimizer.state.values())


def test_load_without_callbacks_keeps_their_state(tmp_path, toy_loaders, make_model):
    Trainer(make_model(), callbacks=[ModelCheckpoint(tmp_path, monitor=None)]).fit(toy_loaders[0], 2)
    fresh = Trainer(make_model())
    fresh.load_checkpoint(tmp_path / "last.pt", load_callbacks=False)
    assert len(fresh.history) == 0
    fresh.load_checkpoint(tmp_path / "last.pt")
    assert fresh.history["epoch"] == [1, 2]


def test_a_checkpoint_of_another_model_names_the_mismatch(tmp_path, make_model):
    path = Trainer(make_model()).save_checkpoint(tmp_path / "ckpt.pt")

    wider = nn.Sequential(nn.Linear(6, 32), nn.ReLU(), nn.Linear(32, 3))
    with pytest.raises(CheckpointMismatchError) as info:
        Trainer(wider).load_checkpoint(path)
    message = str(info.value)
    assert str(path) in message
    assert "0.weight: checkpoint (16, 6) vs model (32, 6)" in message
    assert "2.weight: checkpoint (3, 16) vs model (3, 32)" in message

    deeper = nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 3), nn.ReLU(), nn.Linear(3, 3))
    with pytest.raises(CheckpointMismatchError, match=r"missing from checkpoint: 4.bias, 4.weight"):
        Trainer(deeper).load_checkpoint(path)

    with pytest.raises(CheckpointMismatchError, match=r"not in model: 0.bias, 0.weight, 2.bias, 2.weight"):
        Trainer(nn.Linear(6, 3)).load_checkpoint(path)


def test_a_truncated_checkpoint_names_its_path(tmp_path, make_model):
    path = Trainer(make_model()).save_checkpoint(tmp_path / "good.pt")
    broken = tmp_path / "truncated.pt"
    broken.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(CheckpointError, match=rf"checkpoint {broken} is damaged or not a checkpoint"):
        Trainer(make_model()).load_checkpoint(broken)


def test_a_garbage_file_names_its_path(tmp_path, make_model):
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"this is not a checkpoint\x00\x01")
    with pytest.raises(CheckpointError, match=rf"checkpoint {garbage} is damaged"):
        Trainer(make_model()).load_checkpoint(garbage)


def test_a_foreign_torch_file_and_a_missing_file_are_refused(tmp_path, make_model):
    foreign = tmp_path / "foreign.pt"
    torch.save({"state_dict": {}}, foreign)
    with pytest.raises(CheckpointError, match=rf"{foreign} is not a trainables checkpoint"):
        Trainer(make_model()).load_checkpoint(foreign)
    with pytest.raises(CheckpointError, match=r"checkpoint not found: .*nowhere\.pt"):
        Trainer(make_model()).load_checkpoint(tmp_path / "nowhere.pt")


def test_read_checkpoint_accepts_its_folder(tmp_path, make_model):
    Trainer(make_model()).save_checkpoint(tmp_path / "checkpoint.pt")
    assert read_checkpoint(tmp_path)["epoch"] == 0


def test_atomic_save_leaves_no_temporary_files(tmp_path):
    target = tmp_path / "deep" / "state.pt"
    atomic_save({"a": torch.arange(3)}, target)
    atomic_save({"a": torch.arange(4)}, target)  # overwrite
    assert [p.name for p in target.parent.iterdir()] == ["state.pt"]
    assert torch.equal(torch.load(target)["a"], torch.arange(4))

    with pytest.raises(Exception):  # noqa: B017 - whatever pickle raises for a lambda
        atomic_save({"a": lambda: None}, target)
    assert [p.name for p in target.parent.iterdir()] == ["state.pt"]  # the old file is intact
    assert torch.equal(torch.load(target)["a"], torch.arange(4))


# ------------------------------------------------- snapshots (seed 002's layout)
def test_snapshot_round_trip_with_two_optimizers(tmp_path, small_madelon):
    from trainables import FeatureSelectionModel, FeatureSelectionTrainer, load_snapshot, save_snapshot

    def make() -> FeatureSelectionTrainer:
        torch.manual_seed(0)
        model = FeatureSelectionModel(small_madelon.num_features, small_madelon.num_classes, hidden_sizes=(8,))
        return FeatureSelectionTrainer(model, device="cpu", config={"model": {"hidden_sizes": [8]}})

    trainer = make()
    trainer.fit(small_madelon.loader("train", 64), 2)
    path = save_snapshot(trainer, tmp_path / "snap.pt", best_loss=0.5)
    data = torch.load(path, weights_only=True)  # nothing but tensors and plain values
    assert data["MODEL"]["MODEL_CONFIG"] == {"hidden_sizes": [8]}
    assert data["TRAIN_INFO"]["EPOCHS_RUN"] == 2 and data["TRAIN_INFO"]["BEST_LOSS"] == 0.5
    assert len(data["TRAIN_INFO"]["OPTIMIZER_STATE"]) == 2 and data["TRAIN_INFO"]["SCHEDULER_STATE"] is None

    fresh = make()
    load_snapshot(fresh, path)
    assert fresh.epoch == 2
    for key, value in trainer.model.state_dict().items():
        torch.testing.assert_close(fresh.model.state_dict()[key], value)
    restored, saved = fresh.selector_optimizer.state_dict(), trainer.selector_optimizer.state_dict()
    torch.testing.assert_close(restored["state"], saved["state"])


def test_a_checkpoint_is_not_a_snapshot(tmp_path, make_model):
    from trainables import read_snapshot

    Trainer(make_model()).save_checkpoint(tmp_path / "c.pt")
    with pytest.raises(CheckpointError, match=r"c.pt is not a snapshot: missing MODEL"):  # weights-safe, not a snapshot
        read_snapshot(tmp_path / "c.pt")
    atomic_save({"MODEL": {}, "weights": torch.zeros(1)}, tmp_path / "d.pt")
    with pytest.raises(CheckpointError, match="d.pt is not a snapshot: missing TRAIN_INFO, GLOBAL_CONFIG"):
        read_snapshot(tmp_path / "d.pt")
    with pytest.raises(CheckpointError, match="snapshot not found"):
        read_snapshot(tmp_path / "none.pt")
