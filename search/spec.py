"""The experiment spec: YAML in, typed and validated pydantic models out, once.

``load_spec(path)`` reads a YAML file and returns a :class:`Spec` or raises
:class:`~search.errors.SpecError` listing *every* problem with its file, line and
dotted key. Structural rules live on the models (pydantic, unknown keys forbidden);
rules that need context (what the trainable reports, whether a data file exists)
live in :mod:`search.checks`.
"""

from __future__ import annotations

import enum
import math
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from search.errors import Problem, SpecError, did_you_mean
from search.yaml_lines import LineIndex, parse_yaml

__all__ = [
    "Spec", "SearchSpec", "SchedulerSpec", "ResourcesSpec", "CheckpointSpec", "FailureSpec",
    "FloatParam", "IntParam", "CategoricalParam", "Param", "Executor", "SamplerName",
    "load_spec", "parse_spec",
]

Scalar = str | int | float | bool | None


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _ParamBase(_Model):
    when: dict[str, Scalar | list[Scalar]] | None = Field(
        default=None, description="Only sample this parameter when every named categorical parameter has one of the given values.")


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


class SearchSpec(_Model):
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


class SchedulerSpec(_Model):
    type: Literal["asha", "none"] = "asha"
    max_t: int | None = Field(default=None, ge=1, description="Epochs a trial may run; defaults to fixed.epochs.")
    grace_period: int = Field(default=1, ge=1)
    reduction_factor: float = Field(default=3, gt=1)
    brackets: int = Field(default=1, ge=1)

    @model_validator(mode="after")
    def _grace(self) -> SchedulerSpec:
        if self.max_t is not None and self.grace_period > self.max_t:
            raise ValueError(f"grace_period ({self.grace_period}) must be <= max_t ({self.max_t})")
        return self


class Executor(str, enum.Enum):
    """How a trial trains: in the Tune trial process, or through Ray Train's TorchTrainer."""

    AUTO = "auto"
    DIRECT = "direct"
    TORCH_TRAINER = "torch_trainer"


class ResourcesSpec(_Model):
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
    num_to_keep: int | None = Field(default=2, ge=1)
    score: str | None = Field(default=None, description="Metric ranking checkpoints; defaults to the spec's metric.")
    mode: Literal["min", "max"] | None = Field(default=None, description="Order of the score; defaults to the spec's mode.")
    frequency: int = Field(default=1, ge=0, description="Checkpoint every N epochs (0: only the last epoch).")


class FailureSpec(_Model):
    max_retries: int = Field(default=1, ge=0, description="Retries per trial, each from its last checkpoint.")


class Spec(_Model):
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", max_length=100)
    trainable: str = "feature_selection"
    data: dict[str, Any] | None = None
    metric: str = "val_loss"
    mode: Literal["min", "max"] = "min"
    search: SearchSpec = Field(default_factory=SearchSpec)
    scheduler: SchedulerSpec = Field(default_factory=SchedulerSpec)
    space: dict[str, Param] = Field(default_factory=dict)
    fixed: dict[str, Any] = Field(default_factory=dict)
    resources: ResourcesSpec = Field(default_factory=ResourcesSpec)
    checkpoint: CheckpointSpec = Field(default_factory=CheckpointSpec)
    storage: str = "results"
    failure: FailureSpec = Field(default_factory=FailureSpec)

    @property
    def checkpoint_score(self) -> str:
        return self.checkpoint.score or self.metric

    @property
    def checkpoint_mode(self) -> str:
        return self.checkpoint.mode or self.mode

    @property
    def max_epochs(self) -> int | None:
        """Epochs a trial runs at most: the scheduler's max_t, else ``fixed.epochs``."""
        if self.scheduler.max_t is not None:
            return self.scheduler.max_t
        epochs = self.fixed.get("epochs")
        return epochs if isinstance(epochs, int) else None


def parse_spec(raw: Any, source: str | Path | None = None, lines: LineIndex | None = None) -> Spec:
    """Validate a mapping as a :class:`Spec`; raise :class:`SpecError` with every problem."""
    from search.checks import semantic_problems  # checks imports the models above

    lines = lines or LineIndex()
    if not isinstance(raw, dict):
        raise SpecError([Problem("", f"a spec must be a mapping of keys, got {type(raw).__name__}", 1)], source)
    problems: list[Problem] = []
    spec: Spec | None = None
    try:
        spec = Spec.model_validate(raw)
    except ValidationError as exc:
        problems += [_problem_from_pydantic(err, raw, lines) for err in exc.errors()]
    problems += semantic_problems(raw, spec, lines, source)
    if problems:
        raise SpecError(_dedupe(problems), source)
    assert spec is not None  # no problems means validation passed
    return spec


def load_spec(path: str | Path, overrides: dict[str, Any] | None = None) -> Spec:
    """Read, parse and validate a YAML spec file.

    ``overrides`` are dotted keys set before validation (``{"search.num_samples": 4}``),
    used by the command line's ``--num-samples`` and friends.
    """
    path = Path(path)
    if not path.is_file():
        raise SpecError([Problem("", "file not found" if not path.exists() else "not a file")], path)
    try:
        raw, lines = parse_yaml(path.read_text())
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark else None
        col = f", column {mark.column + 1}" if mark else ""
        reason = getattr(exc, "problem", None) or str(exc)
        raise SpecError([Problem("", f"YAML syntax error{col}: {reason}", line)], path) from None
    for dotted, value in (overrides or {}).items():
        _set_dotted(raw, dotted, value)
    return parse_spec(raw, path, lines)


def _set_dotted(raw: Any, dotted: str, value: Any) -> None:
    if not isinstance(raw, dict):
        return
    *parents, last = dotted.split(".")
    node = raw
    for key in parents:
        node = node.setdefault(key, {})
        if not isinstance(node, dict):
            return
    node[last] = value


_MESSAGES = {
    "extra_forbidden": "unknown key",
    "missing": "required key is missing",
}


def _problem_from_pydantic(err: dict[str, Any], raw: dict[str, Any], lines: LineIndex) -> Problem:
    loc = [str(p) for p in err["loc"]]
    # Discriminated unions add the tag ("float") to the location: drop it for users.
    loc = [p for i, p in enumerate(loc) if not (i >= 2 and loc[0] == "space" and i == 2 and p in ("float", "int", "categorical"))]
    kind = err["type"]
    message = _MESSAGES.get(kind, err["msg"].removeprefix("Value error, "))
    if kind == "extra_forbidden":
        siblings = _allowed_keys(loc[:-1], raw)
        message += did_you_mean(loc[-1], siblings) + (f"; allowed: {', '.join(sorted(siblings))}" if siblings else "")
    elif kind == "union_tag_invalid" or kind == "union_tag_not_found":
        message = "parameter 'type' must be one of float, int, categorical"
        tag = _lookup(raw, loc + ["type"])
        if isinstance(tag, str):
            message += f" (got {tag!r}{did_you_mean(tag, ['float', 'int', 'categorical'])})"
    elif "input" in err and kind not in ("missing",) and not isinstance(err["input"], (dict, list)):
        message += f" (got {err['input']!r})"
    return Problem(".".join(loc), message, lines.line_of(loc))


def _allowed_keys(loc: list[str], raw: dict[str, Any]) -> list[str]:
    """The keys the model at ``loc`` accepts, for "did you mean" on an unknown one."""
    model: Any = Spec
    for i, part in enumerate(loc):
        if model is Spec and part == "space":
            node = _lookup(raw, loc[: i + 2] + ["type"]) if i + 1 < len(loc) else None
            model = {"float": FloatParam, "int": IntParam, "categorical": CategoricalParam}.get(node)
            if model is None:
                return []
            break
        field = getattr(model, "model_fields", {}).get(part)
        annotation = getattr(field, "annotation", None)
        model = annotation if isinstance(annotation, type) and issubclass(annotation, BaseModel) else None
        if model is None:
            return []
    return list(getattr(model, "model_fields", {}))


def _lookup(raw: Any, loc: list[str]) -> Any:
    node = raw
    for part in loc:
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return None
    return node


def _dedupe(problems: list[Problem]) -> list[Problem]:
    seen: set[tuple[str, str]] = set()
    out = []
    for p in problems:
        if (p.path, p.message) not in seen:
            seen.add((p.path, p.message))
            out.append(p)
    return sorted(out, key=lambda p: (p.line if p.line is not None else 10**9, p.path))
