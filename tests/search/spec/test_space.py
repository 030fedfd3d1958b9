"""Conversion of the spec's space to Optuna, checked against an in-memory study."""

from __future__ import annotations

import optuna
import pytest

from search.spec import CategoricalParam, FloatParam, IntParam
from search.spec.space import DefineByRun, describe, is_active, to_distribution

optuna.logging.set_verbosity(optuna.logging.WARNING)


def test_distributions_are_one_to_one_and_inclusive():
    assert to_distribution(FloatParam(type="float", low=1e-4, high=1e-1, log=True)) == \
        optuna.distributions.FloatDistribution(1e-4, 1e-1, log=True)
    assert to_distribution(IntParam(type="int", low=2, high=10, step=2)) == optuna.distributions.IntDistribution(2, 10, step=2)
    assert to_distribution(CategoricalParam(type="categorical", choices=["a", "b"])) == \
        optuna.distributions.CategoricalDistribution(["a", "b"])


def test_int_bounds_inclusive_on_both_sides():
    # Tune's randint excludes its upper bound; the spec (like Optuna) includes it.
    space = DefineByRun({"k": IntParam(type="int", low=1, high=3)})
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    study.optimize(lambda t: space(t) or 0.0, n_trials=60)
    assert {t.params["k"] for t in study.trials} == {1, 2, 3}


def test_define_by_run_respects_ranges_and_conditions():
    space = DefineByRun({
        "lr": FloatParam(type="float", low=1e-3, high=1e-1, log=True),
        "optimizer": CategoricalParam(type="categorical", choices=["adam", "sgd"]),
        "momentum": FloatParam(type="float", low=0.5, high=0.99, when={"optimizer": "sgd"}),
        "layers": IntParam(type="int", low=1, high=3, when={"optimizer": ["adam"]}),
    })
    study = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=1))
    study.optimize(lambda t: space(t) or 0.0, n_trials=30)
    for trial in study.trials:
        p = trial.params
        assert 1e-3 <= p["lr"] <= 1e-1
        assert ("momentum" in p) == (p["optimizer"] == "sgd")
        assert ("layers" in p) == (p["optimizer"] == "adam")
    assert {t.params["optimizer"] for t in study.trials} == {"adam", "sgd"}


def test_define_by_run_pickles_by_value():
    import pickle

    space = DefineByRun({"lr": FloatParam(type="float", low=0.1, high=0.2)})
    again = pickle.loads(pickle.dumps(space))
    assert again.distributions() == space.distributions()


@pytest.mark.parametrize(("when", "values", "active"), [
    ({"opt": "sgd"}, {"opt": "sgd"}, True),
    ({"opt": "sgd"}, {"opt": "adam"}, False),
    ({"opt": ["sgd", "rms"]}, {"opt": "rms"}, True),
    ({"opt": "sgd"}, {}, False),
])
def test_is_active(when, values, active):
    assert is_active(FloatParam(type="float", low=0, high=1, when=when), values) is active


def test_describe_mentions_log_and_condition():
    text = describe("m", FloatParam(type="float", low=0.5, high=0.9, log=False, when={"opt": "sgd"}))
    assert "float [0.5, 0.9]" in text and "only when opt == 'sgd'" in text
    assert "log" in describe("lr", FloatParam(type="float", low=1e-3, high=1e-1, log=True))
