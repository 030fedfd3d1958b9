"""Copies of Optuna's journal lock that an earlier run's sync left in the folder are removed on resume."""

from __future__ import annotations

import os
import time

import optuna
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend

from search.engine.recovery import repair_saved_state


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


def test_a_copy_taken_at_the_first_write_or_while_optuna_released_its_lock_is_removed_too(tmp_path):
    _journal(tmp_path)
    (tmp_path / "optuna.journal.lock").touch()  # the journal was empty when the copy was made
    renamed = "optuna.journal.lock67cb0092-1fbe-4713-9f3c-2b8e0a7d1c55.rename"  # JournalFileSymlinkLock.release
    (tmp_path / renamed).write_text('{"op_code": 0}\n')
    assert sorted(repair_saved_state(tmp_path).removed_files) == ["optuna.journal.lock", renamed]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["optuna.journal"]
