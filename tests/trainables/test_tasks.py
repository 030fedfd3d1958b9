"""tasks.train_feature_selection and the training-function contract in trainables.api."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from trainables.api import CONTEXT_KEYWORDS, call_training_function, null_report
from trainables.data import DataSplits, Preprocessing
from trainables.tasks import (
    CHECKPOINT_FILE,
    PREPROCESSING_FILE,
    SELECTION_FILE,
    ConfigError,
    FeatureSelectionConfig,
    train_feature_selection,
)

FAST = {"epochs": 3, "batch_size": 64, "hidden_sizes": [8], "lr": 1e-2, "patience": 5}


class Recorder:
    """A ReportFn that keeps each epoch's metrics and a copy of each checkpoint folder."""

    def __init__(self, keep: Path) -> None:
        self.keep = keep
        self.metrics: list[dict] = []
        self.folders: list[Path | None] = []  # the folders as handed over (deleted afterwards)
        self.copies: dict[int, Path] = {}

    def __call__(self, metrics, checkpoint_dir=None):
        self.metrics.append(dict(metrics))
        self.folders.append(Path(checkpoint_dir) if checkpoint_dir is not None else None)
        if checkpoint_dir is not None:
            copy = self.keep / f"epoch{metrics['epoch']}"
            shutil.copytree(checkpoint_dir, copy)
            self.copies[metrics["epoch"]] = copy


def _without_time(rows):
    return [{k: v for k, v in row.items() if k != "epoch_time_s"} for row in rows]


def test_report_gets_every_metric_and_a_checkpoint_each_epoch(tmp_path, small_madelon):
    report = Recorder(tmp_path)
    train_feature_selection({**FAST, "checkpoint_every_s": 0}, report, data=small_madelon)

    assert [m["epoch"] for m in report.metrics] == [1, 2, 3]
    for metrics in report.metrics:
        missing = set(train_feature_selection.metrics) - set(metrics)
        assert not missing, missing
        assert all(isinstance(v, (int, float, str, bool)) for v in metrics.values())
    assert report.metrics[-1]["stop_reason"] == ""

    assert all(folder is not None and not folder.exists() for folder in report.folders)  # removed after report
    assert sorted(report.copies) == [1, 2, 3]
    for epoch, copy in report.copies.items():
        assert sorted(p.name for p in copy.iterdir()) == [CHECKPOINT_FILE, PREPROCESSING_FILE, SELECTION_FILE]
        assert torch.load(copy / CHECKPOINT_FILE, weights_only=False)["epoch"] == epoch
        selection = json.loads((copy / SELECTION_FILE).read_text())
        assert selection["feature_names"] == list(small_madelon.feature_names)
        probabilities = dict(zip(selection["feature_names"], selection["gate_probabilities"]))
        assert len(probabilities) == small_madelon.num_features
        assert all(0.0 < p < 1.0 for p in probabilities.values())
        assert set(selection["selected"]) <= set(selection["feature_names"])
        assert len(selection["selected"]) == report.metrics[epoch - 1]["num_selected"]


def test_each_checkpoint_saves_the_preprocessing_of_its_data(tmp_path, small_madelon):
    report = Recorder(tmp_path)
    train_feature_selection({**FAST, "epochs": 2}, report, data=small_madelon)

    for copy in report.copies.values():
        saved = json.loads((copy / PREPROCESSING_FILE).read_text())
        assert saved == small_madelon.preprocessing.to_dict()
        assert Preprocessing.from_dict(saved) == small_madelon.preprocessing
        assert saved["feature_names"] == list(small_madelon.feature_names)
        assert saved["class_names"] == ["0", "1"] and saved["target"] == "target" and saved["source"] == "madelon"
        assert len(saved["standardization"]["mean"]) == len(saved["standardization"]["scale"]) == 20


def test_splits_built_by_hand_save_no_preprocessing(tmp_path, small_madelon):
    # Their preparation is unknown here: better no preprocessing.json than a wrong one.
    by_hand = DataSplits(small_madelon.x_train, small_madelon.y_train, small_madelon.x_val, small_madelon.y_val,
                         small_madelon.x_test, small_madelon.y_test, small_madelon.feature_names,
                         small_madelon.class_names, "by hand")
    report = Recorder(tmp_path)
    train_feature_selection({**FAST, "epochs": 1}, report, data=by_hand)
    assert sorted(p.name for p in report.copies[1].iterdir()) == [CHECKPOINT_FILE, SELECTION_FILE]


def test_result_summarises_the_run(small_madelon):
    result = train_feature_selection(FAST, data=small_madelon)
    assert result["status"] == "completed" and result["epochs"] == 3
    assert result["best"]["best_epoch"] in (1, 2, 3)
    # Early stopping and the best epoch follow the task loss, not the penalty-inclusive val_loss.
    assert result["best"]["val_task_loss"] == min(result["history"]["val_task_loss"])
    assert 0.0 <= result["test_accuracy"] <= 1.0
    assert set(result["selected_features"]) <= set(small_madelon.feature_names)
    assert result["history"]["epoch"] == [1, 2, 3]


def test_checkpoint_every_n_epochs_and_the_final_one(tmp_path, small_madelon):
    report = Recorder(tmp_path)
    train_feature_selection({**FAST, "checkpoint_every": 2}, report, data=small_madelon)
    assert [folder is not None for folder in report.folders] == [False, True, True]  # epoch 2, then the last

    report = Recorder(tmp_path / "none")
    train_feature_selection({**FAST, "checkpoint_every": 0}, report, data=small_madelon)
    assert report.folders == [None, None, None]


def test_a_reported_checkpoint_is_written_without_fsync_and_loads_back_whole(tmp_path, small_madelon, monkeypatch):
    """Issue 25, item 3: the folder handed to report is private and copied by the receiver, whose copy lasts;
    an fsync there cost a millisecond or more every epoch. A checkpoint saved by a user stays durable."""
    import os

    from trainables.tasks import ReportCallback

    synced: list[int] = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(fd), real_fsync(fd))[1])
    report = Recorder(tmp_path)
    train_feature_selection({**FAST, "checkpoint_every_s": 0}, report, data=small_madelon)
    assert synced == [] and len(report.copies) == 3
    kept = []
    monkeypatch.setattr(ReportCallback, "on_epoch_end", lambda self, trainer, epoch, metrics: kept.append(trainer))
    train_feature_selection(FAST, null_report, data=small_madelon)
    # The last epoch's folder holds the whole trained model: a trainer of the same config loads it weights-only.
    kept[-1].load_checkpoint(report.copies[3] / "checkpoint.pt")
    assert kept[-1].epoch == 3 and synced == []
    # A user's own save: through a temporary file, fsynced, then renamed.
    mine = kept[-1].save_checkpoint(tmp_path / "mine" / "checkpoint.pt")
    assert len(synced) == 1 and mine.is_file() and not list(mine.parent.glob(".*.tmp"))


@pytest.mark.parametrize("mode", ["min", "max"])
def test_checkpoint_every_n_also_saves_every_epoch_at_the_best_score_so_far(tmp_path, mode):
    """Issue 22, item 10: the receiver keeps its best checkpoint by a score; the best epoch must have one."""
    from trainables.api import ranked_report
    from trainables.tasks import ReportCallback

    scores = [0.5, 0.7, 0.6, 0.7, 0.4, 0.3, 0.65]  # epoch 4 ties epoch 2: the later is kept, so it is saved too
    if mode == "min":
        scores = [1 - v for v in scores]
    report = ranked_report(Recorder(tmp_path), "val_accuracy", mode)
    callback = ReportCallback(report, checkpoint_every=3)

    class FakeTrainer:  # what ReportCallback reads of a trainer
        stop_reason, should_stop, max_epochs, is_main_process = None, False, len(scores), True

        def save_checkpoint(self, path, durable=True):
            Path(path).write_bytes(b"weights")

    for epoch, value in enumerate(scores, start=1):
        callback.on_epoch_end(FakeTrainer(), epoch, {"epoch": epoch, "val_accuracy": value})
    saved = [m["epoch"] for m, folder in zip(report.metrics, report.folders) if folder is not None]
    # 1, 2 and 4 are the best so far (4 ties 2); 3 and 6 are every-3rd; 7 the final one. 5 is neither.
    assert saved == [1, 2, 3, 4, 6, 7]
    best = (max if mode == "max" else min)(scores)
    assert scores.index(best) + 1 in saved and len(scores) - scores[::-1].index(best) in saved


class _FakeTrainer:  # what ReportCallback reads of a trainer
    stop_reason, should_stop, is_main_process = None, False, True

    def __init__(self, max_epochs):
        self.max_epochs = max_epochs

    def save_checkpoint(self, path, durable=True):
        Path(path).write_bytes(b"weights")


def _saved_epochs(callback, report, scores, seconds_per_epoch, clock):
    """Epochs 1.. through ``callback`` with the given scores, ``seconds_per_epoch`` apart; the epochs saved."""
    for epoch, value in enumerate(scores, start=1):
        clock.now += seconds_per_epoch
        callback.on_epoch_end(_FakeTrainer(len(scores)), epoch, {"epoch": epoch, "val_accuracy": value})
    return [m["epoch"] for m, folder in zip(report.metrics, report.folders) if folder is not None]


class _Clock:
    now = 100.0

    def __call__(self):
        return self.now


def test_checkpoint_every_s_saves_the_best_the_last_and_otherwise_one_every_s_seconds(tmp_path):
    """Issue 25, item 3: a checkpoint when the score improves, otherwise at most every N seconds, and the last."""
    from trainables.api import ranked_report
    from trainables.tasks import ReportCallback

    # 3 s an epoch, one at most every 10 s: with a score that never improves, epoch 1 (the first best), then the
    # first epoch 10 s or more after the previous checkpoint (5 at 15 s after epoch 1's 3 s, 9 ...), and the last.
    report, clock = Recorder(tmp_path / "flat"), _Clock()
    callback = ReportCallback(report, every_s=10, clock=clock, score="val_accuracy", mode="max")
    assert _saved_epochs(callback, report, [0.5] + [0.4] * 10, 3, clock) == [1, 5, 9, 11]
    # Said by the report function: each epoch at least as good as the best so far too, and the 10 s count from it.
    scores = [0.5, 0.6, 0.55, 0.55, 0.55, 0.55, 0.7, 0.6, 0.6, 0.6, 0.6, 0.6]
    report, clock = ranked_report(Recorder(tmp_path / "ranked"), "val_accuracy", "max"), _Clock()
    saved = _saved_epochs(ReportCallback(report, every_s=10, clock=clock), report, scores, 3, clock)
    assert saved == [1, 2, 6, 7, 11, 12]  # 6: 12 s after 2; 11: 12 s after 7; 12 the last
    # every_s with checkpoint_every: a due epoch is also an N-th one (3, 6, 9 ...), and never with 0.
    report, clock = ranked_report(Recorder(tmp_path / "nth"), "val_accuracy", "max"), _Clock()
    callback = ReportCallback(report, 3, every_s=5, clock=clock)
    # 1 the best; 3 is only 4 s after it; 6 (10 s after 1) and 9 (6 s after 6); 10 the last.
    assert _saved_epochs(callback, report, [0.5] + [0.4] * 9, 2, clock) == [1, 6, 9, 10]
    report, clock = ranked_report(Recorder(tmp_path / "never"), "val_accuracy", "max"), _Clock()
    assert _saved_epochs(ReportCallback(report, 0, every_s=5, clock=clock), report, [0.5] * 4, 2, clock) == []
    # A report function that says no ranking (a user's wrapper of the built-in's report, say): the best epoch
    # cannot be told apart, so the interval does not apply and every checkpoint_every-th epoch is saved.
    report, clock = Recorder(tmp_path / "unranked"), _Clock()
    assert _saved_epochs(ReportCallback(report, every_s=10, clock=clock), report, [0.5] * 5, 3, clock) == [1, 2, 3, 4, 5]
    # report_wrapper passes the ranking on through a wrapper of the user's (a bound method too).
    from trainables.api import report_wrapper

    wrapped = report_wrapper(Recorder(tmp_path / "method").__call__, inner := ranked_report(
        Recorder(tmp_path / "inner"), "val_accuracy", "min", every_epoch=True))
    assert (wrapped.checkpoint_score, wrapped.checkpoint_mode, wrapped.checkpoint_every_epoch) == (
        "val_accuracy", "min", True)

    inner, clock = ranked_report(Recorder(tmp_path / "wrapped2"), "val_accuracy", "max"), _Clock()
    wrapper = report_wrapper(lambda metrics, checkpoint_dir=None: inner(metrics, checkpoint_dir), inner)
    assert _saved_epochs(ReportCallback(wrapper, every_s=10, clock=clock), inner, [0.5] + [0.4] * 4, 3, clock) == [1, 5]


def test_a_receiver_that_needs_every_epochs_checkpoint_gets_one_whatever_the_interval(tmp_path):
    """PBT copies a trial's latest checkpoint into another: a stale one would carry an older model."""
    from trainables.api import checkpoint_every_epoch, ranked_report
    from trainables.tasks import ReportCallback

    report, clock = ranked_report(Recorder(tmp_path), "val_accuracy", "max", every_epoch=True), _Clock()
    assert checkpoint_every_epoch(report) and not checkpoint_every_epoch(Recorder(tmp_path))
    callback = ReportCallback(report, 3, every_s=60, clock=clock)
    assert _saved_epochs(callback, report, [0.9, 0.5, 0.4, 0.3, 0.2], 1, clock) == [1, 2, 3, 4, 5]


def test_the_built_in_trainable_spaces_its_checkpoints_by_default_and_0_keeps_every_epoch(tmp_path, small_madelon):
    """``checkpoint_every_s`` (10 s by default): a fast trial saves its best epochs and its last."""
    from trainables.api import ranked_report

    assert FeatureSelectionConfig().checkpoint_every_s == 10.0
    # Ranked by a metric that never improves after epoch 1 (the run's own 'epoch', at min): the first and last.
    # (An hour apart, so that a slow machine's six epochs cannot reach the next one.)
    report = ranked_report(Recorder(tmp_path / "spaced"), "epoch", "min")
    train_feature_selection({**FAST, "epochs": 6, "checkpoint_every_s": 3600}, report, data=small_madelon)
    assert [folder is not None for folder in report.folders] == [True, False, False, False, False, True]
    report = ranked_report(Recorder(tmp_path / "every"), "epoch", "min")
    train_feature_selection({**FAST, "epochs": 6, "checkpoint_every_s": 0.0}, report, data=small_madelon)
    assert all(folder is not None for folder in report.folders)
    report = ranked_report(Recorder(tmp_path / "best"), "val_accuracy", "max")  # each new best too
    train_feature_selection({**FAST, "epochs": 6, "checkpoint_every_s": 3600}, report, data=small_madelon)
    accuracy = [m["val_accuracy"] for m in report.metrics]
    best_so_far = [a >= max(accuracy[:i + 1]) for i, a in enumerate(accuracy)]
    assert [folder is not None for folder in report.folders] == [b or i == 5 for i, b in enumerate(best_so_far)]
    for bad in (-1, float("inf"), float("nan")):
        with pytest.raises(ConfigError, match=r"checkpoint_every_s must be >= 0 seconds and finite, got"):
            FeatureSelectionConfig.from_mapping({"checkpoint_every_s": bad})
    with pytest.raises(ConfigError, match=r"checkpoint_every_s must be a number, got '10'"):
        FeatureSelectionConfig.from_mapping({"checkpoint_every_s": "10"})


def test_checkpoint_every_n_without_a_ranking_saves_only_every_nth_and_the_last(tmp_path, small_madelon):
    from trainables.api import checkpoint_ranking

    report = Recorder(tmp_path)
    assert checkpoint_ranking(report) == (None, None)
    train_feature_selection({**FAST, "epochs": 5, "checkpoint_every": 3}, report, data=small_madelon)
    assert [folder is not None for folder in report.folders] == [False, False, True, False, True]


def test_resume_from_a_checkpoint_continues_at_the_next_epoch(tmp_path, small_madelon):
    config = {**FAST, "epochs": 4, "dropout": 0.2}
    straight = Recorder(tmp_path / "straight")
    train_feature_selection(config, straight, data=small_madelon)

    first = Recorder(tmp_path / "first")
    train_feature_selection({**config, "epochs": 2}, first, data=small_madelon)
    resumed = Recorder(tmp_path / "resumed")
    result = train_feature_selection(config, resumed, data=small_madelon, resume_from=first.copies[2])

    assert [m["epoch"] for m in resumed.metrics] == [3, 4]
    assert result["epochs"] == 4
    assert result["history"]["epoch"] == [1, 2, 3, 4]
    # Same data order, dropout masks and gate noise as the uninterrupted run.
    assert _without_time(resumed.metrics) == _without_time(straight.metrics[2:])
    assert _without_time(result["history"]) == _without_time(straight.metrics)


def test_resume_from_the_checkpoint_file_itself(tmp_path, small_madelon):
    first = Recorder(tmp_path)
    train_feature_selection({**FAST, "epochs": 1}, first, data=small_madelon)
    report = Recorder(tmp_path / "again")
    train_feature_selection({**FAST, "epochs": 2}, report, data=small_madelon,
                            resume_from=first.copies[1] / CHECKPOINT_FILE)
    assert [m["epoch"] for m in report.metrics] == [2]


@pytest.mark.parametrize(("config", "message"), [
    ({"sparsity_lamda": 0.1}, "unknown key 'sparsity_lamda' (did you mean 'sparsity_lambda'?)"),
    ({"learning_rat": 0.1}, "unknown key 'learning_rat'"),
    ({"lr": 0}, "lr must be > 0, got 0"),
    ({"lr": -1e-3}, "lr must be > 0, got -0.001"),
    ({"dropout": 1.0}, "dropout must be in [0, 1), got 1.0"),
    ({"monitor_mode": "up"}, "monitor_mode must be 'min' or 'max', got 'up'"),
    ({"on_nonfinite": "ignore"}, "on_nonfinite must be 'stop' or 'raise'"),
    ({"gate_sigma": 0}, "gate_sigma must be > 0, got 0"),
    ({"weight_decay": -0.1}, "weight_decay must be >= 0, got -0.1"),
    ({"min_delta": -1}, "min_delta must be >= 0, got -1"),
    ({"optimizer": "adma"}, "unknown optimizer 'adma'; did you mean 'adam'?"),
    ({"lr": "1e-3"}, "lr must be a number, got '1e-3'"),  # what YAML 1.1 makes of 1e-3
    ({"epochs": 2.5}, "epochs must be an integer, got 2.5"),
    ({"batch_size": True}, "batch_size must be an integer, got True"),
])
def test_bad_configs_are_config_errors(config, message, small_madelon):
    with pytest.raises(ConfigError) as info:
        train_feature_selection(config, data=small_madelon)
    assert message in str(info.value)
    assert "Accepted keys: " in str(info.value)


def test_every_problem_is_reported_at_once():
    with pytest.raises(ConfigError) as info:
        FeatureSelectionConfig.from_mapping({"lr": 0, "epochs": 0, "bacth_size": 3})
    message = str(info.value)
    assert "unknown key 'bacth_size' (did you mean 'batch_size'?)" in message
    assert "lr must be > 0" in message and "epochs must be >= 1" in message


def test_numpy_numbers_and_a_null_max_norm_are_accepted():
    cfg = FeatureSelectionConfig.from_mapping({"epochs": np.int64(3), "lr": np.float32(0.5), "max_norm": None})
    assert (cfg.epochs, cfg.lr, cfg.max_norm) == (3, 0.5, None)


def test_config_shorthands():
    cfg = FeatureSelectionConfig.from_mapping({"hidden_sizes": 32, "data": "wine"})
    assert cfg.hidden_sizes == (32,)
    assert cfg.data == {"name": "wine"}
    assert FeatureSelectionConfig.from_mapping({"hidden_sizes": [16, "8"]}).hidden_sizes == (16, 8)
    assert set(train_feature_selection.config_keys) >= {"lr", "selector_lr_ratio", "sparsity_lambda", "data"}


def test_the_config_data_is_loaded_when_no_data_is_given():
    report_epochs = []
    result = train_feature_selection(
        {**FAST, "epochs": 1, "data": {"name": "madelon", "n_samples": 120, "n_features": 8, "n_informative": 3}},
        lambda metrics, checkpoint_dir=None: report_epochs.append(metrics["epoch"]))
    assert report_epochs == [1]
    assert len(result["history"]) == 1


# ------------------------------------------------------------------ api
def test_call_training_function_passes_only_declared_context():
    received = {}

    def plain(config, report):
        received["plain"] = config
        report({"epoch": 1, "score": config["x"]})
        return "plain done"

    def wants_data(config, report, data):
        received["data"] = data

    def takes_all(config, report, **context):
        received["all"] = context

    reports = []
    assert call_training_function(plain, {"x": 2}, lambda m, c=None: reports.append(m),
                                  data="DATA", resume_from=None, world="WORLD") == "plain done"
    assert received["plain"] == {"x": 2} and reports == [{"epoch": 1, "score": 2}]

    call_training_function(wants_data, {}, null_report, data="DATA", world="WORLD")
    assert received["data"] == "DATA"

    call_training_function(takes_all, {}, null_report, data="D", resume_from="R")
    assert received["all"] == {"data": "D", "resume_from": "R"}

    assert tuple(CONTEXT_KEYWORDS) == ("data", "resume_from", "world")


def test_call_training_function_copies_the_config_and_rejects_unknown_context():
    config = {"x": 1}
    call_training_function(lambda cfg, report: cfg.update(x=99), config, null_report)
    assert config == {"x": 1}
    with pytest.raises(TypeError, match=r"unknown context keywords \['gpu'\]"):
        call_training_function(lambda cfg, report: None, {}, null_report, gpu=1)


def test_the_builtin_trainable_runs_through_the_contract(small_madelon):
    epochs = []
    result = call_training_function(train_feature_selection, {**FAST, "epochs": 2},
                                    lambda metrics, checkpoint_dir=None: epochs.append(metrics["epoch"]),
                                    data=small_madelon, resume_from=None)
    assert epochs == [1, 2] and result["epochs"] == 2


def test_resume_needs_only_seed_and_epoch_for_the_data_order(tmp_path, small_madelon):
    """A checkpoint without the loader's generator state still resumes onto the same batches."""
    config = {**FAST, "epochs": 3, "batch_size": 32}
    straight = Recorder(tmp_path / "straight")
    train_feature_selection(config, straight, data=small_madelon)
    first = Recorder(tmp_path / "first")
    train_feature_selection({**config, "epochs": 1}, first, data=small_madelon)
    path = first.copies[1] / CHECKPOINT_FILE
    state = torch.load(path, weights_only=False)
    state["loader_rng"] = None  # as if the trainer had not saved it
    torch.save(state, path)

    resumed = Recorder(tmp_path / "resumed")
    train_feature_selection(config, resumed, data=small_madelon, resume_from=first.copies[1])
    assert _without_time(resumed.metrics) == _without_time(straight.metrics[1:])


def test_the_builtin_loaders_slice_tensors_placed_on_the_trials_device(small_madelon):
    from trainables.data import TensorBatches
    from trainables.distributed import WorldInfo
    from trainables.task_training import _loaders

    cfg = FeatureSelectionConfig.from_mapping({**FAST, "seed": 3})
    train, val = _loaders(small_madelon, cfg, WorldInfo(), torch.device("cpu"))
    assert isinstance(train, TensorBatches) and isinstance(val, TensorBatches)
    assert train.device == val.device == torch.device("cpu")
    reference = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(*small_madelon.tensors("train")),
                                            batch_size=64, shuffle=True, generator=torch.Generator().manual_seed(3))
    for epoch in (1, 2):
        train.sampler.set_epoch(epoch)
        assert [y.tolist() for _, y in train] == [y.tolist() for _, y in reference]


@pytest.mark.parametrize("world_size", [2, 3])
def test_ddp_ranks_train_on_the_distributed_samplers_rows_and_validate_on_disjoint_ones(small_madelon, world_size):
    from torch.utils.data.distributed import DistributedSampler

    from trainables.distributed import WorldInfo
    from trainables.task_training import _loaders

    cfg = FeatureSelectionConfig.from_mapping({**FAST, "seed": 7})
    x_train, _ = small_madelon.tensors("train")
    x_val, _ = small_madelon.tensors("val")
    val_rows = []
    for rank in range(world_size):
        train, val = _loaders(small_madelon, cfg, WorldInfo(rank, world_size), torch.device("cpu"))
        reference = DistributedSampler(range(len(x_train)), num_replicas=world_size, rank=rank, shuffle=True, seed=7)
        for epoch in (1, 2):
            train.sampler.set_epoch(epoch)
            reference.set_epoch(epoch)
            torch.testing.assert_close(torch.cat([x for x, _ in train]), x_train[list(reference)])
        shard = torch.cat([x for x, _ in val])
        torch.testing.assert_close(shard, x_val[rank::world_size])
        val_rows.append(len(shard))
    assert sum(val_rows) == len(x_val)  # every val row once: the all-reduced metrics are exact


def test_the_config_names_the_optimizers_the_trainer_builds():
    # The config's check (torch-free, trainables.task_config) and the trainer's optimizers (trainables.optim) list
    # the same names: a name added to one only would pass the spec's check and fail every trial, or the reverse.
    from trainables.optim import OPTIMIZERS
    from trainables.task_config import OPTIMIZER_NAMES

    assert OPTIMIZER_NAMES == tuple(OPTIMIZERS)
    with pytest.raises(ConfigError, match="unknown optimizer 'adma'; did you mean 'adam'"):
        FeatureSelectionConfig.from_mapping({"optimizer": "adma"})


def test_a_resumed_trial_keeps_its_best_score_so_only_better_epochs_are_saved(tmp_path, small_madelon):
    """A trial resumed from its checkpoint (a crash, a resume) goes on ranking against the best it had: the first
    epoch after the resume is not saved for being the first seen."""
    from trainables.api import ranked_report
    from trainables.checkpoint import read_checkpoint
    from trainables.tasks import ReportCallback

    clock = _Clock()
    before = ReportCallback(ranked_report(Recorder(tmp_path / "before"), "val_accuracy", "max"), every_s=60,
                            clock=clock)
    before_report = before.report
    assert _saved_epochs(before, before_report, [0.5, 0.7], 1, clock) == [1, 2]
    state = before.state_dict()
    assert state == {"score": "val_accuracy", "mode": "max", "best": 0.7}
    after_report, clock = ranked_report(Recorder(tmp_path / "after"), "val_accuracy", "max"), _Clock()
    after = ReportCallback(after_report, every_s=60, clock=clock)
    after.load_state_dict(state)
    # Epochs 3-6 of the resumed trial (numbered from 1 here): 0.6 is below the 0.7 it had, 0.72 beats it.
    assert _saved_epochs(after, after_report, [0.6, 0.65, 0.72, 0.71], 1, clock) == [3, 4]
    # A best ranked by another score, or the other way, is not taken.
    other, _ = ReportCallback(ranked_report(Recorder(tmp_path / "o"), "val_loss", "min")), None
    other.load_state_dict(state)
    assert other._best is None
    # The built-in trainable's checkpoints carry it, and its resume restores it.
    report = ranked_report(Recorder(tmp_path / "real"), "val_accuracy", "max")
    train_feature_selection({**FAST, "checkpoint_every_s": 60}, report, data=small_madelon)
    last = max(report.copies)
    saved = read_checkpoint(report.copies[last])["callbacks"]["ReportCallback"]
    assert saved["best"] == max(m["val_accuracy"] for m in report.metrics) and saved["score"] == "val_accuracy"
    resumed = ranked_report(Recorder(tmp_path / "resumed"), "val_accuracy", "max")
    train_feature_selection({**FAST, "epochs": 5, "checkpoint_every_s": 60}, resumed, data=small_madelon,
                            resume_from=report.copies[last])
    best = saved["best"]
    for metrics, folder in zip(resumed.metrics, resumed.folders):  # epochs 4 and 5: saved only when at least as good
        assert (folder is not None) == (metrics["val_accuracy"] >= best or metrics["epoch"] == 5), resumed.metrics
        best = max(best, metrics["val_accuracy"])
