"""Regenerate ``docs/report.png``: the HTML report of a real experiment, as headless Chromium draws it.

Run from the repository root, on a finished experiment folder::

    python -m search run spaces/quickstart.yaml --name report_demo --num-samples 6 --storage /tmp/report_run
    python benchmarks/report_screenshot.py /tmp/report_run/report_demo          # -> docs/report.png

or let it run that small quickstart itself (a few minutes on 2 cores)::

    python benchmarks/report_screenshot.py --run

The report is rendered by ``python -m search report`` into a temporary file (the experiment folder
is left as it was), then photographed at 1400 x 2200 px: the summary, the results table (its trial
column frozen while the rest scrolls) and the first figures. Chromium: ``apt-get install -y
chromium`` (or set ``CHROMIUM`` to the browser's path).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_OUTPUT = REPO / "docs" / "report.png"
#: What Chromium needs to draw one page and leave: no sandbox (containers), no GPU, no network, no first-run UI.
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--no-first-run", "--hide-scrollbars", "--virtual-time-budget=8000")


def chromium() -> str:
    """The browser's path: $CHROMIUM, else the first of the usual names on PATH."""
    for candidate in (os.environ.get("CHROMIUM"), "chromium", "chromium-browser", "google-chrome"):
        if candidate and (found := shutil.which(candidate)):
            return found
    sys.exit("no Chromium found: apt-get install -y chromium, or set CHROMIUM to the browser's path")


def run_quickstart(storage: Path) -> Path:
    """The quickstart with 6 trials, into ``storage``: the experiment folder."""
    command = [sys.executable, "-m", "search", "run", str(REPO / "spaces" / "quickstart.yaml"), "--name",
               "report_demo", "--num-samples", "6", "--storage", str(storage), "--overwrite"]
    subprocess.run(command, check=True, cwd=REPO)
    return storage / "report_demo"


def screenshot(experiment: Path, output: Path, width: int = 1400, height: int = 2200) -> Path:
    """Render ``experiment``'s report and photograph it into ``output`` (PNG)."""
    with tempfile.TemporaryDirectory() as tmp:
        page = Path(tmp) / "report.html"
        subprocess.run([sys.executable, "-m", "search", "report", str(experiment), "-o", str(page)], check=True,
                       cwd=REPO, stdout=subprocess.DEVNULL)
        shot = Path(tmp) / "report.png"
        subprocess.run([chromium(), *FLAGS, f"--screenshot={shot}", f"--window-size={width},{height}",
                        f"--user-data-dir={Path(tmp) / 'profile'}", page.as_uri()],
                       check=True, capture_output=True, timeout=180)
        if not shot.is_file() or shot.stat().st_size < 10_000:
            sys.exit(f"Chromium wrote no screenshot of {page}")
        output.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shot, output)
    return output


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("experiment", nargs="?", type=Path, help="a finished experiment folder (default: with --run, "
                        "the quickstart run here)")
    parser.add_argument("--run", action="store_true", help="first run the quickstart with 6 trials (default: no)")
    parser.add_argument("--storage", type=Path, default=Path(tempfile.gettempdir()) / "report_run",
                        help="where --run puts its experiment (default: %(default)s)")
    parser.add_argument("-o", "--output", type=Path, default=DEFAULT_OUTPUT, help="the PNG (default: docs/report.png)")
    parser.add_argument("--width", type=int, default=1400, help="window width in px (default: %(default)s)")
    parser.add_argument("--height", type=int, default=2200, help="window height in px (default: %(default)s)")
    args = parser.parse_args(argv)
    if args.experiment is None and not args.run:
        parser.error("give an experiment folder, or --run to make one")
    experiment = run_quickstart(args.storage) if args.run else args.experiment
    print(screenshot(experiment, args.output, args.width, args.height))
    return 0


if __name__ == "__main__":
    sys.exit(main())
