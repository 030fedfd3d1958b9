"""``unfinished_trials``: what an interrupted run left to do, read from Tune's saved state as plain JSON.

The state file is written here with Tune's own encoder (``TuneFunctionEncoder``), as ``TuneController``
writes it: each trial's JSON state in ``trial_data``, objects Tune cannot write as JSON cloudpickled in place.
Reading it must count the trials without unpickling anything (the old reader, Ray's ``ExperimentAnalysis``,
unpickled every trial and read every trial's results: about 45 kB a trial of the driver's memory at the end
of every run, and a pickle run).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from search.engine.run import unfinished_trials
from search.experiment import Experiment
from search.internals import InternalsError

STATE = "experiment_state-2026-12-05_10-00-00.json"


class _Touch:
    """Unpickling this creates ``marker``: the test of "nothing in the file is unpickled"."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):  # noqa: ANN204 - pickle's protocol
        return Path.touch, (Path(self.marker),)


def _state(statuses: dict[str, str], marker: Path) -> str:
    """An experiment state as Tune writes it, each trial and the runner data holding a pickled ``_Touch``."""
    from ray.tune.utils.serialization import TuneFunctionEncoder

    trials = [[json.dumps({"trial_id": tid, "status": status, "relative_logdir": f"trial_{tid}", "config": {"lr": 0.01},
                           "storage": _Touch(str(marker))}, cls=TuneFunctionEncoder),
               json.dumps({"last_result": {"epoch": 2, "extra": _Touch(str(marker))}}, cls=TuneFunctionEncoder)]
              for tid, status in statuses.items()]
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
    assert not marker.exists()


def test_reads_the_newest_state_file(tmp_path: Path) -> None:
    marker = tmp_path / "unpickled"
    (tmp_path / "experiment_state-2026-12-05_09-00-00.json").write_text(_state({"a": "RUNNING"}, marker))
    (tmp_path / STATE).write_text(_state({"a": "TERMINATED", "b": "TERMINATED"}, marker))
    assert unfinished_trials(Experiment.at(tmp_path), num_samples=2) == 0


def test_no_state_saved_means_every_trial_is_left(tmp_path: Path) -> None:
    assert unfinished_trials(Experiment.at(tmp_path), num_samples=5) == 5


def test_a_state_not_laid_out_as_ray_writes_it_is_named(tmp_path: Path) -> None:
    (tmp_path / STATE).write_text(json.dumps({"trial_data": [[json.dumps({"trial_id": "a"}), "{}"]]}))
    with pytest.raises(InternalsError, match=rf"trial_data\[\*\] trial_id/status/relative_logdir in {STATE} is not "):
        unfinished_trials(Experiment.at(tmp_path), num_samples=1)


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
