"""A killed driver's results that never reached storage, taken back from its staging copy on resume."""

from __future__ import annotations

import json
from pathlib import Path

from search.engine.recovery import Repair, _recover_unsynced_rows


def _rows(trial_id: str, epochs: range) -> list[str]:
    return [json.dumps({"epoch": e, "score": float(e), "trial_id": trial_id,
                        "checkpoint_dir_name": f"checkpoint_{e - 1:06d}"}) + "\n" for e in epochs]


def _csv(epochs: range) -> list[str]:
    return ["epoch,score\n", *(f"{e},{float(e)}\n" for e in epochs)]


def _experiment(tmp_path: Path, stored: list[str], staged: list[str], trial_id: str = "a") -> tuple[Path, Path]:
    """An experiment folder (storage) and a killed session whose driver staged the same experiment."""
    experiment = tmp_path / "results" / "exp"
    (experiment / f"trial_{trial_id}").mkdir(parents=True)
    (experiment / f"trial_{trial_id}" / "result.json").write_text("".join(stored))
    session = tmp_path / "session_2026-12-05_05-12-15_114797_10547"
    staging = session / "artifacts" / "2026-12-05_05-11-29" / "exp" / "driver_artifacts" / f"trial_{trial_id}"
    staging.mkdir(parents=True)
    (staging / "result.json").write_text("".join(staged))
    return experiment, session


def test_the_rows_a_killed_driver_never_synced_are_appended_from_its_staging_copy(tmp_path):
    cut_short = '{"epoch": 2, "sco'  # the last line a kill cut short mid-copy
    experiment, session = _experiment(tmp_path, [*_rows("a", range(1, 2)), cut_short], _rows("a", range(1, 4)))
    (experiment / "trial_a" / "progress.csv").write_text("".join(_csv(range(1, 2))))
    staging = next(session.glob("artifacts/*/exp/driver_artifacts/trial_a"))
    (staging / "progress.csv").write_text("".join(_csv(range(1, 4))))
    repair = Repair()
    _recover_unsynced_rows(experiment, session, ["a"], repair)
    rows = [json.loads(line) for line in (experiment / "trial_a" / "result.json").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2, 3]
    assert (experiment / "trial_a" / "progress.csv").read_text() == "".join(_csv(range(1, 4)))
    assert repair.recovered == {"a": 2}
    assert repair.rewritten == ["trial_a/result.json", "trial_a/progress.csv"]
    assert repair.lines() == ["trial a: 2 result row(s) the killed driver never synced to storage, "
                              "taken from its staging folder"]


def test_a_staging_copy_that_does_not_continue_storage_or_holds_another_trials_rows_is_left_alone(tmp_path):
    # Storage has a row the staging copy does not begin with (another run wrote it): not this file's continuation.
    experiment, session = _experiment(tmp_path, _rows("a", range(5, 6)), _rows("a", range(1, 4)))
    before = (experiment / "trial_a" / "result.json").read_text()
    repair = Repair()
    _recover_unsynced_rows(experiment, session, ["a"], repair)
    assert (experiment / "trial_a" / "result.json").read_text() == before and not repair.recovered

    # The staging copy continues storage's file, but with another trial's rows (a crafted or mixed-up folder).
    other = tmp_path / "other"
    mixed = [*_rows("a", range(1, 2)), *_rows("b", range(2, 3))]
    experiment, session = _experiment(other, _rows("a", range(1, 2)), mixed)
    before = (experiment / "trial_a" / "result.json").read_text()
    _recover_unsynced_rows(experiment, session, ["a"], repair)
    assert (experiment / "trial_a" / "result.json").read_text() == before and not repair.recovered
    # A trial the saved state does not know is not touched either.
    experiment, session = _experiment(tmp_path / "third", _rows("a", range(1, 2)), _rows("a", range(1, 3)))
    _recover_unsynced_rows(experiment, session, ["z"], repair)
    assert len((experiment / "trial_a" / "result.json").read_text().splitlines()) == 1 and not repair.recovered


def test_a_trial_moved_forward_names_its_next_checkpoint_past_the_folders_there(tmp_path):
    from ray.train._internal.storage import StorageContext
    from ray.tune.utils.serialization import TuneFunctionEncoder, _loads_with_cloudpickle

    from search.internals import raise_next_checkpoint_index

    storage = StorageContext(storage_path=str(tmp_path), experiment_dir_name="exp", trial_dir_name="trial_a")
    storage.current_checkpoint_index = 0  # the saved state named checkpoint_000000 as the latest
    saved = json.dumps({"trial_id": "a", "status": "RUNNING", "storage": storage}, cls=TuneFunctionEncoder)
    raised = raise_next_checkpoint_index(saved, 3)  # checkpoint_000001 and _000002 are in the folder
    assert raised is not None
    state = _loads_with_cloudpickle(raised)
    assert state["storage"].current_checkpoint_index == 2 and state["trial_id"] == "a"  # the next: checkpoint_000003
    assert raise_next_checkpoint_index(raised, 3) is None  # already past them: left as it is
    assert raise_next_checkpoint_index(saved, 1) is None


def test_a_finished_trial_whose_last_rows_a_kill_left_behind_gets_them_back_on_resume(tmp_path):
    """The snapshot copies the staging folder file by file: a SIGKILL mid-copy can leave storage with the new
    state (the trial TERMINATED, the study COMPLETE) beside the trial's old result.json, and a finished trial is
    never rerun. Its rows are taken from the staging copy too, so the table ends it where the study does."""
    from search.engine.recovery import repair_saved_state

    experiment, session = _experiment(tmp_path, _rows("done", range(1, 3)), _rows("done", range(1, 5)), "done")
    state = {"trial_data": [[json.dumps({"trial_id": "done", "status": "TERMINATED"}), "{}"]],
             "runner_data": {}, "stats": {}}
    (experiment / "experiment_state-2026-12-05_05-11-29.json").write_text(json.dumps(state))
    repair = repair_saved_state(experiment, killed_session=session)
    rows = [json.loads(line) for line in (experiment / "trial_done" / "result.json").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2, 3, 4] and repair.recovered == {"done": 2}
    assert not repair.repointed  # a finished trial is not moved
    # Without the killed session's folder (resumed elsewhere), nothing is taken.
    experiment, session = _experiment(tmp_path / "elsewhere", _rows("done", range(1, 3)), _rows("done", range(1, 5)),
                                      "done")
    (experiment / "experiment_state-2026-12-05_05-11-29.json").write_text(json.dumps(state))
    assert not repair_saved_state(experiment).recovered
    assert len((experiment / "trial_done" / "result.json").read_text().splitlines()) == 2


def test_checkpoints_force_a_snapshot_at_most_once_per_interval():
    """Tune forces an experiment snapshot after every num_to_keep checkpoints of a trial (ten a second with two
    trials of 0.1 s epochs); inside spaced_forced_snapshots it still comes after num_to_keep, but not sooner than
    the interval after the last snapshot, and Tune's own behaviour is back outside it."""
    import time

    from ray.tune.execution.experiment_state import _ExperimentCheckpointManager

    from search.internals import spaced_forced_snapshots

    def manager(synced_ago: float) -> _ExperimentCheckpointManager:
        made = _ExperimentCheckpointManager(storage=None, checkpoint_period=10, sync_every_n_trial_checkpoints=2)
        made._last_sync_time = time.monotonic() - synced_ago
        return made

    trial = "trial_a"
    with spaced_forced_snapshots(2.0):
        recent = manager(synced_ago=0.0)
        recent.on_trial_checkpoint(trial)
        recent.on_trial_checkpoint(trial)
        assert not recent._should_force_sync_up  # num_to_keep checkpoints, but a snapshot came 0 s ago
        recent._last_sync_time -= 2.5
        recent.on_trial_checkpoint(trial)
        assert recent._should_force_sync_up  # the interval has passed: the next checkpoint forces it
        one = manager(synced_ago=5.0)
        one.on_trial_checkpoint(trial)
        assert not one._should_force_sync_up  # fewer than num_to_keep checkpoints: Tune's own rule
    with spaced_forced_snapshots(0.0):
        as_tune = manager(synced_ago=0.0)
        as_tune.on_trial_checkpoint(trial)
        as_tune.on_trial_checkpoint(trial)
        assert as_tune._should_force_sync_up
    outside = manager(synced_ago=0.0)
    outside.on_trial_checkpoint(trial)
    outside.on_trial_checkpoint(trial)
    assert outside._should_force_sync_up
