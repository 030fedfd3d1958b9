"""Every private name of Ray and Optuna the engine relies on, in one place, with the version it was checked on.

Ray's Tune/Train API has changed three times in three years; a Ray upgrade should mean reading this
module, not hunting. Each accessor below names the private attribute it uses and what breaks without
it. :func:`check_versions` is called once per run: on a Ray or Optuna version other than the ones
these were checked on, it says so in one line (the run goes on; what fails then fails with a message
that names the accessor). The facts behind them are in ``docs/ray_optuna_notes.md``.
"""

from __future__ import annotations

import logging
from typing import Any

__all__ = ["CHECKED_ON", "USES", "InternalsError", "check_versions", "ray_session_dir"]

log = logging.getLogger(__name__)

#: The versions every private use below was read against.
CHECKED_ON = {"ray": "2.60", "optuna": "5.1"}

#: Each private use: (library, name, where, what it is for).
USES: tuple[tuple[str, str, str, str], ...] = (
    ("ray", "ray._private.worker._global_node.get_session_dir_path()", "engine.session",
     "the embedded cluster's session folder, recorded so a killed run's leftovers can be stopped"),
)


class InternalsError(RuntimeError):
    """A private Ray/Optuna name this version does not have."""


def _version(module: Any) -> str:
    return ".".join(str(getattr(module, "__version__", "0")).split(".")[:2])


def check_versions() -> list[str]:
    """One line per library whose installed version differs from :data:`CHECKED_ON` (``[]``: all checked)."""
    import optuna
    import ray

    lines = []
    for name, module in (("ray", ray), ("optuna", optuna)):
        if _version(module) != CHECKED_ON[name]:
            uses = [u[1] for u in USES if u[0] == name]
            lines.append(f"{name} {module.__version__} is installed; search's uses of its private names were "
                         f"checked on {CHECKED_ON[name]} ({len(uses)} of them, listed in search.engine.internals)")
    return lines


def unavailable(name: str, exc: BaseException) -> InternalsError:
    """The error for a private name this version lacks, naming it and the versions it was checked on."""
    return InternalsError(f"{name} is not available in this Ray/Optuna ({type(exc).__name__}: {exc}); search "
                          f"relies on it (checked on Ray {CHECKED_ON['ray']}, Optuna {CHECKED_ON['optuna']}): "
                          "install those versions or report this")


def ray_session_dir() -> str | None:
    """The running embedded cluster's session folder; None on a Ray without the accessor (nothing recorded)."""
    try:
        import ray

        return str(ray._private.worker._global_node.get_session_dir_path())  # no public accessor in Ray 2.60
    except Exception as exc:  # noqa: BLE001 - another Ray: no record, nothing to clean up later
        log.warning("%s", unavailable("ray._private.worker._global_node.get_session_dir_path", exc))
        return None
