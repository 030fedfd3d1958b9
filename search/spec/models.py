"""The experiment spec's pydantic models: structure, types and the rules one section can check.

Loading (YAML in, every problem located) is :mod:`search.spec.load`; rules that need
context (what the trainable reports, whether a data file exists) are
:mod:`search.spec.checks`.
"""

from __future__ import annotations

import enum
import math
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator, model_validator

from search.spec.base import SpecModel
from search.spec.errors import did_you_mean
from search.spec.schedulers import SchedulerSpec

__all__ = [
    "Spec", "SearchSpec", "SchedulerSpec", "ResourcesSpec", "CheckpointSpec", "FailureSpec", "TrackingSpec",
    "MLflowSpec", "FloatParam", "IntParam", "CategoricalParam", "Param", "Executor", "SamplerName", "SelectSpec",
]

Scalar = str | int | float | bool | None
#: ``num_to_keep`` that keeps every checkpoint while Tune still snapshots its state at each (see Spec.checkpoints_to_keep).
KEEP_EVERY_CHECKPOINT = 1_000_000


_Model = SpecModel


class _ParamBase(_Model):
    when: dict[str, Scalar | list[Scalar] | dict[str, Scalar | list[Scalar]]] | None = Field(
        default=None, description="Only sample this parameter when every named parameter (declared before it) meets "
                                  "its condition: a value, a list of values, or operators ({ge: 2}; eq, ne, lt, le, "
                                  "gt, ge, in; comparisons on int and float parameters).")


class FloatParam(_ParamBase):
    type: Literal["float"]
    low: float
    high: float
    log: bool = False
    step: float | None = None

    @model_validator(mode="after")
    def _check(self) -> FloatParam:
        _check_range(self.low, self.high, self.log, self.step)
        return self


class IntParam(_ParamBase):
    type: Literal["int"]
    low: int
    high: int
    log: bool = False
    step: int = 1

    @model_validator(mode="after")
    def _check(self) -> IntParam:
        _check_range(self.low, self.high, self.log, self.step)
        if self.log and self.step != 1:
            raise ValueError("log=true needs step=1 for int parameters (Optuna's rule)")
        return self


class CategoricalParam(_ParamBase):
    type: Literal["categorical"]
    choices: list[Scalar] = Field(min_length=1)

    @field_validator("choices")
    @classmethod
    def _unique(cls, choices: list[Scalar]) -> list[Scalar]:
        dupes = sorted({repr(c) for c in choices if choices.count(c) > 1})
        if dupes:
            raise ValueError(f"choices must be distinct; repeated: {', '.join(dupes)}")
        return choices


Param = Annotated[FloatParam | IntParam | CategoricalParam, Field(discriminator="type")]


def _fits(param: FloatParam | IntParam | CategoricalParam, value: Any) -> bool:
    if isinstance(param, CategoricalParam):
        return value in param.choices
    return isinstance(value, (int, float)) and not isinstance(value, bool) and param.low <= value <= param.high


def _check_range(low: float, high: float, log: bool, step: float | None) -> None:
    if not (math.isfinite(low) and math.isfinite(high)):
        raise ValueError(f"low and high must be finite numbers (low={low}, high={high})")
    if low > high:
        raise ValueError(f"low ({low}) must be <= high ({high}); bounds are inclusive")
    if log and low <= 0:
        raise ValueError(f"log=true needs low > 0 (got low={low}); use a positive lower bound or log=false")
    if step is not None and step <= 0:
        raise ValueError(f"step must be > 0, got {step}")
    if log and step is not None and isinstance(step, float):
        raise ValueError("float parameters cannot have both log=true and step (Optuna's rule)")


class SamplerName(str, enum.Enum):
    TPE = "tpe"
    RANDOM = "random"
    CMAES = "cmaes"
    GP = "gp"
    QMC = "qmc"
    NSGA2 = "nsga2"


#: Samplers that optimise one objective only (Optuna's CmaEsSampler refuses a multi-objective study).
SINGLE_OBJECTIVE_SAMPLERS = frozenset({SamplerName.CMAES})


class SearchSpec(_Model):
    """How trials are proposed: Optuna's sampler, how many trials, the seed, concurrency, a time budget, first points."""

    sampler: SamplerName = SamplerName.TPE
    sampler_options: dict[str, Any] = Field(default_factory=dict)
    num_samples: int = Field(default=10, ge=1)
    seed: int | None = 0
    max_concurrent_trials: int | None = Field(default=None, ge=1)
    time_budget_s: float | None = Field(default=None, gt=0)
    points_to_evaluate: list[dict[str, Scalar]] = Field(default_factory=list)

    @field_validator("sampler", mode="before")
    @classmethod
    def _sampler_name(cls, value: Any) -> Any:
        if isinstance(value, str) and value.lower() not in {s.value for s in SamplerName}:
            choices = [s.value for s in SamplerName]
            raise ValueError(f"unknown sampler {value!r}{did_you_mean(value.lower(), choices)}; choices: {', '.join(choices)}")
        return value.lower() if isinstance(value, str) else value


class Executor(str, enum.Enum):
    """How a trial trains: in the Tune trial process, or through Ray Train's TorchTrainer."""

    AUTO = "auto"
    DIRECT = "direct"
    TORCH_TRAINER = "torch_trainer"


class ResourcesSpec(_Model):
    """What each trial asks of the cluster: workers, CPUs and GPUs per worker, and how it trains (the executor)."""

    num_workers: int = Field(default=1, ge=1)
    use_gpu: bool | Literal["auto"] = "auto"
    cpus_per_worker: float = Field(default=1.0, gt=0)
    gpus_per_worker: float | None = Field(default=None, ge=0, description="Fractions let trials share a GPU; default 1 with GPUs.")
    executor: Executor = Executor.AUTO
    reuse_workers: bool = Field(
        default=True,
        description="torch_trainer: keep the Train workers between trials (one TorchTrainer per trial process "
                    "instead of one per trial, seconds saved per trial); false isolates every trial in new processes.")


class CheckpointSpec(_Model):
    """Which checkpoints a trial keeps: how many, ranked by which metric in which order."""

    num_to_keep: int | None = Field(default=2, ge=1)
    score: str | None = Field(default=None, description="Metric ranking checkpoints; defaults to the spec's metric.")
    mode: Literal["min", "max"] | None = Field(default=None, description="Order of the score; defaults to the spec's mode.")

    @model_validator(mode="before")
    @classmethod
    def _no_frequency(cls, value: Any) -> Any:
        # It was accepted and never read: a trial checkpoints whenever its trainable reports a checkpoint
        # (the built-in trainable: its best epochs, its last, one every fixed.checkpoint_every_s), num_to_keep
        # bounds the disk.
        if isinstance(value, dict) and "frequency" in value:
            raise ValueError("checkpoint.frequency is not supported: trials checkpoint every epoch their trainable "
                             "reports a checkpoint for (the built-in trainable: its best epochs, its last, and "
                             "otherwise one every fixed.checkpoint_every_s seconds, 10 by default; 0: every epoch), "
                             "and num_to_keep bounds the disk; remove the key")
        return value


class MLflowSpec(_Model):
    """Logging every trial to MLflow (through Ray's MLflowLoggerCallback)."""

    tracking_uri: str | None = Field(
        default=None, description="An MLflow tracking server or database; default: sqlite in the experiment folder "
                                  "(mlflow.db, artifacts under mlartifacts/).")
    experiment_name: str | None = Field(default=None, description="The MLflow experiment; default: the spec's name.")
    tags: dict[str, str] = Field(default_factory=dict, description="Tags on every trial's MLflow run.")
    log_checkpoint: bool = Field(default=True, description="Log each trial's best checkpoint as an artifact.")


class TrackingSpec(_Model):
    """Where trials are tracked besides the experiment folder (MLflow)."""

    mlflow: MLflowSpec | None = Field(default=None, description="Log every trial to MLflow (pip install 'hpsearch[mlflow]').")


class SelectSpec(_Model):
    """How one trial is picked from a multi-objective search's Pareto front (``best``, the held-out test).

    ``limits`` keep only trials within bounds (an objective to minimise: at most the bound; one
    to maximise: at least). Then ``tolerance``: among the trials within ``tolerance`` of the
    best value of the first objective, the one best on the second objective (then the third,
    ...). Without a tolerance: the one best on the first objective. Ties go to the earlier
    objectives, then the lower trial id.
    """

    tolerance: float | None = Field(default=None, ge=0, description="Accept this much worse a first objective for "
                                                                     "better later ones (absolute, in its units).")
    limits: dict[str, float] = Field(default_factory=dict, description="Bounds per objective: at most (min) or at "
                                                                       "least (max) this value.")


class FailureSpec(_Model):
    """What a failing trial gets: retries, each from its last checkpoint."""

    max_retries: int = Field(default=1, ge=0, description="Retries per trial, each from its last checkpoint.")


class Spec(_Model):
    """One experiment, as a YAML spec describes it: what to train, on what, what to optimise, the space, how to search.

    Built once at the boundary (:func:`search.spec.load.load_spec`); the rules across sections are
    :meth:`rule_problems`, the defaults are the fields' own. Every section and key is in ``docs/spec.md``.
    """

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", max_length=100)
    trainable: str = "feature_selection"
    data: dict[str, Any] | None = None
    metric: str | list[str] = Field(default="val_loss", description="The metric to optimise, or a list of them "
                                                                   "(a multi-objective search: a Pareto front).")
    mode: Literal["min", "max"] | list[Literal["min", "max"]] = Field(
        default="min", description="min or max, one per metric when metric is a list.")
    select: SelectSpec = Field(default_factory=SelectSpec, description="Multi-objective: how one trial of the front "
                                                                       "is picked.")
    search: SearchSpec = Field(default_factory=SearchSpec)
    scheduler: SchedulerSpec = Field(default_factory=SchedulerSpec)
    space: dict[str, Param] = Field(default_factory=dict)
    fixed: dict[str, Any] = Field(default_factory=dict)
    resources: ResourcesSpec = Field(default_factory=ResourcesSpec)
    checkpoint: CheckpointSpec = Field(default_factory=CheckpointSpec)
    storage: str = "results"
    failure: FailureSpec = Field(default_factory=FailureSpec)
    tracking: TrackingSpec = Field(default_factory=TrackingSpec)
    refit: bool = Field(default=True, description="After the search, train the picked trial's configuration once "
                        "more on train + validation for the epochs it ran (a trainable with a `refit` function); "
                        "that model is the one tested, loaded and used to predict.")

    @model_validator(mode="after")
    def _objectives(self) -> Spec:
        metrics = [self.metric] if isinstance(self.metric, str) else list(self.metric)
        modes = [self.mode] if isinstance(self.mode, str) else list(self.mode)
        if not metrics:
            raise ValueError("metric: an empty list; name at least one metric")
        if len(modes) != len(metrics):
            raise ValueError(f"mode: {len(modes)} mode(s) ({', '.join(modes)}) for {len(metrics)} metric(s) "
                             f"({', '.join(metrics)}): give one mode (min or max) per metric, in the same order")
        repeated = sorted({m for m in metrics if metrics.count(m) > 1})
        if repeated:
            raise ValueError(f"metric: {', '.join(repeated)} named twice; each objective once")
        names = dict(zip(metrics, modes))
        for key, bound in self.select.limits.items():
            if key not in names:
                raise ValueError(f"select.limits.{key}: not an objective of this spec (objectives: {', '.join(metrics)})")
            if not math.isfinite(bound):
                raise ValueError(f"select.limits.{key}: {bound} is not a finite number")
        multi = len(metrics) > 1
        if not multi and (self.select.tolerance is not None or self.select.limits):
            raise ValueError("select: picks a trial from a multi-objective search's Pareto front; this spec has "
                             f"one objective ({metrics[0]}), whose best trial needs no rule: remove select")
        if multi and self.search.sampler in SINGLE_OBJECTIVE_SAMPLERS:
            raise ValueError(f"search.sampler: {self.search.sampler.value} optimises one objective; this spec has "
                             f"{len(metrics)} ({', '.join(metrics)}): use tpe, nsga2, random, qmc or gp")
        sched = self.scheduler
        if sched.metric is not None and sched.metric in names and sched.mode not in (None, names[sched.metric]):
            raise ValueError(f"scheduler.mode: {sched.mode}, but objective {sched.metric} is to {names[sched.metric]}imise; "
                             "remove scheduler.mode (it defaults to the objective's)")
        if sched.type != "none" and sched.metric is not None and sched.metric not in names and sched.mode is None:
            raise ValueError(f"scheduler.metric: {sched.metric} is not an objective, so {sched.type.upper()} cannot "
                             "tell its order: add scheduler.mode: min or max")
        return self

    def rule_problems(self) -> list[tuple[str, str]]:
        """Rules across sections, on the validated spec: ``(dotted path, message)`` for each one broken.

        Run by :func:`search.spec.load.parse_spec` once the structure is valid, so each rule reads
        typed values and the model's own defaults (none is restated elsewhere).
        """
        problems: list[tuple[str, str]] = []
        for key in sorted(set(self.space) & set(self.fixed)):
            problems.append((f"fixed.{key}", f"{key!r} is both searched (space) and fixed; keep one"))
        epochs = self.fixed.get("epochs")
        if epochs is not None and (isinstance(epochs, bool) or not isinstance(epochs, int)):
            problems.append(("fixed.epochs", f"epochs must be an integer, got {epochs!r}"))
        problems += self._condition_problems() + self._point_problems()
        if self.scheduler.type == "asha":
            if self.max_epochs is None:
                problems.append(("scheduler.max_t", "ASHA needs the most epochs a trial runs: set scheduler.max_t "
                                                    "or fixed.epochs (an integer)"))
            elif self.scheduler.max_t is None and self.scheduler.grace_period > self.max_epochs:
                problems.append(("scheduler.grace_period", f"grace_period ({self.scheduler.grace_period}) must be <= "
                                                           f"fixed.epochs ({self.max_epochs})"))
        if self.scheduler.type == "pbt":
            problems += self._pbt_problems()
        res = self.resources
        if res.use_gpu is False and (res.gpus_per_worker or 0) > 0:
            problems.append(("resources.gpus_per_worker", "gpus_per_worker > 0 with use_gpu: false; set use_gpu: true "
                                                          "or auto"))
        if res.executor is Executor.DIRECT and res.num_workers > 1:
            problems.append(("resources.executor", "executor 'direct' runs one worker in the trial; use "
                                                   "'torch_trainer' (or 'auto') for num_workers > 1"))
        gpus = res.gpus_per_worker
        if gpus is not None and gpus > 1 and gpus != int(gpus):
            problems.append(("resources.gpus_per_worker", f"fractional GPUs must be < 1 (got {gpus}); a worker takes "
                                                          "a fraction of one GPU or whole GPUs"))
        return problems

    def _pbt_problems(self) -> list[tuple[str, str]]:
        """PBT's rules: one metric, a flat space to mutate, trials long enough to be perturbed, no searcher."""
        sched, problems = self.scheduler, []
        if self.multi_objective and sched.metric is None:
            problems.append(("scheduler.metric", "PBT copies the better trials by one metric; with several objectives "
                                                 "name it: scheduler.metric (one of the objectives)"))
        if not self.space:
            problems.append(("space", "PBT mutates the space's parameters, and the space is empty"))
        for name, param in self.space.items():
            if param.when:
                problems.append((f"space.{name}.when", "PBT draws and mutates every parameter in every trial; a "
                                                       "conditional parameter needs scheduler type asha or none"))
        for i, name in enumerate(sched.mutate or ()):
            if name not in self.space:
                problems.append((f"scheduler.mutate.{i}", f"{name!r} is not a searched parameter"
                                                          f"{did_you_mean(name, self.space)}; PBT mutates the space's parameters"))
        if self.max_epochs is not None and sched.burn_in_period + sched.perturbation_interval >= self.max_epochs:
            problems.append(("scheduler.perturbation_interval",
                             f"burn_in_period + perturbation_interval ({sched.burn_in_period} + "
                             f"{sched.perturbation_interval}) must be < the {self.max_epochs} epochs a trial runs, "
                             "or no trial is ever perturbed"))
        # By value, not by presence: an experiment's spec copy writes every field out, defaults included.
        search, defaults = self.search, SearchSpec()
        for key in ("sampler", "sampler_options"):
            if getattr(search, key) != getattr(defaults, key):
                problems.append((f"search.{key}", "PBT draws its first population at random from the space (Ray Tune "
                                                  "takes no searcher with PBT); remove the key"))
        return problems

    def _condition_problems(self) -> list[tuple[str, str]]:
        from search.spec.conditions import condition_problems

        problems: list[tuple[str, str]] = []
        declared: list[str] = []
        for name, param in self.space.items():
            for parent, condition in (param.when or {}).items():
                path = f"space.{name}.when.{parent}"
                parent_param = self.space.get(parent)
                if parent_param is None:
                    problems.append((path, f"condition on unknown parameter {parent!r}{did_you_mean(parent, self.space)}"))
                elif parent not in declared:
                    problems.append((path, f"condition on {parent!r}, which must be declared before {name!r}"))
                else:
                    problems += [(path, message) for message in condition_problems(parent, parent_param, condition)]
            declared.append(name)
        return problems

    def _point_problems(self) -> list[tuple[str, str]]:
        problems: list[tuple[str, str]] = []
        for i, point in enumerate(self.search.points_to_evaluate):
            for key, value in point.items():
                path = f"search.points_to_evaluate.{i}.{key}"
                param = self.space.get(key)
                if param is None:
                    problems.append((path, f"{key!r} is not a searched parameter{did_you_mean(key, self.space)}"))
                elif not _fits(param, value):
                    shown = f"choices {param.choices}" if isinstance(param, CategoricalParam) else f"[{param.low}, {param.high}]"
                    problems.append((path, f"{value!r} is outside {key!r}'s distribution {shown}"))
        return problems

    @property
    def required_metrics(self) -> tuple[str, ...]:
        """What every report of a trial must carry: the objectives, the checkpoint score, the scheduler's metric."""
        scheduled = [self.scheduler_metric, "epoch"] if self.scheduler.type in ("asha", "pbt") else []
        return tuple(dict.fromkeys([*(m for m, _ in self.objectives), self.checkpoint_score, *scheduled]))

    @property
    def checkpoints_to_keep(self) -> int | None:
        """Checkpoints a trial keeps: ``checkpoint.num_to_keep``; with PBT every one (other trials copy them).

        Every one as a number, not None: Tune saves and syncs its experiment state at each checkpoint
        only when ``num_to_keep`` is set, and without those saves a killed driver's rows are lost.
        """
        return KEEP_EVERY_CHECKPOINT if self.scheduler.type == "pbt" else self.checkpoint.num_to_keep

    @property
    def refits(self) -> bool:
        """Whether the picked trial is refitted: ``refit``, never with PBT (a schedule is not one configuration)."""
        return self.refit and self.scheduler.type != "pbt"

    @property
    def objectives(self) -> tuple[tuple[str, str], ...]:
        """``((metric, mode), ...)``: one for a single-objective spec, in the spec's order."""
        metrics = [self.metric] if isinstance(self.metric, str) else list(self.metric)
        modes = [self.mode] if isinstance(self.mode, str) else list(self.mode)
        return tuple(zip(metrics, modes))

    @property
    def multi_objective(self) -> bool:
        return len(self.objectives) > 1

    @property
    def primary_metric(self) -> str:
        """The (first) objective: the progress lines, the trial's best epoch and, by default, ASHA and checkpoints."""
        return self.objectives[0][0]

    @property
    def primary_mode(self) -> str:
        return self.objectives[0][1]

    @property
    def scheduler_metric(self) -> str:
        return self.scheduler.metric or self.primary_metric

    @property
    def scheduler_mode(self) -> str:
        return self.scheduler.mode or dict(self.objectives).get(self.scheduler_metric) or self.primary_mode

    @property
    def scheduler_objectives(self) -> tuple[tuple[str, str], ...]:
        """``((metric, mode), ...)`` ASHA ranks a rung on: every objective (MO-ASHA) when there are several and no
        ``scheduler.metric``; else the one ``(scheduler_metric, scheduler_mode)``."""
        if self.multi_objective and self.scheduler.metric is None:
            return self.objectives
        return ((self.scheduler_metric, self.scheduler_mode),)

    @property
    def checkpoint_score(self) -> str:
        return self.checkpoint.score or self.primary_metric

    @property
    def checkpoint_mode(self) -> str:
        return self.checkpoint.mode or self.primary_mode

    @property
    def max_epochs(self) -> int | None:
        """Epochs a trial runs at most: the scheduler's max_t, else ``fixed.epochs``."""
        if self.scheduler.max_t is not None:
            return self.scheduler.max_t
        epochs = self.fixed.get("epochs")
        return epochs if isinstance(epochs, int) else None
