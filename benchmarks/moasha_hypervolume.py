"""Does MO-ASHA find a better accuracy/sparsity front than single-metric ASHA or no scheduler, for the same trials?

Issue 24's second table. The two-objective search (``[val_accuracy, num_selected]``) on a small
``madelon_guyon`` set, three arms with the same sampler, seed and trial budget:

- MO-ASHA: ``scheduler: {type: asha}`` (two objectives: rungs rank trials by non-dominated sorting),
- single-metric ASHA: ``scheduler: {type: asha, metric: val_accuracy, mode: max}`` (the cut of before),
- no scheduler: ``scheduler: {type: none}`` (every trial runs until patience or its last epoch).

The figure is the hypervolume of the front on validation, objectives normalised to [0, 1]: accuracy
as ``(val_accuracy - chance) / (1 - chance)`` (chance: the majority class's rate, which every trial
reports), sparsity as ``1 - num_selected / features``; the reference point is (chance accuracy, all
features), so a collapsed trial adds nothing. Each trial contributes its best epoch's values (the
table's) from the time it ended, so the hypervolume is also given against wall time since the
first trial started (Ray's start-up and the held-out test left out).

Run: ``python benchmarks/moasha_hypervolume.py --write-readme`` (3 seeds x 3 arms, ~10 min on 2
cores; rewrites its block of ``docs/benchmarks.md``), ``--quick`` for a smoke run (never written).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks._readme import cpu_name, write_table  # noqa: E402
from benchmarks.feature_selection import run_search  # noqa: E402

MARKER = "moasha_hypervolume"
ARMS = {
    "MO-ASHA (both objectives)": {"type": "asha"},
    "ASHA on val_accuracy alone": {"type": "asha", "metric": "val_accuracy", "mode": "max"},
    "no scheduler": {"type": "none"},
}
SPACE = {
    "lr": {"type": "float", "low": 1.0e-3, "high": 3.0e-2, "log": True},
    "selector_lr_ratio": {"type": "float", "low": 1.0, "high": 100.0, "log": True},
    "sparsity_lambda": {"type": "float", "low": 1.0e-4, "high": 1.0e-2, "log": True},
}


def hypervolume(points: list[tuple[float, float]]) -> float:
    """The area dominated by ``points`` (both coordinates maximised) above the reference point (0, 0)."""
    area, best_y = 0.0, 0.0
    for x, y in sorted(((max(x, 0.0), max(y, 0.0)) for x, y in points), reverse=True):
        if y > best_y:  # each point adds the strip its y gains over every point of larger x
            area += x * (y - best_y)
            best_y = y
    return area


def trial_points(experiment: Path, num_features: int) -> list[tuple[float, float, float]]:
    """(end time since the first trial's first report, normalised accuracy, normalised sparsity) per trial."""
    from search.results import open_results

    results = open_results(experiment)
    rows, first = [], None
    for row in results.table.itertuples():
        history = results.record(row.trial_id).history
        if "timestamp" not in history or history.empty or row.best_val_accuracy != row.best_val_accuracy:
            continue
        chance = float(history["majority_rate"].iloc[-1]) if "majority_rate" in history else 0.5
        start, end = float(history["timestamp"].min()), float(history["timestamp"].max())
        first = start if first is None else min(first, start)
        rows.append((end, (row.best_val_accuracy - chance) / (1 - chance), 1 - row.best_num_selected / num_features))
    return [(end - (first or 0.0), acc, sparse) for end, acc, sparse in rows]


def hypervolume_by(points: list[tuple[float, float, float]], when: float) -> float:
    return hypervolume([(acc, sparse) for end, acc, sparse in points if end <= when])


def one_run(arm: str, seed: int, args: argparse.Namespace, folder: Path) -> dict:
    from trainables.data import load_data

    data = {"name": "madelon_guyon", "n_samples": args.samples, "n_probes": args.probes, "seed": seed,
            "val_fraction": 0.2, "test_fraction": 0.2}
    num_features = load_data(data).num_features
    name = f"hv_{list(ARMS).index(arm)}_s{seed}"
    spec = {
        "name": name, "trainable": "feature_selection", "data": data,
        "metric": ["val_accuracy", "num_selected"], "mode": ["max", "min"], "select": {"tolerance": 0.01},
        "search": {"sampler": "tpe", "num_samples": args.trials, "seed": seed,
                   "sampler_options": {"n_startup_trials": max(4, args.trials // 4), "multivariate": True}},
        "scheduler": {**ARMS[arm], **({"grace_period": 2, "reduction_factor": 3} if ARMS[arm]["type"] == "asha" else {})},
        "space": SPACE, "fixed": {"epochs": args.epochs, "batch_size": 64, "patience": 10, "hidden_sizes": 64},
        "storage": str(folder / "results"), "failure": {"max_retries": 0}, "refit": False,
    }
    experiment, wall = run_search(spec, folder)
    points = trial_points(experiment, num_features)
    span = max((p[0] for p in points), default=0.0)
    row = {"arm": arm, "seed": seed, "wall_s": wall, "span_s": span, "hv": hypervolume_by(points, float("inf")),
           "points": points, "features": num_features}
    print(f"{arm}, seed {seed}: hypervolume {row['hv']:.3f}, trials' span {span:.0f} s, run {wall:.0f} s", flush=True)
    return row


def table(rows: list[dict], args: argparse.Namespace) -> str:
    import optuna
    import ray
    import torch

    span = statistics.median(r["span_s"] for r in rows)
    checkpoints = [span * f for f in (0.25, 0.5, 0.75)]
    lines = ["| arm | hypervolume (median; per seed) | " + " | ".join(f"at {c:.0f} s" for c in checkpoints)
             + " | trials' span s | run wall s |", "|---|---|" + "---:|" * len(checkpoints) + "---:|---:|"]
    for arm in ARMS:
        mine = [r for r in rows if r["arm"] == arm]
        final = [r["hv"] for r in mine]
        at = [statistics.median(hypervolume_by(r["points"], c) for r in mine) for c in checkpoints]
        lines.append(f"| {arm} | **{statistics.median(final):.3f}** ({', '.join(f'{v:.3f}' for v in final)}) | "
                     + " | ".join(f"{v:.3f}" for v in at)
                     + f" | {statistics.median(r['span_s'] for r in mine):.0f} | "
                     f"{statistics.median(r['wall_s'] for r in mine):.0f} |")
    lines += ["", f"Hypervolume of the validation front, objectives normalised (accuracy above chance over 1 − chance; "
              f"1 − features kept / {rows[0]['features']}), reference point (chance accuracy, all features); each trial "
              "counts from the time it ended, measured from the first trial's first report (\"at N s\": medians over "
              "seeds). Same TPE seed and trial budget in every arm.  ",
              f"Data: `madelon_guyon` ({args.samples} samples, {rows[0]['features']} features: 20 relevant, "
              f"{args.probes} probes), {len(set(r['seed'] for r in rows))} seeds; {args.trials} trials of up to "
              f"{args.epochs} epochs, patience 10, ASHA grace period 2, reduction factor 3; lr, selector_lr_ratio and "
              "sparsity_lambda searched, hidden width 64.  ",
              f"Machine: {cpu_name()} ({platform.machine()}), {os.cpu_count()} CPUs, no GPU; Python "
              f"{platform.python_version()}, torch {torch.__version__}, ray {ray.__version__}, optuna {optuna.__version__}; "
              f"{time.strftime('%Y-%m-%d')}; load average {args.loads[0]:.1f} at start, {os.getloadavg()[0]:.1f} at end; "
              f"`python benchmarks/moasha_hypervolume.py {' '.join(args.argv)}`"]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0,1,2", help="comma-separated seeds (default 0,1,2)")
    parser.add_argument("--trials", type=int, default=12)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--samples", type=int, default=1000)
    parser.add_argument("--probes", type=int, default=80)
    parser.add_argument("--quick", action="store_true", help="1 seed, 4 trials, 4 epochs: a smoke run")
    parser.add_argument("--write-readme", action="store_true", help="write the table into docs/benchmarks.md")
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    args.loads = os.getloadavg()
    seeds = [int(s) for s in args.seeds.split(",")]
    if args.quick:
        seeds, args.trials, args.epochs = seeds[:1], 4, 4
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-hv-") as tmp:
        for seed in seeds:
            for arm in ARMS:
                rows.append(one_run(arm, seed, args, Path(tmp)))
    text = table(rows, args)
    print(text)
    if args.write_readme and not args.quick:
        write_table(MARKER, text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
