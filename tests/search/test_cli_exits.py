"""The command line's one way from an error to a message and an exit code (``search.cli.exits``)."""

from __future__ import annotations

import argparse
import sys
import types

import pytest

from search.cli.exits import EXIT_FAILED, EXIT_USAGE, exits_on, imported


class _Named(ValueError):
    pass


@pytest.fixture
def named_module(monkeypatch):
    """A module holding ``_Named``, imported only when the test says so (as pandas-backed ResultsError is)."""
    module = types.ModuleType("fake_errors_module")
    module.Named = _Named
    return lambda: monkeypatch.setitem(sys.modules, "fake_errors_module", module)


def _raising(exc: BaseException):
    def command(args: argparse.Namespace) -> int:
        raise exc
    return command


def test_an_error_named_by_module_is_caught_once_its_module_is_imported(named_module, capsys):
    named_module()
    run = exits_on({"fake_errors_module:Named": EXIT_USAGE, OSError: EXIT_FAILED})(_raising(_Named("bad folder x")))
    assert run(argparse.Namespace(debug=False)) == EXIT_USAGE
    assert capsys.readouterr().err == "error: bad folder x\n"


def test_an_error_named_by_a_module_never_imported_cannot_match_and_propagates(capsys):
    run = exits_on({"fake_errors_module:Named": EXIT_USAGE})(_raising(_Named("x")))
    assert "fake_errors_module" not in sys.modules
    with pytest.raises(_Named):
        run(argparse.Namespace(debug=False))
    assert "fake_errors_module" not in sys.modules  # looking it up imported nothing


def test_listed_types_keep_their_order_and_others_propagate(capsys):
    run = exits_on({FileNotFoundError: EXIT_USAGE, OSError: EXIT_FAILED})(_raising(FileNotFoundError("gone")))
    assert run(argparse.Namespace(debug=False)) == EXIT_USAGE
    run = exits_on({OSError: EXIT_FAILED})(_raising(KeyError("k")))
    with pytest.raises(KeyError):
        run(argparse.Namespace(debug=False))


def test_imported_resolves_names_of_imported_modules_only(named_module):
    assert imported([OSError, "fake_errors_module:Named"]) == (OSError,)
    named_module()
    assert imported([OSError, "fake_errors_module:Named"]) == (OSError, _Named)
    # A misspelt class in an imported module matches nothing, rather than raising over the real error.
    assert imported(["fake_errors_module:Misspelt", OSError]) == (OSError,)
