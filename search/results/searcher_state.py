"""The searcher state an experiment saved (``searcher-state-*.pkl``), read offline.

Tune's ``OptunaSearch.save`` pickles the searcher's ``__dict__``: the Optuna study, the
space, and (ours) the ids of the trials ASHA cut. Unpickling it imports the classes it
names, so this module imports no Ray module itself.
"""

from __future__ import annotations

import glob
import os
import pickle
from pathlib import Path
from typing import Any

__all__ = ["read_searcher_state", "load_study", "load_journal_study"]


def read_searcher_state(experiment: str | Path) -> dict[str, Any]:
    """The searcher's saved ``__dict__`` from an experiment's latest ``searcher-state-*.pkl``.

    Raises:
        FileNotFoundError: there is none (not a search experiment, or stopped before its first trial).
        ValueError: the file cannot be read or holds something else.
    """
    states = sorted(glob.glob(os.path.join(str(experiment), "searcher-state-*.pkl")))  # names end in a timestamp
    if not states:
        raise FileNotFoundError(f"{experiment} has no searcher-state-*.pkl: not a search experiment, "
                                "or it was stopped before its first trial")
    try:
        with open(states[-1], "rb") as fh:
            state = pickle.load(fh)  # noqa: S301 - our own file; needs `search` importable
    except Exception as exc:  # damaged, or written by another version
        raise ValueError(f"cannot read {Path(states[-1]).name} ({type(exc).__name__}: {exc})") from exc
    if not isinstance(state, dict):
        raise ValueError(f"{states[-1]} holds no searcher state")
    return state


def load_study(experiment: str | Path) -> Any:
    """The Optuna study an experiment's searcher saved."""
    study = read_searcher_state(experiment).get("_ot_study")
    if study is None:
        raise ValueError(f"{experiment}'s searcher state holds no Optuna study")
    return study


def load_journal_study(experiment: str | Path) -> Any:
    """The study in the experiment's Optuna journal (``optuna.journal``), else the one its searcher saved.

    The journal holds every trial the searcher had told Optuna at its last save, running ones
    too, with their intermediate values (a warm start uses the finished ones); an experiment
    from before the journal has only its searcher state.
    """
    from search.storage import OPTUNA_JOURNAL

    journal = Path(experiment) / OPTUNA_JOURNAL
    if not journal.is_file():
        return load_study(experiment)
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    storage = JournalStorage(JournalFileBackend(str(journal)))
    names = optuna.get_all_study_names(storage)
    if len(names) != 1:
        raise ValueError(f"{journal} holds {len(names)} studies ({', '.join(names)}), not one")
    return optuna.load_study(study_name=names[0], storage=storage)
