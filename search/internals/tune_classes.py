"""The classes ``search.internals`` makes from Ray Tune's private ones, made at its first use of each.

Importing ``search.internals`` imports no ray.tune (about 0.6 s): ``validate`` counts the GPUs there. The classes
keep ``search.internals`` as their module, where pickle (Tune's saved ``tuner.pkl``) finds them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from search.internals.errors import unavailable

__all__ = ["MADE_AT_FIRST_USE"]


def _bracket_class() -> type:
    try:
        from ray.tune.schedulers.async_hyperband import _Bracket
    except ImportError as exc:  # pragma: no cover - another Ray
        raise unavailable("ray.tune.schedulers.async_hyperband._Bracket", exc) from None
    return _Bracket


def _restore_only_when_missing(restore: Any) -> Any:
    def _restore_from_remote(self: Any, file_name: str, trial: Any) -> None:
        from pathlib import Path

        if Path(trial.local_path, file_name).exists():  # written by this driver: newer than the storage's copy
            return
        restore(self, file_name, trial)
    return _restore_from_remote


def _logger_class(name: str) -> type:
    import ray.tune.logger

    base = getattr(ray.tune.logger, name)
    restore = getattr(base, "_restore_from_remote", None)
    if restore is None:  # pragma: no cover - another Ray
        raise unavailable(f"{name}._restore_from_remote", AttributeError("_restore_from_remote"))
    return type(f"KeepLocal{name}", (base,), {"_restore_from_remote": _restore_only_when_missing(restore),
                                               "__module__": "search.internals"})


#: Each class by its name in ``search.internals``, and how it is made.
MADE_AT_FIRST_USE: dict[str, Callable[[], type]] = {
    "Bracket": _bracket_class,  # Ray's ASHA bracket (private in Ray 2.60): MO-ASHA's brackets subclass it
    "KeepLocalJsonLoggerCallback": lambda: _logger_class("JsonLoggerCallback"),
    "KeepLocalCSVLoggerCallback": lambda: _logger_class("CSVLoggerCallback"),
}
