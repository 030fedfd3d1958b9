"""The training behind :mod:`trainables.tasks`: imported (with torch) on a built-in trainable's first call.

:mod:`trainables.tasks` holds what a driver needs to check a spec (the config, the metrics and keys
declared) without importing torch; the training, evaluation and refit functions, the report callback
and the seeding helpers live here.
"""

from __future__ import annotations

import dataclasses
import json
import math
import numbers
import random
import shutil
import tempfile
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from trainables.api import ReportFn, checkpoint_every_epoch, checkpoint_ranking, null_report
from trainables.callbacks import Callback, EarlyStopping
from trainables.data import DataSplits, Preprocessing, load_data
from trainables.distributed import ShardSampler, WorldInfo, prepare_model, world_info
from trainables.feature_selection import FeatureSelectionModel, FeatureSelectionTrainer
from trainables.files import CHECKPOINT_FILE, PREPROCESSING_FILE, SELECTION_FILE
from trainables.task_config import ConfigError, FeatureSelectionConfig
from trainables.trainer import Trainer

__all__ = ["train_feature_selection", "evaluate_feature_selection", "refit_feature_selection", "ReportCallback",
           "seed_everything", "rank_seed", "majority_rate"]


def rank_seed(seed: int, rank: int, epoch: int = 0) -> int:
    """The seed of one DDP rank's random draws from ``epoch`` on: distinct per rank and per resume point."""
    return (seed * 1_000_003 + rank * 7_919 + epoch * 104_729) % 2**63


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


class ReportCallback(Callback):
    """Hands each epoch's metrics (and, when one is due, a checkpoint) to a :class:`ReportFn`.

    A checkpoint is due at the last epoch, at every epoch at least as good on the receiver's score
    as the best so far, and at every ``checkpoint_every``-th epoch once ``every_s`` seconds have
    passed since the previous checkpoint (``every_s=0``: each of them); ``checkpoint_every=0``: never.
    So a crash costs a trial at most ``every_s`` seconds and an epoch of training, and the best epoch
    always has its checkpoint. ``every_s`` applies only when the score is known (given, or said by the
    report function: :func:`trainables.api.checkpoint_ranking`): without it the best epoch cannot be told
    apart, so every ``checkpoint_every``-th epoch is saved. A receiver that needs every epoch's (PBT,
    :func:`trainables.api.checkpoint_every_epoch`) gets one at every epoch.

    Every rank calls ``report`` (distributed reporters expect all ranks), but only
    rank 0 writes a checkpoint. The checkpoint folder holds ``checkpoint.pt`` (see
    :meth:`Trainer.load_checkpoint`), for feature selection ``selection.json`` (gate
    probabilities by feature name) and, given ``preprocessing``, ``preprocessing.json``
    (:meth:`Preprocessing.to_dict`: what a saved model needs to score raw data); the
    JSON files are readable without torch.
    """

    order = 80  # after early stopping and History: its counters and this epoch belong in the checkpoint

    def __init__(self, report: ReportFn, checkpoint_every: int = 1,
                 preprocessing: Preprocessing | None = None, constants: Mapping[str, float] | None = None, *,
                 score: str | None = None, mode: str | None = None, every_s: float = 0.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.report = report
        every_epoch = checkpoint_every_epoch(report)
        self.checkpoint_every = min(checkpoint_every, 1) if every_epoch else checkpoint_every
        self._clock = clock
        self._saved_at: float | None = None  # when the last checkpoint was written (``clock``)
        # The metric the receiver keeps its best checkpoints by (given, or said by the report function): an epoch at
        # least as good as the best so far is saved too, so with checkpoint_every > 1 the best epoch still has its
        # checkpoint, and the table's best epoch, Optuna's value, the kept checkpoint and the held-out test agree.
        said_score, said_mode = checkpoint_ranking(report)
        self.score, self.mode = score or said_score, mode or said_mode or "max"
        # Spacing checkpoints out needs the score: the best epoch must keep its checkpoint (see the class).
        self.every_s = 0.0 if every_epoch or not self.score else float(every_s)
        self._best: float | None = None
        self.constants = dict(constants or {})  # the same figures in every report (``majority_rate``)
        # The same text in every checkpoint: render it once.
        self._preprocessing_json = json.dumps(preprocessing.to_dict()) if preprocessing is not None else None

    def on_epoch_end(self, trainer: Trainer, epoch: int, metrics: dict[str, Any]) -> None:
        # The history must include this epoch before it is saved in the checkpoint.
        metrics["stop_reason"] = trainer.stop_reason or ""
        metrics.update(self.constants)
        final = trainer.should_stop or epoch == trainer.max_epochs
        wants = bool(self.checkpoint_every) and (self._at_best(metrics) or final or self._due(epoch))
        if trainer.stop_reason == "diverged":
            wants = False  # non-finite weights: the previous checkpoint is the one to keep
        if not (wants and trainer.is_main_process):
            self.report(_reportable(metrics), None)
            return
        folder = Path(tempfile.mkdtemp(prefix="trainables-ckpt-"))
        try:
            trainer.save_checkpoint(folder / CHECKPOINT_FILE, durable=False)  # a private folder, copied by the receiver
            if isinstance(trainer, FeatureSelectionTrainer):
                (folder / SELECTION_FILE).write_text(json.dumps(trainer.selection_summary()))
            if self._preprocessing_json is not None:
                (folder / PREPROCESSING_FILE).write_text(self._preprocessing_json)
            self.report(_reportable(metrics), folder)
            self._saved_at = self._clock()
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    def _due(self, epoch: int) -> bool:
        """A ``checkpoint_every``-th epoch, ``every_s`` seconds or more after the last checkpoint."""
        if epoch % self.checkpoint_every:
            return False
        return self._saved_at is None or self._clock() - self._saved_at >= self.every_s

    def state_dict(self) -> dict[str, Any]:
        """The best score so far, saved in every checkpoint: a resumed trial saves only epochs that beat it."""
        return {"score": self.score, "mode": self.mode, "best": self._best}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Resumed from a checkpoint: it is the latest one (``every_s`` counts from now) and its best is the best so
        far, where it was ranked by the same score the same way (another spec's checkpoint says nothing)."""
        self._saved_at = self._clock()
        best = state.get("best")
        if state.get("score") == self.score and state.get("mode") == self.mode and isinstance(best, (int, float)):
            self._best = float(best)

    def _at_best(self, metrics: Mapping[str, Any]) -> bool:
        """This epoch's score is at least the best so far (ties count: the latest of tied epochs is the one kept)."""
        value = metrics.get(self.score) if self.score else None
        if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
            return False
        value = float(value)
        if self._best is not None and (value < self._best if self.mode == "max" else value > self._best):
            return False
        self._best = value
        return True


def _reportable(metrics: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in metrics.items() if isinstance(v, (int, float, str, bool))}


def train_feature_selection(
    config: Mapping[str, Any],
    report: ReportFn = null_report,
    *,
    data: DataSplits | None = None,
    resume_from: str | Path | None = None,
    world: WorldInfo | None = None,
) -> dict[str, Any]:
    """The body of :func:`trainables.tasks.train_feature_selection` (its arguments, returns and metrics are there)."""
    cfg = FeatureSelectionConfig.from_mapping(config)
    world = world or world_info()
    seed_everything(cfg.seed)
    splits = data if data is not None else load_data(cfg.data)
    model = FeatureSelectionModel(splits.num_features, splits.num_classes, cfg.hidden_sizes, cfg.dropout, cfg.gate_sigma)
    validated = len(splits.y_val) > 0  # no validation part (a refit on train + val): a fixed number of epochs
    early = (EarlyStopping(cfg.monitor, cfg.monitor_mode, cfg.patience, cfg.min_delta, restore_best_weights=True)
             if validated else None)
    constants = {"majority_rate": majority_rate(splits)} if validated else {}
    trainer = FeatureSelectionTrainer(
        prepare_model(model, cfg.device),  # under DDP wrapped; every rank built the same model from the same seed
        lr=cfg.lr, selector_lr_ratio=cfg.selector_lr_ratio, sparsity_lambda=cfg.sparsity_lambda,
        max_norm=cfg.max_norm, optimizer=cfg.optimizer, weight_decay=cfg.weight_decay,
        feature_names=splits.feature_names, device=cfg.device, on_nonfinite=cfg.on_nonfinite,
        train_accuracy=True,  # ``train_accuracy`` is one of the metrics declared below (a spec may name it)
        callbacks=[c for c in (early, ReportCallback(report, cfg.checkpoint_every, splits.preprocessing, constants,
                                                     every_s=cfg.checkpoint_every_s)) if c is not None],
        config=dataclasses.asdict(cfg),
    )
    if resume_from is not None:
        path = Path(resume_from)
        trainer.load_checkpoint(path / CHECKPOINT_FILE if path.is_dir() else path, trusted=True)  # the trial's own
        # This config's settings, not the checkpoint's: under PBT a trial goes on from another's checkpoint, mutated.
        trainer.set_hyperparameters(lr=cfg.lr, selector_lr_ratio=cfg.selector_lr_ratio, weight_decay=cfg.weight_decay,
                                    sparsity_lambda=cfg.sparsity_lambda, max_norm=cfg.max_norm)
    if world.world_size > 1:
        # Gate noise (and dropout) come from torch's global RNG: with one seed (or rank 0's
        # restored RNG state) every rank would draw the same noise for its own shard.
        torch.manual_seed(rank_seed(cfg.seed, world.rank, trainer.epoch))
    train_loader, val_loader = _loaders(splits, cfg, world, trainer.device)
    history = trainer.fit(train_loader, cfg.epochs, val_loader)
    test = (trainer.evaluate(splits.loader("test", cfg.batch_size, device=trainer.device))
            if len(splits.y_test) else {})
    return {
        "status": history.status,
        "epochs": trainer.epoch,
        "best": early.get_best_metrics() if early is not None else {},
        "test_accuracy": test.get("accuracy"),
        "selected_features": trainer.selected_features(),
        "history": history,
    }


def evaluate_feature_selection(config: Mapping[str, Any], checkpoint: str | Path, data: DataSplits | None = None,
                               part: str = "test") -> dict[str, float]:
    """A checkpoint's model on a held-out part of the data (default the test split): its metrics.

    The evaluation function of :func:`train_feature_selection` (its ``evaluate``
    attribute): ``search`` calls it once, after the search, on the chosen trial. ``data``
    are the splits the trial trained on (else ``config["data"]`` is loaded with the same
    split). Returns ``accuracy``, ``task_loss`` (cross-entropy, without the penalty) and
    ``n`` (samples); ``{}`` when the part is empty.
    """
    cfg = FeatureSelectionConfig.from_mapping(config)
    splits = data if data is not None else load_data(cfg.data)
    if not len(getattr(splits, f"y_{part}")):
        return {}
    model = FeatureSelectionModel(splits.num_features, splits.num_classes, cfg.hidden_sizes, cfg.dropout, cfg.gate_sigma)
    trainer = FeatureSelectionTrainer(model, sparsity_lambda=cfg.sparsity_lambda, feature_names=splits.feature_names,
                                      device="cpu")
    path = Path(checkpoint)
    trainer.load_checkpoint(path / CHECKPOINT_FILE if path.is_dir() else path, load_optimizer=False,
                            load_callbacks=False)
    metrics = trainer.evaluate(splits.loader(part, cfg.batch_size))
    return {"accuracy": float(metrics["accuracy"]), "task_loss": float(metrics["task_loss"]),
            "n": float(len(getattr(splits, f"y_{part}")))}


def majority_rate(splits: DataSplits) -> float:
    """The validation accuracy of always answering the train part's most frequent class (chance, for a classifier).

    A trial whose best validation accuracy is no better has learned nothing (``search`` calls it
    collapsed); 0.0 without train or validation rows.
    """
    if not len(splits.y_train) or not len(splits.y_val):
        return 0.0
    majority = int(np.bincount(np.asarray(splits.y_train), minlength=splits.num_classes).argmax())
    return float(np.mean(np.asarray(splits.y_val) == majority))


def refit_feature_selection(config: Mapping[str, Any], data: DataSplits | None, epochs: int,
                            out_dir: str | Path, checkpoint: str | Path | None = None) -> dict[str, Any]:
    """Train the chosen configuration once more, on train + validation, for ``epochs``; save it in ``out_dir``.

    The refit function of :func:`train_feature_selection` (its ``refit`` attribute; scikit-learn's
    ``refit``): ``search`` calls it once after the search with the picked trial's config, the
    epochs it ran (at least its best epoch) and its best ``checkpoint``. The same seed and settings, :meth:`DataSplits.merged_train`
    as the data: with no validation part there is no early stopping, so it trains exactly ``epochs``
    epochs. ``out_dir`` receives the final checkpoint (``checkpoint.pt``, ``selection.json``,
    ``preprocessing.json``), as a trial's checkpoint folder holds them.

    Given the trial's ``checkpoint``, its selection is kept: the gates are read from it and frozen
    (:meth:`~trainables.feature_selection.StochasticGates.freeze`: each feature scaled by the
    trial's evaluation gate in training too, no gate noise, the gates no longer learned) and only
    the classifier is retrained, from the seed's initial weights, so the refit model selects
    exactly the trial's features with the trial's gate values. (Stochastic
    gates retrained from scratch on more rows can settle on another set: with hundreds of noise
    features, a trial keeping 13 was once refitted into a model keeping 4.) Without it, gates and
    classifier are both trained from scratch.

    Returns:
        What to add to the refit's record: ``selection`` (``"kept from the trial's checkpoint"`` or
        ``"retrained"``) and ``num_selected``.
    """
    if isinstance(epochs, bool) or not isinstance(epochs, numbers.Integral) or epochs < 1:
        raise ConfigError(f"refit: epochs must be an integer >= 1, got {epochs!r}")
    cfg = FeatureSelectionConfig.from_mapping(config)
    splits = data if data is not None else load_data(cfg.data)
    merged, out = splits.merged_train(), Path(out_dir)

    def keep(metrics: Mapping[str, Any], saved: Path | None) -> None:
        if saved is not None:  # the final epoch's (checkpoint_every = epochs): copy it before it is removed
            shutil.copytree(saved, out, dirs_exist_ok=True)

    refit_config = {**dict(config), "epochs": int(epochs), "checkpoint_every": int(epochs), "device": "cpu"}
    if checkpoint is None:
        train_feature_selection(refit_config, keep, data=merged)
    else:
        from trainables.feature_selection import saved_gate_means

        mu = saved_gate_means(checkpoint)
        seed_everything(cfg.seed)  # as the trial did: its classifier starts from the trial's initial weights
        model = FeatureSelectionModel(merged.num_features, merged.num_classes, cfg.hidden_sizes, cfg.dropout,
                                      cfg.gate_sigma)
        if mu.shape != model.gates.mu.shape:
            raise ValueError(f"refit: {checkpoint} has {mu.numel()} gates, the data {merged.num_features} features")
        with torch.no_grad():
            model.gates.mu.copy_(mu)
        model.gates.freeze()
        trainer = FeatureSelectionTrainer(
            model, lr=cfg.lr, selector_lr_ratio=cfg.selector_lr_ratio, sparsity_lambda=cfg.sparsity_lambda,
            max_norm=cfg.max_norm, optimizer=cfg.optimizer, weight_decay=cfg.weight_decay,
            feature_names=merged.feature_names, device="cpu", on_nonfinite=cfg.on_nonfinite, train_accuracy=True,
            callbacks=[ReportCallback(keep, int(epochs), merged.preprocessing)],
            config=dataclasses.asdict(FeatureSelectionConfig.from_mapping(refit_config)))
        trainer.fit(merged.loader("train", cfg.batch_size, seed=cfg.seed, device=trainer.device), int(epochs))
    if not (out / CHECKPOINT_FILE).is_file():
        raise RuntimeError(f"refit: training ended without a checkpoint in {out}")
    selected = json.loads((out / SELECTION_FILE).read_text())["selected"]
    return {"selection": "retrained" if checkpoint is None else "kept from the trial's checkpoint",
            "num_selected": len(selected)}


def _loaders(splits: DataSplits, cfg: FeatureSelectionConfig, world: WorldInfo,
             device: torch.device) -> tuple[Any, Any]:
    """Train and val batches, each part placed on the trial's ``device`` once (no per-batch copy there).

    Under DDP a ``DistributedSampler`` picks each rank's train rows (padded to equal shards,
    reshuffled by ``set_epoch``) and a :class:`ShardSampler` its val rows (every row once).
    """
    if not world.is_distributed:
        return (splits.loader("train", cfg.batch_size, seed=cfg.seed, device=device),
                splits.loader("val", cfg.batch_size, device=device) if len(splits.y_val) else None)
    from torch.utils.data.distributed import DistributedSampler

    train_sampler = DistributedSampler(range(len(splits.y_train)), num_replicas=world.world_size, rank=world.rank,
                                       shuffle=True, seed=cfg.seed)
    val_sampler = ShardSampler(len(splits.y_val), world.rank, world.world_size)
    return (splits.loader("train", cfg.batch_size, shuffle=False, sampler=train_sampler, device=device),
            splits.loader("val", cfg.batch_size, shuffle=False, sampler=val_sampler, device=device))
