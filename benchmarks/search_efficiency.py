"""Time to a target validation accuracy: TPE + ASHA against random search, and ours against plain Optuna.

Run from anywhere (the repository root is put on ``sys.path`` and on the trials' PYTHONPATH)::

    python benchmarks/search_efficiency.py                 # 3 arms x 3 seeds, 24 trials each (~6 min)
    python benchmarks/search_efficiency.py --quick         # 1 seed, 8 trials of 9 epochs: a check
    python benchmarks/search_efficiency.py --seeds 0,1,2,3,4 --write-readme

Every arm searches the same space of the built-in ``feature_selection`` trainable
(``trainables.tasks.train_feature_selection``) on the same built-in data set (``madelon_guyon``,
the quickstart's: Guyon's Madelon recipe, 20 relevant features among 100; ``--data madelon`` for
scikit-learn's easier set), with the same trial budget, two trials at a time, on this machine;
each seed is a sampler seed:

* **ours, TPE + ASHA**: ``search.engine.run.run_experiment`` on a spec with ``sampler: tpe``
  and ``scheduler: {type: asha}`` (what ``python -m search run`` does, on an embedded Ray).
* **ours, random, no scheduler**: the same with ``sampler: random``, ``scheduler: {type: none}``.
* **standalone Optuna, TPE + successive halving**: no Ray. Two worker processes share one
  study in Optuna's journal file (``JournalStorage``), each calling ``train_feature_selection``
  directly and reporting every epoch to ``trial.report`` / ``trial.should_prune`` with Optuna's
  ``SuccessiveHalvingPruner`` on the same rungs as ASHA's (``min_resource`` = grace period,
  same reduction factor); the run stops at the trial budget (``MaxTrialsCallback``).

Each arm records the best validation accuracy reported so far (any trial, any epoch)
against the wall clock from the arm's start (ours: the ``run_experiment`` call, so Ray's
start-up is counted; Optuna: the start of its two processes, whose imports and data loading
are counted). The target accuracy is ``--target``, or else ``--target-fraction`` of the best
accuracy any arm reached in the run (the rule is written under the table). Time to target:
the first moment the best so far reaches it; an arm that never does counts as not reached.
Writes the best-so-far curves to ``docs/search_efficiency.svg`` (no matplotlib or kaleido
here to write a PNG; an SVG drawn by hand, which the README's block links). Exit status: 0
when both goals are met (random / TPE+ASHA time to target ≥ 3, ours / Optuna wall ≤ 1.3),
1 otherwise.
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import multiprocessing
import os
import platform
import shlex
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # run as a script, uninstalled

from benchmarks._clock import clocked_progress  # noqa: E402
from benchmarks._readme import cpu_name, write_table  # noqa: E402

MARKER = "search_efficiency"
FIGURE = REPO / "docs" / "search_efficiency.svg"
CONCURRENCY = 2
SPEEDUP_GOAL, WALL_GOAL = 3.0, 1.3
METRIC = "val_accuracy"
ARMS = ("ours, TPE + ASHA", "ours, random, no scheduler", "standalone Optuna, TPE + SHA")
TPE_ASHA, RANDOM, OPTUNA = ARMS
COLORS = {TPE_ASHA: "#1f77b4", RANDOM: "#d62728", OPTUNA: "#2ca02c"}


@dataclass(frozen=True)
class Task:
    """The search every arm runs: data, space, fixed settings, budget and ASHA's rungs."""

    data: dict[str, Any]
    trials: int
    epochs: int
    grace_period: int
    reduction_factor: int
    startup_trials: int
    batch_size: int = 32

    @property
    def space(self) -> dict[str, Any]:
        return {
            "lr": {"type": "float", "low": 1.0e-4, "high": 1.0e-1, "log": True},
            "selector_lr_ratio": {"type": "float", "low": 1.0, "high": 100.0, "log": True},
            "sparsity_lambda": {"type": "float", "low": 1.0e-4, "high": 1.0e-1, "log": True},
            "hidden_sizes": {"type": "categorical", "choices": [16, 64]},
        }

    @property
    def fixed(self) -> dict[str, Any]:
        return {"epochs": self.epochs, "batch_size": self.batch_size}


@dataclass
class ArmRun:
    arm: str
    seed: int
    wall_s: float
    curve: list[tuple[float, float]] = field(default_factory=list)  # (seconds since start, accuracy reported)
    last_trial_end_s: float = float("nan")
    trials: int = 0
    epochs_run: int = 0
    pruned: int = 0
    errors: int = 0

    def best_so_far(self) -> list[tuple[float, float]]:
        out: list[tuple[float, float]] = []
        for t, value in sorted(self.curve):
            if not out or value > out[-1][1]:
                out.append((t, value))
        return out

    @property
    def best(self) -> float:
        return max((v for _, v in self.curve), default=float("nan"))

    def time_to(self, target: float) -> float:
        return next((t for t, v in self.best_so_far() if v >= target - 1e-12), math.inf)


# ----------------------------------------------------------------------------- ours


def spec_dict(task: Task, seed: int, tpe_asha: bool, storage: Path) -> dict[str, Any]:
    return {
        "name": f"eff_{'tpe' if tpe_asha else 'random'}_{seed}",
        "trainable": "feature_selection",
        "data": dict(task.data),
        "metric": METRIC,
        "mode": "max",
        "search": {"sampler": "tpe" if tpe_asha else "random", "num_samples": task.trials, "seed": seed,
                   "max_concurrent_trials": CONCURRENCY,
                   **({"sampler_options": {"n_startup_trials": task.startup_trials}} if tpe_asha else {})},
        "scheduler": ({"type": "asha", "grace_period": task.grace_period, "reduction_factor": task.reduction_factor}
                      if tpe_asha else {"type": "none"}),
        "space": task.space,
        "fixed": task.fixed,
        "resources": {"num_workers": 1, "cpus_per_worker": 1, "use_gpu": False},
        "checkpoint": {"num_to_keep": 2},
        "storage": str(storage),
        "failure": {"max_retries": 0},
    }


def run_ours(task: Task, seed: int, tpe_asha: bool, workdir: Path) -> ArmRun:
    import yaml

    from search.engine.run import RunOptions, run_experiment
    from search.spec.load import load_spec

    arm = TPE_ASHA if tpe_asha else RANDOM
    spec_path = workdir / f"{arm.split(',')[1].strip().split()[0]}-{seed}.yaml"
    spec_path.write_text(yaml.safe_dump(spec_dict(task, seed, tpe_asha, workdir / "results"), sort_keys=False))
    spec = load_spec(spec_path)
    run = ArmRun(arm, seed, 0.0)
    t0 = time.perf_counter()

    class Clock:
        def on_trial_result(self, iteration: int, trials: list[Any], trial: Any, result: dict[str, Any],
                            **info: Any) -> None:
            value = result.get(METRIC)
            if isinstance(value, (int, float)) and value == value:
                run.curve.append((time.perf_counter() - t0, float(value)))
            run.epochs_run += 1

        def on_trial_complete(self, *args: Any, **kwargs: Any) -> None:
            run.last_trial_end_s = time.perf_counter() - t0

    with clocked_progress(Clock()):
        outcome = run_experiment(spec, RunOptions(spec_path=spec_path, quiet=True))
    run.wall_s = time.perf_counter() - t0
    run.trials = len(outcome.results)
    run.pruned = len(outcome.pruned)
    run.errors = outcome.num_errors
    return run


# ----------------------------------------------------------------------------- standalone Optuna


def _optuna_space(trial: Any, space: dict[str, Any]) -> dict[str, Any]:
    params: dict[str, Any] = {}
    for name, p in space.items():
        if p["type"] == "float":
            params[name] = trial.suggest_float(name, p["low"], p["high"], log=p.get("log", False))
        elif p["type"] == "categorical":
            params[name] = trial.suggest_categorical(name, p["choices"])
    return params


def _optuna_worker(journal: str, study_name: str, task: Task, seed: int, rank: int, t0: float, out: str) -> None:
    """One of the two processes: load the data, join the study, train trials until the budget is spent."""
    import optuna
    import torch
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend
    from optuna.study import MaxTrialsCallback

    from trainables.api import ranked_report
    from trainables.data import load_data
    from trainables.tasks import train_feature_selection

    torch.set_num_threads(1)  # one core per trial, as each Ray trial process has
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    data = load_data(dict(task.data))
    # Each process has its own sampler; one seed for both would draw the same startup points.
    sampler = optuna.samplers.TPESampler(seed=seed * 1000 + rank, n_startup_trials=task.startup_trials)
    study = optuna.load_study(study_name=study_name, storage=JournalStorage(JournalFileBackend(journal)),
                              sampler=sampler, pruner=optuna.pruners.SuccessiveHalvingPruner(
                                  min_resource=task.grace_period, reduction_factor=task.reduction_factor))
    curve: list[tuple[float, float]] = []

    def objective(trial: Any) -> float:
        config = {**task.fixed, **_optuna_space(trial, task.space)}
        values: list[float] = []

        def report(metrics: dict[str, Any], checkpoint_dir: Any = None) -> None:
            value = float(metrics[METRIC])
            values.append(value)
            curve.append((time.time() - t0, value))
            trial.report(value, int(metrics["epoch"]))
            if trial.should_prune():
                raise optuna.TrialPruned()

        # Ranked as ours ranks checkpoints: the same checkpoints written (the best epochs, the last, one every 10 s).
        train_feature_selection(config, ranked_report(report, METRIC, "max"), data=data)
        return max(values)  # the best epoch's value, as ours tells Optuna

    study.optimize(objective, callbacks=[MaxTrialsCallback(task.trials, states=None)])
    Path(out).write_text(json.dumps({"curve": curve, "end": time.time() - t0}))


def run_optuna(task: Task, seed: int, workdir: Path) -> ArmRun:
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    journal, name = str(workdir / f"optuna-{seed}.journal"), f"eff_optuna_{seed}"
    t0_perf, t0 = time.perf_counter(), time.time()
    optuna.create_study(study_name=name, storage=JournalStorage(JournalFileBackend(journal)), direction="maximize")
    context = multiprocessing.get_context("spawn")  # fresh interpreters, like two workers would be
    outs = [str(workdir / f"optuna-{seed}-{rank}.json") for rank in range(CONCURRENCY)]
    procs = [context.Process(target=_optuna_worker, args=(journal, name, task, seed, rank, t0, outs[rank]))
             for rank in range(CONCURRENCY)]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join()
    run = ArmRun(OPTUNA, seed, time.perf_counter() - t0_perf)
    if any(proc.exitcode != 0 for proc in procs):
        run.errors = sum(proc.exitcode != 0 for proc in procs)
    for out in outs:
        if Path(out).exists():
            record = json.loads(Path(out).read_text())
            run.curve += [tuple(point) for point in record["curve"]]
            run.last_trial_end_s = max(record["end"], run.last_trial_end_s) if run.last_trial_end_s == run.last_trial_end_s \
                else record["end"]
    trials = optuna.load_study(study_name=name, storage=JournalStorage(JournalFileBackend(journal))).get_trials()
    run.trials = len(trials)
    run.pruned = sum(t.state == optuna.trial.TrialState.PRUNED for t in trials)
    run.errors += sum(t.state == optuna.trial.TrialState.FAIL for t in trials)
    run.epochs_run = len(run.curve)
    return run


# ----------------------------------------------------------------------------- figure


def write_svg(runs: Sequence[ArmRun], target: float, path: Path, width: int = 760, height: int = 420) -> Path:
    """Best-so-far validation accuracy against wall clock, one step line per arm and seed."""
    left, right, top, bottom = 60, 250, 20, 45
    x_max = max((r.wall_s for r in runs), default=1.0) * 1.02
    values = [v for r in runs for _, v in r.best_so_far()] + [target]
    y_lo = math.floor(min(values) * 20) / 20
    y_hi = min(1.0, math.ceil(max(values) * 20) / 20 + 0.01)
    pw, ph = width - left - right, height - top - bottom

    def x(t: float) -> float:
        return left + pw * t / x_max

    def y(v: float) -> float:
        return top + ph * (1 - (v - y_lo) / (y_hi - y_lo))

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             f'font-family="sans-serif" font-size="12">',
             f'<rect width="{width}" height="{height}" fill="white"/>',
             f'<rect x="{left}" y="{top}" width="{pw}" height="{ph}" fill="none" stroke="#444"/>']
    step = _nice_step(x_max)
    t = 0.0
    while t <= x_max:
        parts.append(f'<line x1="{x(t):.1f}" y1="{top + ph}" x2="{x(t):.1f}" y2="{top + ph + 4}" stroke="#444"/>'
                     f'<text x="{x(t):.1f}" y="{top + ph + 17}" text-anchor="middle">{t:g}</text>')
        t += step
    v = y_lo
    while v <= y_hi + 1e-9:
        parts.append(f'<line x1="{left - 4}" y1="{y(v):.1f}" x2="{left}" y2="{y(v):.1f}" stroke="#444"/>'
                     f'<line x1="{left}" y1="{y(v):.1f}" x2="{left + pw}" y2="{y(v):.1f}" stroke="#eee"/>'
                     f'<text x="{left - 7}" y="{y(v) + 4:.1f}" text-anchor="end">{v:.2f}</text>')
        v += 0.05
    parts.append(f'<text x="{left + pw / 2}" y="{height - 8}" text-anchor="middle">wall clock since the arm started, s</text>'
                 f'<text x="15" y="{top + ph / 2}" text-anchor="middle" transform="rotate(-90 15 {top + ph / 2})">'
                 f'best validation accuracy so far</text>')
    parts.append(f'<line x1="{left}" y1="{y(target):.1f}" x2="{left + pw}" y2="{y(target):.1f}" stroke="#000" '
                 f'stroke-dasharray="5,4"/><text x="{left + pw - 4}" y="{y(target) - 5:.1f}" text-anchor="end">'
                 f'target {target:.3f}</text>')
    for run in runs:
        points = run.best_so_far()
        if not points:
            continue
        d = f"M{x(points[0][0]):.1f},{y(points[0][1]):.1f}"
        for (_, v0), (t1, v1) in zip(points, points[1:]):
            d += f" H{x(t1):.1f} V{y(v1):.1f}"
        d += f" H{x(run.wall_s):.1f}"
        parts.append(f'<path d="{d}" fill="none" stroke="{COLORS[run.arm]}" stroke-width="1.6" opacity="0.85"/>')
        reached = run.time_to(target)
        if math.isfinite(reached):
            parts.append(f'<circle cx="{x(reached):.1f}" cy="{y(target):.1f}" r="3.5" fill="{COLORS[run.arm]}"/>')
    for i, arm in enumerate(ARMS):
        ly = top + 15 + 20 * i
        parts.append(f'<line x1="{left + pw + 15}" y1="{ly}" x2="{left + pw + 40}" y2="{ly}" stroke="{COLORS[arm]}" '
                     f'stroke-width="2.5"/><text x="{left + pw + 46}" y="{ly + 4}">{arm}</text>')
    parts.append(f'<text x="{left + pw + 15}" y="{top + 15 + 20 * len(ARMS) + 10}">one line per seed; dots: target'
                 '</text><text x="{0}" y="{1}">reached</text>'.format(left + pw + 15, top + 15 + 20 * len(ARMS) + 25))
    parts.append("</svg>")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(parts) + "\n")
    return path


def _nice_step(span: float) -> float:
    raw = span / 8
    magnitude = 10 ** math.floor(math.log10(raw))
    return next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= raw)


# ----------------------------------------------------------------------------- report


def _median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else math.nan


def _fmt(value: float, digits: int = 1) -> str:
    return "not reached" if math.isinf(value) else f"{value:.{digits}f}"


def _ratio(value: float) -> str:
    """A ratio for the table: ``∞`` when only the denominator reached the target, ``—`` when neither did."""
    if math.isinf(value):
        return "∞"
    return "—" if math.isnan(value) else f"{value:.2f}×"


def _spread(values: Sequence[float], digits: int = 1) -> str:
    med = _median(values)
    if len(values) < 2:
        return _fmt(med, digits)
    return f"{_fmt(med, digits)} ({_fmt(min(values), digits)}–{_fmt(max(values), digits)})"


def summarize(runs: Sequence[ArmRun], target: float) -> dict[str, dict[str, float]]:
    out = {}
    for arm in ARMS:
        mine = [r for r in runs if r.arm == arm]
        out[arm] = {"ttt": _median([r.time_to(target) for r in mine]), "wall": _median([r.wall_s for r in mine]),
                    "best": _median([r.best for r in mine]),
                    "per_epoch": _median([r.wall_s / max(r.epochs_run, 1) for r in mine])}
    return out


def table(runs: Sequence[ArmRun], target: float, target_rule: str, task: Task | None, notes: Sequence[str]) -> str:
    summary = summarize(runs, target)
    head = ("| arm | seeds | time to target s | reached | wall s | to the last trial's end s | best val_accuracy "
            "| trials (cut) | epochs run | wall per epoch run ms | vs TPE+ASHA, time to target |")
    out = [head, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    base = summary[TPE_ASHA]["ttt"]
    for arm in ARMS:
        mine = [r for r in runs if r.arm == arm]
        if not mine:
            continue
        ttt = [r.time_to(target) for r in mine]
        reached = sum(math.isfinite(t) for t in ttt)
        ratio = summary[arm]["ttt"] / base if math.isfinite(base) and base > 0 else math.nan
        out.append(f"| {arm} | {len(mine)} | {_spread(ttt)} | {reached}/{len(mine)} | {_spread([r.wall_s for r in mine])} "
                   f"| {_spread([r.last_trial_end_s for r in mine])} | {_spread([r.best for r in mine], 3)} "
                   f"| {_median([r.trials for r in mine]):.0f} ({_median([r.pruned for r in mine]):.0f}) "
                   f"| {_median([r.epochs_run for r in mine]):.0f} "
                   f"| {summary[arm]['per_epoch'] * 1000:.0f} | {_ratio(ratio)} |")
    speedup, wall_ratio, ttt_ratio = ratios(summary)
    per_epoch_ratio = (summary[TPE_ASHA]["per_epoch"] / summary[OPTUNA]["per_epoch"]
                       if summary[OPTUNA]["per_epoch"] == summary[OPTUNA]["per_epoch"] else math.nan)
    ends = {arm: _median([r.last_trial_end_s for r in runs if r.arm == arm]) for arm in (TPE_ASHA, OPTUNA)}
    end_ratio = ends[TPE_ASHA] / ends[OPTUNA] if ends[OPTUNA] and ends[OPTUNA] == ends[OPTUNA] else math.nan
    out += ["", f"Target: {target:.4f} val_accuracy ({target_rule}). Medians over seeds (range in brackets); time "
                f"to target counts a run that never reached it as infinite.  ",
            f"**Time to target, random / TPE+ASHA: {_ratio(speedup)}** (goal ≥ {SPEEDUP_GOAL:g}×: "
            f"{verdict(speedup >= SPEEDUP_GOAL)}"
            + (", only because random never reached the target in its trial budget; see the lower targets below"
               if math.isinf(speedup) else "")
            + f"). **Wall, ours TPE+ASHA / standalone Optuna: {_ratio(wall_ratio)}** "
            f"(goal ≤ {WALL_GOAL:g}×: {verdict(wall_ratio <= WALL_GOAL)}); time to target, ours / Optuna: "
            f"{_ratio(ttt_ratio)}; wall per epoch run, ours TPE+ASHA / Optuna: {_ratio(per_epoch_ratio)} (the two "
            "pruners cut different trials, so the arms run different numbers of epochs for the same trial budget); "
            f"to the last trial's end, ours TPE+ASHA / Optuna: {_ratio(end_ratio)} (ours' wall also holds the refit "
            "of the picked trial on train + validation, its held-out test and Ray's shutdown, which Optuna's arm "
            "does not do).  ",
            f"![best-so-far curves](docs/{FIGURE.name}) (SVG: neither matplotlib nor kaleido is installed to write "
            "a PNG)  ",
            "", *sensitivity(runs), "",
            *[f"{note}  " for note in notes]]
    return "\n".join(out).rstrip() + "\n"


def sensitivity(runs: Sequence[ArmRun], fractions: Sequence[float] = (0.95, 0.97, 0.98, 0.99)) -> list[str]:
    """Median time to targets of several fractions of the best accuracy reached: how the verdict depends on the bar."""
    best = max(r.best for r in runs)
    arms = [arm for arm in ARMS if any(r.arm == arm for r in runs)]
    out = ["| target (× best reached) | " + " | ".join(f"{arm}: median s (reached)" for arm in arms)
           + " | random / TPE+ASHA |", "|---|" + "---:|" * (len(arms) + 1)]
    for fraction in fractions:
        target = fraction * best
        cells, medians = [], {}
        for arm in arms:
            times = [r.time_to(target) for r in runs if r.arm == arm]
            medians[arm] = _median(times)
            cells.append(f"{_fmt(medians[arm])} ({sum(math.isfinite(t) for t in times)}/{len(times)})")
        ratio = (_ratio(medians[RANDOM] / medians[TPE_ASHA])
                 if RANDOM in medians and TPE_ASHA in medians and math.isfinite(medians[TPE_ASHA]) else "—")
        out.append(f"| {fraction:g} ({target:.4f}) | " + " | ".join(cells) + f" | {ratio} |")
    return out


def ratios(summary: dict[str, dict[str, float]]) -> tuple[float, float, float]:
    def div(a: float, b: float) -> float:
        if math.isinf(a) and math.isfinite(b):
            return math.inf
        return a / b if b and math.isfinite(b) else math.nan

    return (div(summary[RANDOM]["ttt"], summary[TPE_ASHA]["ttt"]),
            div(summary[TPE_ASHA]["wall"], summary[OPTUNA]["wall"]),
            div(summary[TPE_ASHA]["ttt"], summary[OPTUNA]["ttt"]))


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def describe(task: Task, argv: Sequence[str], loads: tuple[float, float]) -> list[str]:
    import optuna
    import ray
    import torch

    uname = platform.uname()
    data = ", ".join(f"{k}={v}" for k, v in task.data.items())
    space = ", ".join(f"{k} {p['low']:g}–{p['high']:g}{' log' if p.get('log') else ''}" if p["type"] == "float"
                      else f"{k} {p['choices']}" for k, p in task.space.items())
    return [
        f"Task: `feature_selection` on `{task.data['name']}` ({data}); space: {space}; fixed: {task.epochs} epochs, batch "
        f"{task.batch_size}; {task.trials} trials per arm, {CONCURRENCY} at a time; TPE with "
        f"{task.startup_trials} random start-up trials; ASHA and Optuna's SuccessiveHalvingPruner cut at epochs "
        f"{task.grace_period}, {task.grace_period * task.reduction_factor}, ... (reduction factor "
        f"{task.reduction_factor}). Ours checkpoints its best epochs, its last and otherwise one every 10 s or more "
        "(the built-in trainable's default, `num_to_keep: 2`); the standalone Optuna workers write the same "
        "checkpoint files and drop them.",
        "Clocks: ours from the `run_experiment` call (data, `ray.init`, the search, the held-out test of the best "
        "trial, `ray.shutdown`); Optuna from the start of its two spawned processes (imports, data) to their end.",
        f"Machine: {cpu_name()} ({uname.machine}, {uname.system} {uname.release}), {os.cpu_count()} CPUs, no GPU; "
        f"Python {platform.python_version()}, torch {torch.__version__}, ray {ray.__version__}, optuna "
        f"{optuna.__version__}; {datetime.date.today().isoformat()}; load average {loads[0]:.1f} at start, "
        f"{loads[1]:.1f} at end (other engineers' processes share the 2 CPUs); "
        f"`{shlex.join(['python', 'benchmarks/search_efficiency.py', *argv])}`",
    ]


def rebuild(path: Path, write_readme: bool) -> int:
    """The table and the figure from a saved run (``--curves``), its own notes (machine, task, command) kept."""
    saved = json.loads(path.read_text())
    runs = [ArmRun(**{**r, "curve": [tuple(point) for point in r["curve"]]}) for r in saved["runs"]]
    markdown = table(runs, saved["target"], saved["rule"], None, saved["notes"])
    print(markdown)
    if write_readme:
        write_svg(runs, saved["target"], FIGURE)
        print(f"wrote {write_table(MARKER, markdown)}", file=sys.stderr)
    speedup, wall_ratio, _ = ratios(summarize(runs, saved["target"]))
    return 0 if speedup >= SPEEDUP_GOAL and wall_ratio <= WALL_GOAL else 1


def load_average() -> float:
    return os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", default="0,1,2", help="sampler seeds, comma-separated (default 0,1,2)")
    parser.add_argument("--trials", type=int, default=24, help="trial budget of every arm (default 24)")
    parser.add_argument("--epochs", type=int, default=27, help="epochs per trial (default 27)")
    parser.add_argument("--data", choices=("madelon_guyon", "madelon"), default="madelon_guyon",
                        help="the built-in set (default madelon_guyon: the quickstart's; madelon is easier)")
    parser.add_argument("--samples", type=int, default=4000, help="samples (default 4000)")
    parser.add_argument("--features", type=int, default=100,
                        help="features (default 100: madelon_guyon's 20 relevant among 80 probes; madelon's 5 informative)")
    parser.add_argument("--grace-period", type=int, default=3, help="first rung, epochs (default 3)")
    parser.add_argument("--reduction-factor", type=int, default=3, help="ASHA / SHA reduction factor (default 3)")
    parser.add_argument("--startup-trials", type=int, default=6, help="TPE's random start-up trials (default 6)")
    parser.add_argument("--target", type=float, default=None, help="target val_accuracy (default: by --target-fraction)")
    parser.add_argument("--target-fraction", type=float, default=0.99,
                        help="without --target: this fraction of the best val_accuracy any arm reached (default 0.99)")
    parser.add_argument("--arms", default="tpe,random,optuna", help="which arms to run (default tpe,random,optuna)")
    parser.add_argument("--quick", action="store_true", help="one seed, 8 trials of 9 epochs on 2000 samples")
    parser.add_argument("--curves", type=Path, default=None, help="also write every run's curve as JSON here")
    parser.add_argument("--write-readme", action="store_true", help="write the table into docs/benchmarks.md (and the SVG into docs/)")
    parser.add_argument("--from-curves", type=Path, default=None,
                        help="no runs: the table (and figure) again from a file written by --curves")
    args = parser.parse_args(argv)
    if args.from_curves:
        return rebuild(args.from_curves, args.write_readme)
    if args.quick:
        args.seeds, args.trials, args.epochs, args.samples = "0", 8, 9, 2000
    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    chosen = {a.strip() for a in args.arms.split(",")}
    data = ({"name": "madelon_guyon", "n_samples": args.samples, "n_probes": args.features - 20, "seed": 0}
            if args.data == "madelon_guyon" else
            {"name": "madelon", "n_samples": args.samples, "n_features": args.features, "seed": 0})
    task = Task(data=data,
                trials=args.trials, epochs=args.epochs, grace_period=args.grace_period,
                reduction_factor=args.reduction_factor, startup_trials=args.startup_trials)
    load = load_average()
    if load > 0.5:
        print(f"warning: load average {load:.1f}: other processes are running, the figures will be noisy",
              file=sys.stderr)
    # Ray's trial processes inherit the environment of ray.init: this lets them import trainables.
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    runs: list[ArmRun] = []
    workdir = Path(tempfile.mkdtemp(prefix="search-efficiency-"))
    try:
        for seed in seeds:  # arms interleaved, so that a burst of load on the machine hits all of them
            for key, label in (("tpe", TPE_ASHA), ("random", RANDOM), ("optuna", OPTUNA)):
                if key not in chosen:
                    continue
                print(f"{label}, seed {seed} ...", file=sys.stderr, flush=True)
                run = (run_optuna(task, seed, workdir) if key == "optuna"
                       else run_ours(task, seed, key == "tpe", workdir))
                runs.append(run)
                print(f"  wall {run.wall_s:.1f} s, best {run.best:.4f}, {run.trials} trials ({run.pruned} cut), "
                      f"{run.epochs_run} epochs, {run.errors} error(s)", file=sys.stderr, flush=True)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    best = max(r.best for r in runs)
    if args.target is not None:
        target, rule = args.target, "given with --target"
    else:
        target = args.target_fraction * best
        rule = (f"{args.target_fraction:g} × {best:.4f}, the best val_accuracy any arm reached in this run; chosen "
                "over 0.95 ×, which every arm reached within its first trials in the pilot")
    notes = describe(task, argv, (load, load_average()))
    if args.curves:
        args.curves.write_text(json.dumps({"runs": [r.__dict__ for r in runs], "notes": notes, "target": target,
                                           "rule": rule}))
    for run in runs:
        print(f"{run.arm}, seed {run.seed}: time to {target:.4f}: {_fmt(run.time_to(target))} s, wall {run.wall_s:.1f} s",
              file=sys.stderr)
    figure = write_svg(runs, target, FIGURE if args.write_readme else workdir.with_suffix(".svg"))
    markdown = table(runs, target, rule, task, notes)
    print(f"\n{markdown}")
    speedup, wall_ratio, ttt_ratio = ratios(summarize(runs, target))
    print(f"time to target, random / TPE+ASHA: {_fmt(speedup, 2)}x; wall, ours TPE+ASHA / standalone Optuna: "
          f"{_fmt(wall_ratio, 2)}x; time to target, ours TPE+ASHA / Optuna: {_fmt(ttt_ratio, 2)}x; figure: {figure}")
    if args.write_readme:
        print(f"wrote {write_table(MARKER, markdown)}", file=sys.stderr)
    return 0 if speedup >= SPEEDUP_GOAL and wall_ratio <= WALL_GOAL else 1


if __name__ == "__main__":
    sys.exit(main())
