"""MO-ASHA: with several objectives, a rung ranks trials by Pareto front and crowding distance.

The fast tests drive the scheduler directly with stand-in trials (no cluster); the last one
runs a tiny two-objective search on the shared local Ray.
"""

from __future__ import annotations

import copy
import math
import pickle
import textwrap
from types import SimpleNamespace

import optuna
import pytest

from search.engine.scheduler import PruningASHA, continues_at_rung, crowding_distances, pareto_fronts, rung_ranks
from search.engine.searcher import PruningAwareOptunaSearch
from search.spec import CategoricalParam
from search.spec.models import Spec
from search.spec.space import DefineByRun

optuna.logging.set_verbosity(optuna.logging.WARNING)

INF = math.inf
OBJECTIVES = (("acc", "max"), ("features", "min"))

# Five trials at a rung, signed larger-is-better (features negated). A, B, C trade accuracy for
# features (none dominates another); C dominates E; E (and all of A, B, C) dominate D.
A, B, C, D, E = (0.90, -40.0), (0.85, -5.0), (0.88, -30.0), (0.80, -45.0), (0.86, -35.0)


# ------------------------------------------------------------------ (a) the ranking
def test_non_dominated_sorting_puts_each_point_in_its_front():
    assert pareto_fronts([A, B, C, D, E]) == [0, 0, 0, 2, 1]
    assert pareto_fronts([A, A]) == [0, 0]  # equal points do not dominate each other
    assert pareto_fronts([(1.0,), (3.0,), (2.0,)]) == [2, 0, 1]  # one objective: fronts are the order


def test_crowding_distance_by_hand():
    # Front {A, B, C}: the ends of each axis are infinite; C's gaps are (0.90 - 0.85) / 0.05 on
    # accuracy and (-5 - -40) / 35 on features: 1 + 1.
    assert crowding_distances([A, B, C]) == pytest.approx([INF, INF, 2.0])
    # Four points: P2's gaps are (3 - 1) / 3 and (0 - -3) / 4, P3's (4 - 1.5) / 3 and (-1 - -4) / 4.
    assert crowding_distances([(1, 0), (1.5, -1), (3, -3), (4, -4)]) == pytest.approx([INF, 17 / 12, 19 / 12, INF])
    # Twins get one distance, whichever came first; an axis where all are equal adds nothing.
    twins = crowding_distances([(1, 0), (2, -1), (2, -1), (3, -3)])
    assert twins[1] == twins[2] == pytest.approx((3 - 1) / 2 + (0 - -3) / 3)
    assert crowding_distances([(1, 5), (2, 5), (3, 5)]) == pytest.approx([INF, 1.0, INF])
    assert crowding_distances([(1, 5)]) == [0.0] and crowding_distances([]) == []


def test_rank_is_front_then_larger_crowding_distance():
    # A and B (the ends of front 0) tie ahead of C; E (front 1) and D (front 2) follow.
    assert rung_ranks([A, B, C, D, E]) == [0, 0, 2, 4, 3]
    # In the four-point front, P3 is less crowded than P2, so it ranks ahead of it.
    assert rung_ranks([(1, 0), (1.5, -1), (3, -3), (4, -4)]) == [0, 3, 2, 0]


def test_the_rung_rule_with_few_values_recorded():
    assert continues_at_rung([], D, 3)  # the first at a rung always goes on (Ray: no cutoff yet)
    assert not continues_at_rung([A], D, 3)  # one other, which dominates it
    assert continues_at_rung([A], B, 3)  # one other, neither dominates: a tie, and ties go on
    assert continues_at_rung([D], D, 3)  # equal to the only other: a tie
    # Two others (η = 3): (n - 1) / η = 1/3 rounds to 0: only a trial none ranks ahead of goes on.
    assert continues_at_rung([D, E], B, 3) and not continues_at_rung([A, B], C, 3)
    # Two others (η = 2): 1/2 rounds up to 1: one may be ahead (Ray: the cutoff is their midpoint).
    assert continues_at_rung([C, D], E, 2) and not continues_at_rung([A, B], D, 2)  # E: C ahead
    # Four others (η = 2): 3/2 rounds to 2: C, with A and B ahead of it, goes on; E (3 ahead) not.
    assert continues_at_rung([A, B, D, E], C, 2) and not continues_at_rung([A, B, C, D], E, 2)
    # Three others (η = 3): 2/3 rounds to 1: E, behind C only, goes on; D, behind C and E, not.
    worst = (0.50, -50.0)
    assert continues_at_rung([C, D, worst], E, 3) and not continues_at_rung([C, E, worst], D, 3)


@pytest.mark.parametrize("rf", [1.5, 2, 3, 4])
def test_with_one_objective_the_rule_is_rays_own_cutoff_on_ranks(rf):
    from ray.tune.schedulers.async_hyperband import _Bracket

    ray = _Bracket(1, 100, rf, 0)
    for others in range(1, 12):
        values = list(range(others + 1))  # evenly spaced: Ray's interpolated cutoff is a rank's
        for position in range(others + 1):
            rest = [v for i, v in enumerate(values) if i != position]
            expected = values[position] >= ray.cutoff({str(i): v for i, v in enumerate(rest)})
            assert continues_at_rung([(v,) for v in rest], (values[position],), rf) == expected, (others, position)
            ahead = others - position  # the closed form of the docstring
            assert expected == (ahead <= math.floor((others - 1) / rf + 0.5))


# ------------------------------------------------------ (b), (c) the scheduler itself
def two_objective_searcher() -> PruningAwareOptunaSearch:
    return PruningAwareOptunaSearch(space=DefineByRun({"kind": CategoricalParam(type="categorical", choices=["x"])}),
                                    metric=["acc", "features"], mode=["max", "min"],
                                    sampler=optuna.samplers.RandomSampler(seed=0))


@pytest.fixture
def searcher() -> PruningAwareOptunaSearch:
    return two_objective_searcher()


def trial(tid: str) -> SimpleNamespace:
    return SimpleNamespace(trial_id=tid, config={"epochs": 4})


#: (trial, accuracy, features) in the order they reach the first rung (epoch 1).
ARRIVALS = (("dense", 0.90, 40), ("sparse", 0.85, 5), ("dominated", 0.80, 45))


def reach_first_rung(searcher: PruningAwareOptunaSearch, sched: PruningASHA) -> dict[str, str]:
    """Each trial's decision at epoch 1, told to the searcher the way Tune does."""
    decisions = {}
    for tid, acc, features in ARRIVALS:
        searcher.suggest(tid)
        sched.on_trial_add(None, trial(tid))
        result = {"acc": acc, "features": features, "epoch": 1}
        decisions[tid] = sched.on_trial_result(None, trial(tid), result)
        if decisions[tid] == "CONTINUE":
            searcher.on_trial_result(tid, result)
        else:  # Tune skips on_trial_result for a stopped trial's last result and completes it
            searcher.on_trial_complete(tid, result)
            sched.on_trial_complete(None, trial(tid), result)
    return decisions


def mo_asha(searcher: PruningAwareOptunaSearch | None) -> PruningASHA:
    return PruningASHA(searcher, objectives=OBJECTIVES, max_t=4, grace_period=1, reduction_factor=2)


def test_single_metric_asha_starves_the_sparse_trial_that_mo_asha_keeps(searcher):
    single = PruningASHA(searcher, metric="acc", mode="max", max_t=4, grace_period=1, reduction_factor=2)
    assert reach_first_rung(searcher, single) == {"dense": "CONTINUE", "sparse": "STOP", "dominated": "STOP"}

    other = two_objective_searcher()
    sched = mo_asha(other)
    assert sched.objectives == OBJECTIVES
    # The sparse trial is on the front with the dense one (fewer features, a little less
    # accurate): it goes on. The dominated one is cut by both.
    assert reach_first_rung(other, sched) == {"dense": "CONTINUE", "sparse": "CONTINUE", "dominated": "STOP"}
    assert dict(sched._brackets[0]._rungs)[1] == {"dense": (0.90, -40.0), "sparse": (0.85, -5.0),
                                                  "dominated": (0.80, -45.0)}


def test_cut_trials_are_marked_pruned_and_told_pruned(searcher):
    sched = mo_asha(searcher)
    reach_first_rung(searcher, sched)
    assert sched.pruned == {"dominated": 1} and searcher._pruned == {"dominated"}
    for epoch in (2, 3):  # the two on the front go on to the next rung (epoch 2), both kept again
        for tid, acc, features in ARRIVALS[:2]:
            result = {"acc": acc, "features": features, "epoch": epoch}
            assert sched.on_trial_result(None, trial(tid), result) == "CONTINUE"
    # Epoch 4 is max_t: a STOP, but the end, not a cut.
    assert sched.on_trial_result(None, trial("sparse"), {"acc": 0.86, "features": 5, "epoch": 4}) == "STOP"
    searcher.on_trial_complete("sparse", {"acc": 0.86, "features": 5, "epoch": 4})
    assert sched.pruned == {"dominated": 1}
    by_number = {t.number: t for t in searcher._ot_study.get_trials(deepcopy=False)}
    assert by_number[2].state is optuna.trial.TrialState.PRUNED  # dominated
    assert by_number[2].user_attrs["values_at_cut"] == {"acc": 0.80, "features": 45.0}
    assert by_number[1].state is optuna.trial.TrialState.COMPLETE and by_number[1].values == [0.86, 5.0]


def test_a_trial_missing_an_objective_is_not_judged():
    sched = mo_asha(None)
    for tid in ("a", "b"):
        sched.on_trial_add(None, trial(tid))
    for epoch in (1, 2):
        sched.on_trial_result(None, trial("a"), {"acc": 0.9, "features": 3, "epoch": epoch})
    assert sched.on_trial_result(None, trial("b"), {"acc": 0.1, "epoch": 1}) == "CONTINUE"  # as Ray without its metric
    assert sched.on_trial_result(None, trial("b"), {"acc": 0.1, "features": math.nan, "epoch": 1}) == "CONTINUE"
    assert "b" not in dict(sched._brackets[0]._rungs)[1]  # not recorded: judged at its next finite result
    # Which is at epoch 2, the rung of epoch 2 (as Ray's bracket judges at the highest milestone reached).
    assert sched.on_trial_result(None, trial("b"), {"acc": 0.1, "features": 9, "epoch": 2}) == "STOP"
    assert dict(sched._brackets[0]._rungs)[2] == {"a": (0.9, -3.0), "b": (0.1, -9.0)}


def test_an_explicit_scheduler_metric_keeps_the_single_metric_cut():
    two = {"name": "t", "metric": ["val_accuracy", "num_selected"], "mode": ["max", "min"]}
    assert Spec.model_validate(two).scheduler_objectives == (("val_accuracy", "max"), ("num_selected", "min"))
    chosen = Spec.model_validate({**two, "scheduler": {"metric": "val_task_loss", "mode": "min"}})
    assert chosen.scheduler_objectives == (("val_task_loss", "min"),)
    assert Spec.model_validate({"name": "t", "metric": "val_accuracy", "mode": "max"}).scheduler_objectives == (
        ("val_accuracy", "max"),)
    with pytest.raises(ValueError, match="not both"):
        PruningASHA(None, objectives=OBJECTIVES, metric="acc", mode="max")


# ---------------------------------------------------------------- (d) after a resume
def test_rungs_rebuilt_after_a_pickle_round_trip_give_the_same_decision(searcher):
    sched = mo_asha(searcher)
    fresh = mo_asha(searcher)  # what tuner.pkl holds: the scheduler as the run started, rungs empty
    reach_first_rung(searcher, sched)
    assert searcher.rung_points()["sparse"] == {1: {"acc": 0.85, "features": 5.0}}

    # Tuner.restore unpickles searcher and scheduler from tuner.pkl, then restores the
    # searcher's own state (searcher-state-*.pkl: its __dict__) over it.
    saved_state = pickle.dumps(searcher.__dict__)
    restored_searcher, restored = pickle.loads(pickle.dumps((searcher, fresh)))
    restored_searcher.__dict__.update(pickle.loads(saved_state))
    assert restored.searcher is restored_searcher and restored.objectives == OBJECTIVES

    # A new trial on the front but crowded between dense and sparse (2 ahead of it, η = 2):
    # cut against the rung as it was; an empty rung would have let it go on.
    newcomer = {"acc": 0.86, "features": 30, "epoch": 1}
    before = copy.deepcopy(sched)
    before.on_trial_add(None, trial("middle"))
    restored_searcher.suggest("middle")
    restored.on_trial_add(None, trial("middle"))
    assert before.on_trial_result(None, trial("middle"), newcomer) == "STOP"
    assert restored.on_trial_result(None, trial("middle"), newcomer) == "STOP"
    assert restored.pruned == {"middle": 1} and "middle" in restored_searcher._pruned
    assert [dict(r) for _, r in restored._brackets[0]._rungs] == [dict(r) for _, r in before._brackets[0]._rungs]
    empty = mo_asha(None)
    empty.on_trial_add(None, trial("middle"))
    assert empty.on_trial_result(None, trial("middle"), newcomer) == "CONTINUE"


def test_states_saved_before_mo_asha_still_load_and_rebuild(searcher):
    # A searcher pickled before it kept every objective: no _rung_objectives, no _rung_points.
    old = pickle.loads(pickle.dumps(searcher))
    for key in ("_rung_objectives", "_rung_points"):
        del old.__dict__[key]
    old.suggest("a")
    old.on_trial_result("a", {"acc": 0.5, "features": 3, "epoch": 1})
    assert old.rung_points() == {}
    assert mo_asha(old).rebuild_rungs() == 0
    # A scheduler pickled before (no _objectives) stays single-metric ASHA after the restore.
    single = PruningASHA(searcher, metric="acc", mode="max", max_t=4, grace_period=1, reduction_factor=2)
    del single.__dict__["_objectives"]
    restored = pickle.loads(pickle.dumps(single))
    assert restored.objectives == ()
    restored.on_trial_add(None, trial("a"))
    assert restored.on_trial_result(None, trial("a"), {"acc": 0.5, "epoch": 1}) == "CONTINUE"


# ------------------------------------------------------------- (e) a real tiny search
TRAINABLE = '''
KINDS = {"dense": (0.90, 40), "sparse": (0.85, 5), "dominated": (0.80, 45)}

def train(config, report):
    accuracy, selected = KINDS[config["kind"]]
    for epoch in range(1, config["epochs"] + 1):
        report({"epoch": epoch, "val_accuracy": accuracy + epoch / 1000, "num_selected": selected})
'''

SPEC = """
name: moasha
trainable: moasha_trainable:train
metric: [val_accuracy, num_selected]
mode: [max, min]
search:
  num_samples: 3
  sampler: random
  seed: 0
  max_concurrent_trials: 1
  points_to_evaluate: [{kind: dense}, {kind: sparse}, {kind: dominated}]
scheduler: {type: asha, grace_period: 1, reduction_factor: 2}
space: {kind: {type: categorical, choices: [dense, sparse, dominated]}}
fixed: {epochs: 3}
failure: {max_retries: 0}
"""


@pytest.mark.ray
def test_a_two_objective_search_keeps_the_sparse_trial_and_prunes_the_dominated_one(ray_cluster, tmp_path):
    from search.engine.run import RunOptions, run_experiment
    from search.results.searcher_state import load_study
    from search.spec import load_spec

    # One trial at a time, in the order of points_to_evaluate: dense sets the rung, sparse
    # (less accurate, 8x fewer features) joins its front, dominated is worse on both.
    (tmp_path / "moasha_trainable.py").write_text(TRAINABLE)
    path = tmp_path / "space.yaml"
    path.write_text(textwrap.dedent(SPEC) + f"storage: {tmp_path / 'results'}\n")
    outcome = run_experiment(load_spec(path), RunOptions(spec_path=path))
    assert not outcome.results.errors
    kinds = {tid: ot.params["kind"] for tid, ot in outcome.searcher._ot_trials.items()}
    assert {kinds[tid]: epoch for tid, epoch in outcome.pruned.items()} == {"dominated": 1}
    # The decision path: the searcher kept both objectives by epoch for the rungs.
    points = {kinds[tid]: by_epoch for tid, by_epoch in outcome.searcher.rung_points().items()}
    assert sorted(points["sparse"]) == [1, 2, 3] and points["sparse"][1] == {"val_accuracy": 0.851, "num_selected": 5}
    assert sorted(points["dominated"]) == [1]
    study = load_study(outcome.path)  # the study as saved in the experiment folder
    states = {t.params["kind"]: t.state for t in study.trials}
    assert states == {"dense": optuna.trial.TrialState.COMPLETE, "sparse": optuna.trial.TrialState.COMPLETE,
                      "dominated": optuna.trial.TrialState.PRUNED}
