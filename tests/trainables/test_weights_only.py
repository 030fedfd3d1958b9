"""Checkpoints are read with torch.load(weights_only=True): a crafted file runs no code (issue 22, item 4)."""

from __future__ import annotations

import os
import pickle
import random

import numpy as np
import pytest
import torch

from trainables import Trainer
from trainables.checkpoint import CheckpointError, read_checkpoint, rng_state, set_rng_state


class _Payload:
    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _crafted(path, marker) -> None:
    torch.save({"format": 1, "model": {}, "evil": _Payload(str(marker))}, path, _use_new_zipfile_serialization=True,
               pickle_module=pickle)


def test_a_crafted_checkpoint_is_refused_before_it_runs_anything(tmp_path):
    marker = tmp_path / "ran"
    _crafted(tmp_path / "checkpoint.pt", marker)
    with pytest.raises(CheckpointError, match="beyond weights.*refused"):
        read_checkpoint(tmp_path / "checkpoint.pt")
    assert not marker.exists()  # before: weights_only=False ran os.system before "not a checkpoint"
    trainer = Trainer(torch.nn.Linear(3, 2), "sgd", device="cpu")
    with pytest.raises(CheckpointError):
        trainer.load_checkpoint(tmp_path / "checkpoint.pt")
    assert not marker.exists()


def test_our_checkpoints_load_weights_only_and_restore_every_generator(tmp_path):
    trainer = Trainer(torch.nn.Linear(3, 2), "adam", device="cpu", config={"lr": np.float64(0.01), "where": tmp_path})
    random.seed(1)
    np.random.seed(2)
    torch.manual_seed(3)
    path = trainer.save_checkpoint(tmp_path / "checkpoint.pt")
    data = torch.load(path, weights_only=True)  # PyTorch's own safe loader reads it whole
    assert data["config"] == {"lr": 0.01, "where": str(tmp_path)}
    expected = (random.random(), float(np.random.rand()), float(torch.rand(1)))
    set_rng_state(read_checkpoint(path)["rng"])
    assert (random.random(), float(np.random.rand()), float(torch.rand(1))) == expected
    assert isinstance(rng_state()["numpy"]["keys"], torch.Tensor)


def test_a_trusted_old_checkpoint_still_loads(tmp_path):
    # Version 0.1 saved NumPy's RNG state as a tuple holding an array: refused by weights_only, read when trusted.
    trainer = Trainer(torch.nn.Linear(3, 2), "sgd", device="cpu")
    state = trainer.checkpoint_state()
    state["rng"]["numpy"] = np.random.get_state()
    torch.save(state, tmp_path / "old.pt")
    with pytest.raises(CheckpointError, match="trusted=True"):
        read_checkpoint(tmp_path / "old.pt")
    assert read_checkpoint(tmp_path / "old.pt", trusted=True)["format"] == 1
    set_rng_state(read_checkpoint(tmp_path / "old.pt", trusted=True)["rng"])
