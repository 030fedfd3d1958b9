"""Which checkpoint a trial resumes from: the newest of *its own* that loads.

Only the built-in trainables' ``checkpoint.pt`` is ours to check. A trainable of your own may save
a file of that name in its own format (Ray Tune's examples do): its checkpoint folder is handed
back as it is, never judged and never discarded.
"""

from __future__ import annotations

import contextlib
import posixpath
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from trainables.files import CHECKPOINT_FILE

__all__ = ["resume_dir", "usable_checkpoint"]


@contextlib.contextmanager
def resume_dir(checkpoint: Any, *, ours: bool = True) -> Iterator[str | None]:
    """The folder to resume from: the latest checkpoint, or, if it is damaged, an earlier one of the same trial.

    ``checkpoint`` is Tune's (``tune.get_checkpoint()``); ``ours``: the trainable is a built-in one,
    whose ``checkpoint.pt`` can be checked. Earlier checkpoints are looked up beside the latest *in
    storage* (the trial's own folder, local or in a bucket), never beside the downloaded copy: on S3
    that copy lies in a shared temporary folder, next to other trials' downloads. After a killed
    driver, ``resume`` has already pointed Tune's state at the newest intact checkpoint
    (:mod:`search.engine.recovery`).
    """
    if checkpoint is None:
        yield None
        return
    if not ours:
        with checkpoint.as_directory() as folder:
            yield folder
        return
    with contextlib.ExitStack() as downloads:
        for candidate in _newest_first(checkpoint):
            folder = Path(downloads.enter_context(candidate.as_directory()))
            if _loads(folder):
                yield str(folder)
                return
        print(f"warning: no usable checkpoint of this trial in {posixpath.dirname(checkpoint.path)}; the trial "
              "restarts from scratch", file=sys.stderr, flush=True)
        yield None


def _newest_first(checkpoint: Any) -> Iterator[Any]:
    """``checkpoint``, then the same trial's earlier ``checkpoint_*`` folders in its storage, newest first."""
    import pyarrow.fs

    yield checkpoint
    parent, name = posixpath.split(checkpoint.path.rstrip("/"))
    infos = checkpoint.filesystem.get_file_info(pyarrow.fs.FileSelector(parent, allow_not_found=True))
    earlier = sorted((i.base_name for i in infos if i.type == pyarrow.fs.FileType.Directory
                      and i.base_name.startswith("checkpoint_") and i.base_name < name), reverse=True)
    for other in earlier:  # folder names sort in the order they were written (checkpoint_000007, Train's timestamps)
        yield type(checkpoint)(f"{parent}/{other}", filesystem=checkpoint.filesystem)


def _loads(folder: Path) -> bool:
    from trainables.checkpoint import CheckpointError, read_checkpoint  # torch: in the trial, not in the driver

    if not (folder / CHECKPOINT_FILE).exists():
        return any(folder.iterdir())  # no checkpoint.pt: a format we cannot check, used as is (empty: not usable)
    try:
        read_checkpoint(folder / CHECKPOINT_FILE, trusted=True)  # resume trusts the folder
        return True
    except CheckpointError as exc:
        print(f"warning: {exc}; falling back to the previous checkpoint", file=sys.stderr, flush=True)
        return False


def usable_checkpoint(latest: Path) -> str | None:
    """``latest`` if its ``checkpoint.pt`` loads, else the newest earlier sibling (a local trial folder) that does."""
    import ray.tune

    with resume_dir(ray.tune.Checkpoint.from_directory(str(latest))) as folder:
        return folder
