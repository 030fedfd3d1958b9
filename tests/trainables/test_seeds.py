"""The seed documents' examples (examples/seeds/) run as written and do what their documents promise.

Each script runs in-process (``runpy``) in a scratch folder; the test then reads the
objects the script left behind (its globals) and the files it wrote.
"""

from __future__ import annotations

import runpy
import warnings
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import torch
from torch import nn

from trainables import (
    ConfigKeyError,
    EarlyStopping,
    GradientClipCallback,
    GradientClipping,
    NothingToTrainWarning,
    OptionsTrainer,
    Trainer,
    read_snapshot,
)
from trainables.checkpoint import read_checkpoint

SEEDS = Path(__file__).resolve().parents[2] / "examples" / "seeds"


@pytest.fixture()
def run_example(tmp_path, monkeypatch):
    """``run_example(name)``: run examples/seeds/<name>.py in a scratch folder; returns its globals."""
    monkeypatch.chdir(tmp_path)

    def run(name: str) -> dict[str, Any]:
        return runpy.run_path(str(SEEDS / f"{name}.py"), run_name="__main__")

    return run


def _grad_norm(model: torch.nn.Module) -> float:
    return torch.stack([p.grad.norm() for p in model.parameters() if p.grad is not None]).norm().item()


def _same_weights(model: torch.nn.Module, state: dict[str, torch.Tensor]) -> bool:
    return all(torch.equal(v.cpu(), state[k]) for k, v in model.state_dict().items())


def test_every_example_has_a_test():
    names = {p.stem for p in SEEDS.glob("seed_*.py")}
    tested = {n.removeprefix("test_") for n in globals() if n.startswith("test_seed_")}
    assert {n.split("_", 2)[1] for n in names} == {"000", "001", "002", "003", "004"}
    assert names == tested


# ------------------------------------------------------------------ seed 003
def test_seed_003_early_stopping(run_example, capsys):
    g = run_example("seed_003_early_stopping")
    early: EarlyStopping = g["early_stopping"]
    best = g["best_metrics"]

    # It stopped `patience` epochs after the best one, and the loop broke there.
    assert early.stopped_epoch == best["best_epoch"] + 10 == g["epoch"] < 99
    assert best["best_loss"] == early.best_score
    # The best epoch's weights are back in the model: its validation loss is the best one.
    model, criterion = g["model"], g["criterion"]
    assert _same_weights(model, early.state_dict()["best_weights"])
    with torch.no_grad():
        val_loss = sum(criterion(model(x), y).item() for x, y in g["val_loader"])
    assert val_loss == pytest.approx(best["best_loss"], rel=1e-5)
    out = capsys.readouterr().out
    assert f"Early stopping triggered at epoch {g['epoch']}" in out
    assert "EarlyStopping: restored the weights of epoch" in out  # verbose defaults to on in a loop


def test_seed_003_minimal_changes(run_example):
    g = run_example("seed_003_minimal_changes")
    early = g["early_stopping"]
    assert early.stopped_epoch == g["epoch"] == early.best_epoch + 10
    assert g["validate"](g["model"]) == pytest.approx(early.best_score, rel=1e-6)


def test_seed_003_gradient_clip(run_example):
    g = run_example("seed_003_gradient_clip")
    clip = g["grad_clip"]
    stats = clip.statistics()
    assert stats["total_steps"] == stats["clipped_steps"] == 5
    assert stats["max_norm_seen"] > 50  # the gradients were large ...
    assert max(g["norms"]) == pytest.approx(5.0, rel=1e-4)  # ... and the optimizer saw them clipped to 5


def test_seed_003_clip_grad_norm(run_example):
    g = run_example("seed_003_clip_grad_norm")
    assert g["total_norm"] > 50
    assert _grad_norm(g["model"]) == pytest.approx(5.0, rel=1e-4)


# ------------------------------------------------------------------ seed 004
def test_seed_004_basic_usage(run_example, tmp_path):
    g = run_example("seed_004_basic_usage")
    history = g["history"]
    assert type(history) is dict
    assert set(history) == {"epoch", "train_loss", "lr", "epoch_time_s"}
    assert all(len(v) == 5 for v in history.values())
    assert history["epoch"] == [0, 1, 2, 3, 4]
    files = sorted(p.name for p in (tmp_path / "checkpoints").iterdir())
    assert files == ["best_model.pt"] + [f"checkpoint_epoch_{n}.pt" for n in range(1, 6)]
    # Without an eval loader the best model follows the training loss.
    best = read_checkpoint(tmp_path / "checkpoints" / "best_model.pt")
    assert best["best_score"] == pytest.approx(min(history["train_loss"]))
    assert g["trainer"].epoch == 5


def test_seed_004_classification_metrics(run_example):
    g = run_example("seed_004_classification_metrics")
    history, trainer = g["history"], g["trainer"]
    assert {"train_loss", "eval_loss", "eval_accuracy"} <= set(history)
    assert all(len(v) == 8 for v in history.values())
    # The subclass's evaluate (a mean of batch means) produced the eval_ metrics.
    final = trainer.evaluate(g["eval_dataloader"])
    assert history["eval_accuracy"][-1] == pytest.approx(final["accuracy"])
    assert history["eval_loss"][-1] == pytest.approx(final["loss"])
    assert history["eval_accuracy"][-1] > 0.6


def test_seed_004_callbacks(run_example, capsys):
    g = run_example("seed_004_callbacks")
    logged = g["logged"]
    assert [e for tag, _, e in logged if tag == "Loss/train"] == list(range(10))
    assert [e for tag, _, e in logged if tag == "Loss/eval"] == list(range(10))  # the eval branch runs
    out = capsys.readouterr().out
    assert "Epoch 1 metrics: {'epoch': 0, 'train_loss'" in out and "Epoch 10 metrics" in out and "Epoch 11" not in out
    # Registered for the call only: the trainer holds no function callback afterwards.
    assert not [c for c in g["trainer"].callbacks if type(c).__name__ == "TrainFunctionCallback"]


def test_seed_004_config(run_example):
    g = run_example("seed_004_config")
    history, loader = g["history"], g["dataloader"]
    assert max(history["grad_norm_max"]) > 100  # unclipped norms are in the hundreds
    assert max(g["clipped"].norms) == pytest.approx(1.0, rel=1e-4)  # training.max_grad_norm: 1.0
    assert g["scheduler"].last_epoch == 2 * len(loader)  # training.scheduler_step_per_batch: True
    assert g["optimizer"].param_groups[0]["weight_decay"] == 0.01  # training.weight_decay
    assert g["trainer"].config["model"] == {"in_features": 10}


def test_seed_004_model_loss(run_example, tmp_path):
    g = run_example("seed_004_model_loss")
    history = g["history"]
    assert len(history["train_loss"]) == len(history["eval_loss"]) == 3
    assert history["eval_loss"][-1] < history["eval_loss"][0]
    assert (tmp_path / "checkpoints" / "best_model.pt").exists()


def test_seed_004_resume(run_example):
    g = run_example("seed_004_resume")
    assert g["first_history"]["epoch"] == [0, 1, 2]
    assert g["data"]["epoch"] == 3
    assert g["second_history"]["epoch"] == [3, 4]
    assert g["second"].epoch == 5
    saved = g["LoggingTrainer"].saved
    assert [(name, epoch) for name, epoch, _ in saved if name.startswith("checkpoint")] == [
        ("checkpoint_epoch_1.pt", 0), ("checkpoint_epoch_2.pt", 1), ("checkpoint_epoch_3.pt", 2)]
    assert saved[-1][2] == pytest.approx(min(g["first_history"]["eval_loss"]))
    # early_stopping_patience's EarlyStopping lived for the first call only.
    assert not any(isinstance(c, EarlyStopping) for c in g["first"].callbacks)


# ------------------------------------------------------------------ seed 000
def test_seed_000_feature_selection(run_example, tmp_path):
    g = run_example("seed_000_feature_selection")
    trainer, history = g["trainer"], g["history"]
    assert trainer.classifier_optimizer.param_groups[0]["lr"] == 0.001
    assert trainer.selector_optimizer.param_groups[0]["lr"] == pytest.approx(0.01)
    assert trainer.selected_features() == ["f0", "f1"]
    assert len(history) == trainer.epoch and {"grad_norm_max", "clip_fraction", "num_selected"} <= set(history.keys())
    best = read_checkpoint(tmp_path / "fs_checkpoints" / "best.pt")
    assert best["epoch"] == trainer.early_stopping.best_epoch
    assert best["best_score"] == pytest.approx(min(history["val_task_loss"]))


# ------------------------------------------------------------------ seed 001
def test_seed_001_options_trainer(run_example, tmp_path):
    g = run_example("seed_001_options_trainer")
    trainer, history = g["trainer"], g["history"]
    assert history.status == "threshold" and history["val_accuracy"][-1] >= 0.9
    group = trainer.optimizer.param_groups[0]
    assert isinstance(trainer.optimizer, torch.optim.SGD)
    assert (group["lr"], group["momentum"], group["weight_decay"]) == (0.2, 0.5, 1e-5)
    files = {p.name for p in (tmp_path / "lernomatic_checkpoints").iterdir()}
    assert files == {"ck_best.pt", "ck_history.json"} | {f"ck_epoch_{n}.pt" for n in range(1, trainer.epoch + 1)}


# ------------------------------------------------------------------ seed 002
def test_seed_002_snapshot(run_example, tmp_path):
    g = run_example("seed_002_snapshot")
    folder = tmp_path / "snapshots"
    assert {p.name for p in folder.iterdir()} == {"best.pt", "last.pt", "epoch_0002.pt", "epoch_0004.pt"}
    snapshot = read_snapshot(folder / "last.pt")
    assert snapshot["MODEL"]["MODEL_CONFIG"] == {"in_features": 5, "out_features": 1}
    assert snapshot["GLOBAL_CONFIG"]["training"] == {"max_grad_norm": 10.0}
    assert snapshot["TRAIN_INFO"]["EPOCHS_RUN"] == 4
    assert snapshot["TRAIN_INFO"]["SCHEDULER_STATE"]["last_epoch"] == 4
    best = g["snapshot"]["TRAIN_INFO"]
    assert best["BEST_LOSS"] == pytest.approx(min(g["trainer"].history["train_loss"]))
    assert g["history"]["epoch"] == [5, 6]


# ============================================ the faces, one behaviour at a time
# ------------------------------------------------- seed 003: hand-written loops
def test_early_stopping_in_a_hand_written_loop_returns_true_and_restores_the_best_weights(capsys):
    model = nn.Linear(2, 1)
    early = EarlyStopping(patience=2, verbose=False).set_model(model)
    weights = []
    stops = []
    for epoch, loss in enumerate([3.0, 1.0, 2.0, 2.5, 0.5]):
        with torch.no_grad():
            model.weight.fill_(float(epoch))
        weights.append(model.weight.detach().clone())
        stops.append(early.on_epoch_end(epoch, loss))
        if stops[-1]:
            break
    assert stops == [False, False, False, True]
    assert early.get_best_metrics()["best_loss"] == 1.0 and early.get_best_metrics()["best_epoch"] == 1
    assert torch.equal(model.weight, weights[1])
    assert capsys.readouterr().out == ""  # verbose=False


def test_early_stopping_in_a_loop_needs_set_model():
    with pytest.raises(RuntimeError, match=r"call set_model\(model\) before on_epoch_end"):
        EarlyStopping().on_epoch_end(0, 1.0)


def test_early_stopping_in_a_trainer_is_quiet_by_default(toy_loaders, make_model, capsys):
    train, val = toy_loaders
    Trainer(make_model(), callbacks=[EarlyStopping(patience=1)]).fit(train, 3, val)
    assert "EarlyStopping" not in capsys.readouterr().out


def test_best_loss_is_there_for_a_loss_only():
    early = EarlyStopping("val_accuracy", "max", verbose=False).set_model(nn.Linear(1, 1))
    early.on_epoch_end(0, 0.7)
    assert "best_loss" not in early.get_best_metrics()
    assert early.get_best_metrics()["best_score"] == 0.7


def test_gradient_clip_callback_is_gradient_clipping_and_clips_a_set_model():
    assert GradientClipCallback is GradientClipping
    model = nn.Linear(3, 1)
    clip = GradientClipCallback(max_norm=0.5, verbose=False).set_model(model)
    (model(torch.ones(4, 3)).sum() * 100).backward()
    norm = clip.on_after_backward()
    assert norm > 0.5 and _grad_norm(model) == pytest.approx(0.5, rel=1e-5)
    with pytest.raises(RuntimeError, match="call set_model"):
        GradientClipCallback().on_after_backward()


# ------------------------------------------------------ seed 004: the Trainer
def test_positional_constructor_takes_config_device_and_scheduler(make_model):
    model = make_model()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    sched = torch.optim.lr_scheduler.StepLR(opt, 1)
    trainer = Trainer(model, opt, nn.CrossEntropyLoss(), {"run": "a"}, torch.device("cpu"), sched)
    assert (trainer.config, trainer.device.type, trainer.schedulers) == ({"run": "a"}, "cpu", [sched])


@pytest.mark.parametrize(("training", "message"), [
    ({"max_grad_nrom": 1.0}, r"config.training.max_grad_nrom: unknown key \(did you mean 'max_grad_norm'\?\)"),
    ({"max_grad_norm": "1"}, "max_grad_norm must be a number > 0"),
    ({"scheduler_step_per_batch": "yes"}, "scheduler_step_per_batch must be True or False"),
    ({"weight_decay": -1}, "weight_decay must be a number >= 0"),
])
def test_an_unknown_or_wrong_config_key_is_an_error_that_names_it(training, message, make_model):
    with pytest.raises(ConfigKeyError, match=message):
        Trainer(make_model(), config=SimpleNamespace(training=SimpleNamespace(**training)))


def test_config_and_arguments_that_disagree_are_refused(make_model):
    with pytest.raises(ValueError, match="disagrees with config.training.weight_decay"):
        Trainer(make_model(), weight_decay=0.1, config={"training": {"weight_decay": 0.2}})
    with pytest.raises(ValueError, match="disagrees with config.training.scheduler_step_per_batch"):
        Trainer(make_model(), scheduler_interval="epoch", config={"training": {"scheduler_step_per_batch": True}})
    with pytest.raises(ValueError, match="both clip"):
        Trainer(make_model(), callbacks=[GradientClipping()], config={"training": {"max_grad_norm": 1.0}})


def test_train_runs_num_epochs_more_each_call(toy_loaders, make_model):
    train, val = toy_loaders
    trainer = Trainer(make_model())
    first = trainer.train(train, 2, val)
    second = trainer.train(train, 3, val)
    assert (first["epoch"], second["epoch"], trainer.epoch) == ([0, 1], [2, 3, 4], 5)
    assert all(len(v) == 3 for v in second.values()) and "eval_loss" in second and "val_loss" not in second
    with pytest.raises(ValueError, match="num_epochs must be >= 1"):
        trainer.train(train, 0)


def test_fit_to_a_total_already_reached_says_so(toy_loaders, make_model):
    train, _ = toy_loaders
    trainer = Trainer(make_model())
    trainer.fit(train, 2)
    with pytest.warns(NothingToTrainWarning, match="epochs=2 is a total and this trainer has already completed "
                                                   "epoch 2"):
        history = trainer.fit(train, 2)
    assert len(history) == 2


def test_a_callback_passed_twice_runs_once(toy_loaders, make_model):
    train, _ = toy_loaders
    calls = []

    def record(trainer, epoch, metrics):
        calls.append(epoch)

    trainer = Trainer(make_model(), callbacks=[record])
    trainer.fit(train, 1, callbacks=[record])
    trainer.fit(train, 2, callbacks=[record])
    assert calls == [1, 2]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        trainer.train(train, 1, callbacks=[record])  # train's own convention: a separate, temporary callback
    assert calls == [1, 2, 3, 2]


def test_train_epoch_takes_an_eval_loader_or_the_older_epoch_number(toy_loaders, make_model):
    train, val = toy_loaders
    trainer = Trainer(make_model())
    assert set(trainer.train_epoch(train, val)) == {"train_loss", "eval_loss", "eval_accuracy"}
    assert set(trainer.train_epoch(train, 3)) == {"train_loss"}
    with pytest.raises(TypeError, match="epoch given twice"):
        trainer.train_epoch(train, 3, epoch=3)


def test_steps_without_a_batch_size_are_averaged_per_batch(toy_loaders, make_model):
    train, val = toy_loaders

    class NoSize(Trainer):
        def eval_step(self, batch):
            return {"loss": float(len(batch[1]))}

    # Batches of 5, 5, 5 and 1: the mean of the batch values is 4 (weighting by size would give 4.75).
    assert NoSize(make_model()).evaluate(val)["loss"] == pytest.approx(4.0)


def test_forward_pass_and_save_checkpoint_overrides_are_used(tmp_path, toy_loaders, make_model):
    train, val = toy_loaders
    seen = {"forward": 0, "saved": []}

    class Hooks(Trainer):
        def _forward_pass(self, inputs):
            seen["forward"] += 1
            return super()._forward_pass(inputs)

        def _save_checkpoint(self, path, epoch, metric_value=None):
            seen["saved"].append((Path(path).name, epoch))
            super()._save_checkpoint(path, epoch, metric_value)

    Hooks(make_model()).train(train, 2, val, save_dir=tmp_path, save_freq=2, best_model_metric="eval_accuracy")
    assert seen["forward"] == 2 * (4 + 4)  # 4 train and 4 eval batches per epoch
    assert ("checkpoint_epoch_2.pt", 1) in seen["saved"]
    assert read_checkpoint(tmp_path / "best_model.pt")["best_score"] <= 1.0  # accuracy: higher is better


def test_class_names_of_losses_and_optimizers_work_everywhere(make_model):
    trainer = Trainer(make_model(), "Adagrad", "CrossEntropyLoss", lr=0.1)
    assert isinstance(trainer.optimizer, torch.optim.Adagrad) and isinstance(trainer.loss_fn, nn.CrossEntropyLoss)
    with pytest.raises(ValueError, match="unknown loss 'CrossEntropy'; did you mean"):
        Trainer(make_model(), loss_fn="CrossEntropy")


# ------------------------------------------------------ seed 001: the options
def test_options_trainer_defaults_are_the_documents(make_model, tmp_path):
    trainer = OptionsTrainer(make_model(), optim_function="SGD", checkpoint_dir=tmp_path)
    group = trainer.optimizer.param_groups[0]
    assert (group["lr"], group["momentum"], group["weight_decay"]) == (1e-4, 0.5, 1e-5)
    assert (trainer.num_epochs, trainer.batch_size, trainer.cur_epoch, trainer.device.type) == (10, 64, 0, "cpu")
    assert isinstance(trainer.loss_fn, nn.CrossEntropyLoss) and trainer.save_best is False  # no data: nothing saved


@pytest.mark.parametrize(("options", "error", "message"), [
    ({"num_epoch": 3}, TypeError, r"unknown option\(s\) 'num_epoch' \(did you mean 'num_epochs'\?\)"),
    ({"early_stop": {"patiense": 3}}, TypeError, "unknown early_stop key.*'patiense'"),
    ({"device_map": {"a": 0}}, ValueError, "device_map is not supported"),
    ({"loss_function": "CrossEntropy"}, ValueError, "unknown loss"),
])
def test_options_trainer_refuses_what_it_cannot_honour(options, error, message, make_model):
    with pytest.raises(error, match=message):
        OptionsTrainer(make_model(), **options)


def test_options_trainer_saves_every_n_steps_and_resumes_to_its_total(tmp_path, toy_xy, make_model):
    x, y = toy_xy
    dataset = torch.utils.data.TensorDataset(x, y)
    trainer = OptionsTrainer(make_model(), num_epochs=2, train_dataset=dataset, batch_size=16, num_workers=0,
                             checkpoint_dir=tmp_path, save_every=3, verbose=False, learning_rate=1e-2)
    trainer.train()
    names = {p.name for p in tmp_path.iterdir()}
    assert {"ck_iter_3.pt", "ck_iter_6.pt", "ck_best.pt", "ck_history.json"} <= names  # 4 steps an epoch
    resumed = OptionsTrainer(make_model(), num_epochs=3, train_dataset=dataset, batch_size=16, num_workers=0,
                             checkpoint_dir=tmp_path / "b", verbose=False)
    loaded = resumed.load_checkpoint(tmp_path / "ck_best.pt")["epoch"]
    assert loaded in (1, 2)
    # num_epochs is a total: the loaded history's epochs, then the new ones up to 3.
    assert resumed.train()["epoch"] == [1, 2, 3]
    assert resumed.cur_epoch == 3
