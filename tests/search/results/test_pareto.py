"""The Pareto front of a results table and the rules that pick one trial from it (no cluster needed)."""

from __future__ import annotations

import pandas as pd
import pytest

from search.results.pareto import PickError, describe_rule, pareto_mask, pick

OBJECTIVES = (("val_accuracy", "max"), ("num_selected", "min"))


def table(*rows: tuple[str, str, float, float]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["trial_id", "outcome", "best_val_accuracy", "best_num_selected"])


TABLE = table(
    ("a", "completed", 0.90, 30),
    ("b", "early_stopped", 0.89, 12),
    ("c", "completed", 0.85, 5),
    ("d", "completed", 0.84, 9),   # dominated by c
    ("e", "pruned", 0.95, 2),      # cut by ASHA: never on the front, however good its values look
    ("f", "threshold", 0.89, 12),  # ties b on both: neither dominates the other
    ("g", "completed", float("nan"), 3),
    ("h", "failed", 0.99, 1),
)


def test_the_front_is_the_non_dominated_finished_trials():
    front = pareto_mask(TABLE, OBJECTIVES)
    assert TABLE["trial_id"][front].tolist() == ["a", "b", "c", "f"]


def test_the_rules_pick_by_tolerance_limits_or_the_first_objective():
    front = TABLE[pareto_mask(TABLE, OBJECTIVES)]
    chosen = lambda **rule: front.loc[pick(front, OBJECTIVES, **rule), "trial_id"]  # noqa: E731
    assert chosen() == "a"  # no rule: the best first objective
    assert chosen(tolerance=0.01) == "b"  # fewest features within 0.01 of 0.90 (b and f tie: lower id)
    assert chosen(tolerance=0.05) == "c"
    assert chosen(limits={"num_selected": 10}) == "c"  # the best accuracy with at most 10 features
    assert chosen(limits={"val_accuracy": 0.86}, tolerance=1.0) == "b"  # at least 0.86, then fewest features
    with pytest.raises(PickError, match=r"no trial of the front has num_selected <= 3 \(the front's best is 5\)"):
        chosen(limits={"num_selected": 3})
    with pytest.raises(PickError, match="limit on loss: not an objective"):
        chosen(limits={"loss": 1.0})


def test_the_rule_in_words():
    assert describe_rule(OBJECTIVES, 0.01, {}) == "fewest num_selected within 0.01 of the best val_accuracy"
    assert describe_rule(OBJECTIVES, None, {"num_selected": 25}) == "num_selected <= 25; then highest val_accuracy"
