"""Epochs a killed driver never told the searcher are told on resume (issue 22, item 9): no cluster needed."""

from __future__ import annotations

import json
from types import SimpleNamespace

import optuna
import pytest

from search.engine.recovery import Repair, _catch_up_searcher
from search.engine.scheduler import PruningASHA
from search.engine.searcher import PruningAwareOptunaSearch
from search.spec import FloatParam
from search.spec.space import DefineByRun

optuna.logging.set_verbosity(optuna.logging.WARNING)


def _searcher() -> PruningAwareOptunaSearch:
    return PruningAwareOptunaSearch(space=DefineByRun({"lr": FloatParam(type="float", low=0.1, high=0.2)}),
                                    metric="acc", mode="max", sampler=optuna.samplers.RandomSampler(seed=0))


def _restored(path) -> PruningAwareOptunaSearch:
    fresh = _searcher()
    fresh.restore(str(path))
    return fresh


@pytest.mark.parametrize("asha", [False, True])
def test_epochs_reported_after_the_last_save_reach_the_searcher_and_asha(tmp_path, asha):
    searcher = _searcher()
    if asha:
        PruningASHA(searcher, metric="acc", mode="max", max_t=8, grace_period=1, reduction_factor=2)
    searcher.suggest("t1")
    for epoch, acc in ((1, 0.5), (2, 0.6)):  # what the searcher heard before its last save
        searcher.on_trial_result("t1", {"acc": acc, "epoch": epoch})
    state = tmp_path / "searcher-state-2026-12-04_00-00-00.pkl"
    searcher.save(str(state))
    # The driver went on (result.json has epochs 3 and 4; epoch 3 is the trial's best), then was killed.
    (tmp_path / "trial_t1").mkdir()
    rows = [{"acc": a, "epoch": e, "trial_id": "t1"} for e, a in ((1, 0.5), (2, 0.6), (3, 0.9), (4, 0.7))]
    (tmp_path / "trial_t1" / "result.json").write_text("".join(json.dumps(r) + "\n" for r in rows) + '{"acc": 0.')
    repair = Repair()
    assert _catch_up_searcher(tmp_path, ["t1"], repair) == state.name
    assert repair.caught_up == {"t1": 2} and "told the searcher 2 epoch(s)" in repair.lines()[0]
    fresh = _restored(state)
    assert fresh._best["t1"] == 0.9  # before: 0.6, so Optuna's value would not equal the table's best
    frozen = fresh._ot_study.get_trials(deepcopy=False)[0]
    assert frozen.intermediate_values == {1: 0.5, 2: 0.6, 3: 0.9, 4: 0.7}
    if asha:  # ASHA's rungs are rebuilt from this record after a resume
        assert fresh.rung_values()["t1"] == {1: 0.5, 2: 0.6, 3: 0.9, 4: 0.7}
    fresh.on_trial_complete("t1", {"acc": 0.7, "epoch": 4})
    assert fresh._ot_study.get_trials(deepcopy=False)[0].value == 0.9
    # A second resume tells nothing again (idempotent per epoch) and rewrites nothing.
    assert _catch_up_searcher(tmp_path, ["t1"], Repair()) is None


def test_finished_trials_and_unknown_ones_are_left_alone(tmp_path):
    searcher = _searcher()
    searcher.suggest("done")
    searcher.on_trial_complete("done", {"acc": 0.4, "epoch": 1})
    state = tmp_path / "searcher-state-x.pkl"
    searcher.save(str(state))
    (tmp_path / "trial_done").mkdir()
    (tmp_path / "trial_done" / "result.json").write_text(json.dumps({"acc": 0.99, "epoch": 2}) + "\n")
    assert _catch_up_searcher(tmp_path, ["done", "never_asked"], Repair()) is None
    assert _restored(state)._ot_study.get_trials(deepcopy=False)[0].value == 0.4


def test_the_journal_follows_trials_whose_attributes_are_set_at_their_end(tmp_path):
    """A trial written while running, then cut by ASHA (its cut_by attribute set at its end), then more saves:
    every save brings the journal up to the study (a stale entry once made Optuna refuse it, and the journal
    stopped being written for the rest of the run)."""
    from search.results.searcher_state import load_journal_study

    searcher = _searcher()
    for tid in ("a", "b"):
        searcher.suggest(tid)
        searcher.on_trial_result(tid, {"acc": 0.5, "epoch": 1})
    state = str(tmp_path / "searcher-state-x.pkl")
    searcher.save(state)  # both written while running
    searcher.mark_pruned("a")
    searcher.on_trial_complete("a", {"acc": 0.4, "epoch": 2})
    searcher.save(state)
    searcher.on_trial_complete("b", {"acc": 0.9, "epoch": 2})
    searcher.save(state)
    assert not searcher.__dict__.get("_journal_warned")
    journal = {t.user_attrs["trial_id"]: t for t in load_journal_study(tmp_path).get_trials(deepcopy=False)}
    assert journal["a"].state is optuna.trial.TrialState.PRUNED and journal["a"].user_attrs["cut_by"] == "asha"
    assert journal["b"].state is optuna.trial.TrialState.COMPLETE and journal["b"].value == 0.9
