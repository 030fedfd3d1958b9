"""The public API: what ``import search`` offers a script or a notebook.

Each function takes what a person types (a spec file, a path or a URI, a bare experiment name)
and builds the typed objects once (:class:`~search.spec.models.Spec`,
:class:`~search.experiment.Experiment`)::

    import search

    spec = search.load_spec("spaces/quickstart.yaml", {"search.num_samples": 4})
    outcome = search.run(spec)                    # or search.run("spaces/quickstart.yaml")
    table = search.load_results(outcome.experiment)   # one row per trial, best first
    predictor = search.load_predictor("quickstart")   # the picked trial's model
    search.resume("results/quickstart")            # continue an interrupted run

Importing :mod:`search` loads neither torch nor ``ray.tune``; they load when a function needs them.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from search.experiment import Experiment, ExperimentLike
from search.spec.models import Spec

__all__ = ["run", "resume", "load_results", "load_predictor", "load_spec"]


def load_spec(path: str | os.PathLike[str], overrides: dict[str, Any] | None = None) -> Spec:
    """Read and validate a YAML spec (every problem reported at once, with its line).

    Args:
        path: the spec file.
        overrides: dotted keys to replace before validation, e.g. ``{"search.num_samples": 4}``.

    Raises:
        search.spec.errors.SpecError: the spec is invalid (``str(error)`` lists each problem).
    """
    from search.spec.load import load_spec as _load

    return _load(Path(path), overrides)


def run(spec: Spec | str | os.PathLike[str], *, overwrite: bool = False, address: str | None = None,
        num_cpus: int | None = None, quiet: bool = True, warm_start_from: ExperimentLike | None = None) -> Any:
    """Run a spec's search to its end (or until interrupted) and return an :class:`~search.engine.run.ExperimentOutcome`.

    Args:
        spec: a :class:`Spec`, or the path of a spec file (then a user's module beside it is found).
        overwrite: replace an existing experiment of the same name (only a folder that is one).
        address: a Ray cluster to join (default ``$RAY_ADDRESS``, else an embedded local Ray).
        num_cpus: CPUs of the embedded Ray (default: all).
        quiet: Ray's and Tune's own output goes to ``<experiment>/run.log``.
        warm_start_from: an earlier experiment whose finished trials the searcher is told first.

    Raises:
        search.engine.run.ExperimentError: the experiment exists already (and not ``overwrite``), or cannot be written.
        search.spec.errors.SpecError: the spec file is invalid.
    """
    from search.engine.run import RunOptions, run_experiment

    source = None
    if not isinstance(spec, Spec):
        source = Path(spec).resolve()
        spec = load_spec(source)
    options = RunOptions(address=address, spec_path=source, num_cpus=num_cpus, overwrite=overwrite, quiet=quiet)
    return run_experiment(spec, options, warm_start_from=Experiment.at(warm_start_from) if warm_start_from else None)


def resume(experiment: ExperimentLike, *, address: str | None = None, num_cpus: int | None = None,
           quiet: bool = True, num_samples: int | None = None, time_budget_s: float | None = None) -> Any:
    """Continue an interrupted experiment (a folder, a URI, or a name under ``./results``) from its checkpoints.

    ``num_samples``: grow the search to that many trials in all (finished or not); ``time_budget_s``: the
    continued search's time budget. Resume restores Tune's own pickled state: use it on folders you trust
    (your own runs).
    """
    from search.engine.grow import Growth
    from search.engine.run import RunOptions, resume_experiment

    return resume_experiment(Experiment.at(experiment), RunOptions(address=address, num_cpus=num_cpus, quiet=quiet),
                             Growth(num_samples, time_budget_s))


def load_results(experiment: ExperimentLike) -> Any:
    """The results table (a pandas DataFrame, one row per trial, best first) of an experiment folder or URI.

    Reads JSON, CSV and Optuna's journal only: safe on a folder from elsewhere.
    """
    from search.results.table import load_results as _load

    return _load(experiment)


def load_predictor(experiment: ExperimentLike, trial_id: str | None = None, **kwargs: Any) -> Any:
    """A :class:`~search.results.predict.Predictor` for the best (or picked) trial, or ``trial_id``'s.

    Checkpoints are read with ``torch.load(weights_only=True)``: safe on a folder from elsewhere.
    """
    from search.results.predict import load_predictor as _load

    return _load(experiment, trial_id, **kwargs)
