"""Grow a search already run: ``resume EXP --num-samples N`` and ``--time-budget S``.

Ray cannot: ``Tuner.restore`` takes no new trial count or budget (the count is in the search
generator's saved state, the budget in the pickled ``TuneConfig``). Here, before the restore,
the experiment's spec copy and the search generator's saved count are raised to ``N``, and its
"finished" mark (which a time budget that ended the search sets) is cleared, with the trials
the budget stopped off the concurrency limiter's live list; Tune's saved stopper is replaced by a
fresh budget (a URI's in its local copy, then uploaded); after it, the restored Tuner's budget and the callbacks that
count trials or time are told the new figures (:mod:`search.internals` names what is private).
The Optuna study goes on as it was: finished trials untouched, new ones numbered after them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from search.experiment import SPEC_COPY, Experiment, ExperimentError

__all__ = ["Growth", "fresh_budget", "grow_saved_state", "grow_restored_tuner"]


@dataclass(frozen=True)
class Growth:
    """What ``resume`` was asked to add: a new total of trials, a new time budget (None: as it was)."""

    num_samples: int | None = None
    time_budget_s: float | None = None

    def __bool__(self) -> bool:
        return self.num_samples is not None or self.time_budget_s is not None


def grow_saved_state(experiment: Experiment, growth: Growth) -> list[str]:
    """Raise the saved trial count and budget before Tune restores; the lines to print.

    Raises:
        ExperimentError: ``N`` is not more than the trials the experiment already has, or a budget
            that is not positive.
    """
    from search.internals import InternalsError, grow_search_generator, restart_stopper, search_generator_counts
    from search.spec.load import dump_spec, read_spec_structure

    local = experiment.local
    # Structure only: the spec ran already; its checks (the trainable's import) are resume's, after this.
    spec = read_spec_structure(local / SPEC_COPY)
    search, lines, rewritten = spec.search, [], [SPEC_COPY]
    if growth.time_budget_s is not None:
        if not growth.time_budget_s > 0:
            raise ExperimentError(f"--time-budget {growth.time_budget_s:g}: give the seconds the continued search "
                                  "may take, more than 0")
        was = f"{search.time_budget_s:g} s" if search.time_budget_s else "none"
        search = search.model_copy(update={"time_budget_s": float(growth.time_budget_s)})
        lines.append(f"time budget of the continued search: {growth.time_budget_s:g} s (was {was})")
    if spec.scheduler.type == "pbt":
        given = "--num-samples" if growth.num_samples is not None else "--time-budget"
        raise ExperimentError(f"{given}: {experiment} is a population-based search (scheduler type pbt): its population "
                              "is fixed when it starts, and the trials a time budget stopped have ended; run a new "
                              "experiment with a larger search.num_samples or search.time_budget_s")
    if growth.num_samples is not None:
        try:
            created, _ = search_generator_counts(local)
        except InternalsError as exc:
            raise ExperimentError(f"cannot grow {experiment}: {exc}") from None
        if growth.num_samples <= max(created, spec.search.num_samples):
            raise ExperimentError(
                f"--num-samples {growth.num_samples}: {experiment} already has {created} trial(s) of "
                f"{spec.search.num_samples} asked for; give the new total, more than "
                f"{max(created, spec.search.num_samples)} (e.g. --num-samples {max(created, spec.search.num_samples) + 8})")
        search = search.model_copy(update={"num_samples": growth.num_samples})
        lines.append(f"growing the search from {spec.search.num_samples} to {growth.num_samples} trials "
                     f"(the study continues at trial {created}; finished trials are kept as they are)")
    try:
        # The budget anew (the spec's, or the new one): Tune would restore the stopper with what it had left.
        ended, state_file = restart_stopper(local, search.time_budget_s)
        # A time budget that ended the search also marked Tune's search "finished": cleared, so it creates trials.
        rewritten += [grow_search_generator(local, growth.num_samples, ended), *([state_file] if state_file else [])]
    except InternalsError as exc:
        raise ExperimentError(f"cannot grow {experiment}: {exc}") from None
    (local / SPEC_COPY).write_text(dump_spec(spec.model_copy(update={"search": search})))
    experiment.publish(rewritten)
    return lines


def fresh_budget(experiment: Experiment, budget_s: float) -> None:
    """A plain ``resume`` of a search with a time budget gets the whole budget anew, as the callback that tells
    Optuna of budget stops counts it (Tune alone would restore the stopper with the budget it had left)."""
    from search.internals import restart_stopper

    _, state_file = restart_stopper(experiment.local, budget_s)
    if state_file:
        experiment.publish([state_file])


def grow_restored_tuner(tuner: Any, growth: Growth) -> None:
    """Tell the restored Tuner, and its callbacks that count trials or time, the new figures."""
    from search.engine.callbacks import TellBudgetStops
    from search.engine.progress import ProgressLines
    from search.internals import restored_tuner_configs

    tune_config, run_config = restored_tuner_configs(tuner)
    if growth.num_samples is not None:
        tune_config.num_samples = growth.num_samples
    if growth.time_budget_s is not None:
        tune_config.time_budget_s = growth.time_budget_s
    for callback in run_config.callbacks or ():
        if isinstance(callback, ProgressLines) and growth.num_samples is not None:
            callback.num_samples = growth.num_samples
        if isinstance(callback, TellBudgetStops) and growth.time_budget_s is not None:
            callback.budget_s = growth.time_budget_s
    if growth.time_budget_s is not None and not any(isinstance(c, TellBudgetStops) for c in run_config.callbacks or ()):
        searcher = tune_config.search_alg
        run_config.callbacks = [*(run_config.callbacks or ()), TellBudgetStops(searcher, growth.time_budget_s)]
