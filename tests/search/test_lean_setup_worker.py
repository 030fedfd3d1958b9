"""The setup script an embedded node starts its Python workers with (search/internals/lean_setup_worker.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from search.internals.worker_setup import LEAN_SETUP_WORKER, lean_worker_setup

# What the raylet appends to the worker command: the context Ray's agent made, and the language.
PRINTS = ("import json, os, sys; "
          "print(json.dumps({'argv': sys.argv[1:], 'A': os.environ.get('A'), 'ray': 'ray' in sys.modules}))")


def _run(context: dict, *passthrough: str, env: dict | None = None) -> subprocess.CompletedProcess:
    cmd = [sys.executable, str(LEAN_SETUP_WORKER), *passthrough,
           f"--serialized-runtime-env-context={json.dumps(context)}", "--language=PYTHON"]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60, env={**os.environ, **(env or {})})


def test_a_context_of_variables_starts_the_worker_with_them_without_importing_ray(tmp_path):
    # A `ray` that fails on import: Ray's own setup_worker.py would stop at it; ours never imports it.
    (tmp_path / "ray").mkdir()
    (tmp_path / "ray" / "__init__.py").write_text("raise ImportError('ray imported by the setup script')\n")
    context = {"env_vars": {"A": "x ${HOME} y${NOT_SET_HERE}"}, "py_executable": sys.executable}
    done = _run(context, "-c", PRINTS, "an argument with spaces", "it's", env={"PYTHONPATH": str(tmp_path)})
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout)
    assert seen == {"argv": ["an argument with spaces", "it's"], "A": f"x {os.environ['HOME']} y", "ray": False}


def test_any_other_context_goes_to_rays_own_script():
    # A command prefix (conda, a container, a virtualenv plugin) is Ray's to run: its script runs the prefix.
    context = {"command_prefix": ["echo", "prefixed", "&&"], "env_vars": {"A": "1"}}
    done = _run(context, "-c", PRINTS)
    assert done.returncode == 0, done.stderr
    first, second = done.stdout.splitlines()
    assert first == "prefixed" and json.loads(second) == {"argv": [], "A": "1", "ray": False}
    # A field this Ray version's context does not have: Ray's script too (which fails on it here, as it would).
    unknown = _run({"env_vars": {}, "a_field_of_a_later_ray": 1}, "-c", PRINTS)
    assert unknown.returncode != 0 and "a_field_of_a_later_ray" in unknown.stderr


@pytest.mark.parametrize("named", [None, "/somewhere/else/setup_worker.py"])
def test_the_node_names_our_script_only_while_the_embedded_start_runs_and_only_where_none_is_named(named):
    from ray._private.node import Node
    from ray._private.parameter import RayParams

    from search.internals.worker_setup import _naming_ours

    original = Node.__init__
    with lean_worker_setup():
        assert Node.__init__ is not original
    assert Node.__init__ is original
    seen: list[str] = []
    init = _naming_ours(lambda self, ray_params, *args, **kwargs: seen.append((ray_params.setup_worker_path, kwargs)))
    init(None, RayParams(setup_worker_path=named), head=True)
    assert seen == [(named or str(LEAN_SETUP_WORKER), {"head": True})]


def test_on_windows_the_node_keeps_rays_script(monkeypatch):
    # Ray's script waits for the worker it starts there; an exec would leave the raylet a process that has ended.
    from ray._private.node import Node

    original = Node.__init__
    monkeypatch.setattr(sys, "platform", "win32")
    with lean_worker_setup():
        assert Node.__init__ is original
