"""Before ``resume``: make Tune's saved state name checkpoints that exist, and drop trials it never knew.

Tune snapshots its experiment state every ten seconds or so, while checkpoint retention
(``checkpoint.num_to_keep``) deletes old checkpoints as new ones arrive. A driver killed
between a rotation and the next snapshot leaves a state that names a checkpoint already
deleted; ``Tuner.restore`` then fails that trial ("Could not recover from checkpoint as it
does not exist on storage anymore"), inside Tune, before any code of ours runs. So before
restoring, each unfinished trial's latest checkpoint in the newest state file is pointed at
the newest *intact* checkpoint in the trial's folder in storage (one whose ``checkpoint.pt``
loads, or any folder for a user's own format), with the metrics Tune reported with it.
Trial folders created after the last snapshot are unknown to the state and to the searcher's
study; they are removed, so every table holds exactly the trials the study holds.

A killed driver loses the results it wrote since its last sync to storage (Tune writes each
trial's ``result.json`` and ``progress.csv`` into the driver's staging folder and copies that folder
every few seconds), while the trial's newer checkpoints are already in storage. Where the killed run's
embedded Ray left its session folder on this machine, those files are taken from its staging copy
(only rows that continue what storage has, of the same trial), so a trial moved forward keeps the
epochs before its checkpoint in its history. A trial moved forward also names its next checkpoints
past every checkpoint folder already there: Tune would otherwise count on from the checkpoint the
saved state named and write into the folders of the killed run's newer checkpoints.

The epochs an unfinished trial reported after the searcher's last save (in its ``result.json``,
and maybe behind the checkpoint it is moved forward to) are told to the saved searcher before
Tune restores it: its best value, Optuna's intermediate values and ASHA's record of each epoch
then agree with the table (ASHA's rungs are rebuilt from that record on restore). Resume trusts
the folder: this unpickles the searcher's state, as Tune's own restore does.

The state file is Tune's own format (Ray 2.60), read and written with Ray's own serialisers;
if it cannot be read, nothing is changed and Tune's restore speaks for itself.
"""

from __future__ import annotations

import json
import shutil
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from search.experiment import OPTUNA_JOURNAL_LOCK
from search.internals import checkpoint_results, checkpoint_score_key, set_checkpoint_results, training_result
from trainables.checkpoint import CheckpointError, read_checkpoint
from trainables.files import CHECKPOINT_FILE, atomic_write

__all__ = ["Repair", "repair_saved_state"]

_FINISHED = {"TERMINATED"}


@dataclass
class Repair:
    """What :func:`repair_saved_state` changed."""

    repointed: dict[str, tuple[str | None, str | None]] = field(default_factory=dict)  # trial: (was, now)
    recovered: dict[str, int] = field(default_factory=dict)  # trial: result rows taken from the killed driver's copy
    removed_folders: list[str] = field(default_factory=list)
    removed_files: list[str] = field(default_factory=list)  # a copied journal lock (OPTUNA_JOURNAL_LOCK)
    rewritten: list[str] = field(default_factory=list)  # files rewritten (paths in the folder): state, searcher, rows
    caught_up: dict[str, int] = field(default_factory=dict)  # trial: epochs told to the searcher only now

    def lines(self) -> list[str]:
        out = [f"trial {t}: {n} result row(s) the killed driver never synced to storage, taken from its staging "
               "folder" for t, n in self.recovered.items()]
        out += [f"trial {t}: resumes from {now or 'the start (no intact checkpoint)'}"
               + (f" ({was} named by the saved state is gone)" if was and was != now else "")
               for t, (was, now) in self.repointed.items()]
        out += [f"removed {name}: created after Tune's last saved state, never known to it or to the study"
                for name in self.removed_folders]
        out += [f"removed {name}: a copy of Optuna's journal lock an earlier run's sync left in the folder "
                "(Optuna's writers waited 30 s for it)" for name in self.removed_files]
        out += [f"trial {t}: told the searcher {n} epoch(s) it had reported after the searcher's last save"
                for t, n in self.caught_up.items()]
        return out


def repair_saved_state(path: Path, storage_folder: str | None = None, *, ours: bool = True,
                       killed_session: Path | None = None) -> Repair:
    """Repair the newest ``experiment_state-*.json`` of a local experiment folder in place (see the module).

    ``storage_folder``: for a local copy of a URI experiment, the experiment's path inside its
    filesystem (``bucket/runs/exp``), so that the checkpoints named in the state are where Tune
    finds them; the caller uploads :attr:`Repair.rewritten` and deletes the removed folders there.
    ``ours``: the trainable is a built-in one, whose ``checkpoint.pt`` is checked; a user's own
    checkpoint folders are taken as they are (any non-empty folder is intact).
    ``killed_session``: the Ray session folder of the killed run's embedded cluster, on this machine; the
    result rows its driver never synced are taken from the staging copy there.
    """
    from ray.tune.utils.serialization import TuneFunctionEncoder

    from search.internals import load_experiment_state, newest_experiment_state, training_run_metadata

    repair = Repair()
    _drop_copied_journal_lock(path, repair)
    newest = newest_experiment_state(str(path))
    if newest is None:
        return repair
    state_file = Path(newest)
    try:
        state = load_experiment_state(state_file.read_text())
        trial_data = state["trial_data"]
        known = {json.loads(t)["trial_id"]: (i, json.loads(t)) for i, (t, _) in enumerate(trial_data)}
    except Exception as exc:  # noqa: BLE001 - another Ray's format: leave it to Tune
        print(f"warning: cannot read {state_file.name} ({type(exc).__name__}: {exc}); resuming as Tune saved it",
              file=sys.stderr)
        return repair
    if killed_session is not None:
        _recover_unsynced_rows(path, killed_session, list(known), repair)
    changed = False
    for trial_id, (index, trial_json) in known.items():
        if trial_json.get("status") in _FINISHED:
            continue
        folder = path / f"trial_{trial_id}"
        meta = training_run_metadata(trial_data[index][1])
        if _repoint(meta, folder, trial_id, repair, storage_folder, ours):
            trial_data[index] = [_past_existing_checkpoints(trial_data[index][0], folder), meta.get_json_state()]
            changed = True
    if changed:
        atomic_write(state_file, json.dumps(state, indent=2, cls=TuneFunctionEncoder))
        repair.rewritten.append(state_file.name)
    unfinished = [t for t, (_, trial_json) in known.items() if trial_json.get("status") not in _FINISHED]
    if (searcher_file := _catch_up_searcher(path, unfinished, repair)) is not None:
        repair.rewritten.append(searcher_file)
    for folder in sorted(path.glob("trial_*")):
        if folder.is_dir() and folder.name.removeprefix("trial_") not in known:
            shutil.rmtree(folder)
            repair.removed_folders.append(folder.name)
    return repair


def _drop_copied_journal_lock(path: Path, repair: Repair) -> None:
    """Remove the plain-file copies of Optuna's journal lock that a sync could leave before our writer stopped
    locking in the folder (``PruningAwareOptunaSearch._write_journal``): the lock itself, or the name Optuna
    renames it to while releasing it. Optuna's own live lock is a symlink, left alone."""
    for lock in sorted(path.glob(OPTUNA_JOURNAL_LOCK + "*")):
        copied = lock.name == OPTUNA_JOURNAL_LOCK or lock.name.endswith(".rename")
        if copied and lock.is_file() and not lock.is_symlink():
            lock.unlink()
            repair.removed_files.append(lock.name)


def _repoint(meta: Any, folder: Path, trial_id: str, repair: Repair, storage_folder: str | None, ours: bool) -> bool:
    """Point ``meta``'s latest checkpoint at the newest intact one in ``folder``; True if it changed."""
    manager = meta.checkpoint_manager
    if manager is None:
        return False
    latest = manager.latest_checkpoint_result
    if latest is not None and Path(latest.checkpoint.path).parent.name != folder.name:
        return False  # kept elsewhere (a TorchTrainer run's own folder under train_runs/): Train's to resume
    was = Path(latest.checkpoint.path).name if latest is not None else None
    state_ok = latest is not None and (folder / was).is_dir()
    rows = _checkpoint_rows(folder)
    # The newest intact checkpoint whose result Tune wrote to result.json; one without a row
    # (its result died with the driver) only when the state's own checkpoint is gone: resuming
    # from a trial's last checkpoint with no row for it would leave that epoch out of its history.
    newest_intact = with_row = None
    for candidate in _intact(folder, ours):  # newest first, each loaded only when reached
        if state_ok and candidate.name <= was:
            break
        newest_intact = newest_intact or candidate
        if candidate.name in rows:
            with_row = candidate
            break
    if with_row is not None:
        newest, metrics = with_row, rows[with_row.name]
    elif state_ok:
        return False
    elif newest_intact is not None:
        newest, metrics = newest_intact, _estimated_metrics(latest, newest_intact.name)
    else:
        if latest is None:
            return False
        set_checkpoint_results(manager, [r for r in checkpoint_results(manager) if _exists(r, folder)], None)
        repair.repointed[trial_id] = (was, None)
        return True
    from ray.train import Checkpoint

    filesystem = latest.checkpoint.filesystem if latest is not None else None
    where = f"{storage_folder}/{folder.name}/{newest.name}" if storage_folder else str(newest)
    result = training_result(Checkpoint(where, filesystem=filesystem), metrics)
    kept = [r for r in checkpoint_results(manager) if _exists(r, folder) and Path(r.checkpoint.path).name != newest.name]
    # Sorted as Tune keeps them.
    set_checkpoint_results(manager, sorted([*kept, result], key=checkpoint_score_key(manager)), result)
    repair.repointed[trial_id] = (was, newest.name)
    return True


def _past_existing_checkpoints(trial_json: str, folder: Path) -> str:
    """The trial's saved state, its next checkpoint named past every ``checkpoint_<index>`` folder in ``folder``."""
    from search.internals import raise_next_checkpoint_index

    indices = [int(p.name.rsplit("_", 1)[1]) for p in folder.glob("checkpoint_*")
               if p.is_dir() and p.name.rsplit("_", 1)[1].isdigit()]
    if not indices:
        return trial_json
    return raise_next_checkpoint_index(trial_json, max(indices) + 1) or trial_json


#: The files Tune's loggers append a trial's results to, in its folder (``result.json`` is what the tables read).
_RESULT_FILES = ("result.json", "progress.csv")


def _recover_unsynced_rows(path: Path, session: Path, trial_ids: list[str], repair: Repair) -> None:
    """Append to each trial's result files the rows the killed driver wrote in its staging copy after its last sync.

    Only where storage's file is exactly the beginning of the staging copy (Tune's own sync is a copy of
    it), and every added ``result.json`` row is the same trial's: anything else is left as it is. The
    files rewritten are named in :attr:`Repair.rewritten` (for a URI's local copy, to be uploaded).
    """
    from search.internals import driver_staging_folders

    stagings = driver_staging_folders(session, path.name)
    for trial_id in trial_ids:
        staged = next((s / f"trial_{trial_id}" for s in stagings if (s / f"trial_{trial_id}").is_dir()), None)
        if staged is None or not (path / f"trial_{trial_id}").is_dir():
            continue
        # name -> (storage's complete lines, the staging copy's lines after them)
        added = {name: _unsynced_lines(path / f"trial_{trial_id}" / name, staged / name) for name in _RESULT_FILES}
        rows = added["result.json"][1]
        if not rows or not all(_row_of(line, trial_id) for line in rows):
            continue
        for name, (kept, lines) in added.items():
            if lines:  # a line a kill cut short is replaced
                atomic_write(path / f"trial_{trial_id}" / name, "".join([*kept, *lines]))
                repair.rewritten.append(f"trial_{trial_id}/{name}")
        repair.recovered[trial_id] = len(rows)


def _split(file: Path) -> tuple[list[str], list[str]]:
    """A file's complete lines (each ending in ``\n``, the only separator Tune's loggers write), and its last
    line if a kill cut it short (``[]`` if none)."""
    parts = file.read_text().split("\n") if file.is_file() else [""]
    return [part + "\n" for part in parts[:-1]], [parts[-1]] if parts[-1] else []


def _unsynced_lines(stored: Path, staged: Path) -> tuple[list[str], list[str]]:
    """``stored``'s complete lines, and those of ``staged`` after them if they begin it (else [])."""
    kept, _ = _split(stored)
    if not staged.is_file():
        return kept, []
    copy, _ = _split(staged)
    if len(copy) <= len(kept) or copy[:len(kept)] != kept:
        return kept, []
    return kept, copy[len(kept):]


def _row_of(line: str, trial_id: str) -> bool:
    try:
        row = json.loads(line)
    except json.JSONDecodeError:
        return False
    return isinstance(row, dict) and str(row.get("trial_id")) == trial_id


def _estimated_metrics(latest: Any, name: str) -> dict[str, Any]:
    """Metrics for a checkpoint whose result the killed driver never wrote to ``result.json`` (it buffers).

    Tune reads only ``training_iteration`` and ``time_total_s`` from them on restore; the
    iteration is counted on from the last known checkpoint by checkpoint index (exact when
    every report checkpoints). Our trials resume from the epoch stored in the checkpoint itself.
    """
    if latest is None:
        return {"checkpoint_dir_name": name}
    metrics = dict(latest.metrics)
    try:
        step = int(name.rsplit("_", 1)[1]) - int(Path(latest.checkpoint.path).name.rsplit("_", 1)[1])
        metrics["training_iteration"] = int(metrics.get("training_iteration", 0)) + max(step, 0)
    except (ValueError, IndexError):  # Train's timestamped names: keep the last known iteration
        pass
    metrics["checkpoint_dir_name"] = name
    return metrics


def _exists(result: Any, folder: Path) -> bool:
    return (folder / Path(result.checkpoint.path).name).is_dir()


def _intact(folder: Path, ours: bool = True) -> Iterator[Path]:
    """The ``checkpoint_*`` folders whose ``checkpoint.pt`` loads (a user's own format: any non-empty), newest first."""
    for candidate in sorted((p for p in folder.glob("checkpoint_*") if p.is_dir()), reverse=True):
        file = candidate / CHECKPOINT_FILE
        if not ours or not file.exists():
            if any(candidate.iterdir()):
                yield candidate
            continue
        try:
            read_checkpoint(file, trusted=True)  # resume trusts the folder
        except CheckpointError as exc:
            print(f"warning: {exc}; not resuming from it", file=sys.stderr)
            continue
        yield candidate


def _checkpoint_rows(folder: Path) -> dict[str, dict[str, Any]]:
    """Checkpoint folder name -> the result Tune wrote with it (``checkpoint_dir_name``), from ``result.json``."""
    file = folder / "result.json"
    rows: dict[str, dict[str, Any]] = {}
    if not file.is_file():
        return rows
    for line in file.read_text().splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:  # the line a kill cut short
            continue
        if row.get("checkpoint_dir_name"):
            rows[row["checkpoint_dir_name"]] = row
    return rows


def _catch_up_searcher(path: Path, trial_ids: list[str], repair: Repair) -> str | None:
    """Tell the saved searcher every epoch the unfinished trials reported (``result.json``); the file rewritten.

    The searcher's bookkeeping is idempotent per epoch (a step is told to Optuna once, the best is a
    maximum, ASHA's record keeps an epoch's first value), so epochs it knew are told again harmlessly.
    """
    import pickle

    from search.engine.searcher import EPOCH, PruningAwareOptunaSearch

    states = sorted(path.glob("searcher-state-*.pkl"))  # names end in a sortable timestamp
    if not states or not trial_ids:
        return None
    try:
        with open(states[-1], "rb") as fh:
            saved = pickle.load(fh)  # noqa: S301 - resume restores this folder's own state, as Tune does
    except Exception as exc:  # noqa: BLE001 - Tune's restore will say what is wrong with it
        print(f"warning: cannot read {states[-1].name} ({type(exc).__name__}: {exc}); the searcher resumes as saved",
              file=sys.stderr)
        return None
    if not isinstance(saved, dict):
        return None
    searcher = PruningAwareOptunaSearch.__new__(PruningAwareOptunaSearch)
    searcher.__dict__.update(saved)
    for trial_id in trial_ids:
        if trial_id not in searcher._ot_trials or trial_id in searcher._completed_trials:
            continue
        known = _known_epochs(searcher, trial_id)
        rows = [row for row in _result_rows(path / f"trial_{trial_id}") if row.get(EPOCH) is not None]
        new = sorted({int(row[EPOCH]) for row in rows} - known)
        for row in rows:
            searcher.on_trial_result(trial_id, row)
        if new:
            repair.caught_up[trial_id] = len(new)
    if not repair.caught_up:
        return None
    searcher.save(str(states[-1]))  # the pickle Tune restores, and Optuna's journal beside it
    return states[-1].name


def _known_epochs(searcher: Any, trial_id: str) -> set[int]:
    recorded = searcher.__dict__.get("_rung_values", {}).get(trial_id) or searcher.__dict__.get("_rung_points", {}).get(trial_id)
    steps = searcher.__dict__.get("_reported_steps", {}).get(trial_id)
    return {int(e) for e in (recorded or steps or ())}


def _result_rows(folder: Path) -> list[dict[str, Any]]:
    file = folder / "result.json"
    rows = []
    if file.is_file():
        for line in file.read_text().splitlines():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:  # the line a kill cut short
                continue
    return rows
