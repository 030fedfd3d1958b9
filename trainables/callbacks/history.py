"""Per-epoch metric history, saved and loaded as JSON."""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trainables.callbacks.base import Callback
from trainables.files import atomic_write

if TYPE_CHECKING:
    from trainables.trainer import Trainer

__all__ = ["History"]


class History(Callback):
    """Records each epoch's metrics. ``fit`` returns the trainer's History.

    ``history["val_loss"]`` is the list of that metric by epoch (None where an epoch
    lacked it); ``history.epochs`` the list of epoch dicts; ``history.status`` how the
    fit ended (``completed``, ``early_stopping``, ``diverged``, ``threshold``, ...).
    """

    # Before the checkpoint writers (ModelCheckpoint 60, reporting 80), so a checkpoint written
    # at epoch N holds epoch N in its history; the row is the live metrics dict, so keys that
    # later callbacks add still appear in it.
    order = 55

    def __init__(self) -> None:
        self.epochs: list[dict[str, Any]] = []
        self.status: str = "not_started"

    def on_fit_start(self, trainer: Trainer) -> None:
        self.status = "running"

    def on_epoch_end(self, trainer: Trainer, epoch: int, metrics: dict[str, Any]) -> None:
        self.epochs.append(metrics)

    def on_fit_end(self, trainer: Trainer) -> None:
        self.status = trainer.stop_reason or "completed"

    def keys(self) -> list[str]:
        seen: dict[str, None] = {}
        for row in self.epochs:
            seen.update(dict.fromkeys(row))
        return list(seen)

    def __getitem__(self, key: str) -> list[Any]:
        if key not in self.keys():
            raise KeyError(f"no metric {key!r} in history; recorded: {', '.join(self.keys())}")
        return [row.get(key) for row in self.epochs]

    def __len__(self) -> int:
        return len(self.epochs)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return iter(self.epochs)

    def to_dict(self) -> dict[str, Any]:
        return {"status": self.status, "epochs": self.epochs}

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the history as JSON (atomically: a crash never leaves half a file)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        return atomic_write(path, json.dumps(_jsonable(self.to_dict()), indent=1))

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> History:
        data = json.loads(Path(path).read_text())
        history = cls()
        history.status = data.get("status", "unknown")
        history.epochs = [_from_jsonable(row) for row in data["epochs"]]
        return history

    def state_dict(self) -> dict[str, Any]:
        return {"epochs": [dict(e) for e in self.epochs], "status": self.status}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.epochs = [dict(e) for e in state["epochs"]]
        self.status = state["status"]


def _jsonable(value: Any) -> Any:
    """NaN and inf are not JSON: write them as strings that ``float()`` reads back."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


_NON_FINITE = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}


def _from_jsonable(value: Any) -> Any:
    """Undo :func:`_jsonable`: the strings it wrote for NaN and inf become floats again."""
    if isinstance(value, str):
        return _NON_FINITE.get(value, value)
    if isinstance(value, Mapping):
        return {k: _from_jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_from_jsonable(v) for v in value]
    return value
