""""Did you mean …?" for unknown names: the one helper behind every such hint, here and in ``search``."""

from __future__ import annotations

import difflib
from collections.abc import Iterable

__all__ = ["close_match", "did_you_mean", "unknown_name_message"]


def close_match(word: str, choices: Iterable[str]) -> str | None:
    """The choice closest to ``word`` (difflib's ratio >= 0.6), or None."""
    close = difflib.get_close_matches(str(word), [str(c) for c in choices], n=1, cutoff=0.6)
    return close[0] if close else None


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """``" (did you mean 'lr'?)"`` when a choice is close to ``word``, else ``""``."""
    close = close_match(word, choices)
    return f" (did you mean {close!r}?)" if close is not None else ""


def unknown_name_message(kind: str, name: str, choices: Iterable[str]) -> str:
    """'unknown optimizer 'adma'; did you mean 'adam'? choices: adam, adamw, ...'."""
    choices = sorted(choices)
    close = close_match(name.lower(), choices) or close_match(name, choices)
    hint = f"; did you mean {close!r}?" if close else ""
    return f"unknown {kind} {name!r}{hint} (choices: {', '.join(choices)})"
