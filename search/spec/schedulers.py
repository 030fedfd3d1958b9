"""The spec's ``scheduler`` section: ASHA (cut weak trials at rungs), PBT (copy strong trials, mutate), or none."""

from __future__ import annotations

import math
from typing import Literal

from pydantic import Field, model_validator

from search.spec.base import SpecModel

__all__ = ["SchedulerSpec", "ASHA_KEYS", "PBT_KEYS"]

#: Keys that mean something only to one scheduler type.
ASHA_KEYS = ("grace_period", "reduction_factor", "brackets")
PBT_KEYS = ("perturbation_interval", "burn_in_period", "quantile_fraction", "resample_probability", "mutate")


class SchedulerSpec(SpecModel):
    """How trials are scheduled on their own ``epoch``.

    * ``asha``: weak trials are cut at rungs (MO-ASHA with several objectives).
    * ``pbt``: population-based training (Ray Tune's ``PopulationBasedTraining``). Every
      ``perturbation_interval`` epochs a trial in the bottom ``quantile_fraction`` continues from
      a top trial's checkpoint with that trial's configuration mutated (the ``mutate``
      parameters, drawn from the spec's space).
    * ``none``: every trial runs its epochs.
    """

    type: Literal["asha", "pbt", "none"] = "asha"
    metric: str | None = Field(default=None, description="The metric the scheduler compares trials on; default: the "
                                                          "objective (ASHA with several: all of them, MO-ASHA). Another "
                                                          "metric needs its mode.")
    mode: Literal["min", "max"] | None = Field(default=None, description="Order of scheduler.metric; default: its "
                                                                         "objective's mode.")
    max_t: int | None = Field(default=None, ge=1, description="Epochs a trial may run; defaults to fixed.epochs.")
    grace_period: int = Field(default=1, ge=1, description="ASHA: epochs before the first cut.")
    reduction_factor: float = Field(default=3, gt=1, description="ASHA: 1/reduction_factor of the trials go on at "
                                                                 "each rung.")
    brackets: int = Field(default=1, ge=1, description="ASHA: brackets (Hyperband's).")
    perturbation_interval: int = Field(default=4, ge=1, description="PBT: epochs between a trial's perturbations.")
    burn_in_period: int = Field(default=0, ge=0, description="PBT: epochs before a trial's first perturbation.")
    quantile_fraction: float = Field(default=0.25, ge=0, le=0.5, description="PBT: the bottom fraction of trials "
                                                                             "that copy one of the top fraction.")
    resample_probability: float = Field(default=0.25, ge=0, le=1, description="PBT: the chance that a mutated "
                                                                              "parameter is drawn anew from the space "
                                                                              "instead of scaled by 0.8 or 1.2 (a "
                                                                              "categorical: moved to a neighbour).")
    mutate: list[str] | None = Field(default=None, description="PBT: the space's parameters to mutate; default: all "
                                                                "of them the trainable can change at a restore.")

    @model_validator(mode="after")
    def _keys_of_type(self) -> SchedulerSpec:
        # type none ignores both (a spec switched from asha to none may keep its settings, as it always could).
        others = {"asha": PBT_KEYS, "pbt": ASHA_KEYS, "none": ()}[self.type]
        # By value, not by presence: an experiment's spec copy writes every field out, defaults included.
        given = [key for key in others if getattr(self, key) != type(self).model_fields[key].default]
        if given:
            owner = "ASHA's" if given[0] in ASHA_KEYS else "PBT's"
            raise ValueError(f"{', '.join(given)}: {owner} setting(s), but scheduler.type is {self.type}; remove them"
                             + (" (PBT copies and mutates trials every perturbation_interval epochs)"
                                if self.type == "pbt" else ""))
        if self.max_t is not None and self.grace_period > self.max_t:
            raise ValueError(f"grace_period ({self.grace_period}) must be <= max_t ({self.max_t})")
        if self.mutate is not None and not self.mutate:
            raise ValueError("mutate: an empty list; name the parameters PBT mutates, or remove it")
        return self

    def rungs(self, max_epochs: int | None) -> tuple[int, ...]:
        """Epochs at which ASHA may cut a trial, ascending; none without ASHA or an epoch limit.

        Ray's ``AsyncHyperBandScheduler`` gives bracket ``s`` the milestones
        ``grace * rf**(k + s)`` for ``k < int(log(max_t / grace) / log(rf) - s + 1)``, and
        judges a trial at the first report whose epoch is ``>=`` a milestone: a fractional
        milestone (4.5) is a cut at the next whole epoch (5). ``max_epochs`` itself is the end,
        not a cut.
        """
        if self.type != "asha" or not max_epochs:
            return ()
        epochs: set[int] = set()
        for s in range(self.brackets):
            count = int(math.log(max_epochs / self.grace_period) / math.log(self.reduction_factor) - s + 1)
            for k in range(count):
                milestone = self.grace_period * self.reduction_factor ** (k + s)
                epochs.add(math.ceil(round(milestone, 9)))  # 3 * 3.0 ** 2 is 27.000000000000004
        return tuple(sorted(e for e in epochs if e < max_epochs))


def pbt_mutations(mutate: list[str] | None, space: list[str], fn: object) -> list[str]:
    """The parameters PBT mutates: ``mutate`` as given, else the space's that the trainable can change at a restore.

    A trainable declares those as ``fn.mutable`` (the built-in: its learning rates, λ, weight decay and
    clipping norm); one that declares nothing takes any of them.
    """
    if mutate is not None:
        return list(mutate)
    changeable = getattr(fn, "mutable", None)
    return [name for name in space if changeable is None or name in changeable]
