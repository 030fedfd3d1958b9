"""Per-trial overhead of each way to run a trial, against the same training run in-process.

Run from anywhere (the repository root is put on ``sys.path`` and on the workers' PYTHONPATH)::

    python benchmarks/trial_overhead.py                  # 6 trials x 3 epochs per path
    python benchmarks/trial_overhead.py --trials 2 --epochs 1
    python benchmarks/trial_overhead.py --write-readme   # also update README.md's table

Every path runs the same workload: ``--trials`` trials, one after the other, of
``trainables.tasks.train_feature_selection`` for ``--epochs`` epochs on a 300-sample
madelon set, with one fixed config (no search space, no ASHA: every trial runs every
epoch) and a checkpoint reported each epoch. The paths:

* **in-process loop**: the trials called in a plain loop, no Ray, no Optuna. Its wall
  time *is* the training compute; it is measured in the same run (median of 3, after
  one warm-up trial) and subtracted from every other path.
* **standalone Optuna**: ``study.optimize`` over the trials, reporting each epoch with
  ``trial.report``.
* **ours, direct** and **ours, torch_trainer**: ``search.engine.run.run_experiment`` with
  ``resources.executor`` set to each; it finds the cluster running and reuses it. The
  ``torch_trainer`` trials share one pool of Train workers (``search.trials.pool``, the default);
  **ours, torch_trainer, a TorchTrainer per trial** is the same with
  ``resources.reuse_workers: false``, for comparison (no target).
* **plain Tune + TorchTrainer, Ray's defaults**: a Tune function trainable that builds a
  1-worker ``TorchTrainer`` with ``TuneReportCallback`` (the Train V2 pattern), with Tune's
  default search and trial resources and ``RAY_TRAIN_HEALTH_CHECK_INTERVAL_S`` unset.

All Ray paths share one cluster (``ray.init(num_cpus=2)`` with the trial-driver resource, the
dashboard, and no environment of its own). One cluster serves both settings of
``RAY_TRAIN_HEALTH_CHECK_INTERVAL_S`` because Ray reads it from the *Tune driver's*
``os.environ`` when the Tuner starts its trials: Tune copies Ray Train's variables into each
trial actor's ``runtime_env`` (``ray/tune/execution/class_cache.py``), ``TorchTrainer.fit``
copies them into the Train controller's (``ray/train/v2/_internal/constants.py``,
``get_env_vars_to_propagate``), and the controller reads it (``controller.py``).
``run_experiment`` sets it with ``os.environ.setdefault`` and leaves it set, so the
benchmark removes it before the defaults' run. Our paths run first, so the cluster's one-time
costs (singleton actors of Ray Train and Ray Data, cold file caches) fall on them, not on the
defaults' run.

Each path's wall time splits into the training compute, a one-time start-up, and an
overhead per trial: ``wall = compute + start-up + trials x per trial``. The overhead per
trial is the marginal cost of one more trial, the slope of the trials' end times:
``(end of the last trial - end of the first) / (trials - 1) - compute / trials``; the
start-up is what remains (experiment set-up, the first trial process, for ``torch_trainer``
the pool of Train workers that later trials reuse). The targets apply to the overhead per
trial; the all-in column, ``(wall - compute) / trials``, shows both spread over this run's
trials. "First metric" is the time from a trial's start (Tune's ``on_trial_start``: its
actor is up; for the in-process paths, the call) to its first reported epoch, for the
first trial and as the median of the others. Cluster start and stop are timed on lines of
their own and counted in no path. Exit status: 0 when both targets are met and every path
ran every epoch, 1 otherwise.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import io
import os
import platform
import shlex
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # run as a script, uninstalled

import optuna  # noqa: E402
import ray  # noqa: E402
import torch  # noqa: E402
from ray import tune  # noqa: E402

from benchmarks._clock import clocked_progress  # noqa: E402
from benchmarks._readme import cpu_name, write_table  # noqa: E402
from search.engine import run as search_runner  # noqa: E402
from search.engine.session import REPORT_INTERVAL_S  # noqa: E402
from search.spec import Spec  # noqa: E402
from search.trials.resources import DRIVER_RESOURCE  # noqa: E402
from trainables.data import DataSplits, load_data  # noqa: E402
from trainables.tasks import train_feature_selection  # noqa: E402

MARKER = "trial_overhead"
DATA = {"name": "madelon", "n_samples": 300}
INTERVAL_VAR = "RAY_TRAIN_HEALTH_CHECK_INTERVAL_S"
DIRECT_TARGET_S, TORCH_TARGET_S = 1.0, 5.0
METRIC = "val_loss"
COMPUTE_REPEATS = 3


# ----------------------------------------------------------------------------- results


@dataclass
class TrialTimes:
    """Clock readings (``time.perf_counter``) of one trial, as its driver saw them."""

    start: float
    metrics: list[float] = field(default_factory=list)
    end: float | None = None
    last_value: float | None = None

    @property
    def first_metric_s(self) -> float | None:
        return self.metrics[0] - self.start if self.metrics else None


@dataclass
class PathResult:
    name: str
    wall_s: float
    trials: list[TrialTimes]
    target_s: float | None = None  # overhead per trial the path is held to
    role: str = ""  # for untargeted rows: "compute" or "reference"
    errors: list[str] = field(default_factory=list)  # failed trials: their timings are not comparable

    def all_in_s(self, compute_s: float, n: int) -> float:
        """Wall time beyond the compute, spread over the trials: start-up included."""
        return (self.wall_s - compute_s) / n

    def per_trial_s(self, compute_s: float, n: int) -> float:
        """The marginal overhead of one more trial: the slope of the trials' end times, less their compute."""
        ends = [t.end for t in self.trials if t.end is not None]
        if n < 2 or len(ends) < 2:
            return self.all_in_s(compute_s, n)
        return (max(ends) - min(ends)) / (len(ends) - 1) - compute_s / n

    def startup_s(self, compute_s: float, n: int) -> float:
        """What is paid once: wall - compute - trials x per trial."""
        return self.wall_s - compute_s - n * self.per_trial_s(compute_s, n)

    @property
    def first_metric_s(self) -> tuple[float | None, float | None]:
        """The first trial's start to its first metric, and the median of the same for the other trials."""
        values = [t.first_metric_s for t in self.trials]
        first = values[0] if values else None
        rest = [v for v in values[1:] if v is not None]
        return first, (statistics.median(rest) if rest else None)

    @property
    def between_metrics_s(self) -> float | None:
        """Median time between two consecutive epochs' metrics reaching the driver."""
        steps = [b - a for t in self.trials for a, b in zip(t.metrics, t.metrics[1:])]
        return statistics.median(steps) if steps else None

    def ran_everything(self, n: int, epochs: int, expected_value: float | None) -> bool:
        """Every trial reported every epoch, and ended with the in-process run's val_loss."""
        if len(self.trials) != n or any(len(t.metrics) != epochs for t in self.trials):
            return False
        if self.errors:
            return False
        return expected_value is None or all(
            t.last_value is not None and abs(t.last_value - expected_value) <= 1e-4 * max(1.0, abs(expected_value))
            for t in self.trials)


def describe_trials(result: PathResult) -> None:
    """Where each trial's time went, as the driver saw it (stderr)."""
    previous_end: float | None = None
    for i, t in enumerate(result.trials):
        parts = []
        if previous_end is not None:
            parts.append(f"gap before start {t.start - previous_end:.2f}s")
        if t.metrics:
            parts.append(f"start->first metric {t.metrics[0] - t.start:.2f}s")
            if len(t.metrics) > 1:
                steps = [b - a for a, b in zip(t.metrics, t.metrics[1:])]
                parts.append(f"between metrics {statistics.mean(steps):.2f}s")
            if t.end is not None:
                parts.append(f"last metric->end {t.end - t.metrics[-1]:.2f}s")
        print(f"    trial {i + 1}: " + ", ".join(parts), file=sys.stderr)
        previous_end = t.end


class TrialClock(tune.Callback):
    """Records when each Tune trial starts, reports and ends, in the driver."""

    def __init__(self) -> None:
        self.trials: dict[str, TrialTimes] = {}

    def on_trial_start(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        self.trials[trial.trial_id] = TrialTimes(time.perf_counter())

    def on_trial_result(self, iteration: int, trials: list[Any], trial: Any, result: dict[str, Any],
                        **info: Any) -> None:
        times = self.trials[trial.trial_id]
        times.metrics.append(time.perf_counter())
        times.last_value = result.get(METRIC)

    def on_trial_complete(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        self._ended(trial.trial_id)

    def on_trial_error(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        self._ended(trial.trial_id)  # an actor that failed to start never had on_trial_start

    def _ended(self, trial_id: str) -> None:
        now = time.perf_counter()
        self.trials.setdefault(trial_id, TrialTimes(now)).end = now

    def ordered(self) -> list[TrialTimes]:
        return sorted(self.trials.values(), key=lambda t: t.start)


# ----------------------------------------------------------------------------- paths


def fixed_config(epochs: int) -> dict[str, Any]:
    return {"epochs": epochs}


def in_process(data: DataSplits, n: int, epochs: int) -> PathResult:
    """The training compute: the trials in a plain loop (median of COMPUTE_REPEATS)."""
    config = fixed_config(epochs)
    train_feature_selection({**config, "epochs": 1}, data=data)  # warm-up: lazy imports, allocator
    runs: list[PathResult] = []
    for _ in range(COMPUTE_REPEATS):
        trials: list[TrialTimes] = []
        started = time.perf_counter()
        for _ in range(n):
            times = TrialTimes(time.perf_counter())

            def report(metrics: Mapping[str, Any], checkpoint_dir: Any = None, times: TrialTimes = times) -> None:
                times.metrics.append(time.perf_counter())
                times.last_value = float(metrics[METRIC])

            train_feature_selection(config, report, data=data)
            times.end = time.perf_counter()
            trials.append(times)
        runs.append(PathResult("in-process loop (training compute)", time.perf_counter() - started, trials,
                               role="compute"))
    walls = [r.wall_s for r in runs]
    print(f"  in-process runs: {', '.join(f'{w:.3f}s' for w in walls)}", file=sys.stderr)
    return sorted(runs, key=lambda r: r.wall_s)[len(runs) // 2]


def standalone_optuna(data: DataSplits, n: int, epochs: int) -> PathResult:
    config = fixed_config(epochs)
    trials: list[TrialTimes] = []

    def objective(trial: optuna.Trial) -> float:
        times = TrialTimes(time.perf_counter())
        trials.append(times)

        def report(metrics: Mapping[str, Any], checkpoint_dir: Any = None) -> None:
            times.metrics.append(time.perf_counter())
            times.last_value = float(metrics[METRIC])
            trial.report(times.last_value, int(metrics["epoch"]))

        train_feature_selection(config, report, data=data)
        times.end = time.perf_counter()
        assert times.last_value is not None
        return times.last_value

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    started = time.perf_counter()
    study = optuna.create_study(direction="minimize")
    study.optimize(objective, n_trials=n)
    return PathResult("standalone Optuna (no Ray)", time.perf_counter() - started, trials, role="reference")


def ours(executor: str, n: int, epochs: int, storage: Path, reuse_workers: bool = True) -> PathResult:
    """``run_experiment`` end to end (data load, planning, Tuner, fit) on the running cluster."""
    spec = Spec.model_validate({
        "name": f"bench_{executor}_{'pool' if reuse_workers else 'per_trial'}",
        "data": DATA,
        "metric": METRIC,
        "mode": "min",
        "search": {"num_samples": n, "max_concurrent_trials": 1, "seed": 0},
        "scheduler": {"type": "none"},
        "fixed": fixed_config(epochs),
        "resources": {"executor": executor, "num_workers": 1, "use_gpu": False, "reuse_workers": reuse_workers},
        "storage": str(storage),
    })
    clock = TrialClock()
    started = time.perf_counter()
    with clocked_progress(clock), contextlib.redirect_stderr(io.StringIO()):  # Tune's and our progress lines
        outcome = search_runner.run_experiment(spec, search_runner.RunOptions())
    wall = time.perf_counter() - started
    if not clock.trials:
        raise RuntimeError("no trial was timed: search.engine.tuner.build_tuner no longer builds its progress callback "
                           "from search.engine.callbacks.ProgressLines at call time; update benchmarks/_clock.py")
    if not reuse_workers:
        return PathResult(f"ours, {executor}, a TorchTrainer per trial", wall, clock.ordered(), role="reference",
                          errors=[_first_line(e) for e in outcome.results.errors])
    target = DIRECT_TARGET_S if executor == "direct" else TORCH_TARGET_S
    return PathResult(f"ours, {executor}", wall, clock.ordered(), target_s=target,
                      errors=[_first_line(e) for e in outcome.results.errors])


def _plain_train_loop(loop_config: dict[str, Any]) -> None:
    """Runs on the Train worker: what a user writes for the Train V2 pattern."""

    def report(metrics: Mapping[str, Any], checkpoint_dir: Any = None) -> None:
        checkpoint = ray.train.Checkpoint.from_directory(str(checkpoint_dir)) if checkpoint_dir else None
        ray.train.report(dict(metrics), checkpoint=checkpoint)

    train_feature_selection(loop_config["config"], report, data=loop_config["data"])


def _plain_tune_trial(config: dict[str, Any], data: DataSplits, storage: str) -> None:
    from ray.train.torch import TorchTrainer
    from ray.tune.integration.ray_train import TuneReportCallback

    trainer = TorchTrainer(
        _plain_train_loop,
        train_loop_config={"config": config, "data": data},
        scaling_config=ray.train.ScalingConfig(num_workers=1),
        run_config=ray.train.RunConfig(name=tune.get_context().get_trial_id(), storage_path=storage,
                                       callbacks=[TuneReportCallback()]),
    )
    trainer.fit()


def plain_tune_torch_trainer(data: DataSplits, n: int, epochs: int, storage: Path) -> PathResult:
    """Tune's defaults (basic variant generator, 1 CPU per trial), one trial at a time."""
    clock = TrialClock()
    started = time.perf_counter()
    tuner = tune.Tuner(
        tune.with_parameters(_plain_tune_trial, data=data, storage=str(storage / "train_runs")),
        param_space=fixed_config(epochs),
        tune_config=tune.TuneConfig(num_samples=n, max_concurrent_trials=1),
        run_config=tune.RunConfig(name="bench_plain", storage_path=str(storage), callbacks=[clock], verbose=0),
    )
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        results = tuner.fit()
    wall = time.perf_counter() - started
    return PathResult("plain Tune + TorchTrainer, Ray's defaults", wall, clock.ordered(), role="reference",
                      errors=[_first_line(e) for e in results.errors])


def _first_line(error: BaseException) -> str:
    """One line for a failed trial: Ray's own reason when it gives one, else the last line."""
    lines = [ln.strip() for ln in str(error).splitlines() if ln.strip()]
    reasons = [ln.split("Worker exit detail:", 1)[1].strip() for ln in lines if "Worker exit detail:" in ln]
    return f"{type(error).__name__}: {(reasons or lines or [''])[-1]}"[:300]


# ----------------------------------------------------------------------------- clusters


@contextlib.contextmanager
def cluster(timings: list[str]) -> Iterator[None]:
    """The one local cluster of the benchmark; its start and stop are timed, not charged to a path."""
    started = time.perf_counter()
    # The dashboard serves the state API that Ray Train's PlacementGroupCleaner polls to see
    # whether a run's controller is alive. Without it the cluster still advertises
    # 127.0.0.1:8265, and if another Ray cluster on this machine serves a dashboard there, it
    # answers "no such actor": the cleaner takes the live controller for dead and removes the
    # run's placement group, killing its worker mid-trial (seen twice on this shared machine).
    ray.init(num_cpus=2, include_dashboard=True, resources={DRIVER_RESOURCE: 100}, log_to_driver=False)
    timings.append(f"ray.init {time.perf_counter() - started:.2f} s")
    print(timings[-1], flush=True)
    try:
        yield
    finally:
        started = time.perf_counter()
        ray.shutdown()
        timings.append(f"ray.shutdown {time.perf_counter() - started:.2f} s")
        print(timings[-1], flush=True)


@contextlib.contextmanager
def driver_env(values: Mapping[str, str | None]) -> Iterator[None]:
    """Set (or, for None, remove) variables in this process's environment, and restore them after."""
    saved = {key: os.environ.get(key) for key in values}
    try:
        for key, value in values.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


# ----------------------------------------------------------------------------- report


def verdict(result: PathResult, compute_s: float, n: int, epochs: int, expected: float | None) -> str:
    if result.errors:
        return f"FAIL ({len(result.errors)} trial error(s))"
    if not result.ran_everything(n, epochs, expected):
        return "FAIL (missing epochs or different result)"
    if result.target_s is None:
        return {"compute": "baseline", "reference": "reference"}.get(result.role, "—")
    return "PASS" if result.per_trial_s(compute_s, n) <= result.target_s else "FAIL"


def table(results: Sequence[PathResult], compute_s: float, n: int, epochs: int, expected: float | None,
          notes: Sequence[str]) -> str:
    header = ("| path | wall s | compute s | start-up s (once) | overhead per trial s | all-in per trial s "
              "| first metric s (trial 1 / others) | target per trial | verdict |")
    rows = [header, "|---|---:|---:|---:|---:|---:|---:|---:|---|"]
    for r in results:
        # A path as fast as the loop can come out a hair below it: that is noise, not a gain.
        def cost(value: float, r: PathResult = r) -> str:
            return "—" if r.role == "compute" else f"{max(value, 0.0):.2f}"

        first, others = r.first_metric_s
        first_text = " / ".join("—" if v is None else f"{v:.2f}" for v in (first, others))
        target = "—" if r.target_s is None else f"≤ {r.target_s:g}"
        rows.append(f"| {r.name} | {r.wall_s:.2f} | {compute_s:.2f} | {cost(r.startup_s(compute_s, n))} "
                    f"| {cost(r.per_trial_s(compute_s, n))} | {cost(r.all_in_s(compute_s, n))} | {first_text} "
                    f"| {target} | {verdict(r, compute_s, n, epochs, expected)} |")
    return "\n".join(rows) + "\n\n" + "\n".join(f"{note}  " for note in notes).rstrip() + "\n"


def machine_line(args: argparse.Namespace, argv: Sequence[str], loads: tuple[float, float]) -> str:
    uname = platform.uname()
    return (f"Machine: {cpu_name()} ({uname.machine}, {uname.system} {uname.release}), "
            f"{os.cpu_count()} CPUs, no GPU used; Python {platform.python_version()}, torch {torch.__version__}, "
            f"ray {ray.__version__}, optuna {optuna.__version__}; {datetime.date.today().isoformat()}; "
            f"{args.trials} sequential trials x {args.epochs} epochs on madelon (300 samples); "
            f"load average {loads[0]:.1f} at start, {loads[1]:.1f} at end (other processes share the CPUs); "
            f"`{shlex.join(['python', 'benchmarks/trial_overhead.py', *argv])}`")


def _seconds(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f} s"


def load_average() -> float:
    return os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")


def timed(label: str, fn: Callable[[], PathResult]) -> PathResult:
    print(f"{label} ...", file=sys.stderr, flush=True)
    result = fn()
    print(f"  {result.name}: wall {result.wall_s:.2f} s", file=sys.stderr)
    describe_trials(result)
    for error in result.errors:
        print(f"    trial error: {error}", file=sys.stderr)
    return result


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=6, help="sequential trials per path (default 6, at least 2)")
    parser.add_argument("--epochs", type=int, default=3, help="epochs per trial (default 3)")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads in this process (default 1, as Ray gives a 1-CPU worker)")
    parser.add_argument("--env", action="append", default=[], metavar="KEY=VALUE",
                        help="a Ray Train variable to set for our two paths only (repeatable), e.g. "
                             "RAY_TRAIN_ENABLE_PREEMPTION_WATCHER=0; Tune forwards it to the trials")
    parser.add_argument("--write-readme", action="store_true", help="write the table into docs/benchmarks.md")
    args = parser.parse_args(argv)
    if min(args.epochs, args.threads) < 1 or args.trials < 2:
        parser.error("--trials must be >= 2 (the overhead per trial is a slope), --epochs and --threads >= 1")
    if any("=" not in item for item in args.env):
        parser.error("--env takes KEY=VALUE")
    extra_env = dict(item.split("=", 1) for item in args.env)
    from ray.tune.execution.class_cache import ENV_VARS_TO_PROPAGATE  # what Tune forwards to trials

    for key in sorted(set(extra_env) - set(ENV_VARS_TO_PROPAGATE)):
        print(f"warning: --env {key}: Tune does not forward it to trial actors, so it has no effect",
              file=sys.stderr)
    load = load_average()
    torch.set_num_threads(args.threads)
    if load > 0.5:
        print(f"warning: load average {load:.1f}: other processes are running, the figures will be noisy",
              file=sys.stderr)
    # Ray's workers inherit the environment of ray.init: this lets them import trainables.
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    n, epochs = args.trials, args.epochs
    data = load_data(DATA)
    results: list[PathResult] = []
    cluster_lines: list[str] = []
    storage = Path(tempfile.mkdtemp(prefix="trial-overhead-"))
    try:
        compute = timed("in-process loop", lambda: in_process(data, n, epochs))
        results.append(compute)
        results.append(timed("standalone Optuna", lambda: standalone_optuna(data, n, epochs)))
        with cluster(cluster_lines):
            # run_experiment sets RAY_TRAIN_HEALTH_CHECK_INTERVAL_S itself (setdefault): start unset.
            with driver_env({INTERVAL_VAR: None, **extra_env}):
                results.append(timed("ours, direct", lambda: ours("direct", n, epochs, storage / "ours")))
                results.append(timed("ours, torch_trainer",
                                     lambda: ours("torch_trainer", n, epochs, storage / "ours")))
                results.append(timed("ours, torch_trainer, a TorchTrainer per trial",
                                     lambda: ours("torch_trainer", n, epochs, storage / "ours", reuse_workers=False)))
            with driver_env({INTERVAL_VAR: None}):
                results.append(timed("plain Tune + TorchTrainer",
                                     lambda: plain_tune_torch_trainer(data, n, epochs, storage / "plain")))
    finally:
        shutil.rmtree(storage, ignore_errors=True)
    compute_s = compute.wall_s
    expected = compute.trials[0].last_value
    by_name = {r.name: r for r in results}
    torch_ours, torch_plain = by_name["ours, torch_trainer"], by_name["plain Tune + TorchTrainer, Ray's defaults"]
    cluster_note = (f"One Ray cluster for all Ray paths; its start and stop are counted in no row: "
                    f"{', '.join(cluster_lines)}." + (f" Our paths ran with {', '.join(args.env)}." if args.env else ""))
    torch_note = (f"TorchTrainer overhead per trial: ours {torch_ours.per_trial_s(compute_s, n):.2f} s (after a "
                  f"start-up of {torch_ours.startup_s(compute_s, n):.1f} s that starts the pool of Train workers the "
                  f"trials share) vs Ray's defaults {torch_plain.per_trial_s(compute_s, n):.2f} s (a TorchTrainer per "
                  f"trial); epochs' metrics reached Tune {_seconds(torch_ours.between_metrics_s)} apart vs "
                  f"{_seconds(torch_plain.between_metrics_s)} ({INTERVAL_VAR} {REPORT_INTERVAL_S} s "
                  f"vs unset, 2 s).")
    notes = [
        cluster_note,
        torch_note,
        *(f"Trial errors in {r.name}: {'; '.join(r.errors)}" for r in results if r.errors),
        machine_line(args, argv, (load, load_average())),
    ]
    markdown = table(results, compute_s, n, epochs, expected, notes)
    print(f"\n{markdown}")
    if args.write_readme:
        print(f"wrote {write_table(MARKER, markdown)}", file=sys.stderr)
    targeted = [r for r in results if r.target_s is not None]
    ok = all(r.ran_everything(n, epochs, expected) for r in results)
    return 0 if ok and all(r.per_trial_s(compute_s, n) <= (r.target_s or 0) for r in targeted) else 1


if __name__ == "__main__":
    sys.exit(main())
