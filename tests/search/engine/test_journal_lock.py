"""A copy of Optuna's journal lock that an earlier run's sync left in the folder is removed on resume."""

from __future__ import annotations

import os
import time

import optuna
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend

from search.engine.recovery import repair_saved_state
from search.experiment import journal_lock


def _journal(folder):
    storage = JournalStorage(JournalFileBackend(str(folder / "optuna.journal")))
    study = optuna.create_study(study_name="exp", storage=storage)
    study.enqueue_trial({"x": 1.0})
    return folder / "optuna.journal"


def test_resume_removes_the_copied_lock_and_optuna_then_writes_at_once(tmp_path):
    journal = _journal(tmp_path)
    (tmp_path / "optuna.journal.lock").write_bytes(journal.read_bytes())  # what pyarrow made of Optuna's symlink
    repair = repair_saved_state(tmp_path)
    assert not (tmp_path / "optuna.journal.lock").exists()
    assert repair.removed_files == ["optuna.journal.lock"]
    assert any("removed optuna.journal.lock: a copy of Optuna's journal lock" in line for line in repair.lines())
    study = optuna.load_study(study_name="exp", storage=JournalStorage(JournalFileBackend(str(journal))))
    started = time.monotonic()
    study.set_user_attr("after", "resume")
    assert time.monotonic() - started < 5 and study.user_attrs == {"after": "resume"}


def test_a_lock_optuna_holds_is_left_alone(tmp_path):
    journal = _journal(tmp_path)
    os.symlink(journal, tmp_path / "optuna.journal.lock")  # JournalFileSymlinkLock, held by a writer now
    assert repair_saved_state(tmp_path).removed_files == []
    assert (tmp_path / "optuna.journal.lock").is_symlink()
    (tmp_path / "optuna.journal.lock").unlink()
    (tmp_path / "optuna.journal.lock").touch()  # JournalFileOpenLock's empty file
    assert repair_saved_state(tmp_path).removed_files == []
    assert (tmp_path / "optuna.journal.lock").exists()


def test_the_lock_lies_outside_the_folder_one_per_journal(tmp_path):
    first, second = journal_lock(tmp_path / "a" / "optuna.journal"), journal_lock(tmp_path / "b" / "optuna.journal")
    assert first != second and tmp_path not in first.parents
    assert first == journal_lock(tmp_path / "a/../a/optuna.journal")
