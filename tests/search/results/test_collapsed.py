"""Collapsed trials (every gate closed, or no better than the majority class): never on the front, never picked.

A hand-written two-objective experiment folder (no Ray, no Tune state): two healthy trials, a
trial whose gates all closed (0 features at chance accuracy, which would otherwise dominate on
``num_selected``), one at the majority rate with every gate open, and a weak but live one.
"""

from __future__ import annotations

import json
from pathlib import Path

import optuna
import pytest
import yaml

from search.engine.searcher import PruningAwareOptunaSearch
from search.results import ResultsError, best_trial, feature_table, load_results, selection_matrix
from search.spec import FloatParam
from search.spec.space import DefineByRun
from tests.search.helpers import results_cli as cli
from trainables.tasks import majority_rate

FEATURES = [f"f{i}" for i in range(20)]
# trial -> (val_accuracy per epoch, selected features at each epoch's checkpoint)
TRIALS = {
    "a": ([0.70, 0.85], FEATURES[:6]),
    "b": ([0.72, 0.80], FEATURES[:3]),
    "c": ([0.50, 0.50], []),  # every gate closed
    "d": ([0.49, 0.50], FEATURES),  # every gate open, the majority rate
    "e": ([0.51, 0.52], FEATURES[10:]),  # weak, but above chance: live (dominated)
}


def _experiment(root: Path, metric: object = ("val_accuracy", "num_selected"), mode: object = ("max", "min"),
                trials: dict = TRIALS, losses: dict | None = None) -> Path:
    from search.spec import Spec

    spec = Spec.model_validate({"name": "fs", "trainable": "feature_selection", "metric": list(metric) if
                                isinstance(metric, tuple) else metric, "mode": list(mode) if isinstance(mode, tuple)
                                else mode, "scheduler": {"type": "none"}, "fixed": {"epochs": 2},
                                "space": {"lr": {"type": "float", "low": 0.001, "high": 0.1}}})
    path = root / "fs"
    path.mkdir()
    (path / "spec.yaml").write_text(yaml.safe_dump(spec.model_dump(mode="json"), sort_keys=False))
    for n, (trial_id, (accuracies, kept)) in enumerate(trials.items()):
        folder = path / f"trial_{trial_id}"
        folder.mkdir()
        (folder / "params.json").write_text(json.dumps({"lr": 0.01 * (n + 1), "epochs": 2}))
        rows = []
        for epoch, accuracy in enumerate(accuracies, start=1):
            name = f"checkpoint_{epoch - 1:06d}"
            (folder / name).mkdir()
            (folder / name / "selection.json").write_text(json.dumps({
                "feature_names": FEATURES, "selected": kept,
                "gate_probabilities": [0.9 if f in kept else 0.01 for f in FEATURES]}))
            rows.append({"epoch": epoch, "val_accuracy": accuracy, "val_loss": (losses or {}).get(trial_id, 1 - accuracy), "num_selected": len(kept),
                         "majority_rate": 0.5, "done": epoch == len(accuracies), "time_total_s": float(epoch),
                         "checkpoint_dir_name": name, "trial_id": trial_id})
        (folder / "result.json").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_collapsed_trials_are_named_in_the_table_and_kept_off_the_front(tmp_path):
    df = load_results(_experiment(tmp_path)).set_index("trial_id")
    assert df["outcome"].to_dict() == {"a": "completed", "b": "completed", "c": "collapsed", "d": "collapsed",
                                       "e": "completed"}
    assert df.at["c", "status"] == "collapsed: no feature kept at epoch 2"
    assert df.at["d", "status"] == ("collapsed: best validation accuracy 0.500, no better than the majority class "
                                    "(0.500)")
    # c (0 features) would dominate every trial on num_selected; collapsed, it is not on the front.
    assert df["pareto"].to_dict() == {"a": True, "b": True, "c": False, "d": False, "e": False}


def test_a_collapsed_trial_is_never_picked_and_best_says_why_a_rule_finds_none(tmp_path):
    path = _experiment(tmp_path)
    assert best_trial(path, tolerance=0.1).trial_id == "b"  # fewest features within 0.1 of 0.85
    with pytest.raises(ResultsError, match=r"no trial of the front has num_selected <= 1 \(the front's best is 3\); "
                                           r"loosen the limit; 1 collapsed trial\(s\) \(c: .*\) would meet it, but a "
                                           r"collapsed trial is never on the front or picked"):
        best_trial(path, limits={"num_selected": 1})
    code, out, err = cli("best", str(path), "--limit", "num_selected=1")
    assert code == 2 and out == "" and "collapsed trial(s) (c" in err
    code, out, _ = cli("best", str(path), "--limit", "num_selected=5")
    assert code == 0 and "picked trial b" in out


def test_one_objective_skips_collapsed_trials_and_says_so_when_all_collapsed(tmp_path):
    # val_loss: the collapsed trial c is given the lowest loss of all, yet it is never picked.
    trials = {**TRIALS, "c": ([0.50, 0.50], [])}
    path = _experiment(tmp_path, metric="val_loss", mode="min", trials=trials, losses={"c": 0.01})
    assert load_results(path)["trial_id"].iloc[0] == "c" and best_trial(path).trial_id == "a"
    only_dead = tmp_path / "dead"
    only_dead.mkdir()
    dead = _experiment(only_dead, metric="val_accuracy", mode="max", trials={k: TRIALS[k] for k in "cd"})
    with pytest.raises(ResultsError, match="collapsed .*nothing to pick"):
        best_trial(dead)
    code, _, err = cli("best", str(dead))
    assert code == 2 and "collapsed" in err


def test_features_lists_the_picked_trials_selection_and_its_stability_over_the_live_front(tmp_path):
    path = _experiment(tmp_path)
    df = feature_table(path)  # the spec has no select rule: the highest val_accuracy, a
    assert df.attrs["best_trial"] == "a" and df.attrs["top_trials"] == ["a", "b"]
    assert df["feature"].tolist() == FEATURES[:6] and df["selected"].all()
    assert df.set_index("feature")["selection_frequency"].to_dict() == {
        "f0": 1.0, "f1": 1.0, "f2": 1.0, "f3": 0.5, "f4": 0.5, "f5": 0.5}
    assert df.attrs["hidden"] == 14
    every = feature_table(path, all_features=True)
    assert len(every) == 20 and every.attrs["hidden"] == 0 and every["selection_frequency"].iloc[6:].eq(0).all()
    probs, selected = selection_matrix(path)
    assert list(probs.index) == ["a", "b"] and selected.shape == (2, 20)  # c and d (collapsed), e (off the front): out


def test_single_objective_stability_is_over_the_top_live_trials(tmp_path):
    path = _experiment(tmp_path, metric="val_accuracy", mode="max")
    probs, _ = selection_matrix(path, top_k=10)
    assert list(probs.index) == ["a", "b", "e"]  # best first; the collapsed c and d left out
    assert list(selection_matrix(path, top_k=2)[0].index) == ["a", "b"]


@pytest.mark.parametrize("multi", [False, True])
def test_the_searcher_tells_a_collapsed_trial_pruned(multi):
    metric, mode = (["val_accuracy", "num_selected"], ["max", "min"]) if multi else ("val_accuracy", "max")
    searcher = PruningAwareOptunaSearch(space=DefineByRun({"lr": FloatParam(type="float", low=0.1, high=0.2)}),
                                        metric=metric, mode=mode, sampler=optuna.samplers.RandomSampler(seed=0))
    runs = {"live": [(0.8, 5), (0.85, 4)], "closed": [(0.6, 3), (0.5, 0)],
            "chance": [(0.48, 20), (0.5, 20)], "open": [(0.55, 20), (0.52, 20)]}
    for trial_id, epochs in runs.items():
        searcher.suggest(trial_id)
        for epoch, (accuracy, kept) in enumerate(epochs, start=1):
            result = {"val_accuracy": accuracy, "num_selected": kept, "majority_rate": 0.5, "epoch": epoch}
            if epoch < len(epochs):
                searcher.on_trial_result(trial_id, result)
        searcher.on_trial_complete(trial_id, result)
    told = {t.number: t.state.name for t in searcher._ot_study.get_trials(deepcopy=False)}
    # closed: its best epoch by accuracy kept 3 features (several objectives: judged there; one objective: its last
    # result kept none). chance: never above the majority rate.
    assert told == {0: "COMPLETE", 1: "COMPLETE" if multi else "PRUNED", 2: "PRUNED", 3: "COMPLETE"}
    cut = {t.number: t.user_attrs.get("cut_by") for t in searcher._ot_study.get_trials(deepcopy=False)}
    assert cut[2] == "collapsed"  # not ASHA's cut: the offline readers tell them apart


def test_the_built_in_trainable_reports_the_majority_rate():
    import numpy as np

    from trainables.data import DataSplits

    x = np.zeros((4, 1), dtype=np.float32)
    splits = DataSplits(x, np.array([1, 1, 1, 0]), x, np.array([0, 1, 0, 0]), x[:0], np.array([], dtype=np.int64),
                        ("f",), ("no", "yes"), "toy")
    assert majority_rate(splits) == 0.25  # the train part's majority class (yes) on the validation rows
    from trainables.tasks import train_feature_selection

    assert "majority_rate" in train_feature_selection.metrics
