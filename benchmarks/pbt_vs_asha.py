"""PBT against ASHA on the same budget of epochs: the best validation accuracy and the picked model's test accuracy.

Issue 26, item 7. The one-objective search of ``spaces/pbt.yaml`` (maximise ``val_accuracy`` on
``madelon_guyon``, lr, selector_lr_ratio and sparsity_lambda searched, no early stop by patience),
three arms with the same seed:

- PBT: ``scheduler: {type: pbt}``, a population of ``--population`` trials of ``--epochs`` epochs,
  perturbed every ``--interval`` epochs: ``population x epochs`` epochs in all;
- ASHA with the same number of trials (fewer epochs: ASHA cuts);
- ASHA with the same epochs: TPE trials added until ASHA has trained at least as many epochs as PBT
  did (its trial count is found by a first run and printed).

Figures per arm (medians over seeds): the best validation accuracy of any trial, the held-out test
accuracy of the picked trial's model (the run's own held-out test: PBT's best checkpoint, ASHA's
refit, which is the product's default for each), the epochs trained, and the wall time of
``python -m search run`` (Ray's start included).

Run: ``python benchmarks/pbt_vs_asha.py --write-readme`` (3 seeds x 3 arms, ~6 min on 2 cores;
rewrites its block of ``docs/benchmarks.md``), ``--quick`` for a smoke run (never written).
"""

from __future__ import annotations

import argparse
import json
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

MARKER = "pbt_vs_asha"
SPACE = {
    "lr": {"type": "float", "low": 3.0e-3, "high": 3.0e-2, "log": True},
    "selector_lr_ratio": {"type": "float", "low": 1.0, "high": 10.0, "log": True},
    "sparsity_lambda": {"type": "float", "low": 2.0e-4, "high": 3.0e-3, "log": True},
}


def spec(arm: str, seed: int, trials: int, args: argparse.Namespace, folder: Path) -> dict:
    data = {"name": "madelon_guyon", "n_samples": args.samples, "n_probes": args.probes, "seed": seed}
    if arm == "pbt":
        scheduler, search = {"type": "pbt", "perturbation_interval": args.interval}, {}
    else:
        scheduler = {"type": "asha", "grace_period": args.interval, "reduction_factor": 2}
        search = {"sampler": "tpe", "sampler_options": {"n_startup_trials": max(4, trials // 4)}}
    return {"name": f"{arm}_{trials}_s{seed}", "trainable": "feature_selection", "data": data,
            "metric": "val_accuracy", "mode": "max", "search": {"num_samples": trials, "seed": seed, **search},
            "scheduler": scheduler, "space": SPACE,
            "fixed": {"epochs": args.epochs, "batch_size": 64, "patience": args.epochs},
            "storage": str(folder / "results"), "failure": {"max_retries": 0}}


def one_run(arm: str, seed: int, trials: int, args: argparse.Namespace, folder: Path) -> dict:
    from search.results import best_trial, open_results

    experiment, wall = run_search(spec(arm, seed, trials, args, folder), folder)
    results = open_results(experiment)
    best = best_trial(results)
    heldout = json.loads((experiment / "heldout.json").read_text())
    test = heldout["trials"][best.trial_id]["test_accuracy"]  # with a refit, the refitted model's
    epochs = int(results.table["epochs_run"].fillna(0).sum())
    if arm == "pbt":  # a trial PBT restarts from another's checkpoint trains from that epoch on: count what it ran
        epochs = sum(len(lines) for lines in _result_lines(experiment))
    row = {"arm": arm, "seed": seed, "trials": trials, "best_val": float(results.table["best_val_accuracy"].max()),
           "test": float(test), "epochs": epochs, "wall_s": wall}
    print(f"{arm} ({trials} trials), seed {seed}: best val {row['best_val']:.3f}, test {row['test']:.3f}, "
          f"{epochs} epochs, {wall:.0f} s", flush=True)
    return row


def _result_lines(experiment: Path) -> list[list[str]]:
    return [[line for line in (t / "result.json").read_text().splitlines() if line.strip()]
            for t in sorted(experiment.glob("trial_*"))]


def table(rows: list[dict], args: argparse.Namespace) -> str:
    import optuna
    import ray
    import torch

    lines = ["| arm | trials | epochs trained | best val accuracy (median; per seed) | test accuracy of the pick "
             "(median; per seed) | wall s |", "|---|---:|---:|---|---|---:|"]
    for name, arm in (("PBT", "pbt"), ("ASHA, same trials", "asha_trials"), ("ASHA, same epochs", "asha_epochs")):
        mine = [r for r in rows if r["label"] == arm]
        if not mine:
            continue
        val, test = [r["best_val"] for r in mine], [r["test"] for r in mine]
        lines.append(f"| {name} | {statistics.median(r['trials'] for r in mine):.0f} | "
                     f"{statistics.median(r['epochs'] for r in mine):.0f} | **{statistics.median(val):.3f}** "
                     f"({', '.join(f'{v:.3f}' for v in val)}) | **{statistics.median(test):.3f}** "
                     f"({', '.join(f'{v:.3f}' for v in test)}) | {statistics.median(r['wall_s'] for r in mine):.0f} |")
    lines += ["", f"`madelon_guyon` ({args.samples} samples, 20 relevant features, {args.probes} probes), one objective "
              f"(val_accuracy); trials of {args.epochs} epochs, no early stop by patience; PBT: a population of "
              f"{args.population}, perturbation interval {args.interval}, the spec's defaults otherwise; ASHA: TPE, grace "
              f"period {args.interval}, reduction factor 2. The test accuracy is the run's own held-out test of the "
              "picked model (PBT: its best checkpoint; ASHA: its refit on train + validation). "
              f"{len(set(r['seed'] for r in rows))} seeds.  ",
              f"Machine: {cpu_name()} ({platform.machine()}), {os.cpu_count()} CPUs, no GPU; Python "
              f"{platform.python_version()}, torch {torch.__version__}, ray {ray.__version__}, optuna "
              f"{optuna.__version__}; {time.strftime('%Y-%m-%d')}; load average {args.loads[0]:.1f} at start, "
              f"{os.getloadavg()[0]:.1f} at end; `python benchmarks/pbt_vs_asha.py {' '.join(args.argv)}`"]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0,1,2", help="comma-separated seeds (default 0,1,2)")
    parser.add_argument("--population", type=int, default=6)
    parser.add_argument("--epochs", type=int, default=18)
    parser.add_argument("--interval", type=int, default=3)
    parser.add_argument("--samples", type=int, default=2000)
    parser.add_argument("--probes", type=int, default=80)
    parser.add_argument("--quick", action="store_true", help="1 seed, 4 trials of 6 epochs: a smoke run")
    parser.add_argument("--write-readme", action="store_true", help="write the table into docs/benchmarks.md")
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    args.loads = os.getloadavg()
    seeds = [int(s) for s in args.seeds.split(",")]
    if args.quick:
        seeds, args.population, args.epochs, args.interval = seeds[:1], 4, 6, 2
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-pbt-") as tmp:
        for seed in seeds:
            pbt = {**one_run("pbt", seed, args.population, args, Path(tmp)), "label": "pbt"}
            same = {**one_run("asha", seed, args.population, args, Path(tmp)), "label": "asha_trials"}
            # As many ASHA trials as make PBT's epochs: each ASHA trial ran same["epochs"] / population on average.
            more = max(args.population + 1, round(pbt["epochs"] / max(same["epochs"] / args.population, 1)))
            rows += [pbt, same, {**one_run("asha", seed, more, args, Path(tmp)), "label": "asha_epochs"}]
    text = table(rows, args)
    print(text)
    if args.write_readme and not args.quick:
        write_table(MARKER, text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
