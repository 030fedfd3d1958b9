"""Reading a folder from elsewhere runs no code from it (issue 22, item 4): pickles are never opened (Tune's
experiment state included: it is read as plain JSON, not by Ray's ``ExperimentAnalysis``, which unpickles
what Tune's encoder cloudpickled into it), checkpoints are read weights-only."""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path

import pytest
import torch
import yaml

from tests.search.helpers import results_cli


class _Payload:
    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _crafted_experiment(tmp_path: Path) -> tuple[Path, Path]:
    """An experiment folder as someone might send it: readable results, and pickles that run a command."""
    marker = tmp_path / "ran"
    folder = tmp_path / "theirs"
    (folder / "trial_a1" / "checkpoint_000001").mkdir(parents=True)
    (folder / "spec.yaml").write_text(yaml.safe_dump({
        "name": "theirs", "trainable": "feature_selection", "metric": "val_accuracy", "mode": "max",
        "space": {"lr": {"type": "float", "low": 0.001, "high": 0.1}}, "fixed": {"epochs": 1},
        "scheduler": {"type": "none"}}))
    (folder / "trial_a1" / "params.json").write_text(json.dumps({"lr": 0.01, "epochs": 1}))
    (folder / "trial_a1" / "result.json").write_text(json.dumps({
        "epoch": 1, "val_accuracy": 0.9, "num_selected": 2, "done": True, "trial_id": "a1",
        "checkpoint_dir_name": "checkpoint_000001"}) + "\n")
    torch.save({"format": 1, "model": {}, "config": {}, "x": _Payload(str(marker))},
               folder / "trial_a1" / "checkpoint_000001" / "checkpoint.pt")
    (folder / "trial_a1" / "checkpoint_000001" / "selection.json").write_text(
        json.dumps({"probabilities": {"f0": 0.9, "f1": 0.1}, "selected": ["f0"]}))
    with open(folder / "searcher-state-2026-12-04_00-00-00.pkl", "wb") as fh:
        pickle.dump({"_ot_study": _Payload(str(marker))}, fh)
    with open(folder / "tuner.pkl", "wb") as fh:
        pickle.dump(_Payload(str(marker)), fh)
    # Tune's state, as its TuneFunctionEncoder writes what JSON cannot hold: a trial saved as failed.
    pickled = {"_type": "CLOUDPICKLE_FALLBACK", "value": pickle.dumps(_Payload(str(marker))).hex()}
    trial = {"trial_id": "a1", "status": "ERROR", "relative_logdir": "trial_a1", "config": {"lr": 0.01, "epochs": 1},
             "storage": pickled, "placement_group_factory": pickled}
    (folder / "experiment_state-2026-12-04_00-00-00.json").write_text(json.dumps({
        "trial_data": [[json.dumps(trial), json.dumps({"last_result": {"epoch": 1}, "error": pickled})]],
        "runner_data": {"_stopper": pickled}, "stats": {}}))
    return folder, marker


@pytest.mark.parametrize("command", [["export", "--format", "csv"], ["best"], ["features"], ["report", "-o", "{tmp}/r.html"],
                                     ["predict", "{tmp}/rows.csv"]])
def test_reading_someone_elses_folder_runs_none_of_its_code(tmp_path, command):
    folder, marker = _crafted_experiment(tmp_path)
    (tmp_path / "rows.csv").write_text("f0,f1\n1.0,2.0\n")
    argv = [part.format(tmp=tmp_path) for part in command]
    code, out, err = results_cli(argv[0], str(folder), *argv[1:])
    assert not marker.exists(), f"{argv[0]} ran code from the folder"  # before: export/best/... unpickled the state
    assert code in (0, 2), err
    if argv[0] == "predict":
        assert code == 2
    if argv[0] == "export":
        assert code == 0 and "a1" in out
        (row,) = [line for line in out.splitlines() if line.startswith("a1,")]
        assert ",failed," in row, out  # Tune's saved status was read, not only the trial's folder


def test_load_model_refuses_a_crafted_checkpoint_before_it_runs(tmp_path):
    from search.results import ResultsError
    from search.results.model import load_model

    folder, marker = _crafted_experiment(tmp_path)
    with pytest.raises(ResultsError, match="beyond weights.*refused"):
        load_model(folder, model=torch.nn.Linear(2, 2))
    assert not marker.exists()  # before: torch.load(weights_only=False) ran it, then said "not a checkpoint"
