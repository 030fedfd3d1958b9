"""What a small search pays before its first epoch, ours beside the floor Ray itself imposes.

Run from anywhere (the repository root is put on ``sys.path`` and on the children's PYTHONPATH)::

    python benchmarks/startup.py                      # 3 runs of each, medians
    python benchmarks/startup.py --repeats 5 --write-readme
    python benchmarks/startup.py --skip-floor         # ours only

**Ours**: ``python -m search run <tiny spec> --num-cpus 2 --verbose`` in a subprocess (the
built-in ``feature_selection`` trainable on the built-in ``breast_cancer`` set, one trial of two
epochs, ``sampler: random``, ``scheduler: {type: none}``). Every line the command prints is
stamped as it arrives, against the moment just before the process was started, and the
trial's ``result.json`` adds what only the trial knows (Tune's ``time_this_iter_s`` of epoch 1:
from the trial function's start to its first report; our ``epoch_time_s``: the epoch itself).
The phases:

* **to "starting Ray"**: interpreter, our imports, the spec, the data loaded in the driver;
* **ray.init**: to Ray's ``Started a local Ray instance`` line;
* **driver: checks, data put, Tuner built**: to Optuna's ``A new study created in memory`` line
  (the version checks, the cluster's resources, ``ray.put`` of the data, ``build_tuner``'s imports);
* **to the trial function**: Tune's start, the searcher asked, the trial's worker process
  started and our trial code (``search.trials``, ``trainables``, torch) imported there;
* **in the trial, before epoch 1**: the data fetched from the object store, the model built;
* **epoch 1**: the first epoch itself (``epoch_time_s``).

And the command's other end: from the search's last line (``[1/1 done]``) to the last line printed
(the refit, the held-out test, Ray's shutdown, the summary), and from that line to the process's
exit. ``--as-before`` adds ours as it was before 2026-12-06's second, third, fifth and sixth sessions
(the data loaded before ``ray.init`` rather than beside it, Ray's API server and its autoscaler monitor
started without the dashboard, Ray's shutdown left to stop that monitor, Ray's one-second wait for
its new node, workers started through Ray's ``setup_worker.py``, the interpreter's full teardown at
exit), run interleaved: the baseline of those changes.

**Ray's floor** (same interpreter, same ``--num-cpus``): ``import ray``, ``ray.init(num_cpus=2)``,
a ``tune.Tuner`` with one function trainable that imports torch, makes one step of an Adam
optimizer (``torch.optim`` imports ``torch._dynamo`` on first use: any training pays it) and reports once, the same
phases stamped from inside; and the same with the job-wide ``runtime_env`` (``env_vars``) ours
passes to ``ray.init``, which decides whether Ray's prestarted workers can serve the trial. A cold ``import torch`` and a cold import of our trial code are
timed alone too, to say what the trial process spends importing.

The machine is shared and busy: every figure is the median of ``--repeats`` runs, and the
load average is printed beside them. Exit status 0 when ours reached epoch 1 within
``--target`` seconds (6 s), 1 otherwise.
"""

from __future__ import annotations

import argparse
import compileall
import datetime
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # run as a script, uninstalled

from benchmarks._readme import cpu_name, write_table  # noqa: E402

SPEC = """\
name: startup_tiny
trainable: feature_selection
data: {{name: breast_cancer, seed: 0}}
metric: val_accuracy
mode: max
search: {{sampler: random, num_samples: 1, seed: 0}}
scheduler: {{type: none}}
space:
  lr: {{type: float, low: 1.0e-3, high: 1.0e-2, log: true}}
fixed: {{epochs: 2, batch_size: 64}}
storage: {storage}
"""

#: The floor: a bare Ray + Tune run whose trainable imports torch and reports once.
FLOOR = r"""
import json, os, sys, tempfile, time
t0 = float(os.environ["STARTUP_T0"])
stamp = {}
import ray
from ray import tune
stamp["imports"] = time.time() - t0
# "env": what ours passes (session.py's job-wide env_vars): do Ray's prestarted workers still serve the trial?
extra = {"runtime_env": {"env_vars": {"RAY_TRAIN_HEALTH_CHECK_INTERVAL_S": "2"}}} if sys.argv[2] == "env" else {}
ray.init(num_cpus=int(sys.argv[1]), include_dashboard=False, **extra)
stamp["ray_init"] = time.time() - t0

def train(config):
    started = time.time()
    import torch  # what any PyTorch trainable pays in its process: torch, and its first optimizer
    weight = torch.zeros(1, requires_grad=True)
    torch.optim.Adam([weight]).step()  # torch.optim imports torch._dynamo on first use
    tune.report({"fn_start": started, "torch_done": time.time()})

tuner = tune.Tuner(train, tune_config=tune.TuneConfig(num_samples=1),
                   run_config=tune.RunConfig(name="floor", storage_path=tempfile.mkdtemp(), verbose=0))
stamp["tuner"] = time.time() - t0
result = tuner.fit().get_best_result(metric="fn_start", mode="max").metrics
stamp["fn_start"] = result["fn_start"] - t0
stamp["first_report"] = result["torch_done"] - t0
ray.shutdown()
print("STAMP " + json.dumps(stamp), flush=True)
"""

#: After the first epoch: the search's end (its ``[1/1 done]`` line) to the last line printed (the refit, the
#: held-out test, Ray's shutdown, the summary), and that line to the process's exit.
END_PHASES = ("after the search, to the last line", "last line to the exit", "command ends")

PHASES = ("before Ray", "ray.init", "driver: checks, data put, Tuner built", "to the trial function",
          "in the trial, before epoch 1", "epoch 1")

_RAY_UP = re.compile(r"Started a local Ray instance|Connected to Ray cluster")
_TUNER_BUILT = "A new study created in memory"  # Optuna's line as build_tuner makes the searcher
_TRIAL_STARTED = re.compile(r"trial \w+ started")
_EPOCH_1 = re.compile(r"trial \w+ epoch 1 ")
_SEARCH_DONE = re.compile(r"\[(\d+)/\1 done\]")


def _env() -> dict[str, str]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH")) if p)
    return env


def _stamped_run(cmd: list[str], env: dict[str, str], timeout_s: float) -> tuple[float, list[tuple[float, str]], int]:
    """Run ``cmd``; each output line with its time since just before the start (the last entry, ``""``: its exit)."""
    lines: list[tuple[float, str]] = []
    t0 = time.time()
    proc = subprocess.Popen(cmd, env={**env, "STARTUP_T0": repr(t0)}, cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, bufsize=1)
    assert proc.stdout is not None

    def read() -> None:
        for line in proc.stdout:  # type: ignore[union-attr]
            lines.append((time.time() - t0, line.rstrip("\n")))

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        code = proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        proc.terminate()  # our own child only
        code = proc.wait()
    exited = time.time() - t0
    reader.join(5)
    return t0, [*lines, (exited, "")], code


def _first(lines: list[tuple[float, str]], pattern: re.Pattern[str] | str) -> float | None:
    for at, text in lines:
        if (pattern.search(text) if isinstance(pattern, re.Pattern) else pattern in text):
            return at
    return None


#: Ours as it was before the changes of 2026-12-06's second, third, fifth and sixth sessions: the data loaded before
#: ``ray.init``, not beside it; Ray's API server started although it runs usage stats alone; the autoscaler monitor
#: started on the one node, and Ray's shutdown left to stop it itself; Ray's GetNode left to look for its new node
#: once a second; workers started through Ray's ``setup_worker.py``; and the process ended by the interpreter's full teardown (``main``, not ``command``). Patched
#: without importing more than ours does before Ray (Ray's node module, ``search.internals``, and
#: ``search.engine.data`` before ``search.engine.run`` binds its ``loading``).
AS_BEFORE = ("import sys, contextlib, ray._private.node as node, search.engine.data as data, search.internals as i, "
             "search.internals.api_server as api; "
             "node.Node.kill_monitor = lambda self, check_alive=True: None; "
             "api.usage_stats_only_server = lambda: False; "
             "i.monitor_left_out = lambda include_dashboard: contextlib.nullcontext(); "
             "i.node_registration_polled = contextlib.nullcontext; i.lean_worker_setup = contextlib.nullcontext; "
             "data.loading = lambda load, *_: (lambda loaded: lambda: loaded)(load()); "
             "from search.cli.main import main; sys.exit(main())")


def run_ours(workdir: Path, num_cpus: int, timeout_s: float, as_before: bool = False) -> dict[str, float]:
    storage = workdir / "results"
    spec = workdir / "tiny.yaml"
    workdir.mkdir(parents=True, exist_ok=True)
    spec.write_text(SPEC.format(storage=storage))
    entry = ["-c", AS_BEFORE] if as_before else ["-m", "search"]
    cmd = [sys.executable, *entry, "run", str(spec), "--num-cpus", str(num_cpus), "--verbose", "--overwrite"]
    _, lines, code = _stamped_run(cmd, _env(), timeout_s)
    exited = lines.pop()[0]
    epoch1 = _first(lines, _EPOCH_1)
    results = sorted(storage.glob("startup_tiny/trial_*/result.json"))
    if code != 0 or epoch1 is None or not results:
        tail = "\n".join(text for _, text in lines[-15:])
        raise RuntimeError(f"our run failed (exit {code}):\n{tail}")
    first = json.loads(results[0].read_text().splitlines()[0])
    pre_ray = _first(lines, "starting Ray") or math_nan()
    ray_up = _first(lines, _RAY_UP) or pre_ray
    fn_start = epoch1 - float(first["time_this_iter_s"])
    built = _first(lines, _TUNER_BUILT) or ray_up
    epoch_s = float(first.get("epoch_time_s", 0.0))
    return {"before Ray": pre_ray, "ray.init": ray_up - pre_ray, "driver: checks, data put, Tuner built": built - ray_up,
            "to the trial function": fn_start - built,
            "in the trial, before epoch 1": float(first["time_this_iter_s"]) - epoch_s, "epoch 1": epoch_s,
            "first epoch at": epoch1, "trial started line": _first(lines, _TRIAL_STARTED) or math_nan(),
            "after the search, to the last line": lines[-1][0] - (_first(lines, _SEARCH_DONE) or math_nan()),
            "last line to the exit": exited - lines[-1][0], "command ends": exited}


def run_floor(num_cpus: int, timeout_s: float, runtime_env: bool = False) -> dict[str, float]:
    cmd = [sys.executable, "-c", FLOOR, str(num_cpus), "env" if runtime_env else "bare"]
    _, lines, code = _stamped_run(cmd, _env(), timeout_s)
    lines.pop()
    stamp = next((json.loads(text[6:]) for _, text in lines if text.startswith("STAMP ")), None)
    if code != 0 or stamp is None:
        raise RuntimeError("the floor run failed:\n" + "\n".join(text for _, text in lines[-15:]))
    return {"before Ray": stamp["imports"], "ray.init": stamp["ray_init"] - stamp["imports"],
            "driver: checks, data put, Tuner built": stamp["tuner"] - stamp["ray_init"],
            "to the trial function": stamp["fn_start"] - stamp["tuner"],
            "in the trial, before epoch 1": stamp["first_report"] - stamp["fn_start"], "epoch 1": 0.0,
            "first epoch at": stamp["first_report"]}


def cold_import(module: str) -> float:
    """Seconds a fresh interpreter takes to import ``module`` (what a new trial process pays)."""
    code = f"import time; t = time.perf_counter(); import {module}; print(time.perf_counter() - t)"
    out = subprocess.run([sys.executable, "-c", code], env=_env(), cwd=REPO, capture_output=True, text=True,
                         check=True)
    return float(out.stdout.strip().splitlines()[-1])


def math_nan() -> float:
    return float("nan")


def median(rows: list[dict[str, float]], key: str) -> float:
    values = [r[key] for r in rows if key in r and r[key] == r[key]]
    return statistics.median(values) if values else math_nan()


def render(columns: dict[str, list[dict[str, float]]], imports: dict[str, list[float]], load: tuple[float, float],
           target: float, command: str = "python benchmarks/startup.py") -> str:
    """The table: one column per path (``ours``, the floors), medians of their runs."""
    def cell(rows: list[dict[str, float]], key: str) -> str:
        value = median(rows, key)
        return "–" if value != value else f"{value:.1f} s"

    runs = ", ".join(f"{len(rows)} of {name}" for name, rows in columns.items())
    foot = (f"Machine: {cpu_name()} ({platform.machine()}), {os.cpu_count()} CPUs, no GPU; Python "
            f"{platform.python_version()}, CPU torch {_torch_version()}, ray {_version('ray')}; "
            f"{datetime.date.today().isoformat()}; load average {load[0]:.1f} at start, {load[1]:.1f} at end "
            f"(other engineers' processes share the 2 CPUs: medians of {runs}, interleaved); `{command}`")
    rows = ["| phase | " + " | ".join(columns) + " |", "|---" * (len(columns) + 1) + "|"]
    rows += [f"| {phase} | " + " | ".join(cell(r, phase) for r in columns.values()) + " |" for phase in PHASES]
    rows.append(f"| **first epoch at** (target {target:.0f} s) | "
                + " | ".join(f"**{cell(r, 'first epoch at')}**" for r in columns.values()) + " |")
    rows += [f"| {phase} | " + " | ".join(cell(r, phase) for r in columns.values()) + " |" for phase in END_PHASES]
    cold = ", ".join(f"`import {m}` {statistics.median(v):.1f} s" for m, v in imports.items() if v)
    spec = ("Tiny spec: `feature_selection` on `breast_cancer`, 1 trial of 2 epochs, `scheduler: {type: none}`; "
            "`search` and `trainables` byte-compiled first, as `pip install` leaves them.")
    cold = f" Cold imports in a fresh interpreter (medians): {cold}." if cold else ""
    return "\n".join(rows) + f"\n\n{spec}{cold}  \n{foot}"


def _version(package: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(package)
    except PackageNotFoundError:
        return "unknown"


def _torch_version() -> str:
    try:
        out = subprocess.run([sys.executable, "-c", "import torch; print(torch.__version__)"], capture_output=True,
                             text=True, check=True)
        return out.stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3, help="runs of each (default: %(default)s); medians")
    parser.add_argument("--num-cpus", type=int, default=2)
    parser.add_argument("--target", type=float, default=6.0, help="seconds to the first epoch (default: %(default)s)")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds one run may take")
    parser.add_argument("--skip-floor", action="store_true", help="do not run Ray's floor")
    parser.add_argument("--as-before", action="store_true",
                        help="also run ours as before 2026-12-06's second, third, fifth and sixth sessions (the "
                             "baseline of their changes)")
    parser.add_argument("--write-readme", action="store_true", help="write the table into docs/benchmarks.md")
    args = parser.parse_args(argv)
    load_before = os.getloadavg()[0]
    columns: dict[str, list[dict[str, float]]] = {"ours": []}
    if args.as_before:
        columns["ours as before"] = []
    if not args.skip_floor:
        columns.update({"Ray's floor": [], "floor + ours' runtime_env": []})
    # The trial code Tune pickles and the built-in trainable as the driver sees them (no torch), then its training.
    imports: dict[str, list[float]] = {"torch": [], "pandas": [], "search.trials.direct, trainables.tasks": [],
                                       "trainables.task_training": []}
    # Our packages' bytecode, as an install (pip compiles it) or a first import leaves it: with PYTHONDONTWRITEBYTECODE
    # set (this machine's sandbox sets it) every process would compile them again, about 0.1 s of ours' start each.
    for package in ("search", "trainables"):
        compileall.compile_dir(REPO / package, quiet=1)
    with tempfile.TemporaryDirectory(prefix="startup-") as tmp:
        for i in range(args.repeats):  # interleaved, so each path sees the same load
            for name, rows in columns.items():
                if name.startswith("ours"):
                    rows.append(run_ours(Path(tmp) / f"run{i}", args.num_cpus, args.timeout,
                                         as_before=name != "ours"))
                else:
                    rows.append(run_floor(args.num_cpus, args.timeout, runtime_env="runtime_env" in name))
                print(f"{name} #{i + 1}: " + ", ".join(f"{k} {v:.1f}s" for k, v in rows[-1].items()), file=sys.stderr)
            for module in imports:
                imports[module].append(cold_import(module))
    command = "python benchmarks/startup.py " + " ".join(argv if argv is not None else sys.argv[1:])
    table = render(columns, imports, (load_before, os.getloadavg()[0]), args.target, command.strip())
    print(table)
    if args.write_readme:
        print(f"wrote {write_table('startup', table)}", file=sys.stderr)
    return 0 if median(columns["ours"], "first epoch at") <= args.target else 1


if __name__ == "__main__":
    sys.exit(main())
