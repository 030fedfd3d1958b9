"""Which checkpoint a trial resumes from (issue 22, items 8 and 13): its own, from storage; a user's as it is."""

from __future__ import annotations

import pytest
import torch

from search.trials.checkpoints import resume_dir
from trainables import Trainer


def _ours(folder, marker: float) -> None:
    model = torch.nn.Linear(3, 2)
    torch.nn.init.constant_(model.weight, marker)
    Trainer(model, "sgd", device="cpu").save_checkpoint(folder / "checkpoint.pt")


def _weight(folder) -> float:
    from trainables.checkpoint import read_checkpoint

    return float(read_checkpoint(folder)["model"]["weight"][0, 0])


def test_a_users_own_checkpoint_pt_is_handed_back_as_it_is(tmp_path):
    from ray import tune

    folder = tmp_path / "checkpoint_000003"
    folder.mkdir()
    torch.save({"net": {"w": torch.ones(2)}, "epoch": 3}, folder / "checkpoint.pt")  # Ray Tune's examples' shape
    with resume_dir(tune.Checkpoint.from_directory(str(folder)), ours=False) as resume:
        assert resume == str(folder)  # before: "not a trainables checkpoint", and the trial restarted from epoch 1
    with resume_dir(tune.Checkpoint.from_directory(str(folder)), ours=True) as resume:
        assert resume is None  # a built-in trainable's folder holding a foreign file is not resumed from


def test_recovery_takes_a_users_checkpoint_folders_as_they_are(tmp_path):
    from search.engine.recovery import _intact

    for n in (1, 2):
        (tmp_path / f"checkpoint_00000{n}").mkdir()
        torch.save({"epoch": n}, tmp_path / f"checkpoint_00000{n}" / "checkpoint.pt")
    assert [p.name for p in _intact(tmp_path, ours=False)] == ["checkpoint_000002", "checkpoint_000001"]
    assert list(_intact(tmp_path, ours=True)) == []


def test_a_damaged_latest_checkpoint_falls_back_to_the_same_trials_earlier_one_on_s3(s3_server, capsys):
    """On S3 the latest is downloaded into a shared temporary folder; other trials' downloads lie beside it."""
    import pyarrow.fs
    from ray import tune

    fs = s3_server.filesystem()
    root = f"{s3_server.bucket}/fallback/exp"
    local = {}
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as tmp:
        for trial, name, weight in (("trial_a", "checkpoint_000001", 1.0), ("trial_a", "checkpoint_000002", 2.0),
                                    ("trial_b", "checkpoint_000001", 7.0), ("trial_b", "checkpoint_000003", 9.0)):
            folder = Path(tmp) / trial / name
            folder.mkdir(parents=True)
            _ours(folder, weight)
            local[(trial, name)] = folder
        (local[("trial_a", "checkpoint_000002")] / "checkpoint.pt").write_bytes(b"truncated")  # the damaged latest
        pyarrow.fs.copy_files(tmp, root, destination_filesystem=fs)
    other = tune.Checkpoint(f"{root}/trial_b/checkpoint_000003", filesystem=fs)
    latest = tune.Checkpoint(f"{root}/trial_a/checkpoint_000002", filesystem=fs)
    with other.as_directory() as other_copy:  # another trial's download, in the shared temporary folder
        with resume_dir(latest) as resume:
            assert resume is not None and resume != other_copy
            assert _weight(Path(resume)) == pytest.approx(1.0)  # trial a's checkpoint_000001, not trial b's
    assert "is damaged" in capsys.readouterr().err


def test_numpy_scalars_and_0d_tensors_in_reports_become_plain_numbers():
    import numpy as np

    from search.trials.setup import checked_report

    seen = []
    report = checked_report(lambda m, c=None: seen.append(m), ("loss", "epoch"), "mine:train")
    report({"epoch": np.int64(1), "loss": np.float32(0.25), "acc": torch.tensor(0.5), "n": np.array(3),
            "done": False, "note": "x", "vector": [1, 2]})
    got = seen[0]
    assert got == {"epoch": 1, "loss": 0.25, "acc": 0.5, "n": 3, "done": False, "note": "x", "vector": [1, 2]}
    assert type(got["epoch"]) is int and type(got["loss"]) is float and type(got["acc"]) is float
