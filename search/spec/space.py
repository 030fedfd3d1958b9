"""From the spec's ``space`` to Optuna: distributions and a define-by-run function."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import optuna

from search.spec.conditions import describe_condition, holds
from search.spec.models import CategoricalParam, FloatParam, IntParam

__all__ = ["DefineByRun", "to_distribution", "describe", "is_active"]

ParamSpec = FloatParam | IntParam | CategoricalParam


def to_distribution(param: ParamSpec) -> optuna.distributions.BaseDistribution:
    """The Optuna distribution of one parameter. Bounds are inclusive on both sides, as in the spec."""
    if isinstance(param, FloatParam):
        return optuna.distributions.FloatDistribution(param.low, param.high, log=param.log, step=param.step)
    if isinstance(param, IntParam):
        return optuna.distributions.IntDistribution(param.low, param.high, log=param.log, step=param.step)
    return optuna.distributions.CategoricalDistribution(param.choices)


def is_active(param: ParamSpec, values: Mapping[str, Any]) -> bool:
    """True when every ``when`` condition holds for the values sampled so far (an inactive parent: never)."""
    return all(parent in values and holds(condition, values[parent]) for parent, condition in (param.when or {}).items())


class DefineByRun:
    """``f(trial)`` for OptunaSearch: samples each active parameter in declaration order.

    A class instance rather than a closure: OptunaSearch pickles its space into the
    experiment's searcher state, and a restore must be able to import it.
    """

    def __init__(self, params: Mapping[str, ParamSpec]) -> None:
        self.params = dict(params)

    def __call__(self, trial: optuna.Trial) -> None:
        values: dict[str, Any] = {}
        for name, param in self.params.items():
            if not is_active(param, values):
                continue
            if isinstance(param, FloatParam):
                values[name] = trial.suggest_float(name, param.low, param.high, log=param.log, step=param.step)
            elif isinstance(param, IntParam):
                values[name] = trial.suggest_int(name, param.low, param.high, step=param.step, log=param.log)
            else:
                values[name] = trial.suggest_categorical(name, param.choices)

    def distributions(self) -> dict[str, optuna.distributions.BaseDistribution]:
        return {name: to_distribution(p) for name, p in self.params.items()}


def describe(name: str, param: ParamSpec) -> str:
    """One line for the plan: ``lr  float [0.0001, 0.1] log``."""
    if isinstance(param, CategoricalParam):
        text = f"categorical {param.choices}"
    else:
        text = f"{param.type} [{param.low}, {param.high}]"
        if param.log:
            text += " log"
        if param.step not in (None, 1) or (isinstance(param, FloatParam) and param.step):
            text += f" step {param.step}"
    if param.when:
        cond = " and ".join(describe_condition(parent, condition) for parent, condition in param.when.items())
        text += f"  (only when {cond})"
    return f"{name:<20} {text}"
