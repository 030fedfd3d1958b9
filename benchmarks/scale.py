"""How the cost of a search grows with its number of trials: many one-second trials, two at a time.

Run from anywhere (the repository root is put on ``sys.path`` and on the trials' PYTHONPATH)::

    python benchmarks/scale.py                          # 100, 300 and 1,000 trials (>= 15 min)
    python benchmarks/scale.py --quick                  # 20 and 40 trials, a check that it works
    python benchmarks/scale.py --trials 100,300 --repeats 3 --write-readme
    python benchmarks/scale.py --trials 300 --profile   # + a cProfile'd run: the driver's top functions

Every trial is the same trainable (``scale_sleep:train``, written into a temporary folder with
its spec, as a user's own module would be): it sleeps ``--sleep`` seconds (1 s) and reports
once. The search is ``sampler: random``, ``scheduler: {type: none}``, two trials at a time,
on a local embedded Ray, through our engine (``search.engine.run.run_experiment`` with
``RunOptions(quiet=True)``, what ``python -m search run`` calls). The baselines, side by side:

* **ideal packing**: ``trials x sleep / concurrency``, the wall time with no overhead at all;
  the target is ours ≤ 1.10 x ideal.
* **plain Tune** (``ray.tune.Tuner`` with the same function trainable, the basic variant
  generator, ``max_concurrent_trials=2``, ``reuse_actors=True`` like ours): what Ray alone
  costs. It runs for the sizes in ``--tune-trials`` (default: up to 300; the 1,000-trial run
  would take another 10 minutes).

Each run is a child process of this script (``--child``), so that its memory is its own and
its Ray is started and shut down with it. The child samples its own resident memory every
0.25 s in a thread (psutil) and takes the peak with ``getrusage``'s ``ru_maxrss``; it times
every experiment-state snapshot (``TuneController.save_to_dir``: the trials' JSON, the
searcher's pickle and Optuna journal, the callbacks' state) and the searcher's part of it,
and records when each trial ends. From those: the marginal cost of a trial early and late
in the run (``slot-seconds per trial - sleep``, from the end times of the first and last
fifth of the trials), the size of the snapshot at the end, and memory against trials done.
It also samples the driver's RssAnon (its heaps) against trials done: the slope while the search runs,
the growth from a quarter of the trials to the run's end (the work after the last trial included), and
what the driver adds after the last trial. Exit status: 0 when every run met the targets (wall ≤ 1.10 x
ideal at the largest size, driver peak ≤ 1.5 GB at every size, and where plain Tune ran at the largest
size, ours' RssAnon a trial ≤ 0.05 MB beyond Tune's by both measures), 1 otherwise.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import math
import os
import platform
import resource
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # run as a script, uninstalled

from benchmarks._clock import clocked_progress  # noqa: E402
from benchmarks._readme import cpu_name, write_table  # noqa: E402

MARKER = "scale"
CONCURRENCY = 2
WALL_TARGET = 1.10  # x ideal
MEMORY_TARGET_MB = 1500.0
BEYOND_TUNE_TARGET_MB = 0.05  # RssAnon a trial, ours less plain Tune's, at the largest size both ran (issue 25)
TRAINABLE_MODULE = "scale_sleep"
TRAINABLE = '''
import time


def train(config, report, resume_from=None):
    time.sleep(config["sleep"])
    report({"epoch": 1, "score": config["x"]})
'''


# ----------------------------------------------------------------------------- the child: one run


@dataclass
class RunRecord:
    """What one child run measured (written as JSON for the parent)."""

    path: str
    trials: int
    sleep_s: float
    wall_s: float  # the whole call: data, ray.init, Tuner.fit, shutdown
    fit_s: float  # first trial start to last trial end
    peak_rss_mb: float
    end_rss_mb: float
    rss_at: dict[str, float] = field(default_factory=dict)  # "25%"/"50%"/"100%" trials done -> RSS MB
    # The same moments, RSS split as /proc/self/status does: RssAnon (the heaps), RssFile (mapped files,
    # libraries), RssShmem (shared memory: Ray's object store mapped into the driver). "25%" -> kind -> MB.
    rss_kinds_at: dict[str, dict[str, float]] = field(default_factory=dict)
    anon_series: list[tuple[int, float]] = field(default_factory=list)  # (trials done, RssAnon MB), every sample
    ends: list[float] = field(default_factory=list)  # trial end times, seconds since the run started
    starts: list[float] = field(default_factory=list)
    snapshots: int = 0
    snapshot_s: float = 0.0
    snapshot_last_s: float = 0.0
    searcher_save_s: float = 0.0
    state_bytes: int = 0  # experiment_state-*.json at the end
    searcher_bytes: int = 0  # searcher-state-*.pkl at the end
    journal_bytes: int = 0
    driver_cpu_s: float = 0.0
    errors: int = 0


class MemorySampler(threading.Thread):
    """This process's RSS every ``every_s`` seconds, with the number of trials done at the time."""

    def __init__(self, done: list[int], every_s: float = 0.25) -> None:
        super().__init__(daemon=True)
        import psutil

        self.process = psutil.Process()
        self.done, self.every_s = done, every_s
        self.samples: list[tuple[int, float]] = []  # (trials done, RSS MB)
        self.kinds: list[tuple[int, dict[str, float]]] = []  # (trials done, RssAnon/RssFile/RssShmem MB)
        self.failed: BaseException | None = None
        self._halt = threading.Event()

    def run(self) -> None:
        try:
            while not self._halt.is_set():
                self.samples.append((self.done[0], self.process.memory_info().rss / 2**20))
                self.kinds.append((self.done[0], rss_kinds()))
                self._halt.wait(self.every_s)
        except BaseException as exc:  # noqa: BLE001 - raised again by stop(): a run without its samples is no run
            self.failed = exc

    def stop(self) -> None:
        self._halt.set()
        self.join()
        if self.failed is not None:
            raise RuntimeError(f"the memory sampler failed: {self.failed!r}") from self.failed

    def at_fraction(self, total: int) -> dict[str, float]:
        return _at_fractions(self.samples, total, (("25%", 0.25), ("50%", 0.5), ("100%", 1.0)), size=float)

    def kinds_at_fraction(self, total: int) -> dict[str, dict[str, float]]:
        return _at_fractions(self.kinds, total, (("25%", 0.25), ("100%", 1.0)), size=lambda kinds: sum(kinds.values()))


def _at_fractions(samples: list[tuple[int, Any]], total: int, fractions: tuple[tuple[str, float], ...],
                  size: Any) -> dict[str, Any]:
    """The first sample with each fraction of the trials done; once all are done, the largest (by ``size``)."""
    out = {}
    for label, fraction in fractions:
        seen = [value for done, value in samples if done >= fraction * total]
        if seen:
            out[label] = seen[0] if fraction < 1 else max(seen, key=size)
    return out


def rss_kinds() -> dict[str, float]:
    """This process's RssAnon, RssFile and RssShmem in MB (Linux; empty elsewhere)."""
    try:
        lines = Path("/proc/self/status").read_text().splitlines()
    except OSError:
        return {}
    out = {}
    for line in lines:
        key, _, value = line.partition(":")
        if key in ("RssAnon", "RssFile", "RssShmem"):
            out[key] = int(value.split()[0]) / 1024  # kB
    return out


@contextlib.contextmanager
def timed_snapshots(record: RunRecord) -> Any:
    """Time Tune's experiment-state snapshots (``save_to_dir``) and the searcher's part of them."""
    from ray.tune.execution.tune_controller import TuneController
    from ray.tune.search.search_generator import SearchGenerator

    original_save, original_searcher = TuneController.save_to_dir, SearchGenerator.save_to_dir

    def save_to_dir(self: Any, *args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return original_save(self, *args, **kwargs)
        finally:
            record.snapshot_last_s = time.perf_counter() - started
            record.snapshot_s += record.snapshot_last_s
            record.snapshots += 1

    def searcher_save(self: Any, *args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return original_searcher(self, *args, **kwargs)
        finally:
            record.searcher_save_s += time.perf_counter() - started

    TuneController.save_to_dir, SearchGenerator.save_to_dir = save_to_dir, searcher_save
    try:
        yield
    finally:
        TuneController.save_to_dir, SearchGenerator.save_to_dir = original_save, original_searcher


def _trial_clock(t0: float, record: RunRecord, done: list[int]) -> Any:
    """A Tune callback recording trial starts and ends (seconds since ``t0``)."""
    from ray import tune

    class Clock(tune.Callback):
        def on_trial_start(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
            record.starts.append(time.perf_counter() - t0)

        def on_trial_complete(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
            record.ends.append(time.perf_counter() - t0)
            done[0] += 1

        def on_trial_error(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
            record.errors += 1
            self.on_trial_complete(iteration, trials, trial, **info)

    return Clock()


def write_workdir(workdir: Path, trials: int, sleep_s: float) -> Path:
    """The user's trainable module and spec, side by side (the spec's folder is on the trials' path)."""
    import yaml

    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / f"{TRAINABLE_MODULE}.py").write_text(TRAINABLE)
    spec = {
        "name": "scale", "trainable": f"{TRAINABLE_MODULE}:train", "metric": "score", "mode": "max",
        "search": {"sampler": "random", "num_samples": trials, "seed": 0, "max_concurrent_trials": CONCURRENCY},
        "scheduler": {"type": "none"},
        "space": {"x": {"type": "float", "low": 1.0, "high": 2.0}},
        "fixed": {"sleep": sleep_s},
        "storage": str(workdir / "results"),
        "failure": {"max_retries": 0},
    }
    path = workdir / "scale.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def run_ours(workdir: Path, trials: int, sleep_s: float, record: RunRecord, t0: float, done: list[int]) -> Path:
    from search.engine.run import RunOptions, run_experiment
    from search.spec.load import load_spec

    spec_path = write_workdir(workdir, trials, sleep_s)
    spec = load_spec(spec_path)
    with clocked_progress(_trial_clock(t0, record, done)):
        outcome = run_experiment(spec, RunOptions(spec_path=spec_path, quiet=True))
    record.errors = max(record.errors, outcome.num_errors)
    return Path(outcome.path)


def run_plain_tune(workdir: Path, trials: int, sleep_s: float, record: RunRecord, t0: float, done: list[int]) -> Path:
    import ray
    from ray import tune

    def train(config: dict[str, Any]) -> None:  # the same trainable, reporting through Tune
        time.sleep(config["sleep"])
        tune.report({"epoch": 1, "score": config["x"]})

    ray.init(num_cpus=CONCURRENCY, log_to_driver=False)
    try:
        tuner = tune.Tuner(
            train,
            param_space={"x": tune.uniform(1.0, 2.0), "sleep": sleep_s},
            tune_config=tune.TuneConfig(num_samples=trials, max_concurrent_trials=CONCURRENCY, reuse_actors=True),
            run_config=tune.RunConfig(name="scale_plain", storage_path=str(workdir / "results"), verbose=0,
                                      callbacks=[_trial_clock(t0, record, done)]),
        )
        with contextlib.redirect_stdout(sys.stderr):
            results = tuner.fit()
        record.errors = max(record.errors, len(results.errors))
    finally:
        ray.shutdown()
    return workdir / "results" / "scale_plain"


def child(args: argparse.Namespace) -> int:
    """One run in this process; its record as JSON in ``args.result``."""
    import psutil

    workdir = Path(args.workdir)
    record = RunRecord(args.child, args.n, args.sleep, 0.0, 0.0, 0.0, 0.0)
    done = [0]
    sampler = MemorySampler(done)
    sampler.start()
    profiler = None
    if args.profile:
        import cProfile

        profiler = cProfile.Profile()
    t0 = time.perf_counter()
    with timed_snapshots(record):
        if profiler is not None:
            profiler.enable()
        runner = run_ours if args.child == "ours" else run_plain_tune
        folder = runner(workdir, args.n, args.sleep, record, t0, done)
        if profiler is not None:
            profiler.disable()
    record.wall_s = time.perf_counter() - t0
    sampler.stop()
    rss_now = psutil.Process().memory_info().rss / 2**20
    # ru_maxrss is in KiB on Linux: the true peak, between two samples included.
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    record.peak_rss_mb = max(peak, max((mb for _, mb in sampler.samples), default=0.0))
    record.end_rss_mb = rss_now
    record.rss_at = sampler.at_fraction(args.n)
    record.rss_kinds_at = sampler.kinds_at_fraction(args.n)
    record.anon_series = [(done, round(kinds.get("RssAnon", float("nan")), 2)) for done, kinds in sampler.kinds]
    record.fit_s = (max(record.ends) - min(record.starts)) if record.ends and record.starts else 0.0
    cpu = psutil.Process().cpu_times()
    record.driver_cpu_s = cpu.user + cpu.system
    for pattern, attr in (("experiment_state-*.json", "state_bytes"), ("searcher-state-*.pkl", "searcher_bytes"),
                          ("optuna.journal", "journal_bytes")):
        setattr(record, attr, sum(p.stat().st_size for p in folder.glob(pattern)))
    Path(args.result).write_text(json.dumps(asdict(record)))
    if profiler is not None:
        import io
        import pstats

        for order in ("tottime", "cumulative"):
            text = io.StringIO()
            pstats.Stats(profiler, stream=text).sort_stats(order).print_stats(30)
            Path(f"{args.result}.{order}.txt").write_text(text.getvalue())
        profiler.dump_stats(f"{args.result}.prof")
    return 0


# ----------------------------------------------------------------------------- the parent


def run_child(path: str, trials: int, sleep_s: float, profile: bool, keep: Path | None) -> RunRecord:
    """Run one measurement in a fresh process; return its record."""
    workdir = Path(tempfile.mkdtemp(prefix=f"scale-{path}-{trials}-"))
    result = workdir / "record.json"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    command = [sys.executable, str(Path(__file__).resolve()), "--child", path, "--n", str(trials),
               "--sleep", str(sleep_s), "--workdir", str(workdir), "--result", str(result)]
    if profile:
        command.append("--profile")
    started = time.perf_counter()
    log = workdir / "child.log"
    try:
        with open(log, "w") as fh:
            # Generous: a run that hangs must not hold the machine (ideal x 3 + 2 min).
            proc = subprocess.run(command, stdout=fh, stderr=subprocess.STDOUT, env=env, cwd=str(workdir),
                                  timeout=trials * sleep_s / CONCURRENCY * 3 + 120)
        if proc.returncode != 0 or not result.exists():
            tail = log.read_text()[-3000:]
            raise RuntimeError(f"{path} with {trials} trials failed (exit {proc.returncode}):\n{tail}")
        record = RunRecord(**json.loads(result.read_text()))
        if profile:
            for order in ("tottime", "cumulative"):
                text = Path(f"{result}.{order}.txt").read_text()
                print(f"\n--- cProfile of the driver, {path}, {trials} trials, by {order} ---\n"
                      + "\n".join(text.splitlines()[:50]), file=sys.stderr)
            if keep is not None:
                keep.mkdir(parents=True, exist_ok=True)
                shutil.copy(f"{result}.prof", keep / f"scale-{path}-{trials}.prof")
        print(f"  {path:5s} {trials:5d} trials: wall {record.wall_s:7.1f} s (child {time.perf_counter() - started:.1f} s), "
              f"peak RSS {record.peak_rss_mb:6.0f} MB, {record.snapshots} snapshots {record.snapshot_s:.1f} s "
              f"(last {record.snapshot_last_s * 1000:.0f} ms), searcher saves {record.searcher_save_s:.1f} s, "
              f"state {record.state_bytes / 1024:.0f} KiB, driver CPU {record.driver_cpu_s:.0f} s, "
              f"late per-trial {late_cost(record):.3f} s", file=sys.stderr, flush=True)
        print(f"        RssAnon a trial: {anon_in_search(record):.3f} MB in the search (slope), {anon_to_end(record):.3f} MB "
              f"to the end; {anon_after_last(record):+.1f} MB after the last trial", file=sys.stderr, flush=True)
        if {"25%", "100%"} <= record.rss_kinds_at.keys():
            quarter, end = record.rss_kinds_at["25%"], record.rss_kinds_at["100%"]
            per_trial = {kind: (end[kind] - quarter[kind]) / (0.75 * trials) for kind in end if kind in quarter}
            print("        RSS from a quarter to all of the trials, MB a trial: "
                  + ", ".join(f"{kind} {mb:.3f} ({quarter[kind]:.1f} -> {end[kind]:.1f} MB)"
                              for kind, mb in per_trial.items()), file=sys.stderr, flush=True)
        return record
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def ideal_s(trials: int, sleep_s: float) -> float:
    return trials * sleep_s / CONCURRENCY


def _slope_cost(ends: list[float], sleep_s: float, lo: float, hi: float) -> float:
    """Slot-seconds per trial beyond the sleep, over the trials ending in the [lo, hi) fraction of the run."""
    ends = sorted(ends)
    a, b = int(lo * (len(ends) - 1)), int(hi * (len(ends) - 1))
    # Trials end in waves of CONCURRENCY (they start together): measure over whole waves.
    b = a + (b - a) // CONCURRENCY * CONCURRENCY
    if b - a < CONCURRENCY:
        return float("nan")
    return (ends[b] - ends[a]) / (b - a) * CONCURRENCY - sleep_s


def anon_in_search(record: RunRecord) -> float:
    """MB of RssAnon a trial while the search runs: the least-squares slope against trials done, from a quarter
    of the trials done until the last one ends (what the driver keeps per trial, without what it does after)."""
    points = [(done, mb) for done, mb in record.anon_series if record.trials / 4 <= done < record.trials]
    if len({done for done, _ in points}) < 2:
        return float("nan")
    return statistics.linear_regression([done for done, _ in points], [mb for _, mb in points]).slope


def anon_to_end(record: RunRecord) -> float:
    """MB of RssAnon a trial from a quarter of the trials done to the end: the sample, once all are done, with the
    largest resident total (as the RSS columns take it). What the driver holds at its end per trial, the work
    after the last trial (the run's results read back) included."""
    quarter, end = record.rss_kinds_at.get("25%", {}), record.rss_kinds_at.get("100%", {})
    if "RssAnon" not in quarter or "RssAnon" not in end:
        return float("nan")
    return (end["RssAnon"] - quarter["RssAnon"]) / (0.75 * record.trials)


def anon_after_last(record: RunRecord) -> float:
    """MB of RssAnon the driver adds after the last trial ends (largest sample then, less the first)."""
    after = [mb for done, mb in record.anon_series if done >= record.trials]
    return max(after) - after[0] if after else float("nan")


def early_cost(record: RunRecord) -> float:
    return _slope_cost(record.ends, record.sleep_s, 0.0, 0.2)


def late_cost(record: RunRecord) -> float:
    return _slope_cost(record.ends, record.sleep_s, 0.8, 1.0)


@dataclass
class Row:
    path: str
    trials: int
    runs: list[RunRecord]

    def median(self, fn: Any) -> float:
        return statistics.median(fn(r) for r in self.runs)

    def spread(self, fn: Any, digits: int = 1) -> str:
        values = [fn(r) for r in self.runs]
        if len(values) < 2:
            return f"{values[0]:.{digits}f}"
        return f"{statistics.median(values):.{digits}f} ({min(values):.{digits}f}–{max(values):.{digits}f})"


def beyond_tune(rows: Sequence[Row], trials: int) -> tuple[float, float] | None:
    """(in the search, to the end): ours' RssAnon a trial less plain Tune's at ``trials``; None without both."""
    by_path = {r.path: r for r in rows if r.trials == trials}
    if not {"ours", "tune"} <= by_path.keys():
        return None
    ours, tune = by_path["ours"], by_path["tune"]
    return (ours.median(anon_in_search) - tune.median(anon_in_search),
            ours.median(anon_to_end) - tune.median(anon_to_end))


def beyond_ok(beyond: tuple[float, float] | None) -> bool | None:
    """Both measures within the target; None: no plain Tune row to compare with, or a measure missing (NaN)."""
    if beyond is None or any(math.isnan(x) for x in beyond):
        return None
    return max(beyond) <= BEYOND_TUNE_TARGET_MB


def table(rows: Sequence[Row], sleep_s: float, notes: Sequence[str]) -> str:
    largest = max(r.trials for r in rows)
    beyond = beyond_tune(rows, largest)
    head = ("| trials | path | runs | ideal s | wall s | wall / ideal | overhead per trial s (all-in) "
            "| per trial early / late s | driver peak MB | RssAnon MB a trial: in the search / to the end "
            "| after the last trial MB | snapshots (s total, last ms) | state KiB | target | verdict |")
    out = [head, "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|"]
    for row in rows:
        ideal = ideal_s(row.trials, sleep_s)
        ratio = row.median(lambda r: r.wall_s / ideal)
        all_in = row.median(lambda r: (r.wall_s - ideal) * CONCURRENCY / r.trials)
        peak = row.median(lambda r: r.peak_rss_mb)
        if row.path == "ours":
            at_largest = row.trials == largest
            wall_ok = ratio <= WALL_TARGET if at_largest else None
            memory_ok = peak <= MEMORY_TARGET_MB
            per_trial_ok = beyond_ok(beyond) if at_largest else None
            target = f"≤ {MEMORY_TARGET_MB / 1000:.1f} GB"
            if at_largest:
                target = f"≤ {WALL_TARGET:.2f}× ideal, " + target
                if beyond is not None:
                    target += f", ≤ {BEYOND_TUNE_TARGET_MB} MB a trial beyond Tune's"
            verdict = "PASS" if memory_ok and wall_ok is not False and per_trial_ok is not False else "FAIL"
            if not at_largest and ratio > WALL_TARGET:
                verdict += f" (wall {ratio:.2f}×)"
            if at_largest and beyond is not None:
                verdict += f" (beyond Tune's: {beyond[0]:+.3f} / {beyond[1]:+.3f} MB a trial)"
        else:
            target, verdict = "—", "reference"
        errors = sum(r.errors for r in row.runs)
        if errors:
            verdict += f", {errors} trial error(s)"
        out.append(
            f"| {row.trials} | {row.path} | {len(row.runs)} | {ideal:.0f} | {row.spread(lambda r: r.wall_s)} "
            f"| {ratio:.3f} | {all_in:.3f} | {row.median(early_cost):.3f} / {row.median(late_cost):.3f} "
            f"| {peak:.0f} | {row.median(anon_in_search):.3f} / {row.median(anon_to_end):.3f} "
            f"| {row.median(anon_after_last):+.1f} "
            f"| {row.median(lambda r: r.snapshots):.0f} ({row.median(lambda r: r.snapshot_s):.1f}, "
            f"{row.median(lambda r: r.snapshot_last_s) * 1000:.0f}) | {row.median(lambda r: r.state_bytes) / 1024:.0f} "
            f"| {target} | {verdict} |")
    return "\n".join(out) + "\n\n" + "\n".join(f"{note}  " for note in notes).rstrip() + "\n"


def machine_line(argv: Sequence[str], loads: tuple[float, float], sleep_s: float) -> str:
    import optuna
    import ray

    uname = platform.uname()
    return (f"Machine: {cpu_name()} ({uname.machine}, {uname.system} {uname.release}), {os.cpu_count()} CPUs; "
            f"Python {platform.python_version()}, ray {ray.__version__}, optuna {optuna.__version__}; "
            f"{datetime.date.today().isoformat()}; trials of {sleep_s:g} s, {CONCURRENCY} at a time; load average "
            f"{loads[0]:.1f} at start, {loads[1]:.1f} at end (other engineers' processes share the 2 CPUs); "
            f"`{shlex.join(['python', 'benchmarks/scale.py', *argv])}`")


def load_average() -> float:
    return os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", default="100,300,1000", help="comma-separated sizes (default 100,300,1000)")
    parser.add_argument("--sleep", type=float, default=1.0, help="seconds each trial sleeps (default 1)")
    parser.add_argument("--repeats", type=int, default=3,
                        help="runs per size up to --repeat-below trials (median; default 3)")
    parser.add_argument("--repeat-below", type=int, default=100,
                        help="sizes above this run once (default 100: a 1,000-trial run alone takes >= 500 s)")
    parser.add_argument("--tune-trials", default="100,300",
                        help="sizes also run with plain Tune, the Ray-alone baseline (default 100,300; '' for none)")
    parser.add_argument("--quick", action="store_true", help="20 and 40 trials, one run each: a check that it works")
    parser.add_argument("--profile", action="store_true",
                        help="also run ours once under cProfile and print the driver's top functions")
    parser.add_argument("--profile-trials", type=int, default=None,
                        help="trials of the profiled run (default: the largest size)")
    parser.add_argument("--profile-dir", type=Path, default=None, help="keep the .prof files here")
    parser.add_argument("--write-readme", action="store_true", help="write the table into docs/benchmarks.md")
    parser.add_argument("--child", choices=("ours", "tune"), help=argparse.SUPPRESS)
    parser.add_argument("--n", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--workdir", help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return child(args)
    if args.quick:
        args.trials, args.repeats, args.tune_trials = "20,40", 1, "20"
    sizes = sorted({int(s) for s in args.trials.split(",") if s.strip()})
    tune_sizes = {int(s) for s in args.tune_trials.split(",") if s.strip()} & set(sizes)
    if not sizes or min(sizes) < 10:
        parser.error("--trials: sizes of at least 10 (the per-trial cost is a slope over a fifth of the trials)")
    load = load_average()
    if load > 0.5:
        print(f"warning: load average {load:.1f}: other processes are running, the figures will be noisy",
              file=sys.stderr)
    rows: list[Row] = []
    for n in sizes:
        repeats = args.repeats if n <= args.repeat_below else 1
        for path in ("ours", "tune") if n in tune_sizes else ("ours",):
            print(f"{path}: {n} trials x {repeats} run(s) (ideal {ideal_s(n, args.sleep):.0f} s each) ...",
                  file=sys.stderr, flush=True)
            rows.append(Row(path, n, [run_child(path, n, args.sleep, False, None) for _ in range(repeats)]))
    profile_note = ""
    if args.profile:
        n = args.profile_trials or max(sizes)
        print(f"profile: ours, {n} trials under cProfile (not in the table) ...", file=sys.stderr, flush=True)
        profiled = run_child("ours", n, args.sleep, True, args.profile_dir)
        profile_note = (f"A separate cProfile'd run of ours at {n} trials (not in the table) took "
                        f"{profiled.wall_s:.0f} s; its top functions are printed on stderr.")
    ours = [r for r in rows if r.path == "ours"]
    notes = [
        "ideal = trials × sleep / 2, no overhead at all. wall: the whole `run_experiment` call (data, `ray.init`, "
        "`Tuner.fit`, `ray.shutdown`); plain Tune: `ray.init` to `ray.shutdown`. Overhead per trial = (wall − ideal) "
        "× 2 / trials (slot-seconds per trial, start-up included); early / late: the same from the end times of the "
        "first and last fifth of the trials (the marginal cost of a trial, start-up excluded): a late figure above "
        "the early one is a cost that grows with the trials already run.",
        "Snapshots: Tune's experiment-state saves (`TuneController.save_to_dir`: trials' JSON, searcher pickle and "
        "Optuna journal, callbacks), count, total seconds, and the last one's duration; state KiB: "
        "`experiment_state-*.json` at the end. Driver peak: the child process's `ru_maxrss` (and RSS sampled every "
        "0.25 s). RssAnon (the driver's heaps, from `/proc/self/status`) a trial: in the search, the least-squares "
        "slope against trials done, from a quarter of the trials done until the last one ends; to the end, from a "
        "quarter of the trials done to the sample with the largest RSS once all are done, so what the run does "
        "after its last trial (reading its results back) counts as well; after the last trial: what the driver "
        "adds then. "
        f"Beyond Tune's: ours less plain Tune's at the largest size both ran (target ≤ {BEYOND_TUNE_TARGET_MB} MB "
        "a trial, both measures).",
        (f"Runs: median of {args.repeats} for sizes up to {args.repeat_below} trials (range in brackets), one run "
         "above. " if args.repeats > 1 else "Runs: one run of each. ") + profile_note,
        machine_line(argv, (load, load_average()), args.sleep),
    ]
    markdown = table(rows, args.sleep, notes)
    print(f"\n{markdown}")
    for row in ours:
        print(f"ours {row.trials}: wall/ideal {row.median(lambda r: r.wall_s / ideal_s(r.trials, r.sleep_s)):.3f}, "
              f"peak {row.median(lambda r: r.peak_rss_mb):.0f} MB, per trial early "
              f"{row.median(early_cost):.3f} s late {row.median(late_cost):.3f} s")
    if args.write_readme:
        print(f"wrote {write_table(MARKER, markdown)}", file=sys.stderr)
    largest = max(ours, key=lambda r: r.trials)
    beyond = beyond_tune(rows, largest.trials)
    ok = (largest.median(lambda r: r.wall_s / ideal_s(r.trials, r.sleep_s)) <= WALL_TARGET
          and all(r.median(lambda r: r.peak_rss_mb) <= MEMORY_TARGET_MB for r in ours)
          and beyond_ok(beyond) is not False
          and not any(run.errors for r in rows for run in r.runs))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
