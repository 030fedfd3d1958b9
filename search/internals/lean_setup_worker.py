"""The script an embedded node's raylet starts each Python worker with, in place of Ray's ``setup_worker.py``.

Ray 2.60's ``setup_worker.py`` imports Ray (``ray._private.runtime_env.context``: 0.3 s of CPU here) only to read
the worker's runtime-env context, set its environment variables and ``exec`` the worker, which imports Ray again.
For a Python worker whose context holds nothing but environment variables and an interpreter (what an embedded run's
trials and Train workers have), this does the same with the standard library alone: Ray's
``RuntimeEnvContext.exec_worker`` and ``update_envs``, restated. Any other context (a command prefix from conda, a
container or a virtualenv plugin, an entry point override, Java) goes to Ray's own script, unchanged, by ``exec``.

Run by path (``python .../lean_setup_worker.py ARGS``): it imports nothing of ``search`` or Ray.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import sys

#: ``RuntimeEnvContext``'s fields in Ray 2.60; a context with any other key goes to Ray's script.
KNOWN_FIELDS = frozenset({"command_prefix", "env_vars", "py_executable", "override_worker_entrypoint", "java_jars"})


def ray_setup_worker() -> str:
    """Ray's own ``setup_worker.py``, found without importing Ray."""
    import importlib.util

    spec = importlib.util.find_spec("ray")
    if spec is None or spec.origin is None:
        raise RuntimeError("ray is not importable by this interpreter")
    return os.path.join(os.path.dirname(spec.origin), "_private", "workers", "setup_worker.py")


def lean(context: dict, language: str | None) -> bool:
    """Whether this script starts the worker itself: a Python worker whose context only sets variables."""
    return (language == "PYTHON" and sys.platform != "win32" and set(context) <= KNOWN_FIELDS
            and not context.get("command_prefix") and not context.get("override_worker_entrypoint")
            and not context.get("java_jars"))


def worker_command(context: dict, passthrough: list[str]) -> list[str]:
    """The shell command Ray's ``exec_worker`` runs for a Python worker without a command prefix."""
    command = ["exec", context.get("py_executable") or sys.executable, *map(shlex.quote, passthrough)]
    if "DYLD_LIBRARY_PATH" in os.environ:  # as Ray's: macOS drops it on exec
        command.insert(0, f"DYLD_LIBRARY_PATH={os.environ['DYLD_LIBRARY_PATH']}")
    return command


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--serialized-runtime-env-context", type=str)
    parser.add_argument("--language", type=str)
    args, passthrough = parser.parse_known_args(argv)
    context = json.loads(args.serialized_runtime_env_context or "{}")
    if not isinstance(context, dict) or not lean(context, args.language):
        os.execv(sys.executable, [sys.executable, ray_setup_worker(), *argv])
    for key, value in (context.get("env_vars") or {}).items():  # Ray's update_envs: ${X} of an unset X -> ""
        os.environ[key] = re.sub(r"\$\{[A-Z0-9_]+\}", "", os.path.expandvars(value))
    os.execvp("bash", ["bash", "-c", " ".join(worker_command(context, passthrough))])


if __name__ == "__main__":
    main(sys.argv[1:])
