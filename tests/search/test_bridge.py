"""Trials ASHA stops are PRUNED in Optuna, with intermediate values by epoch (no cluster needed)."""

from __future__ import annotations

from types import SimpleNamespace

import optuna
import pytest

from search.bridge import PruningASHA, PruningAwareOptunaSearch
from search.space import DefineByRun
from search.spec import FloatParam

optuna.logging.set_verbosity(optuna.logging.WARNING)


@pytest.fixture
def searcher() -> PruningAwareOptunaSearch:
    return PruningAwareOptunaSearch(space=DefineByRun({"lr": FloatParam(type="float", low=0.1, high=0.2)}),
                                    metric="acc", mode="max", sampler=optuna.samplers.RandomSampler(seed=0))


def states(searcher: PruningAwareOptunaSearch) -> dict[int, optuna.trial.FrozenTrial]:
    return {t.number: t for t in searcher._ot_study.get_trials(deepcopy=False)}


def test_pruned_completed_and_diverged_are_told_apart(searcher):
    for tid in ("a", "b", "c", "d"):
        searcher.suggest(tid)
    searcher.on_trial_result("a", {"acc": 0.5, "epoch": 1})
    searcher.mark_pruned("a")
    searcher.on_trial_complete("a", {"acc": 0.55, "epoch": 2})  # last result skipped on_trial_result
    for epoch, acc in ((1, 0.6), (2, 0.7), (3, 0.8)):
        searcher.on_trial_result("b", {"acc": acc, "epoch": epoch, "training_iteration": epoch + 10})
    searcher.on_trial_complete("b", {"acc": 0.8, "epoch": 3})
    searcher.on_trial_complete("c", {"acc": float("nan"), "epoch": 1})
    searcher.on_trial_result("d", {"acc": 0.4, "epoch": 1})
    searcher.on_trial_complete("d", {"acc": 0.3, "epoch": 2, "stop_reason": "diverged"})
    trials = states(searcher)
    assert trials[0].state is optuna.trial.TrialState.PRUNED
    assert trials[0].intermediate_values == {1: 0.5, 2: 0.55}
    assert trials[1].state is optuna.trial.TrialState.COMPLETE and trials[1].value == 0.8
    assert trials[1].intermediate_values == {1: 0.6, 2: 0.7, 3: 0.8}  # by epoch, not training_iteration
    # Diverged trials are told as PRUNED, not FAIL: TPE ignores failures but ranks pruned
    # trials below completed ones, so it learns to avoid the region.
    assert trials[2].state is optuna.trial.TrialState.PRUNED
    assert trials[3].state is optuna.trial.TrialState.PRUNED and trials[3].intermediate_values == {1: 0.4, 2: 0.3}


def test_error_is_fail(searcher):
    searcher.suggest("x")
    searcher.on_trial_complete("x", None, error=True)
    assert states(searcher)[0].state is optuna.trial.TrialState.FAIL


def test_asha_marks_only_real_cuts(searcher):
    sched = PruningASHA(searcher, metric="acc", mode="max", max_t=8, grace_period=1, reduction_factor=2)

    def trial(tid, epochs=8):
        return SimpleNamespace(trial_id=tid, config={"epochs": epochs})

    for tid in ("good", "bad", "early", "short"):
        searcher.suggest(tid)
        sched.on_trial_add(None, trial(tid, epochs=1 if tid == "short" else 8))
    assert sched.on_trial_result(None, trial("good"), {"acc": 0.9, "epoch": 1}) == "CONTINUE"
    assert sched.on_trial_result(None, trial("bad"), {"acc": 0.1, "epoch": 1}) == "STOP"
    # The trainable's own early stop, or the trial's last planned epoch, is not a cut.
    assert sched.on_trial_result(None, trial("early"), {"acc": 0.05, "epoch": 1, "stop_reason": "early_stopping"}) == "STOP"
    assert sched.on_trial_result(None, trial("short", epochs=1), {"acc": 0.01, "epoch": 1}) == "STOP"
    assert sched.pruned == {"bad": 1}
    assert searcher._pruned == {"bad"}


def test_searcher_state_survives_save_and_restore(searcher, tmp_path):
    searcher.suggest("a")
    searcher.mark_pruned("a")
    searcher.save(str(tmp_path / "s.pkl"))
    fresh = PruningAwareOptunaSearch(space=DefineByRun({"lr": FloatParam(type="float", low=0.1, high=0.2)}),
                                     metric="acc", mode="max")
    fresh.restore(str(tmp_path / "s.pkl"))
    assert fresh._pruned == {"a"} and "a" in fresh._ot_trials


def test_warm_start_adds_finished_trials_that_fit_the_new_space(searcher):
    from search.bridge import warm_start

    earlier = optuna.create_study(direction="maximize")
    dist = {"lr": optuna.distributions.FloatDistribution(0.0, 1.0)}
    for lr, state in ((0.15, "COMPLETE"), (0.12, "PRUNED"), (0.9, "COMPLETE"), (0.11, "FAIL")):
        earlier.add_trial(optuna.trial.create_trial(
            params={"lr": lr}, distributions=dist, state=optuna.trial.TrialState[state],
            value=lr if state == "COMPLETE" else None, intermediate_values={1: lr}))
    added, skipped = warm_start(searcher, earlier, searcher._space.distributions())
    assert (added, skipped) == (2, 1)  # 0.9 is outside [0.1, 0.2]; FAIL is not a finished trial
    told = searcher._ot_study.get_trials(deepcopy=False)
    assert [(t.params["lr"], t.state.name) for t in told] == [(0.15, "COMPLETE"), (0.12, "PRUNED")]
    searcher.suggest("new")
    assert searcher._ot_trials["new"].number == 2  # numbering continues after the earlier trials
