"""What one epoch costs in a trial of ours against the same epoch in a standalone Optuna worker.

Issue 25, item 3. ``search_efficiency.py``'s "wall per epoch run" divides a whole search (Ray's
start, the trial processes' imports, the refit, the shutdown) by the epochs it ran, and its two
arms prune different trials, so its per-epoch ratio mixes fixed costs into the epochs. This script
holds everything but the per-epoch path equal: the same ``--trials`` configurations (drawn once,
seeded, from ``search_efficiency``'s space), each trained for all ``--epochs`` epochs (no pruner, no
early stop), two at a time, on the same data, in seven arms:

- **standalone**: two spawned processes, each calling ``train_feature_selection`` on half of the
  configurations with a plain report function (what a hand-written Optuna objective does), ranked by
  the spec's metric as ours is, so the built-in trainable writes the same checkpoint folders as in ours
  (its best epochs, its last, otherwise one every ``checkpoint_every_s``), and the worker drops them;
- **plain Tune**: what a person wiring Ray Tune by hand gets: a ``Tuner`` over the configurations'
  indices, the same training function (ranked as above) reporting each epoch and its checkpoint folder
  to ``tune.report``, ``num_to_keep: 2``, trial processes reused, Tune's default loggers, no searcher or
  callbacks of ours;
- **plain Tune without loggers or forced snapshots**: the same with Tune's default loggers off
  (``TUNE_DISABLE_AUTO_CALLBACK_LOGGERS``) and every checkpoint kept (so none forces an experiment
  snapshot): a lean Tune set-up;
- **ours**: ``run_experiment`` on a spec whose ``search.points_to_evaluate`` are those
  configurations (``scheduler: none``), the built-in trainable's default checkpointing (its best
  epochs, its last, otherwise one every ``checkpoint_every_s``, 10 s);
- **ours with a checkpoint every epoch**: the same with ``fixed.checkpoint_every_s: 0`` (the default before
  issue 25, item 3);
- **ours without checkpoints**: the same with ``fixed.checkpoint_every: 0``: what checkpointing costs;
- **ours with Tune's forced snapshots**: the same as ours, with Tune's experiment snapshot forced after
  every ``num_to_keep`` checkpoints of a trial, as Tune does (ours spaces them at least
  ``FORCED_SNAPSHOT_MIN_S`` apart: ``search.internals.spaced_forced_snapshots``);
- **ours with Tune's TensorBoard logger**: the same as ours, with Tune's default TBX logger writing every
  result's event on the driver's loop (ours writes them on a thread: ``BackgroundTensorBoard``).

Per epoch, each arm's figure is the median time between two consecutive epochs of one trial
(epochs 2 to the last, so a trial's start is not in it). For a Tune arm it is split into the part spent
in the trial process (Tune's ``time_this_iter_s``: the epoch, the checkpoint folder, its copy into
the trial's storage) and the rest: the round trip through the driver that Tune's function API makes
at every report (the training thread waits until the driver asks for the next result). The
steady-state column is the wall from the first trial's first epoch to the last trial's end,
divided by the epochs run, so start-up and shutdown are outside it.

Two more columns locate the rest: the trainer's own epoch (the ``epoch_time_s`` it reports, the same
code on both sides, so a difference there comes from what runs beside it: Tune's hand-over at every
epoch, the driver's and Ray's processes) and, for the Tune arms, the time between two trials in one
reused trial process (Tune ending one trial, the searcher's next
configuration, the process reset), which a search whose pruner cuts trials early pays every few epochs.
And the driver's CPU time per result, from its first result to its last: on its main thread, where Tune's
loop handles every result (searcher, scheduler, callbacks), and in the whole process.

Run: ``python benchmarks/epoch_overhead.py --write-readme`` (3 repetitions, arms interleaved,
about 10 minutes on 2 cores); ``--repeats 1 --trials 4 --epochs 8`` for a check; short trials, as an
early-cutting pruner leaves them, into a table of their own: ``--trials 40 --epochs 3 --arms
"standalone,plain Tune,plain Tune without loggers or forced snapshots,ours,ours without checkpoints"
--write-readme``; ``--concurrency 1`` leaves a core free (its table is printed, not written).
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing
import os
import platform
import shlex
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks._clock import clocked_progress  # noqa: E402
from benchmarks._readme import cpu_name, write_table  # noqa: E402

MARKER = "epoch_overhead"
DEFAULT_CONCURRENCY = 2
CONCURRENCY = DEFAULT_CONCURRENCY  # --concurrency sets it for the run
TARGET = 1.15  # issue 25: ours <= 1.15x standalone Optuna per epoch
SHORT_EPOCHS = 5  # --write-readme: trials this short (a search whose pruner cuts early) get a table of their own
DATA = {"name": "madelon_guyon", "n_samples": 4000, "n_probes": 80, "seed": 0}
SPACE = {"lr": (1e-3, 3e-2), "selector_lr_ratio": (1.0, 100.0), "sparsity_lambda": (1e-4, 1e-2)}
LEAN_TUNE = "plain Tune without loggers or forced snapshots"
EVERY_EPOCH = "ours with a checkpoint every epoch"
ARMS = ("standalone", "plain Tune", LEAN_TUNE, "ours", EVERY_EPOCH, "ours without checkpoints",
        "ours with Tune's forced snapshots", "ours with Tune's TensorBoard logger")
METRIC = "val_accuracy"  # ours' metric (mode max), by which every arm's checkpoints are ranked


def configurations(trials: int, epochs: int, seed: int = 0) -> list[dict[str, Any]]:
    """``trials`` configurations, log-uniform in :data:`SPACE`, seeded; every one runs every epoch."""
    import random

    rng = random.Random(seed)
    out = []
    for i in range(trials):
        config = {k: round(math.exp(rng.uniform(math.log(lo), math.log(hi))), 6) for k, (lo, hi) in SPACE.items()}
        out.append({**config, "hidden_sizes": [16, 64][i % 2]})
    return out


def fixed(epochs: int) -> dict[str, Any]:
    return {"epochs": epochs, "batch_size": 32, "patience": epochs + 1}


# ----------------------------------------------------------------------------- standalone


def _worker(configs: list[dict[str, Any]], epochs: int, out: str) -> None:
    import torch

    from trainables.api import ranked_report
    from trainables.data import load_data
    from trainables.tasks import train_feature_selection

    torch.set_num_threads(1)  # one core per trial, as each Ray trial process has
    data = load_data(dict(DATA))
    trials, compute, saved = [], [], 0
    for config in configs:
        stamps: list[float] = []

        def report(metrics: dict[str, Any], checkpoint_dir: Any = None) -> None:
            nonlocal saved
            saved += checkpoint_dir is not None
            stamps.append(time.time())
            if len(stamps) > 1:  # epochs 2.., as the per-epoch figures
                compute.append(metrics["epoch_time_s"])

        train_feature_selection({**fixed(epochs), **config}, ranked_report(report, METRIC, "max"), data=data)
        trials.append(stamps)
    Path(out).write_text(json.dumps({"trials": trials, "compute": compute, "saved": saved}))


def run_standalone(configs: list[dict[str, Any]], epochs: int, work: Path) -> dict[str, Any]:
    context = multiprocessing.get_context("spawn")
    outs = [str(work / f"standalone-{rank}.json") for rank in range(CONCURRENCY)]
    procs = [context.Process(target=_worker, args=(configs[rank::CONCURRENCY], epochs, outs[rank]))
             for rank in range(CONCURRENCY)]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join()
    if any(proc.exitcode != 0 for proc in procs):
        raise RuntimeError("a standalone worker failed")
    records = [json.loads(Path(out).read_text()) for out in outs]
    return {"trials": [stamps for record in records for stamps in record["trials"]], "iters": None,
            "compute": [s for record in records for s in record["compute"]], "between": None,
            "saved": sum(record["saved"] for record in records)}


# ----------------------------------------------------------------------------- ours


def run_ours(configs: list[dict[str, Any]], epochs: int, work: Path, checkpoints: bool,
             tune_snapshots: bool = False, tune_tensorboard: bool = False, every_epoch: bool = False) -> dict[str, Any]:
    import yaml

    import search.engine.callbacks
    import search.internals
    from search.engine.run import RunOptions, run_experiment
    from search.spec.load import load_spec

    name = ("ours_every" if every_epoch else "ours") if checkpoints else "ours_nockpt"
    spec = {
        "name": name, "trainable": "feature_selection", "data": dict(DATA), "metric": METRIC, "mode": "max",
        "search": {"sampler": "random", "num_samples": len(configs), "seed": 0, "max_concurrent_trials": CONCURRENCY,
                   "points_to_evaluate": configs},
        "scheduler": {"type": "none"},
        # The space the fixed configurations were drawn from (the searcher samples none: points_to_evaluate).
        "space": {**{k: {"type": "float", "low": lo, "high": hi, "log": True} for k, (lo, hi) in SPACE.items()},
                  "hidden_sizes": {"type": "categorical", "choices": [16, 64]}},
        "fixed": {**fixed(epochs), **({} if checkpoints else {"checkpoint_every": 0}),
                  **({"checkpoint_every_s": 0} if every_epoch else {})},
        "resources": {"num_workers": 1, "cpus_per_worker": 1, "use_gpu": False},
        "storage": str(work / "results"), "failure": {"max_retries": 0},
    }
    path = work / f"{name}.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    clock = _TuneClock()

    spaced, tensorboard = search.internals.FORCED_SNAPSHOT_MIN_S, search.engine.callbacks.tensorboard_logger
    search.internals.FORCED_SNAPSHOT_MIN_S = 0.0 if tune_snapshots else spaced  # 0: forced as often as Tune does
    if tune_tensorboard:  # none of ours given: Tune adds its default TBXLoggerCallback
        search.engine.callbacks.tensorboard_logger = list
    try:
        with clocked_progress(clock):
            run_experiment(load_spec(path), RunOptions(spec_path=path, quiet=True))
    finally:
        search.internals.FORCED_SNAPSHOT_MIN_S = spaced
        search.engine.callbacks.tensorboard_logger = tensorboard
    return clock.run()


class _TuneClock:
    """A Tune callback's record of every result as the driver receives it: by trial and by trial process."""

    def __init__(self) -> None:
        self.stamps: dict[str, list[float]] = {}
        self.by_process: dict[int, list[tuple[float, str, float]]] = {}  # pid -> (stamp, trial, time_this_iter_s)
        self.iters: list[float] = []  # time_this_iter_s, epochs 2..
        self.compute: list[float] = []  # the trainer's epoch_time_s, epochs 2..
        self.saved = 0  # results that came with a checkpoint
        self.cpu: list[tuple[float, float]] = []  # (driver's main thread, whole driver) CPU seconds at each result

    def on_trial_result(self, iteration: int, trials: list[Any], trial: Any, result: dict[str, Any],
                        **info: Any) -> None:
        now = time.time()
        self.cpu.append((time.thread_time(), time.process_time()))  # Tune's loop calls back on the driver's main thread
        self.saved += bool(result.get("checkpoint_dir_name"))
        seen = self.stamps.setdefault(trial.trial_id, [])
        if seen:
            self.iters.append(result["time_this_iter_s"])
            self.compute.append(result["epoch_time_s"])
        seen.append(now)
        self.by_process.setdefault(result["pid"], []).append((now, trial.trial_id, result["time_this_iter_s"]))

    def run(self) -> dict[str, Any]:
        # Between two trials in one (reused) trial process: from the driver receiving a trial's last result to
        # the next trial's first train() call there (its first result's arrival less its time_this_iter_s).
        between = []
        for results in self.by_process.values():
            ordered = sorted(results)
            between += [b[0] - a[0] - b[2] for a, b in zip(ordered, ordered[1:]) if a[1] != b[1]]
        return {"trials": list(self.stamps.values()), "iters": self.iters, "compute": self.compute,
                "between": between, "saved": self.saved, "cpu": self.cpu}


# ----------------------------------------------------------------------------- plain Tune


def _plain_tune_trainable(config: dict[str, Any], data: Any = None, configs: Any = None, epochs: int = 0) -> None:
    """What a person wiring Ray Tune by hand writes: the same training function, each epoch to ``tune.report``."""
    from ray import tune

    from trainables.api import ranked_report
    from trainables.tasks import train_feature_selection

    def report(metrics: dict[str, Any], checkpoint_dir: Any = None) -> None:
        checkpoint = tune.Checkpoint.from_directory(str(checkpoint_dir)) if checkpoint_dir else None
        tune.report(dict(metrics), checkpoint=checkpoint)

    # Ranked as ours is (and as CheckpointConfig would say): the same checkpoints written as in ours.
    train_feature_selection({**fixed(epochs), **configs[config["index"]]}, ranked_report(report, METRIC, "max"),
                            data=data)


def run_plain_tune(configs: list[dict[str, Any]], epochs: int, work: Path, lean: bool = False) -> dict[str, Any]:
    """Plain Ray Tune on the same configurations: a ``Tuner`` over their indices, a trial process per slot,
    reused. With Tune's defaults: its loggers (CSV, JSON, TensorBoard) on the driver's loop and checkpoints
    kept by ``num_to_keep: 2`` as ours, which forces an experiment snapshot every second checkpoint of a
    trial. ``lean``: no loggers (``TUNE_DISABLE_AUTO_CALLBACK_LOGGERS``) and every checkpoint kept, so no
    forced snapshots: a lean Tune set-up."""
    import ray
    from ray import tune

    from trainables.data import load_data

    ray.init(num_cpus=os.cpu_count(), include_dashboard=False)  # log_to_driver as ours: Ray's default
    if lean:  # run_arm puts the environment back
        os.environ["TUNE_DISABLE_AUTO_CALLBACK_LOGGERS"] = "1"
    try:
        clock = _TuneClock()

        class Clock(tune.Callback):
            def on_trial_result(self, **info: Any) -> None:
                clock.on_trial_result(**info)

        trainable = tune.with_parameters(_plain_tune_trainable, data=load_data(dict(DATA)), configs=configs,
                                         epochs=epochs)
        tuner = tune.Tuner(
            tune.with_resources(trainable, {"cpu": 1}),
            param_space={"index": tune.grid_search(list(range(len(configs))))},
            tune_config=tune.TuneConfig(max_concurrent_trials=CONCURRENCY, reuse_actors=True),
            run_config=tune.RunConfig(name="plain", storage_path=str(work / "results"), verbose=0, callbacks=[Clock()],
                                      checkpoint_config=tune.CheckpointConfig(num_to_keep=None if lean else 2)))
        if tuner.fit().errors:
            raise RuntimeError("a plain Tune trial failed")
    finally:
        ray.shutdown()
    return clock.run()


def run_arm(arm: str, configs: list[dict[str, Any]], epochs: int, work: Path) -> dict[str, Any]:
    """One arm, with this process's environment put back after it: ``run_experiment`` sets Ray and Tune
    variables (``search.engine.session``) that would otherwise change the plain Tune arms run after it."""
    if arm not in ARMS:
        raise ValueError(f"unknown arm {arm!r}; the arms: {', '.join(ARMS)}")
    environ = dict(os.environ)
    try:
        if arm == "standalone":
            return run_standalone(configs, epochs, work)
        if arm.startswith("plain Tune"):
            return run_plain_tune(configs, epochs, work, lean=arm == LEAN_TUNE)
        return run_ours(configs, epochs, work, checkpoints=arm != "ours without checkpoints",
                        tune_snapshots=arm == "ours with Tune's forced snapshots",
                        tune_tensorboard=arm == "ours with Tune's TensorBoard logger", every_epoch=arm == EVERY_EPOCH)
    finally:
        os.environ.clear()
        os.environ.update(environ)


# ----------------------------------------------------------------------------- figures


def figures(run: dict[str, Any]) -> dict[str, float]:
    """Median epoch (epochs 2..), steady-state wall per epoch, and for a Tune arm the in-trial median."""
    gaps = [b - a for stamps in run["trials"] for a, b in zip(stamps, stamps[1:])]
    epochs = sum(len(stamps) for stamps in run["trials"])
    first = min(stamps[0] for stamps in run["trials"])
    last = max(stamps[-1] for stamps in run["trials"])
    out = {"epoch_ms": statistics.median(gaps) * 1e3,
           "steady_ms": (last - first) / max(1, epochs - CONCURRENCY) * CONCURRENCY * 1e3,
           "epochs": epochs, "compute_ms": statistics.median(run["compute"]) * 1e3,
           "saved_pct": 100 * run["saved"] / max(1, epochs)}
    if run["iters"]:
        out["iter_ms"] = statistics.median(run["iters"]) * 1e3
    if run["between"]:
        out["between_ms"] = statistics.median(run["between"]) * 1e3
    cpu = run.get("cpu") or []
    if len(cpu) > 1:  # the driver's CPU per result, from the first result to the last
        out["driver_cpu_ms"] = (cpu[-1][0] - cpu[0][0]) / (len(cpu) - 1) * 1e3
        out["driver_all_cpu_ms"] = (cpu[-1][1] - cpu[0][1]) / (len(cpu) - 1) * 1e3
    return out


def table(results: dict[str, list[dict[str, float]]], args: argparse.Namespace, loads: tuple[float, float],
          argv: list[str]) -> str:
    import ray
    import torch

    def med(arm: str, key: str) -> float:
        values = [r[key] for r in results[arm] if key in r]
        return statistics.median(values) if values else float("nan")

    def paired(arm: str) -> list[float]:
        """Each repetition's epoch against the standalone one of the same repetition (the arms run interleaved)."""
        return [r["epoch_ms"] / b["epoch_ms"] for r, b in zip(results[arm], results["standalone"])]

    base_epoch, base_steady = med("standalone", "epoch_ms"), med("standalone", "steady_ms")
    lines = ["| arm | runs | epochs checkpointed | epoch, median ms | vs standalone | per repetition vs standalone (median) "
             "| the trainer's epoch ms | in the trial process ms | driver round trip ms | between trials ms "
             "| driver CPU per result ms: Tune's loop / whole driver "
             "| steady-state wall per epoch and slot ms | vs standalone | target | verdict |",
             "|---|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    for arm in [arm for arm in ARMS if results[arm]]:  # the arms that ran, standalone among them
        epoch, steady, it = med(arm, "epoch_ms"), med(arm, "steady_ms"), med(arm, "iter_ms")
        compute, between = med(arm, "compute_ms"), med(arm, "between_ms")
        loop_cpu, driver_cpu = med(arm, "driver_cpu_ms"), med(arm, "driver_all_cpu_ms")
        tune_arm = arm != "standalone"  # plain Tune's or ours
        ratio, steady_ratio = epoch / base_epoch, steady / base_steady
        pairs = paired(arm)
        pair_ratio = statistics.median(pairs) if pairs else float("nan")
        target = f"≤ {TARGET:.2f}" if arm == "ours" else "—"
        # The verdict on the paired ratio: on a shared machine a repetition's load moves every arm in it.
        verdict = ("PASS" if pair_ratio <= TARGET else f"FAIL (+{(pair_ratio - TARGET) * 100:.0f} points)") \
            if arm == "ours" else ("baseline" if not tune_arm else "reference")
        shown = f"**{pair_ratio:.2f}×** ({', '.join(f'{x:.2f}' for x in pairs)})" if tune_arm else "—"
        lines.append(f"| {arm} | {len(results[arm])} | {med(arm, 'saved_pct'):.0f} % | {epoch:.1f} | {ratio:.2f}× | "
                     f"{shown} | {compute:.1f} | "
                     f"{f'{it:.1f}' if tune_arm else '—'} | {f'{epoch - it:.1f}' if tune_arm else '—'} | "
                     f"{f'{between:.1f}' if tune_arm and not math.isnan(between) else '—'} | "
                     f"{f'{loop_cpu:.1f} / {driver_cpu:.1f}' if tune_arm else '—'} | {steady:.1f} | "
                     f"{steady_ratio:.2f}× | {target} | {verdict} |")
    uname = platform.uname()
    lines += [
        "",
        f"Task: `feature_selection` on `{DATA['name']}` (4000 × 100), {args.trials} fixed configurations (lr, "
        f"selector_lr_ratio, sparsity_lambda drawn log-uniform, hidden 16 or 64), {args.epochs} epochs each, batch 32, "
        f"no pruning or early stop, {CONCURRENCY} at a time. Checkpoints: every arm's trainable ranks them by "
        f"{METRIC} (max) and writes its best epochs, its last and otherwise one every `checkpoint_every_s` (10 s, "
        "the built-in default; 0 in the every-epoch arm), the standalone workers dropping theirs. Epoch: the median time between two epochs of one trial "
        "(its first epoch excluded). A Tune arm's is split into the trial process's own time (Tune's `time_this_iter_s`: "
        "the epoch, the checkpoint folder written and copied into the trial's storage) and the rest, the round trip "
        "through the driver at every report. The trainer's epoch: the `epoch_time_s` it reports (training and "
        "validation only, epochs 2..), the same code on both sides. Between trials: in one reused trial process, "
        "from the driver receiving a trial's last result to the next trial's first `train()` call there (Tune "
        "ending the trial, the searcher's next configuration, the process reset). Driver CPU per result: the "
        "CPU time the driver spent from its first result to its last, per result, on the main thread (Tune's loop: "
        "results, searcher, scheduler, callbacks) and in the whole process (every thread: ours' TensorBoard writer "
        "Ray's core-worker threads and, in the first ours arm of a run only, the refit's imports made while its last "
        "trials run: the arms share one process). "
        "Steady state: first epoch of any "
        "trial to the last trial's end, per "
        "epoch and per concurrent slot (start-up, refit and shutdown excluded). Per repetition: each repetition's "
        "epoch against the standalone one of the same repetition (the arms run interleaved, so a load spike moves "
        "both), and their median; the verdict is on it.  ",
        f"Machine: {cpu_name()} ({uname.machine}, {uname.system} {uname.release}), {os.cpu_count()} CPUs, no GPU; "
        f"Python {platform.python_version()}, torch {torch.__version__}, ray {ray.__version__}; "
        f"{time.strftime('%Y-%m-%d')}; {args.repeats} repetitions, arms interleaved, medians; load average "
        f"{loads[0]:.1f} at start, {loads[1]:.1f} at end; `{shlex.join(['python', 'benchmarks/epoch_overhead.py', *argv])}`",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    global CONCURRENCY
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=6, help="configurations per arm (default 6)")
    parser.add_argument("--epochs", type=int, default=15, help="epochs per trial (default 15)")
    parser.add_argument("--repeats", type=int, default=3, help="repetitions of every arm, interleaved (default 3)")
    parser.add_argument("--arms", default=",".join(ARMS), help="comma-separated subset of the arms")
    parser.add_argument("--concurrency", type=int, default=DEFAULT_CONCURRENCY,
                        help=f"trials at a time, and standalone worker processes (default {DEFAULT_CONCURRENCY})")
    parser.add_argument("--write-readme", action="store_true", help="write the table into docs/benchmarks.md; "
                        f"a run of trials shorter than {SHORT_EPOCHS + 1} epochs into its own table ({MARKER}_short)")
    args = parser.parse_args(argv)
    CONCURRENCY = args.concurrency
    arms = [a.strip() for a in args.arms.split(",")]
    unknown = [arm for arm in arms if arm not in ARMS]
    if unknown:
        parser.error(f"--arms: unknown arm(s) {', '.join(map(repr, unknown))}; the arms: {', '.join(ARMS)}")
    if args.concurrency < 1 or args.epochs < 2 or args.trials < 1:
        parser.error("--concurrency and --trials must be at least 1, --epochs at least 2 (epoch 1 is not timed)")
    if args.write_readme and args.concurrency != DEFAULT_CONCURRENCY:
        parser.error(f"--write-readme writes the tables of {DEFAULT_CONCURRENCY} trials at a time; "
                     f"run --concurrency {args.concurrency} without it (its table is printed)")
    configs = configurations(args.trials, args.epochs)
    loads = (os.getloadavg()[0], 0.0)
    results: dict[str, list[dict[str, float]]] = {arm: [] for arm in ARMS}
    for rep in range(args.repeats):
        for arm in arms:
            with tempfile.TemporaryDirectory(prefix="epoch-overhead-") as tmp:
                work = Path(tmp)
                figs = figures(run_arm(arm, configs, args.epochs, work))
                results[arm].append(figs)
                print(f"[{rep + 1}/{args.repeats}] {arm}: " + ", ".join(f"{k} {v:.1f}" for k, v in figs.items()),
                      flush=True)
    loads = (loads[0], os.getloadavg()[0])
    if not results["standalone"] or not results["ours"]:
        print("(the standalone and ours arms are needed for a table: none)")
        return 0
    text = table(results, args, loads, argv)
    print(text)
    if args.write_readme:
        print(f"wrote {write_table(MARKER if args.epochs > SHORT_EPOCHS else f'{MARKER}_short', text)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
