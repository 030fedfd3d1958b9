"""search: hyperparameter search for PyTorch models on Ray Tune, Ray Train and Optuna.

From a terminal: ``python -m search validate|run|resume|best|export|report|predict`` (or the
installed ``hpsearch``). From Python::

    import search
    outcome = search.run("spaces/quickstart.yaml")
    table = search.load_results(outcome.experiment)

The public API is :func:`run`, :func:`resume`, :func:`load_results`, :func:`load_predictor` and
:func:`load_spec` (:mod:`search.api`); importing :mod:`search` loads neither torch nor
``ray.tune`` (each name is imported on first use). This package owns every ray / optuna /
pydantic import; :mod:`trainables` stays free of them. ``docs/architecture.md`` maps the rooms.
"""

from __future__ import annotations

from typing import Any

__all__ = ["__version__", "run", "resume", "load_results", "load_predictor", "load_spec"]
__version__ = "0.1.0"

_API = frozenset(__all__[1:])


def __getattr__(name: str) -> Any:  # PEP 562: the API loads on first use, not on `import search`
    if name in _API:
        from search import api

        return getattr(api, name)
    raise AttributeError(f"module 'search' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_API])
