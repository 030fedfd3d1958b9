"""What the terminal shows during a run: our lines; Ray's and Tune's own go to the experiment's ``run.log``.

Ray writes to the process's file descriptors from many places: its Python loggers, the
worker output it forwards to the driver (``(pid=...) Checkpoint successfully created ...
[repeated 83x across cluster]``), its C++ core (the token-authentication warning). Only a
redirect of file descriptors 1 and 2 catches them all, so while a run is quiet both point at
the log file, and our own lines (progress, notes) are written to :func:`console`, a stream on
the terminal the run started with. ``--verbose`` leaves the descriptors alone.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TextIO

__all__ = ["console", "say", "quiet_terminal"]

_terminal: TextIO | None = None


def console() -> TextIO:
    """Where our run-time lines go: the terminal while :func:`quiet_terminal` holds it, else ``sys.stderr``."""
    return _terminal if _terminal is not None else sys.stderr


def say(text: str) -> None:
    """One line to the user, whatever Ray's output is doing."""
    print(text, file=console(), flush=True)


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
