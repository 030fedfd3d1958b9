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
    "weights_safe",
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


def read_checkpoint(path: str | os.PathLike[str], map_location: str | torch.device = "cpu", *,
                    trusted: bool = False) -> dict[str, Any]:
    """Load a checkpoint dict, turning unreadable files into :class:`CheckpointError`.

    Read with ``torch.load(weights_only=True)``: tensors and plain containers only, so a crafted
    file runs no code (a checkpoint from another machine or a shared bucket is safe to read). A
    checkpoint written before version 0.2 holds NumPy's RNG state as an array, which that refuses:
    ``trusted=True`` (your own files, e.g. resuming your own experiment) reads those with pickle.
    """
    import pickle

    path = Path(path)
    if path.is_dir():
        path = path / "checkpoint.pt"
    if not path.exists():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        data = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        if not trusted:
            raise CheckpointError(
                f"{path} holds Python objects beyond weights, which load only by running code from the file "
                "(a checkpoint of an earlier version, or not a trainables checkpoint); refused. If the file is "
                "your own, load it with trusted=True") from exc
        data = _load_trusted(path, map_location)
    except Exception as exc:  # truncated zip, ...
        raise CheckpointError(f"checkpoint {path} is damaged or not a checkpoint ({type(exc).__name__}: {exc})") from exc
    if not isinstance(data, dict) or data.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path} is not a trainables checkpoint (format {CHECKPOINT_FORMAT} expected)")
    return data


def _load_trusted(path: Path, map_location: str | torch.device) -> Any:
    try:
        return torch.load(path, map_location=map_location, weights_only=False)  # noqa: S614 - asked for: trusted
    except Exception as exc:  # truncated zip, pickle errors, ...
        raise CheckpointError(f"checkpoint {path} is damaged or not a checkpoint ({type(exc).__name__}: {exc})") from exc


def weights_safe(obj: Any) -> Any:
    """``obj`` with what ``torch.load(weights_only=True)`` refuses made plain: NumPy scalars and arrays
    (as numbers and tensors), paths (as text); containers walked, tensors kept."""
    if isinstance(obj, np.generic):  # before the plain types: np.float64 is a float subclass torch refuses
        return obj.item()
    if isinstance(obj, torch.Tensor) or obj is None or isinstance(obj, (bool, int, float, str, bytes)):
        return obj
    if isinstance(obj, np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(obj))
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    if isinstance(obj, Mapping):
        return type(obj)((k, weights_safe(v)) for k, v in obj.items()) if isinstance(obj, dict) else \
            {k: weights_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        items = [weights_safe(v) for v in obj]
        return items if isinstance(obj, list) else tuple(items)
    return obj


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
    """Every generator's state, in types ``torch.load(weights_only=True)`` reads (NumPy's as a dict of a tensor)."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    numpy_state = {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                   "has_gauss": int(has_gauss), "cached_gaussian": float(cached)}
    state: dict[str, Any] = {"python": random.getstate(), "numpy": numpy_state, "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: Mapping[str, Any]) -> None:
    random.setstate(tuple(state["python"][:1]) + (tuple(state["python"][1]),) + tuple(state["python"][2:]))
    numpy_state = state["numpy"]
    if isinstance(numpy_state, Mapping):  # this version's form; a tuple of an array before
        numpy_state = (numpy_state["kind"], numpy_state["keys"].numpy().astype(np.uint32), numpy_state["pos"],
                       numpy_state["has_gauss"], numpy_state["cached_gaussian"])
    np.random.set_state(numpy_state)
    torch.set_rng_state(state["torch"].cpu() if hasattr(state["torch"], "cpu") else state["torch"])
    if "cuda" in state and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])
