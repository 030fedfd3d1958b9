"""The refit's imports made while the search's last trials run (``search.engine.warmup``)."""

from __future__ import annotations

import pickle
import sys
from types import SimpleNamespace

import pytest

from search.engine.warmup import RefitWarmup, refit_warmup
from search.spec import Spec

BASE = {"name": "w", "trainable": "feature_selection", "data": {"name": "breast_cancer"}, "metric": "val_accuracy",
        "mode": "max", "space": {"lr": {"type": "float", "low": 1e-3, "high": 1e-2}}, "search": {"num_samples": 4}}


def _trials(*statuses: str) -> list[SimpleNamespace]:
    return [SimpleNamespace(status=s) for s in statuses]


@pytest.fixture
def marker_modules(tmp_path, monkeypatch):
    """Two modules that record their import in a file, and a name that does not import."""
    imported = tmp_path / "imported.txt"
    for name in ("warm_first_mod", "warm_second_mod"):
        (tmp_path / f"{name}.py").write_text(f"open({str(imported)!r}, 'a').write('{name}\\n')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield imported
    for name in ("warm_first_mod", "warm_second_mod"):
        sys.modules.pop(name, None)


def test_it_imports_once_every_trial_has_started_and_a_slot_came_free(marker_modules):
    warmup = RefitWarmup(4, ["warm_first_mod", "warm_second_mod"])
    warmup.on_trial_complete(0, _trials("TERMINATED", "RUNNING", "RUNNING"), None)  # trials still to come
    warmup.on_trial_complete(0, _trials("TERMINATED", "RUNNING", "RUNNING", "PENDING"), None)  # one waits for a slot
    assert warmup.thread is None and not marker_modules.exists()
    warmup.on_trial_error(0, _trials("TERMINATED", "ERROR", "RUNNING", "TERMINATED"), None)
    warmup.thread.join(30)
    assert marker_modules.read_text() == "warm_first_mod\nwarm_second_mod\n"
    first = warmup.thread
    warmup.on_trial_complete(0, _trials("TERMINATED", "TERMINATED", "TERMINATED", "TERMINATED"), None)
    assert warmup.thread is first  # once


def test_a_module_that_fails_to_import_stops_the_warmup_quietly(marker_modules):
    warmup = RefitWarmup(1, ["no_such_module_anywhere_x", "warm_first_mod"])
    warmup.on_trial_complete(0, _trials("TERMINATED"), None)
    warmup.thread.join(30)
    assert not marker_modules.exists()  # what follows a failed import is left to the refit itself


def test_it_pickles_with_the_run_without_its_thread(marker_modules):
    warmup = RefitWarmup(1, ["warm_first_mod"])
    warmup.on_trial_complete(0, _trials("TERMINATED"), None)
    warmup.thread.join(30)
    restored = pickle.loads(pickle.dumps(warmup))
    assert restored.thread is None and restored._modules == ("warm_first_mod",)


def test_runs_followed_by_a_refit_get_it_with_the_trainables_training_modules():
    (warmup,) = refit_warmup(Spec.model_validate(BASE))
    assert warmup._modules == ("torch", "torch._dynamo", "trainables.task_training")
    assert warmup._num_samples == 4
    assert refit_warmup(Spec.model_validate({**BASE, "refit": False})) == []
    assert refit_warmup(Spec.model_validate({**BASE, "search": {"num_samples": 1}})) == []  # no slot comes free


def test_a_users_trainable_without_a_refit_function_gets_none_and_one_with_it_gets_torch(tmp_path):
    (tmp_path / "warm_user_trainable.py").write_text("def train(config):\n    pass\n")
    (tmp_path / "warm_user_refitting.py").write_text("def train(config):\n    pass\n\n"
                                                     "def refit(config, data, epochs, out_dir):\n    pass\n\n"
                                                     "train.refit = refit\n")
    try:
        plain = Spec.model_validate({**BASE, "trainable": "warm_user_trainable:train"})
        assert refit_warmup(plain, (str(tmp_path),)) == []
        refitting = Spec.model_validate({**BASE, "trainable": "warm_user_refitting:train"})
        (warmup,) = refit_warmup(refitting, (str(tmp_path),))
        assert warmup._modules == ("torch", "torch._dynamo")
    finally:
        for name in ("warm_user_trainable", "warm_user_refitting"):
            sys.modules.pop(name, None)
