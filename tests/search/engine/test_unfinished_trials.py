"""Tune's saved experiment state read as plain JSON (``search.results.tune_state``), and ``unfinished_trials``,
what an interrupted run left to do, counted from it.

The state file is written here with Tune's own encoder (``TuneFunctionEncoder``), as ``TuneController``
writes it: each trial's JSON state in ``trial_data``, objects Tune cannot write as JSON cloudpickled in place.
Reading it must count the trials without unpickling anything (the old reader, Ray's ``ExperimentAnalysis``,
unpickled every trial and read every trial's results: about 30-43 kB a trial of the driver's memory at the
end of every run, and a pickle run).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from search.engine.run import unfinished_trials
from search.experiment import Experiment
from search.results.tune_state import TuneStateError, saved_trials

STATE = "experiment_state-2026-12-05_10-00-00.json"
REPO = Path(__file__).resolve().parents[3]


class _Touch:
    """Unpickling this creates ``marker``: the test of "nothing in the file is unpickled"."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):  # noqa: ANN204 - pickle's protocol
        return Path.touch, (Path(self.marker),)


def _trial(tid: str, status: str, marker: Path, **fields) -> list[str]:
    from ray.tune.utils.serialization import TuneFunctionEncoder

    trial = {"trial_id": tid, "status": status, "relative_logdir": f"trial_{tid}", "config": {"lr": 0.01},
             "storage": _Touch(str(marker)), **fields}
    return [json.dumps(trial, cls=TuneFunctionEncoder),
            json.dumps({"last_result": {"epoch": 2, "extra": _Touch(str(marker))}}, cls=TuneFunctionEncoder)]


def _state(statuses: dict[str, str], marker: Path, extra: list | None = None) -> str:
    """An experiment state as Tune writes it, each trial and the runner data holding a pickled ``_Touch``."""
    from ray.tune.utils.serialization import TuneFunctionEncoder

    trials = [_trial(tid, status, marker) for tid, status in statuses.items()] + (extra or [])
    return json.dumps({"trial_data": trials, "runner_data": {"_stopper": _Touch(str(marker))}},
                      indent=2, cls=TuneFunctionEncoder)


STATUSES = {"a": "TERMINATED", "b": "ERROR", "c": "RUNNING", "d": "PENDING", "e": "PAUSED"}


def test_counts_open_trials_and_those_never_created_without_unpickling(tmp_path: Path) -> None:
    marker = tmp_path / "unpickled"
    (tmp_path / STATE).write_text(_state(STATUSES, marker))
    assert "CLOUDPICKLE_FALLBACK" in (tmp_path / STATE).read_text()  # the file does hold pickles
    experiment = Experiment.at(tmp_path)
    assert unfinished_trials(experiment, num_samples=8) == 3 + 3  # c, d, e open; 3 of 8 never created
    assert unfinished_trials(experiment, num_samples=8, budget_spent=True) == 3  # the budget ended it: none owed
    assert unfinished_trials(experiment, num_samples=4) == 3  # more trials saved than asked for: only the open
    first = saved_trials(str(tmp_path))[0]
    assert (first.trial_id, first.status, first.relative_logdir, first.config, first.last_result["epoch"]) \
        == ("a", "TERMINATED", "trial_a", {"lr": 0.01}, 2)
    assert first.last_result["extra"]["_type"] == "CLOUDPICKLE_FALLBACK"  # left as Tune wrote it
    assert not marker.exists()


def test_reads_the_newest_state_file(tmp_path: Path) -> None:
    marker = tmp_path / "unpickled"
    (tmp_path / "experiment_state-2026-12-05_09-00-00.json").write_text(_state({"a": "RUNNING"}, marker))
    (tmp_path / STATE).write_text(_state({"a": "TERMINATED", "b": "TERMINATED"}, marker))
    assert unfinished_trials(Experiment.at(tmp_path), num_samples=2) == 0


def test_no_state_saved_means_every_trial_is_left(tmp_path: Path) -> None:
    assert saved_trials(str(tmp_path)) is None and saved_trials(str(tmp_path / "absent")) is None
    assert unfinished_trials(Experiment.at(tmp_path), num_samples=5) == 5


def test_a_trial_saved_as_null_is_left_out_and_counted_as_never_created(tmp_path: Path) -> None:
    """Tune can save a trial as null (a snapshot racing a logger: docs/ray_optuna_notes.md)."""
    marker = tmp_path / "unpickled"
    (tmp_path / STATE).write_text(_state({"a": "TERMINATED"}, marker, extra=[[None, None]]))
    assert [t.trial_id for t in saved_trials(str(tmp_path))] == ["a"]
    assert unfinished_trials(Experiment.at(tmp_path), num_samples=2) == 1


@pytest.mark.parametrize("logdir", [None, "", "..", "../elsewhere", "/etc", "a/b", "a\\b"])
def test_a_trial_folder_that_is_not_a_plain_name_is_none(tmp_path: Path, logdir) -> None:
    """A state file from elsewhere must not point a reader at another folder (a trial never started has null)."""
    marker = tmp_path / "unpickled"
    (tmp_path / STATE).write_text(_state({}, marker, extra=[_trial("x", "PENDING", marker, relative_logdir=logdir)]))
    (trial,) = saved_trials(str(tmp_path))
    assert trial.relative_logdir is None and trial.status == "PENDING"


@pytest.mark.parametrize("text", ["{not json", json.dumps({"runner_data": {}}), json.dumps({"trial_data": [["{}", "{}"]]}),
                                  json.dumps({"trial_data": [[json.dumps([1]), "{}"]]})])
def test_a_damaged_state_is_named_and_counts_every_trial_as_left(tmp_path: Path, text: str) -> None:
    (tmp_path / STATE).write_text(text)
    with pytest.raises(TuneStateError, match=rf"Tune's experiment state {STATE} is damaged or not laid out as Ray"):
        saved_trials(str(tmp_path))
    assert unfinished_trials(Experiment.at(tmp_path), num_samples=3) == 3


def test_reading_a_state_imports_no_ray(tmp_path: Path) -> None:
    """The offline readers work with any Ray installed, or none: the state is read without Ray's names."""
    (tmp_path / STATE).write_text(_state(STATUSES, tmp_path / "unpickled"))
    code = ("import sys; from search.results.tune_state import saved_trials; "
            f"print(len(saved_trials({str(tmp_path)!r})), 'ray' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert done.stdout.split() == ["5", "False"], done.stderr


def test_reads_the_state_in_s3(s3_server, monkeypatch, tmp_path: Path) -> None:
    """A URI experiment's state is read in the bucket (before, any failure there counted as nothing left)."""
    for key, value in s3_server.env.items():
        monkeypatch.setenv(key, value)
    marker = tmp_path / "unpickled"
    with s3_server.filesystem().open_output_stream(f"{s3_server.bucket}/unfinished/exp/{STATE}") as out:
        out.write(_state(STATUSES, marker).encode())
    experiment = Experiment.at(f"s3://{s3_server.bucket}/unfinished/exp")
    assert unfinished_trials(experiment, num_samples=6) == 4
    assert unfinished_trials(Experiment.at(f"s3://{s3_server.bucket}/unfinished/none"), num_samples=6) == 6
    assert not marker.exists()
