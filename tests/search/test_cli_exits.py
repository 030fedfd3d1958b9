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


# ``python -m search`` as a process: its exit code, its whole output, and whether the objects alive at its end were
# left out of the interpreter's last garbage collection (printed by an atexit handler registered before the command).
_PROCESS = """
import atexit, gc, os, runpy, sys
atexit.register(lambda: os.write(2, f"\\nfrozen at exit: {gc.get_freeze_count()}\\n".encode()))
sys.argv = ["search", *sys.argv[1:]]
runpy.run_module("search", run_name="__main__")
"""


def _command(tmp_path, *argv: str):
    import os
    import subprocess
    from pathlib import Path

    repo = Path(__file__).resolve().parents[2]
    return subprocess.run([sys.executable, "-c", _PROCESS, *argv], cwd=tmp_path, capture_output=True, text=True,
                          timeout=120, env={**os.environ, "PYTHONPATH": str(repo)})


def test_the_command_exits_with_its_code_and_output_and_skips_the_last_collection(tmp_path):
    # A run's driver ends holding Ray, torch and torch._dynamo: the interpreter's teardown collected them for about
    # a second after the last line. The command's process freezes what is alive first (search.cli.main.command).
    spec = tmp_path / "spec.yaml"
    spec.write_text("name: t\ntrainable: feature_selection\ndata: {name: breast_cancer}\nmetric: val_accuracy\n"
                    "mode: max\nspace:\n  lr: {type: float, low: 1.0e-3, high: 1.0e-2, log: true}\n"
                    "fixed: {epochs: 2}\nstorage: results\n")
    ok = _command(tmp_path, "validate", str(spec))
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.startswith(f"{spec}: valid\n")
    assert ok.stdout.endswith("storage     results/t\n")  # its whole output, to the last line
    frozen = int(ok.stderr.rsplit("frozen at exit: ", 1)[1].split()[0])
    assert frozen > 1000  # the interpreter's objects, left to the process's end
    spec.write_text(spec.read_text().replace("low: 1.0e-3", "low: 1.0e-1"))  # low above high: a bad spec
    bad = _command(tmp_path, "validate", str(spec))
    assert bad.returncode == 2
    assert "space.lr" in bad.stderr and "frozen at exit: " in bad.stderr


def test_the_installed_command_is_the_process_entry():
    import tomllib
    from pathlib import Path

    from search.cli.main import command

    pyproject = tomllib.loads((Path(__file__).resolve().parents[2] / "pyproject.toml").read_text())
    module, name = pyproject["project"]["scripts"]["hpsearch"].split(":")
    assert (module, name) == (command.__module__, command.__name__)
