"""The built-in feature-selection trainable stops early on the task loss, not on the penalty-inclusive loss."""

from __future__ import annotations

from trainables.tasks import FeatureSelectionConfig, train_feature_selection


def _patience_fires(values: list[float], patience: int, min_delta: float) -> int | None:
    """The epoch at which patience runs out on ``values`` (lower is better), or None."""
    best, waited = float("inf"), 0
    for epoch, value in enumerate(values, 1):
        if value < best - min_delta:
            best, waited = value, 0
        else:
            waited += 1
            if waited >= patience:
                return epoch
    return None


def test_early_stopping_watches_val_task_loss_while_the_penalty_keeps_val_loss_falling():
    assert FeatureSelectionConfig().monitor == "val_task_loss"
    rows: list[dict] = []
    config = {"lr": 0.03, "sparsity_lambda": 0.05, "patience": 3, "epochs": 40, "batch_size": 32,
              "data": {"name": "madelon", "n_samples": 200, "n_features": 10, "n_informative": 3}}
    train_feature_selection(config, lambda metrics, checkpoint=None: rows.append(dict(metrics)))
    task, full = [r["val_task_loss"] for r in rows], [r["val_loss"] for r in rows]
    min_delta = FeatureSelectionConfig().min_delta
    assert rows[-1]["stop_reason"] == "early_stopping"
    assert len(rows) == _patience_fires(task, 3, min_delta) < 40  # stopped when the task loss stalled
    # ...while val_loss (task loss + λ·penalty) was still improving as gates closed: on it,
    # patience would not have run out yet.
    assert _patience_fires(full, 3, min_delta) is None
