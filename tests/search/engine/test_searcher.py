"""Trials ASHA stops are PRUNED in Optuna, with intermediate values by epoch (no cluster needed)."""

from __future__ import annotations

from types import SimpleNamespace

import optuna
import pytest

from search.engine.scheduler import PruningASHA
from search.engine.searcher import PruningAwareOptunaSearch
from search.spec import FloatParam
from search.spec.space import DefineByRun

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
    from search.engine.searcher import warm_start

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


@pytest.mark.parametrize(("max_t", "grace", "rf", "brackets"), [
    (30, 2, 1.5, 1),   # fractional milestones 4.5, 6.75, 10.125, ... are judged at 5, 7, 11, ...
    (27, 1, 3, 1),     # 3 * 3.0 ** 2 is 27.000000000000004: still 27, the end, not a cut
    (20, 1, 2, 2),     # a second bracket starts one rung later
    (9, 3, 3, 1),
])
def test_the_rungs_the_spec_names_are_where_ray_asha_judges(max_t, grace, rf, brackets):
    from ray.tune.schedulers.async_hyperband import _Bracket

    from search.spec import SchedulerSpec

    ours = SchedulerSpec(type="asha", grace_period=grace, reduction_factor=rf, brackets=brackets).rungs(max_t)
    # Ray's own milestones, then the epochs at which a trial reporting every epoch first meets each one.
    milestones = {m for s in range(brackets) for m, _ in _Bracket(grace, max_t, rf, s)._rungs}
    judged = {next(e for e in range(1, max_t + 1) if e >= m - 1e-9) for m in milestones if m <= max_t}
    assert ours == tuple(sorted(e for e in judged if e < max_t))
    assert ours and all(isinstance(e, int) for e in ours)

    # And ASHA really stops a trial there: the worst of several trials is cut at the first rung and not before.
    sched = PruningASHA(None, metric="acc", mode="max", max_t=max_t, grace_period=grace, reduction_factor=rf,
                        brackets=1)
    trials = [SimpleNamespace(trial_id=f"t{i}", config={"epochs": max_t}) for i in range(6)]
    for t in trials:
        sched.on_trial_add(None, t)
    first = SchedulerSpec(type="asha", grace_period=grace, reduction_factor=rf).rungs(max_t)[0]
    decisions = {}
    for epoch in range(1, first + 1):
        for i, t in enumerate(trials):
            if t.trial_id not in decisions:
                if sched.on_trial_result(None, t, {"acc": 1 - i / 10, "epoch": epoch}) == "STOP":
                    decisions[t.trial_id] = epoch
    assert decisions and set(decisions.values()) == {first}


def test_asha_rungs_survive_a_restore_from_the_pickled_tuner(searcher):
    import pickle

    sched = PruningASHA(searcher, metric="acc", mode="max", max_t=8, grace_period=1, reduction_factor=2)

    def trial(tid):
        return SimpleNamespace(trial_id=tid, config={"epochs": 8})

    for tid, acc in (("a", 0.8), ("b", 0.9)):
        searcher.suggest(tid)
        sched.on_trial_add(None, trial(tid))
        for epoch in (1, 2):
            searcher.on_trial_result(tid, {"acc": acc, "epoch": epoch})
            assert sched.on_trial_result(None, trial(tid), {"acc": acc, "epoch": epoch}) == "CONTINUE"

    # Tuner.restore unpickles searcher and scheduler from one tuner.pkl (written when the run
    # started, so rungs empty); Tune then restores the searcher's own state from searcher-state.
    fresh = PruningASHA(searcher, metric="acc", mode="max", max_t=8, grace_period=1, reduction_factor=2)
    saved_study = pickle.dumps(searcher.__dict__)
    restored_searcher, restored = pickle.loads(pickle.dumps((searcher, fresh)))
    restored_searcher.__dict__.update(pickle.loads(saved_study))
    assert restored.searcher is restored_searcher
    assert all(not recorded for _, recorded in restored._brackets[0]._rungs)

    # A weak new trial is judged against the rungs of before the restore: cut at its first rung.
    restored_searcher.suggest("c")
    restored.on_trial_add(None, trial("c"))
    assert restored.on_trial_result(None, trial("c"), {"acc": 0.1, "epoch": 1}) == "STOP"
    assert restored.pruned == {"c": 1}
    rungs = {milestone: dict(recorded) for milestone, recorded in restored._brackets[0]._rungs}
    assert rungs[1.0] == {"a": 0.8, "b": 0.9, "c": 0.1} and rungs[2.0] == {"a": 0.8, "b": 0.9}


def test_asha_rungs_survive_a_restore_in_the_bracket_each_trial_was_drawn_into(searcher, monkeypatch):
    import pickle

    import numpy as np

    # Ray's ASHA draws each trial's bracket with np.random: seeded, so both brackets get trials every time
    # (unseeded, all 12 now and then landed in one and the check below failed).
    monkeypatch.setattr(np, "random", np.random.RandomState(0), raising=True)

    def trial(tid):
        return SimpleNamespace(trial_id=tid, config={"epochs": 9})

    sched = PruningASHA(searcher, metric="acc", mode="max", max_t=9, grace_period=1, reduction_factor=3, brackets=2)
    for n in range(12):
        tid = f"t{n}"
        searcher.suggest(tid)
        sched.on_trial_add(None, trial(tid))
        for epoch in (1, 2, 3):
            searcher.on_trial_result(tid, {"acc": 0.5 + n / 100, "epoch": epoch})
            sched.on_trial_result(None, trial(tid), {"acc": 0.5 + n / 100, "epoch": epoch})
    before = [{m: dict(r) for m, r in bracket._rungs} for bracket in sched._brackets]
    assert all(any(rungs.values()) for rungs in before)  # ASHA drew trials into both brackets

    fresh = PruningASHA(searcher, metric="acc", mode="max", max_t=9, grace_period=1, reduction_factor=3, brackets=2)
    restored_searcher, restored = pickle.loads(pickle.dumps((searcher, fresh)))
    restored.rebuild_rungs()
    assert [{m: dict(r) for m, r in bracket._rungs} for bracket in restored._brackets] == before


# ------------------------------------------------------------ several objectives
@pytest.fixture
def two_objectives() -> PruningAwareOptunaSearch:
    return PruningAwareOptunaSearch(space=DefineByRun({"lr": FloatParam(type="float", low=0.1, high=0.2)}),
                                    metric=["acc", "features"], mode=["max", "min"],
                                    sampler=optuna.samplers.RandomSampler(seed=0))


def test_two_objectives_are_told_from_the_same_epoch_the_latest_of_tied_best(two_objectives):
    s = two_objectives
    s.record_rung_metric("loss")  # as PruningASHA(metric="loss") does
    s.suggest("a")
    # acc peaks at epochs 2 and 3 (a tie): the values told are epoch 3's, the checkpoint Ray keeps.
    for epoch, acc, features in ((1, 0.6, 20), (2, 0.8, 9), (3, 0.8, 6), (4, 0.7, 3)):
        s.on_trial_result("a", {"acc": acc, "features": features, "loss": 1.0 / epoch, "epoch": epoch})
    s.on_trial_complete("a", {"acc": 0.7, "features": 3, "epoch": 4})
    (trial,) = s._ot_study.get_trials(deepcopy=False)
    assert trial.state is optuna.trial.TrialState.COMPLETE and trial.values == [0.8, 6]
    assert trial.intermediate_values == {}  # a multi-objective study takes none (Trial.report refuses)
    assert s.rung_values() == {"a": {1: 1.0, 2: 0.5, 3: pytest.approx(1 / 3), 4: 0.25}}  # ASHA's metric, by epoch


def test_a_trial_cut_by_asha_enters_a_two_objective_study_pruned_with_its_values_kept(two_objectives):
    s = two_objectives
    sched = PruningASHA(s, metric="loss", mode="min", max_t=8, grace_period=1, reduction_factor=2)
    assert sched._metric == "loss"  # ASHA cuts on the metric the spec names, not on the objectives
    for tid in ("good", "bad"):
        s.suggest(tid)
    s.on_trial_result("good", {"acc": 0.9, "features": 5, "loss": 0.1, "epoch": 1})
    s.on_trial_complete("good", {"acc": 0.9, "features": 5, "loss": 0.1, "epoch": 1})
    s.on_trial_result("bad", {"acc": 0.5, "features": 30, "loss": 0.9, "epoch": 1})
    s.mark_pruned("bad")
    s.on_trial_complete("bad", {"acc": 0.55, "features": 28, "loss": 0.8, "epoch": 2})
    good, bad = s._ot_study.get_trials(deepcopy=False)
    assert good.state is optuna.trial.TrialState.COMPLETE and good.values == [0.9, 5]
    assert bad.state is optuna.trial.TrialState.PRUNED and bad.values is None
    assert bad.user_attrs == {"values_at_cut": {"acc": 0.55, "features": 28.0}, "epoch_at_cut": 2, "cut_by": "asha"}
    assert [t.number for t in s._ot_study.best_trials] == [0]  # the front holds completed trials only
    # After a resume, ASHA's rungs are rebuilt from what the searcher kept of its metric.
    fresh = PruningASHA(s, metric="loss", mode="min", max_t=8, grace_period=1, reduction_factor=2)
    assert fresh.rebuild_rungs() >= 2
    recorded = dict(fresh._brackets[0]._rungs)[1]
    assert recorded == {"good": -0.1, "bad": -0.9}  # ASHA stores metric_op * value (min: negated)


def test_a_trial_missing_an_objective_is_told_fail_not_left_running(two_objectives):
    s = two_objectives
    s.suggest("x")
    s.on_trial_result("x", {"acc": 0.7, "epoch": 1})
    s.on_trial_complete("x", {"acc": 0.7, "epoch": 1})
    (trial,) = s._ot_study.get_trials(deepcopy=False)
    assert trial.state is optuna.trial.TrialState.FAIL


def test_a_two_objective_warm_start_tells_both_values(two_objectives):
    from search.engine.searcher import warm_start

    distributions = {"lr": optuna.distributions.FloatDistribution(0.1, 0.2)}
    earlier = optuna.create_study(directions=["maximize", "minimize"])
    earlier.add_trial(optuna.trial.create_trial(params={"lr": 0.15}, distributions=distributions, values=[0.9, 4]))
    earlier.add_trial(optuna.trial.create_trial(params={"lr": 0.12}, distributions=distributions,
                                                state=optuna.trial.TrialState.PRUNED))
    two_objectives.suggest("warm-up")  # the study exists once the searcher has been asked
    assert warm_start(two_objectives, earlier, distributions) == (2, 0)
    told = [t for t in two_objectives._ot_study.get_trials(deepcopy=False) if t.state.is_finished()]
    assert [(t.state.name, t.values) for t in told] == [("COMPLETE", [0.9, 4.0]), ("PRUNED", None)]


def test_nsga2_drives_a_two_objective_search_from_its_completed_trials():
    """`sampler: nsga2` builds Optuna's NSGA-II; after its first generation it breeds from the front."""
    from search.spec.registry import build_sampler

    sampler = build_sampler("nsga2", 0, {"population_size": 4})
    assert isinstance(sampler, optuna.samplers.NSGAIISampler)
    s = PruningAwareOptunaSearch(space=DefineByRun({"lr": FloatParam(type="float", low=0.0, high=1.0)}),
                                 metric=["acc", "features"], mode=["max", "min"], sampler=sampler)
    # acc rises with lr, features fall as lr drops: every trial is on the front of a trade-off.
    for n in range(12):
        tid = f"t{n}"
        lr = s.suggest(tid)["lr"]
        s.on_trial_result(tid, {"acc": lr, "features": 10 * lr, "epoch": 1})
        s.on_trial_complete(tid, {"acc": lr, "features": 10 * lr, "epoch": 1})
    trials = s._ot_study.get_trials(deepcopy=False)
    assert len(trials) == 12 and all(t.state is optuna.trial.TrialState.COMPLETE for t in trials)
    assert [t.values for t in trials] == [[t.params["lr"], 10 * t.params["lr"]] for t in trials]
    assert {t.system_attrs.get("NSGAIISampler:generation") for t in trials} >= {0, 1}  # past its first generation
    assert len(s._ot_study.best_trials) == 12  # a pure trade-off: the whole study is the front


def test_the_journal_is_written_with_no_lock_file_in_the_experiment_folder(searcher, tmp_path, monkeypatch):
    """Tune copies the folder on a thread while the searcher writes: a lock file there was copied as a plain file.

    The listing is taken inside Optuna's write, under its lock: the moment Tune's copy could see a lock.
    """
    import contextlib

    from optuna.storages.journal import _file

    seen: list[set[str]] = []
    locked = _file.get_lock_file

    @contextlib.contextmanager
    def listed_while_locked(lock):
        with locked(lock):
            seen.append({p.name for p in tmp_path.iterdir()})
            yield

    monkeypatch.setattr(_file, "get_lock_file", listed_while_locked)
    searcher.suggest("a")
    searcher.on_trial_result("a", {"acc": 0.5, "epoch": 1})
    searcher.save(str(tmp_path / "searcher-state.pkl"))
    searcher.on_trial_complete("a", {"acc": 0.6, "epoch": 2})
    searcher.save(str(tmp_path / "searcher-state.pkl"))
    assert len(seen) >= 3  # the study, the trial and its values, its end: each a write
    assert all(names <= {"searcher-state.pkl", "optuna.journal"} for names in seen), seen
    assert sorted(p.name for p in tmp_path.iterdir()) == ["optuna.journal", "searcher-state.pkl"]


def test_a_copy_taken_during_a_journal_write_opens_for_writing_at_once(searcher, tmp_path, monkeypatch):
    """Tune's sync copies the staging folder into storage with pyarrow while the searcher writes (placed here
    inside a write); a user then writes to the stored journal with Optuna's defaults (optuna-dashboard's notes,
    ``load_study(...).set_user_attr``), which waited 30 s for a copied lock file."""
    import contextlib
    import time

    import pyarrow.fs
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend, _file

    staging, stored = tmp_path / "driver_artifacts", tmp_path / "storage"
    staging.mkdir()
    stored.mkdir()
    locked = _file.get_lock_file
    copies: list[int] = []

    @contextlib.contextmanager
    def copied_while_locked(lock):
        with locked(lock):
            if not copies:  # as Ray's storage copies (create_dir, then copy_files)
                pyarrow.fs.copy_files(str(staging), str(stored))
                copies.append(1)
            yield

    monkeypatch.setattr(_file, "get_lock_file", copied_while_locked)
    searcher.suggest("a")
    searcher.on_trial_complete("a", {"acc": 0.6, "epoch": 2})
    searcher.save(str(staging / "searcher-state.pkl"))
    monkeypatch.setattr(_file, "get_lock_file", locked)
    pyarrow.fs.copy_files(str(staging), str(stored))  # the next sync: the journal, whatever was copied before stays
    assert sorted(p.name for p in stored.iterdir()) == ["optuna.journal", "searcher-state.pkl"]
    study = optuna.load_study(study_name=searcher._ot_study.study_name,
                              storage=JournalStorage(JournalFileBackend(str(stored / "optuna.journal"))))
    started = time.monotonic()
    study.set_user_attr("note", "read by a person")
    assert time.monotonic() - started < 5
    assert study.trials[0].value == 0.6 and study.user_attrs == {"note": "read by a person"}
