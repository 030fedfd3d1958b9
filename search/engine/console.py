"""What the terminal shows during a run: our lines; Ray's and Tune's own go to the experiment's ``run.log``.

Ray writes to the process's file descriptors from many places: its Python loggers, the
worker output it forwards to the driver (``(pid=...) Checkpoint successfully created ...
[repeated 83x across cluster]``), its C++ core (the token-authentication warning). Only a
redirect of file descriptors 1 and 2 catches them all, so while a run is quiet both point at
the log file, and our own lines (progress, notes) are written to :func:`console`, a stream on
the terminal the run started with. ``--verbose`` leaves the descriptors alone.

Times on the terminal count from the command's start (:func:`start_clock`, called by the command
line when it starts), not from the tuner's: Ray takes 10 to 40 seconds to start, and the user
waited through them too. A run's header (``running quickstart: 12 trials -> ...``) is
:func:`announced` before the run's checks and said with the run's first line, so a run refused
before it starts prints only the refusal.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TextIO

__all__ = ["console", "say", "quiet_terminal", "start_clock", "elapsed", "stamp", "announced", "say_announcement",
           "shown_objectives", "objectives_shown"]

_terminal: TextIO | None = None
_started: float | None = None  # time.monotonic() when the command started
_announcement: str | None = None  # the run's header, until its first line is said
_objectives: tuple[tuple[str, str], ...] = ()  # what the run's live lines show: ((metric, mode), ...)
_select: tuple[float | None, dict[str, float]] = (None, {})  # several objectives: how the run picks a trial


def start_clock(at: float | None = None) -> None:
    """Start the command's clock (``at``: a ``time.monotonic()`` reading; default now)."""
    global _started
    _started = time.monotonic() if at is None else at


def elapsed() -> float:
    """Seconds since the command started (since the first call, if nothing started the clock)."""
    if _started is None:
        start_clock()
    return time.monotonic() - (_started or 0.0)


def stamp(text: str) -> str:
    """``[  12.3s] text``: a line stamped with the time since the command started."""
    return f"[{elapsed():7.1f}s] {text}"


def console() -> TextIO:
    """Where our run-time lines go: the terminal while :func:`quiet_terminal` holds it, else ``sys.stderr``."""
    return _terminal if _terminal is not None else sys.stderr


def say(text: str) -> None:
    """One line to the user, whatever Ray's output is doing (after the run's header, if not said yet)."""
    say_announcement()
    print(text, file=console(), flush=True)


@contextmanager
def announced(header: str) -> Iterator[None]:
    """Hold ``header`` until the run says its first line (:func:`say`, or the first event line)."""
    global _announcement
    _announcement = header
    try:
        yield
    finally:
        _announcement = None


def say_announcement(stream: TextIO | None = None) -> None:
    """Say the run's header now, once, if one is waiting."""
    global _announcement
    if _announcement is not None:
        header, _announcement = _announcement, None
        print(header, file=stream or console(), flush=True)


@contextmanager
def objectives_shown(objectives: Sequence[tuple[str, str]], tolerance: float | None = None,
                     limits: dict[str, float] | None = None) -> Iterator[None]:
    """While inside, a run's live lines show every one of ``objectives`` (and, several: the pick by this rule)."""
    global _objectives, _select
    saved = _objectives, _select
    _objectives, _select = tuple((str(m), str(d)) for m, d in objectives), (tolerance, dict(limits or {}))
    try:
        yield
    finally:
        _objectives, _select = saved


def shown_objectives() -> tuple[tuple[tuple[str, str], ...], tuple[float | None, dict[str, float]]]:
    """The objectives the command asked the live lines to show, and its pick rule; ``()`` when it asked nothing."""
    return _objectives, _select


@contextmanager
def quiet_terminal(log_file: Path | None) -> Iterator[None]:
    """Send everything written to stdout/stderr (descriptors 1 and 2) to ``log_file``; None: do nothing.

    Appends, so a resumed run's log follows the first one's. On exit the descriptors are
    restored, and Python's buffered streams flushed first, so nothing lands on the wrong side.
    """
    global _terminal
    if log_file is None or _terminal is not None:
        yield
        return
    sys.stdout.flush()
    sys.stderr.flush()
    log_file.parent.mkdir(parents=True, exist_ok=True)
    saved_out, saved_err = os.dup(1), os.dup(2)
    log_fd = os.open(log_file, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    _terminal = open(os.dup(saved_err), "w", buffering=1, encoding="utf-8", errors="replace")  # noqa: SIM115
    try:
        os.dup2(log_fd, 1)
        os.dup2(log_fd, 2)
        yield
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(saved_out, 1)
        os.dup2(saved_err, 2)
        for fd in (saved_out, saved_err, log_fd):
            os.close(fd)
        _terminal.close()
        _terminal = None
