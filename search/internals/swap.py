"""A private Ray attribute replaced for the length of a ``with`` block, and put back after: the embedded start's
tweaks (``api_server``, ``monitor``, ``node_registration``) share it."""

from __future__ import annotations

import contextlib
import importlib
import logging
from collections.abc import Callable, Iterator
from typing import Any

from search.internals.errors import unavailable

__all__ = ["swapped"]

log = logging.getLogger(__name__)


@contextlib.contextmanager
def swapped(module: str, name: str, replacement: Callable[[Any], Any]) -> Iterator[None]:
    """``module.name`` (``name`` may be dotted: a class's method) set to ``replacement(original)`` inside the block,
    and to the original after, on an exception too. A Ray without it is left as it is (logged at debug level)."""
    owner_path, _, attribute = name.rpartition(".")
    try:
        owner: Any = importlib.import_module(module)
        for part in filter(None, owner_path.split(".")):
            owner = getattr(owner, part)
        original = getattr(owner, attribute)
    except (ImportError, AttributeError) as exc:  # another Ray: as Ray has it
        log.debug("%s", unavailable(f"{module}.{name}", exc))
        yield
        return
    setattr(owner, attribute, replacement(original))
    try:
        yield
    finally:
        setattr(owner, attribute, original)
