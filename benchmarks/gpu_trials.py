"""Trials per hour on one GPU: four and eight trials sharing it against one at a time, with and without MPS, and DDP.

Run on a machine with a CUDA GPU, from anywhere (the repository root is put on the trials'
PYTHONPATH)::

    python benchmarks/gpu_trials.py                      # 16 trials per arm, 2 repeats, + DDP
    python benchmarks/gpu_trials.py --quick              # 4 trials, 1 repeat: a check
    python benchmarks/gpu_trials.py --mps --repeats 1    # + the sharing arms again under NVIDIA MPS
    python benchmarks/gpu_trials.py --write-readme --json gpu.json
    python benchmarks/gpu_trials.py --from-json gpu.json --write-readme   # the table again, elsewhere

Every arm is ``python -m search run`` on the same spec of the built-in ``feature_selection``
trainable on ``madelon_guyon`` (random sampler with one seed, so each arm trains the same
configurations; no scheduler and a patience longer than the epochs, so each trial does the
same work), on the machine's embedded Ray:

* **1 trial per GPU** (``gpus_per_worker: 1``): the baseline, what a search without
  fractional GPUs gets: one trial at a time on one GPU.
* **4 trials per GPU** (``gpus_per_worker: 0.25``): four trial processes on the one GPU.
  The goal: at least 3x the baseline's trials per hour.
* **8 trials per GPU** (``gpus_per_worker: 0.125``, eight CPUs): measured, no goal.
* **With MPS** (``--mps``): NVIDIA's Multi-Process Service started for the run
  (``nvidia-cuda-mps-control -d``, its pipe and log folders in a temporary folder, passed to
  the trials' processes through the environment), the sharing arms run again under it, and
  the daemon stopped (``quit``). Where it cannot start, the table says why.
* **DDP, 2 workers x 0.5 GPU** (``num_workers: 2``, the TorchTrainer pool, the process group
  over gloo since both ranks share the device): not a speed-up (one GPU cannot run two
  ranks faster than one); it shows that the DDP path runs on a GPU and what a trial costs there.

Trials per hour are counted two ways: over the search (the first trial's start to the last
trial's end, read from the run's own event lines) and over the whole command (Ray's
start-up and the held-out test included). Exit status 0 when the 4-per-GPU arm reaches 3x,
1 otherwise, 2 without a GPU.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import re
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # run as a script, uninstalled

from benchmarks._readme import cpu_name, write_table  # noqa: E402

MARKER = "gpu_trials"
GOAL = 3.0
EVENT = re.compile(r"^\[ *(?P<t>\d+\.\d)s\] trial (?P<id>\S+) (?P<what>started|completed|stopped|diverged|FAILED)")
ARMS = {
    "one": ("1 trial per GPU", {"num_workers": 1, "gpus_per_worker": 1, "cpus_per_worker": 1}),
    "four": ("4 trials per GPU", {"num_workers": 1, "gpus_per_worker": 0.25, "cpus_per_worker": 1}),
    "eight": ("8 trials per GPU", {"num_workers": 1, "gpus_per_worker": 0.125, "cpus_per_worker": 1}),
    "ddp": ("DDP, 2 workers x 0.5 GPU", {"num_workers": 2, "gpus_per_worker": 0.5, "cpus_per_worker": 1,
                                         "executor": "torch_trainer"}),
}
#: The arms that share the GPU, run again under MPS with ``--mps`` (keys ``<arm>+mps``).
SHARING = ("four", "eight")
MPS = "+mps"


def label(arm: str) -> str:
    """An arm's name in the table (``four+mps``: "4 trials per GPU, with MPS")."""
    base = arm.removesuffix(MPS)
    return ARMS[base][0] + (", with MPS" if arm.endswith(MPS) else "")


def spec_dict(arm: str, trials: int, epochs: int, samples: int) -> dict[str, Any]:
    arm = arm.removesuffix(MPS)
    return {
        "name": f"gpu_{arm}",
        "trainable": "feature_selection",
        "data": {"name": "madelon_guyon", "n_samples": samples, "seed": 0},
        "metric": "val_accuracy",
        "mode": "max",
        "search": {"sampler": "random", "num_samples": trials, "seed": 0},
        "scheduler": {"type": "none"},
        "space": {"lr": {"type": "float", "low": 1e-3, "high": 3e-2, "log": True},
                  "sparsity_lambda": {"type": "float", "low": 1e-4, "high": 1e-2, "log": True}},
        "fixed": {"epochs": epochs, "batch_size": 64, "patience": epochs + 1, "hidden_sizes": [64, 32]},
        "resources": {"use_gpu": True, **ARMS[arm][1]},
        "failure": {"max_retries": 0},
    }


def run_arm(arm: str, trials: int, epochs: int, samples: int, workdir: Path,
            extra_env: dict[str, str] | None = None) -> dict[str, Any]:
    """One ``python -m search run``: wall clock, and trial starts and ends from its event lines."""
    spec = workdir / f"{arm.replace('+', '_')}.yaml"
    spec.write_text(yaml.safe_dump(spec_dict(arm, trials, epochs, samples), sort_keys=False))
    name = f"gpu_{arm.replace('+', '_')}_{time.monotonic_ns()}"
    env = {**os.environ, **(extra_env or {}),
           "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    env.pop("RAY_ADDRESS", None)
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "search", "run", str(spec), "--storage", str(workdir / "results"),
                           "--name", name], env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    starts: dict[str, float] = {}
    ends: dict[str, tuple[float, str]] = {}
    for line in proc.stderr.splitlines():
        m = EVENT.match(line)
        if m:
            (starts if m["what"] == "started" else ends)[m["id"]] = (
                float(m["t"]) if m["what"] == "started" else (float(m["t"]), m["what"]))
    if proc.returncode != 0 or len(ends) != trials:
        tail = "\n".join(proc.stderr.splitlines()[-30:])
        raise RuntimeError(f"{arm}: exit {proc.returncode}, {len(ends)}/{trials} trials ended:\n{tail}")
    span = max(t for t, _ in ends.values()) - min(starts.values())
    table = workdir / "results" / name / "results.csv"
    best = None
    if table.exists():
        import pandas as pd

        best = float(pd.read_csv(table)["best_val_accuracy"].max())
    outcomes = sorted({what for _, what in ends.values()})
    return {"arm": arm, "trials": trials, "wall_s": wall, "span_s": span, "outcomes": outcomes, "best": best,
            "per_trial_s": statistics.median(ends[i][0] - starts[i] for i in ends if i in starts)}


def start_mps(folder: Path) -> tuple[dict[str, str] | None, str]:
    """Start NVIDIA's MPS control daemon with its folders under ``folder``: (the environment its clients need, or
    None, and what happened)."""
    env = {"CUDA_MPS_PIPE_DIRECTORY": str(folder / "pipe"), "CUDA_MPS_LOG_DIRECTORY": str(folder / "log")}
    for path in env.values():
        Path(path).mkdir(parents=True, exist_ok=True)
    try:
        proc = subprocess.run(["nvidia-cuda-mps-control", "-d"], env={**os.environ, **env}, capture_output=True,
                              text=True, timeout=30)
    except FileNotFoundError:
        return None, "not started: nvidia-cuda-mps-control is not installed"
    except (OSError, subprocess.SubprocessError) as exc:
        return None, f"not started: {type(exc).__name__}: {exc}"
    if proc.returncode != 0:
        said = (proc.stderr or proc.stdout).strip()[:200]
        return None, f"not started: nvidia-cuda-mps-control -d exited {proc.returncode}: {said}"
    # A client that cannot reach the server fails its first CUDA call: check with one before the arms run.
    check = subprocess.run([sys.executable, "-c", "import torch; torch.ones(1, device='cuda').sum().item()"],
                           env={**os.environ, **env}, capture_output=True, text=True, timeout=120)
    if check.returncode != 0:
        stop_mps(env)
        return None, f"started, but a CUDA client failed under it: {check.stderr.strip().splitlines()[-1][:200]}"
    return env, "started (nvidia-cuda-mps-control -d)"


def stop_mps(env: dict[str, str]) -> None:
    try:
        subprocess.run(["nvidia-cuda-mps-control"], input="quit\n", env={**os.environ, **env}, capture_output=True,
                       text=True, timeout=60)
    except (OSError, subprocess.SubprocessError):
        pass


def gpu_facts() -> dict[str, Any]:
    import torch

    if not torch.cuda.is_available():
        return {}
    props = torch.cuda.get_device_properties(0)
    driver = ""
    try:
        driver = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                                capture_output=True, text=True, timeout=20).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        pass
    import ray

    return {"gpu": torch.cuda.get_device_name(0), "gpu_memory_gib": props.total_memory / 2**30,
            "gpus": torch.cuda.device_count(), "driver": driver, "torch": torch.__version__, "ray": ray.__version__,
            "cpus": os.cpu_count(), "cpu": cpu_name(), "python": platform.python_version(),
            "date": datetime.date.today().isoformat()}


def _median(runs: Sequence[dict[str, Any]], arm: str, key: str) -> float:
    values = [r[key] for r in runs if r["arm"] == arm]
    return statistics.median(values) if values else float("nan")


def _per_hour(runs: Sequence[dict[str, Any]], arm: str, key: str) -> float:
    values = [r["trials"] / r[key] * 3600 for r in runs if r["arm"] == arm]
    return statistics.median(values) if values else float("nan")


def table(result: dict[str, Any]) -> str:
    runs, facts, setup = result["runs"], result["facts"], result["setup"]
    base = _per_hour(runs, "one", "span_s")
    lines = ["| arm | runs | trials | search s | trials per hour (search) | wall s | trials per hour (wall) | "
             "median trial s | vs 1 per GPU (search) | best val_accuracy |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    order = [*ARMS, *(arm + MPS for arm in SHARING)]
    for arm in order:
        mine = [r for r in runs if r["arm"] == arm]
        if not mine:
            continue
        rate = _per_hour(runs, arm, "span_s")
        ratio = f"{rate / base:.2f}×" if arm != "ddp" and base == base else "—"
        lines.append(f"| {label(arm)} | {len(mine)} | {mine[0]['trials']} | {_median(runs, arm, 'span_s'):.1f} | "
                     f"{rate:.0f} | {_median(runs, arm, 'wall_s'):.1f} | {_per_hour(runs, arm, 'wall_s'):.0f} | "
                     f"{_median(runs, arm, 'per_trial_s'):.1f} | {ratio} | "
                     f"{max((r['best'] or 0) for r in mine):.3f} |")
    lines.append("")
    for arm in ("four", "four" + MPS):
        four = _per_hour(runs, arm, "span_s") / base
        if four == four:
            verdict = "PASS" if four >= GOAL else f"FAIL, short by {GOAL - four:.2f}×"
            lines.append(f"**{label(arm)}: {four:.2f}× the trials per hour of 1 per GPU** "
                         f"(goal ≥ {GOAL:g}×: {verdict}).  ")
    if "mps" in facts:
        lines.append(f"MPS: {facts['mps']}.  ")
    lines += [f"Task: `feature_selection` on `madelon_guyon` ({setup['samples']} samples, 500 features), MLP 64-32, "
              f"{setup['epochs']} epochs of batch 64 per trial, no early stop, no scheduler; the same "
              f"{setup['trials']} random configurations in each arm (DDP: {setup['ddp_trials']}). "
              "Search: first trial start to last trial end, from the run's event lines; wall: the whole "
              "`python -m search run` (Ray's start-up, the held-out test).  ",
              f"Machine: {facts.get('gpu', '?')} ({facts.get('gpu_memory_gib', 0):.0f} GiB, driver "
              f"{facts.get('driver', '?')}), {facts.get('cpus')} CPUs ({facts.get('cpu')}); Python {facts.get('python')}, "
              f"torch {facts.get('torch')}, ray {facts.get('ray')}; {facts.get('date')}; "
              f"`{setup['command']}`"]
    return "\n".join(lines)


def plan_arms(arms: Sequence[str], repeats: int) -> list[str]:
    """The runs in order: the sharing arms and the baseline interleaved ``repeats`` times, then DDP once."""
    shared = [arm for arm in ("one", *SHARING) if arm in arms]
    return [arm for _ in range(repeats) for arm in shared] + (["ddp"] if "ddp" in arms else [])


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=16, help="trials per arm (default 16)")
    parser.add_argument("--ddp-trials", type=int, default=4, help="trials of the DDP arm (default 4)")
    parser.add_argument("--epochs", type=int, default=5, help="epochs per trial (default 5)")
    parser.add_argument("--samples", type=int, default=20000, help="madelon_guyon samples (default 20000)")
    parser.add_argument("--repeats", type=int, default=2, help="runs of each sharing arm, interleaved (default 2)")
    parser.add_argument("--quick", action="store_true", help="4 trials of 2 epochs on 4000 samples, 1 repeat")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--from-json", type=Path, help="no runs: the table from figures written by --json")
    parser.add_argument("--arms", default=",".join(ARMS), help=f"comma-separated, of {', '.join(ARMS)} (default all)")
    parser.add_argument("--mps", action="store_true", help="also run the sharing arms under NVIDIA MPS (once each)")
    parser.add_argument("--write-readme", action="store_true", help="write the table into docs/benchmarks.md")
    args = parser.parse_args(argv)
    arms = [a.strip() for a in args.arms.split(",") if a.strip()]
    if unknown := [a for a in arms if a not in ARMS]:
        parser.error(f"unknown arm(s) {', '.join(map(repr, unknown))}; choose from {', '.join(ARMS)}")
    if args.from_json:
        result = json.loads(args.from_json.read_text())
    else:
        if args.quick:
            args.trials, args.ddp_trials, args.epochs, args.samples, args.repeats = 4, 2, 2, 4000, 1
        facts = gpu_facts()
        if not facts:
            print("no CUDA GPU here: nothing to measure", file=sys.stderr)
            return 2
        runs = []
        with tempfile.TemporaryDirectory(prefix="gpu-trials-") as tmp:
            def run(arm: str, extra_env: dict[str, str] | None = None) -> None:
                trials = args.ddp_trials if arm == "ddp" else args.trials
                print(f"{label(arm)}: {trials} trials ...", file=sys.stderr, flush=True)
                done = run_arm(arm, trials, args.epochs, args.samples, Path(tmp), extra_env)
                runs.append(done)
                print(f"  search {done['span_s']:.1f} s, wall {done['wall_s']:.1f} s, median trial "
                      f"{done['per_trial_s']:.1f} s, outcomes {done['outcomes']}", file=sys.stderr, flush=True)

            for arm in plan_arms(arms, args.repeats):
                run(arm)
            if args.mps:
                mps_env, facts["mps"] = start_mps(Path(tmp) / "mps")
                print(f"MPS: {facts['mps']}", file=sys.stderr, flush=True)
                if mps_env is not None:
                    try:
                        for arm in (a for a in SHARING if a in arms):
                            run(arm + MPS, mps_env)
                    finally:
                        stop_mps(mps_env)
        command = "python benchmarks/gpu_trials.py " + shlex.join(a for a in argv if a != "--write-readme")
        result = {"runs": runs, "facts": facts, "setup": {"trials": args.trials, "ddp_trials": args.ddp_trials,
                                                          "epochs": args.epochs, "samples": args.samples,
                                                          "command": command.strip()}}
        if args.json:
            args.json.write_text(json.dumps(result, indent=1))
    markdown = table(result)
    print(markdown)
    if args.write_readme:
        print(f"wrote {write_table(MARKER, markdown)}", file=sys.stderr)
    base = _per_hour(result["runs"], "one", "span_s")
    return 0 if _per_hour(result["runs"], "four", "span_s") / base >= GOAL else 1


if __name__ == "__main__":
    sys.exit(main())
