"""Richer ``when`` conditions (issue 26, item 5): int parents and comparisons, as Optuna's per-layer examples need."""

from __future__ import annotations

import optuna
import pytest

from search.spec import IntParam, load_spec
from search.spec.conditions import holds
from search.spec.errors import SpecError
from search.spec.space import DefineByRun, describe, is_active

optuna.logging.set_verbosity(optuna.logging.WARNING)

PER_LAYER = """
name: layers
trainable: layers_fn:train
fixed: {epochs: 2}
space:
  n_layers: {type: int, low: 1, high: 3}
  n_units_l0: {type: int, low: 4, high: 128, log: true}
  n_units_l1: {type: int, low: 4, high: 128, log: true, when: {n_layers: {ge: 2}}}
  n_units_l2: {type: int, low: 4, high: 128, log: true, when: {n_layers: {ge: 3}}}
  optimizer: {type: categorical, choices: [Adam, RMSprop, SGD]}
  momentum: {type: float, low: 0.0, high: 0.99, when: {optimizer: {ne: Adam}, n_layers: [1, 3]}}
  lr: {type: float, low: 1.0e-5, high: 1.0e-1, log: true}
  warmup: {type: int, low: 0, high: 5, when: {lr: {gt: 1.0e-3, le: 1.0e-2}}}
"""


@pytest.fixture(autouse=True)
def _trainable(tmp_path):
    (tmp_path / "layers_fn.py").write_text("def train(config, report):\n    pass\n")  # declares no config keys


def _problems(write_spec, text: str) -> str:
    with pytest.raises(SpecError) as info:
        load_spec(write_spec(text))
    return str(info.value)


def test_an_int_parent_with_ge_samples_each_layer_only_when_there_are_that_many(write_spec):
    spec = load_spec(write_spec(PER_LAYER))
    space = DefineByRun(spec.space)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    study.optimize(lambda t: space(t) or 0.0, n_trials=80)
    for trial in study.trials:
        p = trial.params
        assert ("n_units_l1" in p) == (p["n_layers"] >= 2), p
        assert ("n_units_l2" in p) == (p["n_layers"] >= 3), p
        assert ("momentum" in p) == (p["optimizer"] != "Adam" and p["n_layers"] in (1, 3)), p
        assert ("warmup" in p) == (1e-3 < p["lr"] <= 1e-2), p
    assert {t.params["n_layers"] for t in study.trials} == {1, 2, 3}
    assert any("warmup" in t.params for t in study.trials) and any("n_units_l2" in t.params for t in study.trials)


def test_the_plan_says_each_condition():
    param = IntParam(type="int", low=4, high=128, when={"n_layers": {"ge": 2}, "optimizer": ["Adam", "SGD"]})
    assert "only when n_layers >= 2 and optimizer in ['Adam', 'SGD']" in describe("n_units_l1", param)
    assert "only when opt == 'sgd'" in describe("m", IntParam(type="int", low=1, high=2, when={"opt": "sgd"}))


@pytest.mark.parametrize(("condition", "value", "expected"), [
    ({"ge": 2}, 2, True), ({"ge": 2}, 1, False), ({"gt": 1, "lt": 3}, 2, True), ({"gt": 1, "lt": 3}, 3, False),
    ({"ne": "Adam"}, "SGD", True), ({"in": [1, 3]}, 2, False), (3, 3, True), ([1, 3], 1, True),
    ({"lt": 2}, "two", False),  # unlike types: does not hold, never a TypeError
])
def test_holds(condition, value, expected):
    assert holds(condition, value) is expected


def test_an_inactive_parent_makes_its_children_inactive():
    param = IntParam(type="int", low=1, high=2, when={"n_layers": {"ge": 2}})
    assert not is_active(param, {})


def test_bad_conditions_are_each_located_and_explained(write_spec):
    text = _problems(write_spec, """
        name: t
        trainable: layers_fn:train
        fixed: {epochs: 2}
        space:
          n_layers: {type: int, low: 1, high: 3}
          optimizer: {type: categorical, choices: [Adam, SGD]}
          lr: {type: float, low: 1.0e-4, high: 1.0e-1, log: true}
          a: {type: int, low: 1, high: 2, when: {n_layers: {gte: 2}}}
          b: {type: int, low: 1, high: 2, when: {optimizer: {ge: Adam}}}
          c: {type: int, low: 1, high: 2, when: {n_layers: {ge: two}}}
          d: {type: int, low: 1, high: 2, when: {n_layers: {in: 2}}}
          e: {type: int, low: 1, high: 2, when: {lr: 0.01}}
          f: {type: int, low: 1, high: 2, when: {n_layers: {eq: 1.5}}}
          g: {type: int, low: 1, high: 2, when: {later: {ge: 1}}}
          later: {type: int, low: 1, high: 2}
          h: {type: int, low: 1, high: 2, when: {optimizer: {in: [Adam, Adagrad]}}}
    """)
    assert "space.a.when.n_layers: unknown operator 'gte'" in text and "did you mean" in text
    assert "space.b.when.optimizer: 'ge' compares numbers, and 'optimizer' is categorical" in text
    assert "space.c.when.n_layers: 'two' is not a number" in text
    assert "space.d.when.n_layers: 'in' takes a list of values" in text
    assert "space.e.when.lr: conditions must refer to a categorical parameter, an int one, or compare a float" in text
    assert "space.f.when.n_layers: 1.5 is not a whole number" in text
    assert "space.g.when.later: condition on 'later', which must be declared before 'g'" in text
    assert "space.h.when.optimizer: 'Adagrad' is not one of 'optimizer''s choices" in text


def test_a_conditional_int_parameter_is_exported_as_an_int(tmp_path):
    """End to end on a hand-written experiment folder: the trial with n_layers 1 has no ``k``."""
    import json

    import yaml

    from search.results import load_results
    from search.results.export import render_table
    from search.spec import Spec

    spec = Spec.model_validate({"name": "fake", "trainable": "my_module:train", "metric": "score", "mode": "max",
                                "scheduler": {"type": "none"}, "fixed": {"epochs": 2},
                                "space": {"n_layers": {"type": "int", "low": 1, "high": 3},
                                          "k": {"type": "int", "low": 4, "high": 128, "when": {"n_layers": {"ge": 2}}}}})
    path = tmp_path / "fake"
    path.mkdir()
    (path / "spec.yaml").write_text(yaml.safe_dump(spec.model_dump(mode="json"), sort_keys=False))
    for trial_id, params in {"t1": {"n_layers": 1}, "t2": {"n_layers": 2, "k": 16}, "t3": {"n_layers": 3, "k": 100}}.items():
        folder = path / f"trial_{trial_id}"
        folder.mkdir()
        (folder / "params.json").write_text(json.dumps({**params, "epochs": 2}))
        (folder / "result.json").write_text("".join(json.dumps({"epoch": e, "score": 0.1 * e, "done": e == 2,
                                                                "time_total_s": 1.0, "trial_id": trial_id}) + "\n"
                                                    for e in (1, 2)))
    table = load_results(path)
    csv = render_table(table, "csv").decode()
    records = json.loads(render_table(table, "json"))
    assert {r["trial_id"]: r["k"] for r in records} == {"t1": None, "t2": 16, "t3": 100}
    assert all(type(r["k"]) is int for r in records if r["k"] is not None)  # before: 16.0, 100.0
    assert ",16," in csv and "16.0" not in csv and str(table["k"].dtype) == "Int64"
