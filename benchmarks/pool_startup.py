"""Where the quickstart's start-up goes with the worker pool (`executor: torch_trainer`), against `direct`.

Run from anywhere::

    python benchmarks/pool_startup.py                 # 2 runs of each executor, interleaved
    python benchmarks/pool_startup.py --repeats 3 --write-readme

Each run is ``python -m search run spaces/quickstart.yaml --verbose`` (a copy with
``resources.executor`` set, and ``--storage`` in a temporary folder), timed from the command's
start; its own event lines give, relative to the run's first line: when the first trial
started (Ray up, data loaded, the tuner planned, the trial's process up) and when its first
epoch reported. With ``direct`` the gap between the two is the trial's process starting and
one epoch; with ``torch_trainer`` it also holds the pool's start (Train's controller, workers,
process group). A pool started at the run's start instead of inside the first trial could
overlap, at best, the part before the first trial started: that is the bound this prints for
"start the pool while the first trials are planned".
"""

from __future__ import annotations

import argparse
import datetime
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

import yaml

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # run as a script, uninstalled

from benchmarks._readme import cpu_name, write_table  # noqa: E402

MARKER = "pool_startup"
LINE = re.compile(r"^\[ *(?P<t>\d+\.\d)s\] trial (?P<id>\S+) (?P<what>started|epoch 1 )")


def run_once(executor: str, workdir: Path) -> dict[str, float]:
    spec = yaml.safe_load((REPO / "spaces" / "quickstart.yaml").read_text())
    spec["resources"]["executor"] = executor
    path = workdir / f"quickstart_{executor}.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    env.pop("RAY_ADDRESS", None)
    name = f"q_{executor}_{time.monotonic_ns()}"
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "search", "run", str(path), "--storage", str(workdir / "results"),
                           "--name", name, "--verbose"], env=env, capture_output=True, text=True, timeout=900)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"{executor}: exit {proc.returncode}\n{proc.stderr[-3000:]}")
    started = first_epoch = None
    for line in proc.stderr.splitlines():
        m = LINE.match(line)
        if not m:
            continue
        t = float(m["t"])
        if m["what"] == "started" and started is None:
            started = t
        elif m["what"].startswith("epoch") and first_epoch is None:
            first_epoch = t
    # The event clock starts when the tuner is built, with Ray up and the data loaded: the earliest a
    # pool could start, since it needs Ray.
    return {"wall": wall, "started": started, "first_epoch": first_epoch}


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=2, help="runs of each executor (default 2)")
    parser.add_argument("--write-readme", action="store_true")
    args = parser.parse_args(argv)
    load0 = os.getloadavg()[0]
    runs: dict[str, list[dict[str, float]]] = {"direct": [], "torch_trainer": []}
    with tempfile.TemporaryDirectory(prefix="pool-startup-") as tmp:
        for _ in range(args.repeats):
            for executor in runs:
                run = run_once(executor, Path(tmp))
                runs[executor].append(run)
                print(f"{executor}: wall {run['wall']:.1f} s, first trial started at {run['started']:.1f} s, "
                      f"its first epoch at {run['first_epoch']:.1f} s (event clock)", file=sys.stderr, flush=True)

    def med(executor: str, key: str) -> float:
        return statistics.median(r[key] for r in runs[executor])

    rows = ["| executor | runs | wall s | first trial started s | its first epoch s | start → first epoch s |",
            "|---|---:|---:|---:|---:|---:|"]
    for executor, mine in runs.items():
        rows.append(f"| {executor} | {len(mine)} | {med(executor, 'wall'):.1f} | {med(executor, 'started'):.1f} | "
                    f"{med(executor, 'first_epoch'):.1f} | "
                    f"{statistics.median(r['first_epoch'] - r['started'] for r in mine):.1f} |")
    pool = statistics.median(r["first_epoch"] - r["started"] for r in runs["torch_trainer"])
    direct = statistics.median(r["first_epoch"] - r["started"] for r in runs["direct"])
    before = med("torch_trainer", "started")
    bound = before
    rows += ["", f"The pool's own start-up: {pool - direct:.1f} s (torch_trainer's start → first epoch less "
                 f"direct's, {pool:.1f} − {direct:.1f}); from the tuner's start (Ray up, data loaded) to the first "
                 f"trial's start: {before:.1f} s. A pool started while the first trial is planned could hide at most that {bound:.1f} s, "
                 f"{bound / med('torch_trainer', 'wall'):.0%} of this {med('torch_trainer', 'wall'):.0f} s search, "
                 "and less on 2 CPUs, where the pool's processes and the trial's own start compete for the same cores.  ",
             f"Machine: {cpu_name()} ({platform.machine()}), {os.cpu_count()} CPUs; Python {platform.python_version()}; "
             f"{datetime.date.today().isoformat()}; load average {load0:.1f} at start, {os.getloadavg()[0]:.1f} at end; "
             f"`{shlex.join(['python', 'benchmarks/pool_startup.py', *argv])}`"]
    markdown = "\n".join(rows)
    print(markdown)
    if args.write_readme:
        print(f"wrote {write_table(MARKER, markdown)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
