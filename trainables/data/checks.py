"""The error every data problem raises, and the type checks the config and the generators share."""

from __future__ import annotations

import numbers
from collections.abc import Collection, Mapping
from typing import Any

__all__ = ["DataError", "is_int", "is_real", "type_problems"]


class DataError(ValueError):
    """Bad data input; the message names the source, what is wrong and how to fix it."""


def is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def is_real(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


_INTEGER_FIELDS = ("seed", "n_samples", "n_features", "n_informative", "n_classes", "n_redundant", "n_probes",
                   "n_clusters")
_NUMBER_FIELDS = ("val_fraction", "test_fraction", "class_sep", "flip_y")


def type_problems(values: Mapping[str, Any], *, none_allowed: Collection[str] = ()) -> list[str]:
    """A ``name=value: must be ...`` line per numeric setting of the wrong type (bools included).

    A None is fine for the keys in ``none_allowed`` (a DataConfig's synthetic settings: None
    there means the set's default).
    """
    problems = []
    for key, value in values.items():
        if value is None and key in none_allowed:
            continue
        if key in _INTEGER_FIELDS and not is_int(value):
            problems.append(f"{key}={value!r}: must be an integer")
        elif key in _NUMBER_FIELDS and not is_real(value):
            problems.append(f"{key}={value!r}: must be a number")
    return problems
