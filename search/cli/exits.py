"""Exit codes of the command line, and the one way a command turns an error into a message and a code."""

from __future__ import annotations

import argparse
import contextlib
import functools
import os
import sys
import traceback
from collections.abc import Callable, Iterable, Mapping

__all__ = ["EXIT_OK", "EXIT_FAILED", "EXIT_USAGE", "EXIT_INTERRUPTED", "exits_on", "imported"]

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130

Command = Callable[[argparse.Namespace], int]


def exits_on(errors: Mapping[type[Exception] | str, int]) -> Callable[[Command], Command]:
    """Decorate a command: an error of a listed type (the first that matches, in order) is one
    message on stderr and its exit code; its traceback only with ``--debug``. A ``SpecError``
    prints every problem it holds. A reader that left the pipe (``... | head``) is not an error.

    A type may be named ``"module:Class"``: it is looked up only while an error propagates, and
    only if the command imported its module (none other can have raised it), so building the
    command line does not import, say, pandas for ``ResultsError`` before a run starts Ray.
    """
    from search.spec.errors import SpecError

    def listed() -> list[tuple[type[Exception], int]]:
        return [(kind, code) for kind, code in ((_resolved(k), c) for k, c in errors.items()) if kind is not None]

    def decorate(fn: Command) -> Command:
        @functools.wraps(fn)
        def run(args: argparse.Namespace) -> int:
            try:
                return fn(args)
            except BrokenPipeError:
                with contextlib.suppress(OSError, ValueError):
                    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
                return EXIT_OK
            except Exception as exc:
                code = next((code for kind, code in listed() if isinstance(exc, kind)), None)
                if code is None:
                    raise
                if isinstance(exc, SpecError):
                    print(exc.render(), file=sys.stderr)
                    return code
                if getattr(args, "debug", False):
                    traceback.print_exc()
                print(f"error: {exc}", file=sys.stderr)
                return code

        return run

    return decorate


def imported(kinds: Iterable[type[BaseException] | str]) -> tuple[type[BaseException], ...]:
    """The error types of ``kinds`` that can have been raised: every type, and each ``"module:Class"``
    whose module is imported (called while an error propagates, it imports nothing)."""
    return tuple(kind for kind in map(_resolved, kinds) if kind is not None)


def _resolved(kind: type[BaseException] | str) -> type[BaseException] | None:
    """A listed error type; a ``"module:Class"`` name only when its module is already imported."""
    if not isinstance(kind, str):
        return kind
    module, _, name = kind.partition(":")
    return getattr(sys.modules[module], name, None) if module in sys.modules else None  # never masks the error
