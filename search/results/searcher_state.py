"""The experiment's Optuna study, read offline from Optuna's journal (``optuna.journal``).

The journal holds no pickles: reading it runs no code from the folder, so a folder copied from
another machine or a shared bucket is safe to read. (Tune's ``searcher-state-*.pkl`` holds the
same study, pickled with the searcher; only ``resume`` restores it, and trusts the folder.)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from search.experiment import OPTUNA_JOURNAL

__all__ = ["load_study", "load_journal_study"]


def load_journal_study(folder: Path) -> Any:
    """The study in an experiment folder's Optuna journal.

    It holds every trial the searcher had told Optuna at its last save, running ones too,
    with their intermediate values, and each trial's Tune id (the ``trial_id`` user attribute).

    Raises:
        FileNotFoundError: the folder has no journal (stopped before its first trial).
        ValueError: the journal holds no study, or several.
    """
    journal = Path(folder) / OPTUNA_JOURNAL
    if not journal.is_file():
        raise FileNotFoundError(f"{folder} has no {OPTUNA_JOURNAL}: not a search experiment, "
                                "or it was stopped before its first trial")
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    # Read-only use: Optuna's file lock is for writers; a copied folder may not be writable.
    storage = JournalStorage(JournalFileBackend(str(journal)))
    names = optuna.get_all_study_names(storage)
    if len(names) != 1:
        raise ValueError(f"{journal} holds {len(names)} studies ({', '.join(names)}), not one")
    return optuna.load_study(study_name=names[0], storage=storage)


#: The study of an experiment folder (the journal's).
load_study = load_journal_study
