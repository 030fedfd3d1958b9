"""The run's terminal lines: one per trial event and a status line now and then, not one per epoch;
times from the command's start, outcomes in the words of search.results.outcomes."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from search.engine import console as terminal
from search.engine.progress import ProgressLines

REPO = Path(__file__).resolve().parents[3]


@pytest.fixture(autouse=True)
def _command_starts_now():
    """Each test is a command of its own: its lines count time from its start."""
    terminal.start_clock()


def _trial(tid: str, status: str = "RUNNING", **last) -> SimpleNamespace:
    return SimpleNamespace(trial_id=tid, status=status, evaluated_params={"lr": 0.0123}, last_result=last,
                           error_file="/x/error.txt")


def test_events_and_status_lines_but_no_epoch_lines_by_default():
    out = io.StringIO()
    lines = ProgressLines("val_accuracy", "max", stream=out, pruned={"b": 2}, num_samples=4, status_every_s=0)
    a, b, c, d = _trial("a"), _trial("b"), _trial("c"), _trial("d")
    lines.on_trial_start(0, [a], a)
    for epoch, value in enumerate([0.5, 0.7, 0.6], 1):
        lines.on_trial_result(0, [a], a, {"epoch": epoch, "val_accuracy": value})
    a.last_result, a.status = {"epoch": 3, "val_accuracy": 0.6}, "TERMINATED"
    lines.on_trial_complete(0, [a, b], a)
    b.last_result, b.status = {"epoch": 2, "val_accuracy": 0.4}, "TERMINATED"
    lines.on_trial_complete(0, [a, b], b)
    c.last_result, c.status = {"epoch": 1, "val_accuracy": float("nan"), "stop_reason": "diverged"}, "TERMINATED"
    lines.on_trial_complete(0, [a, b, c], c)
    lines.on_step_end(0, [a, b, c, d])
    text = out.getvalue().splitlines()
    assert len(text) == 5 and not any("trial a epoch" in line for line in text)
    assert text[0].endswith("trial a started  lr=0.0123")
    # The trial's value is its best epoch's (as in the table and the study), not its last epoch's 0.6.
    assert text[1].endswith("trial a completed: val_accuracy=0.7 (best, epoch 2)  [1/4 done]")
    assert text[2].endswith("trial b cut by ASHA at epoch 2: val_accuracy=0.4  [2/4 done]")
    assert "trial c diverged at epoch 1" in text[3]
    assert text[4].endswith("3/4 trials done, 1 running: 1 completed, 1 cut by ASHA, 1 diverged; "
                            "best val_accuracy=0.7 (trial a); ~0s left")


def test_epoch_lines_when_asked_and_status_only_after_its_interval():
    out = io.StringIO()
    lines = ProgressLines("loss", "min", stream=out, num_samples=2, epoch_lines=True, status_every_s=3600)
    a = _trial("a")
    lines.on_trial_result(0, [a], a, {"epoch": 1, "loss": 0.5, "num_selected": 3})
    lines.on_step_end(0, [a])
    assert out.getvalue().splitlines()[-1].endswith("trial a epoch 1 loss=0.5 selected=3 (best 0.5)")
    assert "trials done" not in out.getvalue()


def test_status_lines_thin_out_as_a_long_run_goes_on(monkeypatch):
    """A 4-hour search polled every second: a status line every 30 s at first, then further apart."""
    clock = [1000.0]
    monkeypatch.setattr("search.engine.progress.time.monotonic", lambda: clock[0])
    out = io.StringIO()
    lines = ProgressLines("val_accuracy", "max", stream=out, num_samples=60)
    lines.setup()
    stamps = []
    for second in range(1, 4 * 3600 + 1):
        clock[0] = 1000.0 + second
        before = len(out.getvalue())
        lines.on_step_end(0, [])
        if len(out.getvalue()) != before:
            stamps.append(second)
    assert stamps[:10] == [30 * k for k in range(1, 11)]  # the first 5 minutes: every 30 s
    assert all(b - a <= max(30, b / 10) + 1 for a, b in zip(stamps, stamps[1:]))
    assert 40 <= len(stamps) <= 60  # not 480 (one per 30 s): with 2 lines per trial, a 60-trial run stays ~200 lines


def test_a_resumed_run_counts_time_and_pace_from_its_own_start(monkeypatch):
    """Brought back from tuner.pkl, the callback's clock is another process's: setup starts it again."""
    import pickle

    clock = [5.0]
    monkeypatch.setattr("search.engine.progress.time.monotonic", lambda: clock[0])
    first = ProgressLines("score", "max", stream=io.StringIO(), num_samples=20, status_every_s=0)
    first.setup()
    for tid in "abcdefghij":  # 10 trials done in the first run's 1,000 s
        trial = _trial(tid, "TERMINATED", epoch=1, score=0.5)
        first.on_trial_start(0, [trial], trial)
        first.on_trial_result(0, [trial], trial, {"epoch": 1, "score": 0.5})
        first.on_trial_complete(0, [trial], trial)
    clock[0] = 1005.0

    # Tuner.restore unpickles the callback as it was when the run started (tuner.pkl), then hands it the
    # state Tune saved with the experiment (get_state / set_state).
    saved = pickle.loads(pickle.dumps(first.get_state()))
    resumed = pickle.loads(pickle.dumps(ProgressLines("score", "max", stream=io.StringIO(), num_samples=20,
                                                      status_every_s=0)))
    resumed.stream = out = io.StringIO()
    clock[0] = 7.0  # a new process (or a reboot): its monotonic clock knows nothing of the old one
    terminal.start_clock()  # the resume command starts
    resumed.setup()
    resumed.set_state(saved)
    assert (resumed.best, resumed.best_trial) == (0.5, "a")
    clock[0] = 67.0
    k = _trial("k", "TERMINATED", epoch=1, score=0.6)
    resumed.on_trial_complete(0, [k], k)  # 1 trial in the resumed run's first 60 s: 9 left, ~9 minutes
    resumed.on_step_end(0, [k])
    text = out.getvalue().splitlines()
    assert text[0].startswith("[   60.0s] trial k completed: score=0.6  [11/20 done]")
    assert text[-1].startswith("[   60.0s] 11/20 trials done") and text[-1].endswith("~9m left")


def test_failed_and_early_stopped_trials_are_counted_and_named():
    out = io.StringIO()
    lines = ProgressLines("score", "max", stream=out, num_samples=3, status_every_s=0)
    early = _trial("e", "TERMINATED", epoch=4, score=0.5, stop_reason="early_stopping")
    lines.on_trial_complete(0, [early], early)
    broken = _trial("f", "ERROR")
    lines.on_trial_error(0, [early, broken], broken)
    lines.on_step_end(0, [early, broken])
    text = out.getvalue().splitlines()
    assert text[0].endswith("trial e stopped early by patience at epoch 4: score=0.5  [1/3 done]")
    assert text[1].endswith("trial f failed: see /x/error.txt  [2/3 done]")
    assert "2/3 trials done, 0 running: 1 stopped early by patience, 1 failed" in text[2]


def test_a_retry_says_which_and_from_which_epoch_and_a_failure_points_to_its_traceback(tmp_path):
    """Issue 26, item 9: "retry k/n from checkpoint N"; a FAILED line names the error file in the experiment."""
    (tmp_path / "trial_f").mkdir()
    error_file = tmp_path / "trial_f" / "error.txt"
    error_file.write_text("Traceback (most recent call last):\n  ...\nRuntimeError: injected at epoch 3\n")
    out = io.StringIO()
    lines = ProgressLines("score", "max", stream=out, num_samples=2, status_every_s=0)
    checkpointed = SimpleNamespace(metrics={"epoch": 2, "score": 0.4})
    trial = SimpleNamespace(trial_id="f", status="RUNNING", evaluated_params={}, last_result={}, error_file=str(error_file),
                            num_failures=1, max_failures=2, latest_checkpoint_result=checkpointed)
    lines.on_trial_recover(0, [trial], trial)
    fresh = SimpleNamespace(**{**vars(trial), "trial_id": "g", "latest_checkpoint_result": None})
    lines.on_trial_recover(0, [trial, fresh], fresh)
    trial.status = "ERROR"
    lines.on_trial_error(0, [trial], trial)
    text = out.getvalue().splitlines()
    assert text[0].endswith("trial f failed: RuntimeError: injected at epoch 3; retry 1/2 from its checkpoint of epoch 2")
    assert text[1].endswith("trial g failed: RuntimeError: injected at epoch 3; retry 1/2 from the start (no checkpoint yet)")
    assert text[2].endswith(f"trial f failed: RuntimeError: injected at epoch 3 (traceback: {error_file})  [1/2 done]")


def test_quiet_terminal_sends_descriptors_to_the_log_and_our_lines_to_the_terminal(tmp_path):
    """In a process of its own: pytest's capture replaces the streams this redirects."""
    log = tmp_path / "exp" / "run.log"
    script = f"""
import os, sys
from pathlib import Path
from search.engine.console import console, quiet_terminal, say
with quiet_terminal(Path({str(log)!r})):
    print("from python stdout")
    sys.stderr.write("from python stderr\\n")
    os.write(1, b"from the C side\\n")
    say("ours")
    assert console() is not sys.stderr
say("after")
print("stdout again")
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    assert done.returncode == 0, done.stderr
    assert done.stderr.splitlines() == ["ours", "after"] and done.stdout == "stdout again\n"
    assert log.read_text().splitlines() == ["from python stdout", "from python stderr", "from the C side"]


def test_on_a_terminal_a_live_panel_shows_progress_best_and_running_trials():
    import pickle

    out = io.StringIO()
    lines = ProgressLines("val_accuracy", "max", stream=out, num_samples=3, live=True)
    lines.setup()
    assert lines._panel is not None
    a, b = _trial("aaaa"), _trial("bbbb")
    b.evaluated_params = {"lr": 0.5}
    lines.on_trial_start(0, [a, b], a)
    lines.on_trial_result(0, [a, b], a, {"epoch": 2, "val_accuracy": 0.75})
    lines.on_trial_result(0, [a, b], b, {"epoch": 1, "val_accuracy": 0.9})
    a.status, a.last_result = "TERMINATED", {"epoch": 2, "val_accuracy": 0.75}
    lines.on_trial_complete(0, [a, b], a)
    lines.last_status = 0  # draw now
    lines.on_step_end(0, [a, b])
    assert pickle.loads(pickle.dumps(lines))._panel is None  # tuner.pkl holds the counts, not the display
    lines.on_experiment_end([a, b])
    assert lines._panel is None
    text = out.getvalue()
    assert "trial aaaa started" in text and "trial aaaa completed: val_accuracy=0.75" in text  # events scroll above it
    assert "1/3 trials done · 1 running · 0s elapsed" in text and "ended: 1 completed" in " ".join(text.split())
    assert "best: trial bbbb  val_accuracy=0.9  lr=0.5" in text
    assert "bbbb" in text.split("running")[-1] and "0.9" in text.split("running")[-1]  # the running trials' table
    assert "trials done" not in "".join(line for line in text.splitlines() if line.startswith("["))  # no status lines


def test_the_live_panel_draws_on_a_pseudo_terminal_and_plain_lines_elsewhere(tmp_path):
    """The same events, once with stderr on a pseudo-terminal (rich's panel), once on a pipe (lines only)."""
    import pty

    script = """
import time
from types import SimpleNamespace
from search.engine.progress import ProgressLines
lines = ProgressLines("score", "max", num_samples=2)
lines.setup()
print("panel" if lines._panel is not None else "lines", flush=True)
t = SimpleNamespace(trial_id="abcd1234", status="RUNNING", evaluated_params={"x": 0.5}, last_result={})
lines.on_trial_start(0, [t], t)
lines.on_trial_result(0, [t], t, {"epoch": 3, "score": 0.875})
lines.last_status = 0
lines.on_step_end(0, [t])
lines.on_experiment_end([t])
"""
    env = {**os.environ, "PYTHONPATH": str(REPO), "COLUMNS": "100"}
    primary, secondary = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=secondary, stderr=secondary, env=env)
    os.close(secondary)
    chunks = []
    while True:
        try:
            chunk = os.read(primary, 4096)
        except OSError:  # the other side closed
            break
        if not chunk:
            break
        chunks.append(chunk)
    assert proc.wait(timeout=60) == 0
    os.close(primary)
    screen = b"".join(chunks).decode(errors="replace")
    assert "panel" in screen and "\x1b[" in screen  # rich drew, with terminal control codes
    assert "trial abcd1234 started" in screen and "best: trial abcd1234  score=0.875  x=0.5" in screen
    assert "abcd1234  3" in screen.replace("\x1b[0m", "")  # the running trials' table: id, epoch
    piped = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=60)
    assert piped.stdout == "lines\n" and "\x1b[" not in piped.stderr and "trial abcd1234 started" in piped.stderr
