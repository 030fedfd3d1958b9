"""File names of a checkpoint folder, and the one atomic write every saved file goes through.

No torch import: :mod:`search` reads these names offline.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

__all__ = ["CHECKPOINT_FILE", "SELECTION_FILE", "PREPROCESSING_FILE", "atomic_write"]

#: The trainer's state (model, optimizers, callbacks) in a checkpoint folder.
CHECKPOINT_FILE = "checkpoint.pt"
#: A feature-selection trainer's gate probabilities and selected features, beside it.
SELECTION_FILE = "selection.json"
#: How raw data becomes the model's inputs (column order, fitted scaling, class names), beside it:
#: :meth:`trainables.data.Preprocessing.to_dict` as JSON.
PREPROCESSING_FILE = "preprocessing.json"


def atomic_write(path: str | os.PathLike[str], data: bytes | str | Callable[[BinaryIO], object]) -> Path:
    """Write ``path`` through a temporary file in the same folder, fsync, then rename over it.

    ``data`` is the content, or a function that writes it to an open binary file
    (``lambda fh: torch.save(obj, fh)``). A crash or an error mid-write leaves the previous
    file intact (never half a file) and no temporary file behind. A new file gets the
    usual 0644 mode, an existing one keeps its own. The folder must exist.

    Raises:
        OSError: the write or the rename failed (the target is then unchanged).
    """
    path = Path(path)
    mode = path.stat().st_mode & 0o777 if path.exists() else 0o644  # mkstemp's 0600 is too private
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as fh:
            if callable(data):
                data(fh)
            else:
                fh.write(data.encode() if isinstance(data, str) else data)
            fh.flush()
            os.fsync(fh.fileno())  # make the bytes durable before the rename publishes them
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
