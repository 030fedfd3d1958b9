"""Tune's saved experiment state, read as plain JSON: which trials a run had, their statuses and folders.

Tune writes ``experiment_state-<timestamp>.json`` into the experiment folder at every snapshot; the
newest one is what ``resume`` would restore. Its ``trial_data`` is a list of ``[trial JSON, run
metadata JSON]`` strings (Ray 2.60): the trial's JSON holds ``trial_id``, ``status``,
``relative_logdir`` and ``config``, the metadata's ``last_result``. Values JSON cannot hold (a trial's
storage context, its placement group factory, ...) Tune's encoder cloudpickles in place, as
``{"_type": "CLOUDPICKLE_FALLBACK", "value": <hex>}``; Ray's own reader, ``ExperimentAnalysis``, unpickles
them (and reads every trial's results as well). Read here, nothing is unpickled and no Ray name is
used, so a folder from someone else runs none of its code, and a reader works with any Ray installed.
Used by the offline readers (:mod:`search.results.folder`) and by the end of a run
(``search.engine.run.unfinished_trials``).
"""

from __future__ import annotations

import fnmatch
import json
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

__all__ = ["STATE_PATTERN", "TuneStateError", "SavedTrial", "saved_trials"]

#: Tune's experiment state files (``TuneController.CKPT_FILE_TMPL``); the newest has the greatest name.
STATE_PATTERN = "experiment_state-*.json"


class TuneStateError(ValueError):
    """Tune's newest experiment state cannot be read (damaged, or not laid out as Ray 2.60 writes it)."""


@dataclass(frozen=True)
class SavedTrial:
    """A trial as Tune's experiment state saved it."""

    trial_id: str
    status: str  # TERMINATED, ERROR, RUNNING, PENDING, PAUSED
    relative_logdir: str | None  # its folder inside the experiment; None: never given one (or not a plain name)
    config: dict[str, Any]  # JSON values; one Tune cloudpickled stays its {"_type": ..., "value": hex} record
    last_result: dict[str, Any]


def saved_trials(folder: str, fs: Any = None) -> list[SavedTrial] | None:
    """The trials in the newest experiment state in ``folder`` (a local path, or a path in the pyarrow
    filesystem ``fs``); None: Tune saved none there.

    A trial Tune saved as ``null`` (a snapshot racing a logger that reset the trial's cached state) is
    left out: its id is unknown, so a caller counts it among the trials never created.

    Raises:
        TuneStateError: the file is damaged or not laid out as Ray 2.60 writes it (named in the message).
        OSError: the folder or file cannot be read.
    """
    newest = _newest_state(folder, fs)
    if newest is None:
        return None
    if fs is None:
        raw = Path(newest).read_bytes()
    else:
        with fs.open_input_stream(newest) as stream:
            raw = stream.readall()
    name = PurePosixPath(newest).name
    try:
        entries = json.loads(raw)["trial_data"]
        trials = [_trial(entry) for entry in entries]
    except (TypeError, KeyError, ValueError, AttributeError) as exc:
        raise TuneStateError(f"Tune's experiment state {name} is damaged or not laid out as Ray 2.60 writes it "
                             f"({type(exc).__name__}: {exc})") from None
    return [t for t in trials if t is not None]


def _trial(entry: list[Any]) -> SavedTrial | None:
    trial_json, metadata_json = entry
    if trial_json is None:
        return None
    trial = json.loads(trial_json)
    metadata = json.loads(metadata_json) if metadata_json else {}
    last = metadata.get("last_result") if isinstance(metadata, dict) else None
    return SavedTrial(str(trial["trial_id"]), str(trial["status"]), _plain_name(trial.get("relative_logdir")),
                      dict(trial.get("config") or {}), dict(last) if isinstance(last, dict) else {})


def _plain_name(value: Any) -> str | None:
    """A folder name inside the experiment, or None: nothing absolute, no ``..``, no separators (a state file
    from elsewhere must not point a reader at another folder of the reader's machine)."""
    if not isinstance(value, str) or not value or value in (".", "..") or "/" in value or "\\" in value:
        return None
    return value


def _newest_state(folder: str, fs: Any) -> str | None:
    """The newest state file's path (as Tune's ``_find_newest_experiment_checkpoint`` picks it), or None."""
    if fs is None:
        path = Path(folder)
        names = [p.name for p in path.glob(STATE_PATTERN) if p.is_file()] if path.is_dir() else []
        return str(path / max(names)) if names else None
    import pyarrow.fs

    infos = fs.get_file_info(pyarrow.fs.FileSelector(folder, allow_not_found=True))
    names = [PurePosixPath(i.path).name for i in infos if i.type == pyarrow.fs.FileType.File]
    names = fnmatch.filter(names, STATE_PATTERN)
    return f"{folder.rstrip('/')}/{max(names)}" if names else None
