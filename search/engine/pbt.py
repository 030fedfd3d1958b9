"""Population-based training: Ray Tune's ``PopulationBasedTraining`` on the trial's own epoch, mutating the spec's space.

Ray Tune takes no searcher with PBT (``PopulationBasedTraining.on_trial_add`` refuses a
``SearchGenerator``, checked on Ray 2.60), so the first population is drawn at random from the
space by Tune's ``BasicVariantGenerator`` (seeded with ``search.seed``), ``points_to_evaluate``
first, and there is no Optuna study. Every ``perturbation_interval`` epochs a trial in the bottom
``quantile_fraction`` goes on from the checkpoint of one in the top fraction, with that trial's
configuration mutated: each parameter of ``scheduler.mutate`` drawn anew from the space (with
``resample_probability``) or scaled by 0.8 or 1.2 (a categorical: moved to a neighbouring choice).
:class:`IntoSpace` then puts a scaled value back into the space: clipped to its bounds, on its
step, an int an int. The trial function is called again with the new config and the copied
checkpoint: the built-in trainable takes the new settings (``train_feature_selection.mutable``).
"""

from __future__ import annotations

import math
from typing import Any

from ray.tune.schedulers import PopulationBasedTraining, TrialScheduler

from search.engine.searcher import EPOCH
from search.spec.models import CategoricalParam, FloatParam, IntParam, Spec

__all__ = ["build_pbt", "pbt_param_space", "mutated_params", "tune_domain", "IntoSpace", "LastEpochPBT"]


def tune_domain(param: FloatParam | IntParam | CategoricalParam) -> Any:
    """The Tune search domain of one spec parameter (bounds inclusive, as in the spec)."""
    from ray import tune

    if isinstance(param, CategoricalParam):
        return tune.choice(list(param.choices))
    if param.step not in (None, 1) or (isinstance(param, IntParam) and not param.log):
        # On the spec's grid, low + k * step: Tune's q-domains quantize to multiples of q instead (and qrandint's
        # upper bound is exclusive for q = 1).
        count = int(math.floor((param.high - param.low) / param.step + 1e-9)) + 1
        grid = [param.low + k * param.step for k in range(count)]
        return tune.choice([int(v) for v in grid] if isinstance(param, IntParam) else [round(v, 12) for v in grid])
    if isinstance(param, IntParam):
        return tune.lograndint(param.low, param.high + 1)  # Tune's upper bound is exclusive
    return (tune.loguniform if param.log else tune.uniform)(param.low, param.high)


class IntoSpace:
    """PBT's ``custom_explore_fn``: each mutated value put back into the spec's space (bounds, step, type).

    A class instance, not a closure: Tune pickles its scheduler with the experiment.
    """

    def __init__(self, params: dict[str, FloatParam | IntParam | CategoricalParam]) -> None:
        self.params = dict(params)

    def __call__(self, config: dict[str, Any]) -> dict[str, Any]:
        for name, param in self.params.items():
            if name in config and not isinstance(param, CategoricalParam):
                config[name] = self.fit(param, config[name])
        return config

    @staticmethod
    def fit(param: FloatParam | IntParam, value: float) -> float | int:
        value = min(max(float(value), param.low), param.high)
        if param.step is not None:
            steps = math.floor((value - param.low) / param.step + 0.5)
            value = min(param.low + steps * param.step, param.high)
        return int(round(value)) if isinstance(param, IntParam) else value


class LastEpochPBT(PopulationBasedTraining):
    """Ray's PBT, except that a trial's last epoch is never a perturbation: nothing is left to train after it."""

    def __init__(self, *args: Any, max_t: int | None = None, **kwargs: Any) -> None:
        super().__init__(*args, time_attr=EPOCH, **kwargs)
        self.max_t = max_t

    def on_trial_result(self, tune_controller: Any, trial: Any, result: dict[str, Any]) -> str:
        planned = (trial.config or {}).get("epochs")
        ends = [e for e in (planned, self.max_t) if isinstance(e, int) and not isinstance(e, bool)]
        epoch = result.get(EPOCH)
        if ends and isinstance(epoch, (int, float)) and epoch >= min(ends):
            return TrialScheduler.CONTINUE
        return super().on_trial_result(tune_controller, trial, result)


def mutated_params(spec: Spec, search_paths: Any = ()) -> tuple[str, ...]:
    """The parameters PBT mutates in this spec's trials (the trainable's own declaration decides the default)."""
    from search.spec.registry import resolve_trainable
    from search.spec.schedulers import pbt_mutations

    return tuple(pbt_mutations(spec.scheduler.mutate, list(spec.space), resolve_trainable(spec.trainable, search_paths)))


def build_pbt(spec: Spec, fn: Any) -> tuple[Any, Any]:
    """The searcher (Tune's random draw of the first population) and the PBT scheduler."""
    from ray.tune.search import BasicVariantGenerator

    from search.spec.schedulers import pbt_mutations

    sched = spec.scheduler
    mutated = {name: spec.space[name] for name in pbt_mutations(sched.mutate, list(spec.space), fn)}
    searcher = BasicVariantGenerator(points_to_evaluate=[dict(p) for p in spec.search.points_to_evaluate] or None,
                                     random_state=spec.search.seed)
    scheduler = LastEpochPBT(
        max_t=spec.max_epochs,
        metric=spec.scheduler_metric,
        mode=spec.scheduler_mode,
        perturbation_interval=sched.perturbation_interval,
        burn_in_period=sched.burn_in_period,
        # A categorical as its list of choices: PBT then moves to a neighbour (a Domain's value would be scaled).
        hyperparam_mutations={name: list(param.choices) if isinstance(param, CategoricalParam) else tune_domain(param)
                              for name, param in mutated.items()},
        quantile_fraction=sched.quantile_fraction,
        resample_probability=sched.resample_probability,
        custom_explore_fn=IntoSpace(mutated),
        log_config=True,
    )
    return searcher, scheduler


def pbt_param_space(spec: Spec) -> dict[str, Any]:
    """Tune's ``param_space`` under PBT: the fixed values and a Tune domain per searched parameter."""
    return {**dict(spec.fixed), **{name: tune_domain(param) for name, param in spec.space.items()}}
