"""Which checkpoint a trial resumes from: the newest one that loads."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from trainables.checkpoint import CheckpointError, read_checkpoint
from trainables.files import CHECKPOINT_FILE

__all__ = ["resume_dir", "usable_checkpoint"]


@contextlib.contextmanager
def resume_dir(checkpoint: Any) -> Iterator[str | None]:
    """The folder to resume from: the latest checkpoint, or an earlier one if it is damaged.

    ``checkpoint`` is Tune's (``tune.get_checkpoint()``). After a killed driver, ``resume``
    has already pointed Tune's state at the newest intact checkpoint in storage
    (:mod:`search.engine.recovery`).
    """
    if checkpoint is None:
        yield None
        return
    with checkpoint.as_directory() as folder:
        yield usable_checkpoint(Path(folder))


def usable_checkpoint(latest: Path) -> str | None:
    """``latest`` if its ``checkpoint.pt`` loads, else the newest earlier sibling that does.

    Checkpoint folders of one trial sort by name in the order they were written
    (``checkpoint_000007``, or Train's timestamped names). A folder without
    ``checkpoint.pt`` holds a user's own format, which we cannot check: it is used as is.
    """
    earlier = sorted((p for p in latest.parent.glob("checkpoint_*") if p.is_dir() and p.name < latest.name), reverse=True)
    for folder in [latest, *earlier]:
        if not (folder / CHECKPOINT_FILE).exists():
            return str(folder)
        try:
            read_checkpoint(folder / CHECKPOINT_FILE)
            return str(folder)
        except CheckpointError as exc:
            print(f"warning: {exc}; falling back to the previous checkpoint", file=sys.stderr, flush=True)
    print(f"warning: no usable checkpoint beside {latest}; the trial restarts from scratch", file=sys.stderr, flush=True)
    return None
