"""Run an experiment, or resume one: data loaded once, Ray up, resources planned, Tune fitted.

The pieces are the engine's other modules: :mod:`.session` (Ray), :mod:`.tuner` (the
Tuner: Optuna searcher, ASHA, callbacks), and :mod:`search.trials` for what runs in trials.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import signal
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from search.engine.console import quiet_terminal, say
from search.engine.data import loading
from search.engine.grow import Growth, fresh_budget, grow_restored_tuner, grow_saved_state
from search.engine.session import (cluster_view, embedded_dashboard, killed_session_dir, live_driver, ray_session,
                                   stop_leftovers, storage_warning)
from search.engine.tuner import build_tuner, param_space_of, trial_trainable
from search.spec.checks import resolve_data_path, spec_search_paths
from search.spec.models import Spec
from search.spec.registry import TRAINABLES, trainable_ref
from search.experiment import (OPTUNA_JOURNAL, RUN_LOG, SPEC_COPY, SPEC_ORIGIN, SPEC_SOURCE_COPY, Experiment,
                               ExperimentError, filesystem)
from search.trials.resources import DRIVER_RESOURCE, TrialPlan, plan_trials

__all__ = ["RunOptions", "ExperimentOutcome", "ExperimentError", "run_experiment", "resume_experiment",
           "unfinished_trials"]


@dataclass
class RunOptions:
    """How to run (not what: that is the :class:`~search.spec.models.Spec`).

    Attributes:
        address: a Ray cluster to join (default ``$RAY_ADDRESS``, else an embedded local Ray).
        spec_path: the spec file, kept beside the results (``spec.source.yaml``) and where a
            user's trainable module and data file are looked up.
        include_dashboard: the embedded Ray's dashboard; None: only for trials on Ray Train's workers.
        num_cpus: CPUs of the embedded Ray (default: all).
        overwrite: ``run`` into an existing experiment of the same name deletes it first (only a
            folder that is recognisably an experiment); default: refuse.
        quiet: Ray's and Tune's own output goes to ``<experiment>/run.log``, not the terminal.
        epoch_lines: a progress line per trial per epoch, not only per trial event.
    """

    address: str | None = None
    spec_path: Path | None = None  # copied into the experiment folder for resume/export
    include_dashboard: bool | None = None
    num_cpus: int | None = None
    overwrite: bool = False  # run: delete an existing experiment of the same name first
    quiet: bool = False  # Ray's and Tune's own output into <experiment>/run.log, not the terminal (the CLI's default)
    epoch_lines: bool = False  # a progress line per trial per epoch, not only per trial event


@dataclass
class ExperimentOutcome:
    """What a run or resume returns: where it is, Tune's results, and what is left to do.

    Attributes:
        experiment: where the experiment lives.
        results: Tune's ``ResultGrid``.
        plan: the resources and executor the trials ran with.
        pruned: trial id -> the epoch ASHA cut it at.
        searcher: the Optuna searcher (None after a resume: Tune restores its own).
        unfinished: trials an interrupt left running, pending or not yet started (0: the search finished).
        spec: the spec that ran (a resume: the experiment's own copy).
    """

    experiment: Experiment
    results: Any  # ray.tune.ResultGrid
    plan: TrialPlan
    pruned: dict[str, int] = field(default_factory=dict)
    searcher: Any = None
    unfinished: int = 0  # trials an interrupt left running, pending or not yet started
    spec: Any = None  # the Spec that ran (resume: the experiment's own copy)

    @property
    def num_errors(self) -> int:
        return len(self.results.errors)

    @property
    def path(self) -> str:
        """The experiment's location as text (a URI printed redacted)."""
        return str(self.experiment)


def load_data_once(spec: Spec, source: Path | None) -> Any:
    """Load the spec's data in the driver (once): a built-in set, a file (``spec.data.name`` an absolute path
    or a built-in name), or what the spec's ``data.loader`` returns (:mod:`search.engine.data`)."""
    if spec.data is None:
        return None
    from search.engine.data import load_spec_data

    return load_spec_data(spec.data, spec_search_paths(source), needs_splits=spec.trainable in TRAINABLES)


def resolved_spec(spec: Spec, source: Path | None) -> Spec:
    """The spec with a relative data file made absolute, so the saved copy resumes from anywhere."""
    if spec.data is not None and "loader" in spec.data:
        from search.engine.data import with_paths_resolved

        return spec.model_copy(update={"data": with_paths_resolved(spec.data, spec_search_paths(source))})
    if spec.data is None or "name" not in spec.data or Path(str(spec.data["name"])).is_absolute():
        return spec
    path = resolve_data_path(str(spec.data["name"]), source)
    if path is None:
        return spec
    return spec.model_copy(update={"data": {**spec.data, "name": str(path)}})


@contextlib.contextmanager
def _sigterm_as_sigint() -> Iterator[None]:
    """Make SIGTERM stop a run the way Ctrl-C does: Tune saves state and returns."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: signal.raise_signal(signal.SIGINT))
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def unfinished_trials(experiment: Experiment, num_samples: int, budget_spent: bool = False) -> int:
    """Trials an interrupt left to do, from the state Tune saved (:mod:`search.results.tune_state`): those saved
    as RUNNING, PENDING or PAUSED, plus those never created (unless the time budget, not an interrupt, ended
    the run). No state, or one that cannot be read: all of them.
    """
    from search.results.tune_state import TuneStateError, saved_trials

    try:
        fs, folder = filesystem(experiment.location) if experiment.is_remote else (None, experiment.location)
        trials = saved_trials(folder, fs)
    except TuneStateError:
        return num_samples
    except Exception:  # noqa: BLE001 - remote storage unreachable now: Tune's own resume message is the guide
        if experiment.is_remote:
            return 0
        raise
    if trials is None:  # stopped before Tune saved any state
        return num_samples
    open_trials = sum(t.status not in ("TERMINATED", "ERROR") for t in trials)
    return open_trials + (0 if budget_spent else max(0, num_samples - len(trials)))


def _fit(tuner: Any, spec: Spec, experiment: Experiment) -> tuple[Any, int]:
    """Run the tuner; returns its results and how many trials remain unfinished."""
    from search.internals import callbacks_tagged_lightly, checkpoints_registered_from_results, spaced_forced_snapshots

    started = time.monotonic()
    # stdout is for results: Tune's banners and tables go to stderr with the progress.
    with contextlib.redirect_stdout(sys.stderr), _sigterm_as_sigint(), spaced_forced_snapshots(), \
            callbacks_tagged_lightly(), checkpoints_registered_from_results():
        results = tuner.fit()
    budget = spec.search.time_budget_s
    return results, unfinished_trials(experiment, spec.search.num_samples, bool(budget and time.monotonic() - started >= budget))


@contextlib.contextmanager
def _prepared(spec: Spec, options: RunOptions, experiment: Experiment) -> Iterator[tuple[TrialPlan, Any]]:
    """Data loaded, Ray up, resources planned: yields the plan and the trials' shared setup.

    With ``options.quiet``, Ray's own output goes to the experiment's ``run.log`` meanwhile
    (a URI experiment's: written in its local copy, uploaded at the end).
    """
    search_paths = spec_search_paths(options.spec_path)
    data = loading(lambda: load_data_once(spec, options.spec_path), spec.data, options.address)  # see loading()
    try:
        with quiet_terminal(experiment.file(RUN_LOG) if options.quiet else None), \
                ray_session(options.address, num_cpus=options.num_cpus, record_in=experiment,
                            include_dashboard=embedded_dashboard(spec, options.include_dashboard)):
            yield _trial_setup(spec, experiment, search_paths, data())
    finally:
        if options.quiet and experiment.file(RUN_LOG).is_file():
            with contextlib.suppress(OSError):  # the log is a courtesy; the run's results are already stored
                experiment.publish([RUN_LOG])


def _trial_setup(spec: Spec, experiment: Experiment, search_paths: tuple[Path, ...], data: Any) -> tuple[TrialPlan, Any]:
    """The cluster seen, the trials planned, the data put in the object store: (plan, TrialSetup)."""
    import ray

    from search.engine.pbt import mutated_params
    from search.trials.setup import TrialSetup

    from search.internals import InternalsError, check_versions, verify

    for line in check_versions():  # another Ray or Optuna than the private names were checked on
        say(f"note: {line}")
        try:
            verify()
        except InternalsError as exc:
            raise ExperimentError(str(exc)) from None
    cluster, nodes, available = cluster_view()
    if warning := storage_warning(spec.storage, nodes):
        say(f"warning: {warning}")
    plan = plan_trials(spec, cluster, nodes, driver_resource=DRIVER_RESOURCE in cluster, available=available)
    for note in plan.notes:
        say(f"note: {note}")
    return plan, TrialSetup(
        trainable_ref=trainable_ref(spec.trainable),
        search_paths=tuple(str(p) for p in search_paths),
        data_ref=ray.put(data) if data is not None else None,
        plan=plan,
        experiment_path=experiment.location,
        checkpoint_num_to_keep=spec.checkpoints_to_keep,
        checkpoint_score=spec.checkpoint_score,
        checkpoint_mode=spec.checkpoint_mode,
        required_metrics=spec.required_metrics,
        tracked_params=mutated_params(spec, search_paths) if spec.scheduler.type == "pbt" else (),
    )


def run_experiment(spec: Spec, options: RunOptions | None = None, *,
                   warm_start_from: Experiment | str | None = None) -> ExperimentOutcome:
    """Run the spec's search to the end (or until interrupted) and return its results.

    Raises:
        ExperimentError: an experiment of this name already exists in the storage and
            ``options.overwrite`` is not set (nothing started, nothing touched).
        ResourcePlanError: a trial asks for more than the cluster has (nothing started).
        DataError: the data set cannot be loaded (nothing started).
    """
    options = options or RunOptions()
    spec = resolved_spec(spec, options.spec_path)
    experiment = Experiment.in_storage(spec.storage, spec.name)
    _refuse_live_driver(experiment)
    # First, whatever comes next (a refusal, --overwrite's delete, the run): what a killed run here left running.
    _stop_leftovers(experiment)
    _refuse_existing(experiment, options.overwrite)
    try:
        experiment.probe_writable()  # before Ray: a storage we cannot write fails in seconds, with nothing started
    except OSError as exc:
        raise ExperimentError(f"{exc}; check `storage` in the spec (or --storage), and for s3:// the credentials "
                              "and AWS_ENDPOINT_URL") from None
    earlier = _earlier_study(spec, Experiment.at(warm_start_from)) if warm_start_from else None
    with _prepared(spec, options, experiment) as (plan, setup):
        tuner, searcher, scheduler = build_tuner(spec, plan, setup, epoch_lines=options.epoch_lines)
        if earlier is not None:
            from search.engine.searcher import warm_start
            from search.spec.space import DefineByRun

            added, skipped = warm_start(searcher, earlier, DefineByRun(spec.space).distributions())
            say(f"warm start: told the searcher {added} earlier trial(s) of {warm_start_from}"
                + (f"; {skipped} skipped (outside the new space)" if skipped else ""))
        _save_spec(spec, experiment, options.spec_path)  # first: an interrupted run must be resumable
        results, unfinished = _fit(tuner, spec, experiment)
        if not unfinished:
            _heldout(spec, experiment, setup, options)
        return ExperimentOutcome(experiment, results, plan, dict(getattr(scheduler, "pruned", {})), searcher,
                                 unfinished=unfinished, spec=spec)


def resume_experiment(experiment: Experiment, options: RunOptions | None = None, growth: Growth | None = None,
                      ) -> ExperimentOutcome:
    """Continue an interrupted experiment from its folder (a local path or a URI).

    Finished trials are not rerun; interrupted and errored trials continue from their
    last checkpoint; the Optuna study keeps its history and trial numbering. Resume restores
    Tune's own pickled state: it trusts the folder (the offline readers do not need to).
    ``growth``: more trials (a new total) or a new time budget (:mod:`search.engine.grow`).

    Raises:
        ExperimentError: not a resumable experiment, its driver is still running, or a growth
            that adds nothing.
    """
    from ray import tune

    from search.spec.load import load_spec

    options = options or RunOptions()
    experiment = Experiment.at(experiment)
    if not tune.Tuner.can_restore(experiment.location):
        raise ExperimentError(f"{experiment} is not a resumable experiment (no tuner.pkl): pass the experiment "
                              "folder, <storage>/<name>, of a run that started")
    local = experiment.sync()
    _refuse_live_driver(experiment)
    origin = Path(str((experiment.read_record(SPEC_ORIGIN) or {}).get("spec", "")))
    if options.spec_path is None and origin.is_absolute() and origin.is_file():
        # A trainable or data loader module beside the spec: found again there, wherever resume runs from (by the
        # spec copy's checks too: at the end of sys.path, as resolve_trainable adds it, never shadowing a package).
        options = dataclasses.replace(options, spec_path=origin)
        if str(origin.parent) not in sys.path:
            sys.path.append(str(origin.parent))
    if growth:
        for line in grow_saved_state(experiment, growth):
            print(f"note: {line}", file=sys.stderr)
    spec = load_spec(local / SPEC_COPY)
    if not growth and spec.search.time_budget_s:
        fresh_budget(experiment, spec.search.time_budget_s)
    killed = killed_session_dir(experiment)  # read before its record is dropped
    _stop_leftovers(experiment)
    # Before Tune reads the state.
    for line in _repair(experiment, local, ours=spec.trainable in TRAINABLES, killed_session=killed):
        print(f"note: {line}", file=sys.stderr)
    with _prepared(spec, options, experiment) as (plan, setup):
        trainable = trial_trainable(plan, setup)
        # resume_errored, not restart_errored: restarting with OptunaSearch crashes (docs/ray_optuna_notes.md),
        # and continuing from the last checkpoint is what a user wants anyway.
        tuner = tune.Tuner.restore(experiment.location, trainable, resume_unfinished=True, resume_errored=True,
                                   param_space=param_space_of(spec))
        if growth:
            grow_restored_tuner(tuner, growth)
        results, unfinished = _fit(tuner, spec, experiment)
        # The restored searcher and scheduler have no public accessor on the Tuner; what they
        # decided is on disk: the searcher state (the Optuna study, the trials ASHA cut). Read
        # once, for the cuts and the held-out test.
        saved = _open_saved(experiment, spec)
        if not unfinished:
            _heldout(spec, experiment, setup, options, saved)
        return ExperimentOutcome(experiment, results, plan, _pruned_in(saved), None, unfinished=unfinished, spec=spec)


def _heldout(spec: Spec, experiment: Experiment, setup: Any, options: RunOptions, saved: Any = None) -> None:
    """The picked trial refitted on train + validation (:mod:`search.engine.refit`, when missing), then tested on
    the held-out split, once (:mod:`search.engine.heldout`); a failure of either is one line."""
    import ray

    from search.engine.heldout import evaluate_heldout
    from search.engine.refit import refit_picked
    from search.results import ResultsError

    paths, refit, data = spec_search_paths(options.spec_path), None, None
    try:
        data = ray.get(setup.data_ref) if setup.data_ref is not None else None
        refit = refit_picked(spec, experiment, data, paths, results=saved)
        if refit is not None:
            say(f"refit: trial {refit['trial_id']}'s configuration trained on train + validation for "
                f"{refit['epochs']} epochs -> {refit['checkpoint']}")
    except ResultsError:  # no trial to pick: the summary says why
        return
    except Exception as exc:  # noqa: BLE001 - the search's own model stands without it
        say(f"warning: no refit, the search's own model is used: {type(exc).__name__}: {exc}")
    try:
        shown = evaluate_heldout(spec, experiment, data, paths, results=saved, refit=refit)
    except ResultsError:  # no trial to evaluate: the summary says why
        return
    except Exception as exc:  # noqa: BLE001 - the search's results stand without it
        say(f"warning: no held-out test: {type(exc).__name__}: {exc}")
        return
    if shown:
        which = (f"the refit model of trial {refit['trial_id']}" if refit is not None
                 else "the picked trial" if spec.multi_objective else "the best trial")
        n = f" ({int(shown['test_n'])} samples)" if "test_n" in shown else ""
        say(f"held-out test{n} of {which}: " + ", ".join(f"{k}={v:.4g}" for k, v in shown.items() if k != "test_n"))


def _refuse_live_driver(experiment: Experiment) -> None:
    """Two drivers on one experiment would rewrite each other's state and delete live trial folders."""
    if (pid := live_driver(experiment)) is not None:
        raise ExperimentError(f"the experiment {experiment} is being run right now by process {pid} on this machine; "
                              f"wait for it to end, or stop it first (kill -INT {pid} saves its state), then resume")


def _stop_leftovers(experiment: Experiment) -> None:
    """Stop what an embedded Ray of a killed run of this experiment left running (its record names it)."""
    if stopped := stop_leftovers(experiment):
        print(f"note: stopped {len(stopped)} process(es) the killed run's embedded Ray left running "
              f"(pids {', '.join(map(str, stopped))})", file=sys.stderr)


def _repair(experiment: Experiment, local: Path, *, ours: bool, killed_session: Path | None = None) -> list[str]:
    """Repair Tune's saved state (:mod:`search.engine.recovery`); a URI's on its local copy, then uploaded.

    ``ours``: a built-in trainable, whose checkpoints may be checked (a user's are taken as they are).
    ``killed_session``: the killed run's Ray session folder, whose staging copy has the results it never synced.
    """
    from search.engine.recovery import repair_saved_state

    if not experiment.is_remote:
        return repair_saved_state(local, ours=ours, killed_session=killed_session).lines()
    repair = repair_saved_state(local, storage_folder=experiment.storage_path, ours=ours, killed_session=killed_session)
    if repair.rewritten:
        experiment.publish([*repair.rewritten, *([OPTUNA_JOURNAL] if repair.caught_up else [])])
    for name in [*repair.removed_folders, *repair.removed_files]:
        experiment.delete(name)
    return repair.lines()


def _refuse_existing(experiment: Experiment, overwrite: bool) -> None:
    """A second run into one folder would merge two experiments (Tune appends): refuse, or clear it first."""
    left = experiment.contents()
    if not left:
        return
    if overwrite:
        experiment.remove()  # refuses anything that is not recognisably an experiment
        print(f"--overwrite: deleted the earlier experiment {experiment}", file=sys.stderr)
        return
    shown = ", ".join(left[:4]) + (f", ... ({len(left)} entries)" if len(left) > 4 else "")
    raise ExperimentError(
        f"experiment folder {experiment} already holds an experiment ({shown}); a second run into it would mix two "
        f"searches in one table. Continue it with `python -m search resume {experiment}`, run under another name "
        f"(`--name NEW`), or replace it with `--overwrite` (deletes it)")


def _open_saved(experiment: Experiment, spec: Spec) -> Any:
    """The experiment's results as saved (study, trials), or None when they cannot be read."""
    from search.results import ResultsError, open_results

    try:
        return open_results(experiment, spec)
    except ResultsError:
        return None


def _pruned_in(saved: Any) -> dict[str, int]:
    """Trial id -> epochs it ran, for the trials ASHA cut, from the saved searcher state and results."""
    if saved is None:
        return {}
    table = saved.table
    cut = table[table["outcome"] == "pruned"]
    return {str(t): int(e) for t, e in zip(cut["trial_id"], cut["epochs_run"]) if e == e}


def _earlier_study(spec: Spec, folder: Experiment) -> Any:
    from search.results.searcher_state import load_journal_study

    if spec.scheduler.type == "pbt":
        raise ExperimentError("--warm-start tells an Optuna searcher earlier trials; PBT (scheduler type pbt) draws "
                              "its population at random and has none")
    try:
        study = load_journal_study(folder.sync())
    except (FileNotFoundError, ValueError) as exc:
        raise ExperimentError(f"--warm-start: {exc}") from None
    wanted = ["MAXIMIZE" if mode == "max" else "MINIMIZE" for _, mode in spec.objectives]
    found = [d.name for d in study.directions]
    if found != wanted:
        objectives = ", ".join(f"{mode} {metric}" for metric, mode in spec.objectives)
        raise ExperimentError(f"--warm-start: {folder} optimised in direction(s) {', '.join(f.lower() for f in found)}, "
                              f"this spec wants {objectives}")
    return study


def _save_spec(spec: Spec, experiment: Experiment, source: Path | None) -> None:
    """Keep the spec beside the results, so the folder alone explains (and resumes) the experiment."""
    from search.spec.load import dump_spec

    files = {SPEC_COPY: dump_spec(spec)}
    if source is not None and source.exists():
        files[SPEC_SOURCE_COPY] = source.read_text()
        files[SPEC_ORIGIN] = json.dumps({"spec": str(source.resolve())})
    experiment.write_files(files)
