"""PBT's record in a trial's checkpoints: the schedule of configurations its model trained under, and its epoch.

Under PBT a trial writes, with every checkpoint, the values of the mutated parameters by epoch
(across the trials its model was copied from) and the epoch it saved it at
(:class:`search.trials.setup.CheckedReport`). The table shows the schedule of each trial's best
checkpoint, and a row whose checkpoint folder was later reused for another epoch no longer names it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from search.experiment import CHECKPOINT_STATE_KEY

__all__ = ["read_schedule", "forget_overwritten_checkpoints", "SCHEDULE_COLUMN", "describe_schedule"]


def _checkpoint_state(checkpoint: Path | None) -> dict[str, Any]:
    """What a trial stored with a checkpoint (:class:`search.trials.setup.CheckedReport`), or {}."""
    if checkpoint is None or not Path(checkpoint).is_dir():
        return {}
    from ray.tune import Checkpoint

    try:
        state = Checkpoint.from_directory(str(checkpoint)).get_metadata().get(CHECKPOINT_STATE_KEY)
    except (OSError, ValueError, TypeError, AttributeError):
        return {}
    return state if isinstance(state, dict) else {}


def read_schedule(checkpoint: Path | None) -> list[tuple[int, dict[str, Any]]]:
    """The configurations a checkpoint's model trained under, ``[(first epoch, values), ...]``; [] when not kept.

    Under PBT every checkpoint carries its model's schedule in its metadata (written by the trial,
    :class:`search.trials.setup.CheckedReport`): exact, across the trials it was copied from.
    """
    try:
        return [(int(first), dict(values)) for first, values in _checkpoint_state(checkpoint).get("schedule") or []]
    except (ValueError, TypeError):
        return []


def forget_overwritten_checkpoints(history: pd.DataFrame, checkpoints: dict[str, Path]) -> None:
    """PBT: a row whose checkpoint folder now holds another epoch's model no longer names it.

    A trial PBT restarts from another's checkpoint writes its next checkpoints under the folder
    names Tune gives from its own count, which can be names its earlier epochs used (the
    checkpoint of the epoch at which it was restarted is never registered with Tune). Each
    checkpoint records the epoch it was reported with; an earlier row naming it is stale.
    """
    if "checkpoint_dir_name" not in history or "epoch" not in history:
        return
    saved_at: dict[str, Any] = {}  # folder name -> the epoch its metadata says, read once per folder
    for i in history.index:
        name = history.at[i, "checkpoint_dir_name"]
        if not isinstance(name, str) or name not in checkpoints:
            continue
        if name not in saved_at:
            saved_at[name] = _checkpoint_state(checkpoints[name]).get("reported")
        if saved_at[name] is not None and saved_at[name] != history.at[i, "epoch"]:
            history.at[i, "checkpoint_dir_name"] = None


#: PBT: each trial's configurations over its epochs, ``1: lr=0.013 λ=… → 7: lr=0.0173``: only what changed.
SCHEDULE_COLUMN = "schedule"


def describe_schedule(schedule: list[tuple[int, dict[str, Any]]], params: tuple[str, ...]) -> str:
    """``epoch: name=value ...`` for each change of the searched parameters, joined by `` → ``."""
    parts, before = [], {}
    for first, config in schedule:
        changed = {name: config[name] for name in params if name in config and config[name] != before.get(name)}
        before = {**before, **config}
        if changed or not parts:
            values = " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in changed.items())
            parts.append(f"{first}: {values}")
    return " → ".join(parts)
