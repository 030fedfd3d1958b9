"""tensorboardX's writer without its per-trial queue, thread and ``atexit`` hook.

:class:`search.engine.callbacks.BackgroundTensorBoard` imports this module on its own thread when its first trial
starts: tensorboardX's import (0.15-0.2 s) is then off the driver's path from ``ray.init`` to the first trial, and
made while the driver waits for that trial's process. Importing this module imports tensorboardX.
"""

from __future__ import annotations

import importlib.abc
import logging
import os
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

__all__ = ["DirectSummaryWriter"]

log = logging.getLogger(__name__)


class _TorchHidden(importlib.abc.MetaPathFinder):
    """``import torch`` fails on the thread that placed this finder (an ``ImportError``), as if torch were absent;
    every other thread imports it as usual."""

    def __init__(self) -> None:
        self.thread = threading.get_ident()

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> None:
        if threading.get_ident() == self.thread and (name == "torch" or name.startswith("torch.")):
            raise ModuleNotFoundError(f"{name} hidden while tensorboardX is imported", name=name)
        return None


@contextmanager
def _torch_hidden() -> Iterator[None]:
    """An installed torch, not yet imported, hidden from this thread meanwhile.

    tensorboardX's writer imports torch when it is installed, only to accept torch tensors as values
    (``writer.numpy_compatible``; tensorboardX 2.6); ours logs numbers. The driver trains nothing, and
    that import was about a second of every run's start (``benchmarks/startup.py``). An imported torch
    stays as it is. Only this thread is refused torch (this module is imported on the logger's thread, while
    the driver's own thread runs Tune's loop, which may import torch: Optuna's GP sampler, a result that
    holds a tensor); another thread's import of torch meanwhile is its own.
    """
    if "torch" in sys.modules:
        yield
        return
    finder = _TorchHidden()
    sys.meta_path.insert(0, finder)
    try:
        yield
    finally:
        sys.meta_path.remove(finder)


def _tensorboardx() -> tuple[Any, Any, Any, Any, Any]:
    """tensorboardX's classes ours builds on: imported without torch, else (a version that needs it) with it."""
    def imported() -> tuple[Any, Any, Any, Any, Any]:
        from tensorboardX import SummaryWriter
        from tensorboardX.event_file_writer import EventFileWriter, EventsWriter
        from tensorboardX.record_writer import directory_check
        from tensorboardX.writer import FileWriter

        return SummaryWriter, EventFileWriter, EventsWriter, FileWriter, directory_check

    try:
        with _torch_hidden():
            return imported()
    except ImportError:
        return imported()


SummaryWriter, EventFileWriter, EventsWriter, FileWriter, directory_check = _tensorboardx()


class DirectSummaryWriter(SummaryWriter):
    """tensorboardX's ``SummaryWriter`` writing its events on the caller's thread: the same event file.

    tensorboardX's own writer hands every event to a thread of its own through a
    ``multiprocessing.Queue`` (each event pickled, piped, unpickled), one thread and queue per
    trial, and registers an ``atexit`` hook per writer that keeps it alive until the driver exits.
    :class:`BackgroundTensorBoard` already writes on a thread of its own: that hop cost the driver
    about a third of its CPU on a search of 0.1-s epochs, and the hooks a writer per trial.
    """

    def _get_file_writer(self) -> Any:
        if not self._write_to_disk or self.purge_step is not None:
            return super()._get_file_writer()  # neither is used by Tune's logger
        if self.all_writers is None or self.file_writer is None:
            try:
                self.file_writer = _DirectFileWriter(self.logdir, self._filename_suffix)
            except (AttributeError, TypeError) as exc:  # another tensorboardX: its own writer, same files
                log.warning("TensorBoard: tensorboardX's own writer (a thread per trial) instead of ours: %s", exc)
                return super()._get_file_writer()
            self.all_writers = {self.file_writer.get_logdir(): self.file_writer}
        return self.file_writer

    def close(self) -> None:  # tensorboardX's also starts and ends a Comet logger (none here)
        if self.all_writers is None:
            return
        for writer in self.all_writers.values():
            writer.flush()
            writer.close()
        self.file_writer = self.all_writers = None


class _DirectFileWriter(FileWriter):
    """``FileWriter`` over :class:`_DirectEventFileWriter`, without the ``atexit`` hook (its owner closes it)."""

    def __init__(self, logdir: str, filename_suffix: str = "") -> None:  # noqa: D107 - not FileWriter's: no queue
        self.event_writer = _DirectEventFileWriter(str(logdir), filename_suffix)
        self._default_metadata: dict[str, Any] = {}


class _DirectEventFileWriter(EventFileWriter):
    """tensorboardX's ``EventFileWriter`` with ``add_event`` writing the record itself: no queue, no thread."""

    def __init__(self, logdir: str, filename_suffix: str = "") -> None:  # noqa: D107
        self._logdir = logdir
        directory_check(logdir)
        self._ev_writer = EventsWriter(os.path.join(logdir, "events"), filename_suffix)
        self._filename_suffix = filename_suffix
        self._closed = False

    def add_event(self, event: Any) -> None:
        if not self._closed:
            self._ev_writer.write_event(event)

    def flush(self) -> None:
        """The events handed to the OS (readable by TensorBoard at once), without tensorboardX's ``os.fsync``.

        Tune flushes a trial's writer after every result; tensorboardX's record writer then syncs the
        file to the disk, which on ext4 commits the journal with whatever else is dirty (the trials'
        checkpoint files): 1-2 ms of the driver's writer thread a result in a search, for event files
        that nothing reads back to resume (Tune's own result files are the record). The OS writes
        them out as it does any file; tensorboardX's close still syncs once, at the trial's end.
        """
        if self._closed:
            return
        try:
            file = self._ev_writer._py_recordio_writer._writer
        except AttributeError:  # another tensorboardX: its own flush
            super().flush()
            return
        file.flush()

    def reopen(self) -> None:
        if self._closed:  # a new file, as tensorboardX's does
            self._ev_writer = EventsWriter(os.path.join(self._logdir, "events"), self._filename_suffix)
            self._closed = False

    def close(self) -> None:
        if not self._closed:
            self._ev_writer.close()
            self._closed = True
