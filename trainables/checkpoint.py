"""Checkpoint files: one ``torch.save`` dict, written atomically, checked on load."""

from __future__ import annotations

import os
import random
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from trainables.files import atomic_write

__all__ = [
    "CHECKPOINT_FORMAT",
    "CheckpointError",
    "CheckpointMismatchError",
    "atomic_save",
    "read_checkpoint",
    "check_compatible",
    "rng_state",
    "set_rng_state",
]

CHECKPOINT_FORMAT = 1


class CheckpointError(RuntimeError):
    """A checkpoint file is missing, damaged or of an unknown format."""


class CheckpointMismatchError(CheckpointError):
    """A checkpoint's model weights do not fit the model they are loaded into."""


def atomic_save(obj: Any, path: str | os.PathLike[str]) -> Path:
    """``torch.save`` ``obj`` to ``path`` atomically (:func:`trainables.files.atomic_write`), creating its folder.

    A crash mid-write leaves the previous checkpoint intact rather than a truncated one.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return atomic_write(path, lambda fh: torch.save(obj, fh))


def read_checkpoint(path: str | os.PathLike[str], map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint dict, turning unreadable files into :class:`CheckpointError`."""
    path = Path(path)
    if path.is_dir():
        path = path / "checkpoint.pt"
    if not path.exists():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        # weights_only=False: the file also holds numpy RNG state and config; we only
        # load checkpoints this library wrote, never files from untrusted sources.
        data = torch.load(path, map_location=map_location, weights_only=False)
    except Exception as exc:  # truncated zip, pickle errors, ...
        raise CheckpointError(f"checkpoint {path} is damaged or not a checkpoint ({type(exc).__name__}: {exc})") from exc
    if not isinstance(data, dict) or data.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path} is not a trainables checkpoint (format {CHECKPOINT_FORMAT} expected)")
    return data


def check_compatible(model: nn.Module, state: Mapping[str, torch.Tensor], path: str | os.PathLike[str]) -> None:
    """Raise :class:`CheckpointMismatchError` naming missing, unexpected and mis-shaped weights."""
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    shapes = sorted(
        f"{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
        for k in set(own) & set(state)
        if hasattr(state[k], "shape") and tuple(state[k].shape) != tuple(own[k].shape)
    )
    if not (missing or unexpected or shapes):
        return
    parts = []
    if missing:
        parts.append(f"missing from checkpoint: {_short(missing)}")
    if unexpected:
        parts.append(f"not in model: {_short(unexpected)}")
    if shapes:
        parts.append(f"shape mismatch: {_short(shapes)}")
    raise CheckpointMismatchError(
        f"checkpoint {path} was saved from a different model ({'; '.join(parts)}); "
        "build the model with the same architecture/config as when it was saved"
    )


def _short(items: list[str], limit: int = 5) -> str:
    more = f" (+{len(items) - limit} more)" if len(items) > limit else ""
    return ", ".join(items[:limit]) + more


def rng_state() -> dict[str, Any]:
    state: dict[str, Any] = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: Mapping[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"].cpu() if hasattr(state["torch"], "cpu") else state["torch"])
    if "cuda" in state and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])
