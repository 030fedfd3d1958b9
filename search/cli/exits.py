"""Exit codes of the command line, and the one way a command turns an error into a message and a code."""

from __future__ import annotations

import argparse
import contextlib
import functools
import os
import sys
import traceback
from collections.abc import Callable, Mapping

__all__ = ["EXIT_OK", "EXIT_FAILED", "EXIT_USAGE", "EXIT_INTERRUPTED", "exits_on"]

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130

Command = Callable[[argparse.Namespace], int]


def exits_on(errors: Mapping[type[BaseException], int]) -> Callable[[Command], Command]:
    """Decorate a command: an error of a listed type (the first that matches, in order) is one
    message on stderr and its exit code; its traceback only with ``--debug``. A ``SpecError``
    prints every problem it holds. A reader that left the pipe (``... | head``) is not an error.
    """
    from search.spec.errors import SpecError

    caught = tuple(errors)

    def decorate(fn: Command) -> Command:
        @functools.wraps(fn)
        def run(args: argparse.Namespace) -> int:
            try:
                return fn(args)
            except BrokenPipeError:
                with contextlib.suppress(OSError, ValueError):
                    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
                return EXIT_OK
            except caught as exc:
                code = next(code for kind, code in errors.items() if isinstance(exc, kind))
                if isinstance(exc, SpecError):
                    print(exc.render(), file=sys.stderr)
                    return code
                if getattr(args, "debug", False):
                    traceback.print_exc()
                print(f"error: {exc}", file=sys.stderr)
                return code

        return run

    return decorate
