"""The pool's messaging: a :class:`Mailbox` actor between a trial and its Train workers, and checkpoint
folders carried as bytes through the object store.

Jobs are numbered; every rank takes every job; rank 0's reports go to the trial, and each rank's
report waits for the trial's answer (go on, or stop). The worker loop and the pool that use it
are :mod:`search.trials.pool`.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import tempfile
from collections import deque
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

__all__ = ["Mailbox", "pack_folder", "unpacked"]



class Mailbox:
    """Jobs for the workers, reports for the trial, and the trial's answers; an async Ray actor.

    Jobs are numbered. Every rank takes every job. Rank 0's reports go to the trial; each
    rank's ``report`` returns the trial's answer for that report (all ranks get the same
    answer, so they stop at the same epoch and no collective is left waiting).
    """

    def __init__(self, world_size: int) -> None:
        self.world_size = world_size
        self.jobs: dict[int, dict[str, Any]] = {}
        self.next_seq = 0
        self.cancelled: set[int] = set()
        self.events: dict[int, deque[tuple[str, Any, Any]]] = {}
        self.answers: dict[tuple[int, int], bool] = {}
        self.finished: dict[int, dict[int, str | None]] = {}
        self.workers: dict[int, Any] = {}
        self.closed = False
        self.changed = asyncio.Condition()

    async def _wait(self, predicate: Any, timeout: float | None = None) -> bool:
        async with self.changed:
            try:
                await asyncio.wait_for(self.changed.wait_for(predicate), timeout)
                return True
            except asyncio.TimeoutError:
                return False

    async def _notify(self) -> None:
        async with self.changed:
            self.changed.notify_all()

    # -- the trial's side
    async def submit(self, job: dict[str, Any]) -> int:
        seq = self.next_seq
        self.next_seq += 1
        self.jobs[seq] = job
        self.events[seq] = deque()
        self.finished[seq] = {}
        await self._notify()
        return seq

    async def next_event(self, seq: int, timeout: float) -> tuple[str, Any, Any] | None:
        """``("report", index, payload)``, ``("error", rank, traceback)`` or ``("done", None, None)``; None on timeout."""
        if await self._wait(lambda: bool(self.events[seq]), timeout):
            return self.events[seq].popleft()
        return None

    async def answer(self, seq: int, index: int, go_on: bool) -> None:
        self.answers[(seq, index)] = go_on
        await self._notify()

    async def cancel(self, seq: int) -> None:
        self.cancelled.add(seq)
        await self._notify()

    async def forget(self, seq: int) -> None:
        """Drop what is kept of a finished job."""
        for store in (self.jobs, self.events, self.finished):
            store.pop(seq, None)
        for key in [k for k in self.answers if k[0] == seq]:
            del self.answers[key]
        self.cancelled.discard(seq)

    async def close(self) -> None:
        self.closed = True
        await self._notify()

    async def worker_handles(self) -> list[Any]:
        return list(self.workers.values())

    # -- the workers' side
    async def hello(self, rank: int, handle: Any) -> None:
        self.workers[rank] = handle

    async def next_job(self, rank: int, after: int) -> dict[str, Any] | None:
        """The first job numbered above ``after`` that is not cancelled; None once closed.

        A cancelled job this rank never started counts as finished by it, so the trial
        that gave it up hears "done" without waiting for this rank.
        """

        def skipped() -> list[int]:
            return [s for s in self.jobs if s > after and s in self.cancelled and rank not in self.finished[s]]

        def ready() -> bool:
            return self.closed or bool(skipped()) or any(s > after and s not in self.cancelled for s in self.jobs)

        while True:
            await self._wait(ready)
            if self.closed:
                return None
            for seq in sorted(skipped()):
                await self.finish(seq, rank, None)
            open_jobs = [s for s in self.jobs if s > after and s not in self.cancelled]
            if open_jobs:
                seq = min(open_jobs)
                return {**self.jobs[seq], "seq": seq}

    async def report(self, seq: int, rank: int, index: int, payload: Any) -> bool:
        """Post rank 0's report; every rank waits for the trial's answer (False: stop)."""
        if seq not in self.jobs:  # forgotten: the trial gave it up
            return False
        if rank == 0 and seq not in self.cancelled:
            self.events[seq].append(("report", index, payload))
            await self._notify()
        finished = self.finished[seq]
        await self._wait(lambda: (seq, index) in self.answers or seq in self.cancelled or self.closed or 0 in finished
                         or seq not in self.jobs)
        # An answer once given holds for every rank, even if the job is cancelled meanwhile:
        # ranks that already went on must not be left alone in the next collective.
        return self.answers.get((seq, index), False)

    async def finish(self, seq: int, rank: int, error: str | None) -> None:
        finished = self.finished.get(seq)
        if finished is None:  # forgotten: the trial stopped waiting
            return
        first_error = error is not None and not any(finished.values())
        finished[rank] = error
        if first_error:
            self.events[seq].append(("error", rank, error))
        if len(finished) == self.world_size:
            self.events[seq].append(("done", None, None))
        await self._notify()




def pack_folder(folder: str | Path) -> dict[str, bytes]:
    """Every file under ``folder``, by relative path."""
    root = Path(folder)
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@contextlib.contextmanager
def unpacked(files: Mapping[str, bytes] | None, prefix: str) -> Iterator[str | None]:
    """``files`` written to a temporary folder for the duration; None stays None."""
    if files is None:
        yield None
        return
    folder = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        for name, data in files.items():
            target = folder / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
        yield str(folder)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
