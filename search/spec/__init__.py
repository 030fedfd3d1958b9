"""The experiment spec: YAML in, typed and validated pydantic models out, once.

* :mod:`~search.spec.models` — the pydantic models (unknown keys forbidden);
* :mod:`~search.spec.load` — ``load_spec`` / ``parse_spec``: every problem, with its line;
* :mod:`~search.spec.checks` — rules that need context (the trainable, the data file);
* :mod:`~search.spec.space` — the space as Optuna distributions and a define-by-run function;
* :mod:`~search.spec.registry` — name → lazy import, for trainables and samplers;
* :mod:`~search.spec.errors`, :mod:`~search.spec.yaml_lines` — located problems.

Importing this package loads pydantic and PyYAML, not Ray (nor Optuna: :mod:`.space` does).
"""

from search.spec.errors import Problem, SpecError
from search.spec.load import load_spec, parse_spec
from search.spec.models import (
    CategoricalParam,
    CheckpointSpec,
    Executor,
    FailureSpec,
    FloatParam,
    IntParam,
    Param,
    ResourcesSpec,
    SamplerName,
    SelectSpec,
    SchedulerSpec,
    SearchSpec,
    Spec,
)

__all__ = [
    "Spec", "SearchSpec", "SchedulerSpec", "ResourcesSpec", "CheckpointSpec", "FailureSpec",
    "FloatParam", "IntParam", "CategoricalParam", "Param", "Executor", "SamplerName", "SelectSpec",
    "load_spec", "parse_spec", "Problem", "SpecError",
]
