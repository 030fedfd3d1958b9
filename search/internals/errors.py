"""The versions the private uses were checked on, and the error for one this Ray or Optuna lacks."""

from __future__ import annotations

__all__ = ["CHECKED_ON", "InternalsError", "unavailable"]

#: The versions every private use (``search.internals.USES``) was read against.
CHECKED_ON = {"ray": "2.60", "optuna": "5.1"}


class InternalsError(RuntimeError):
    """A private Ray/Optuna name this version does not have."""


def unavailable(name: str, exc: BaseException) -> InternalsError:
    """The error for a private name this version lacks, naming it and the versions it was checked on."""
    return InternalsError(f"{name} is not available in this Ray/Optuna ({type(exc).__name__}: {exc}); search "
                          f"relies on it (checked on Ray {CHECKED_ON['ray']}, Optuna {CHECKED_ON['optuna']}): "
                          "install those versions or report this")
