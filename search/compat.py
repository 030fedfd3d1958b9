"""The module names of ``search`` before it was laid out in rooms, kept importable.

Experiment folders written by earlier versions hold pickles (Tune's ``tuner.pkl``, the
searcher state) that name classes by their old module, ``search.space.DefineByRun`` or
``search.bridge.PruningAwareOptunaSearch``; scripts may import ``search.runner``. Each old
name is served by a small module that looks its attributes up in the modules the code moved
to, so those pickles load and those imports work (with a :class:`DeprecationWarning`).
Nothing in ``search`` imports an old name.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys
import types
import warnings
from collections.abc import Sequence
from typing import Any

__all__ = ["MOVED", "install"]

#: Old module -> the modules that now hold its public names, searched in order.
MOVED: dict[str, tuple[str, ...]] = {
    "search.runner": ("search.engine.run", "search.engine.tuner", "search.engine.session", "search.storage"),
    "search.bridge": ("search.engine.searcher", "search.engine.scheduler", "search.results.searcher_state"),
    "search.trial": ("search.trials.direct", "search.trials.setup", "search.trials.torch_trainer",
                     "search.trials.checkpoints"),
    "search.pool": ("search.trials.pool",),
    "search.resources": ("search.trials.resources",),
    "search.space": ("search.spec.space",),
    "search.checks": ("search.spec.checks",),
    "search.errors": ("search.spec.errors",),
    "search.registry": ("search.spec.registry",),
    "search.yaml_lines": ("search.spec.yaml_lines",),
    "search.progress": ("search.engine.callbacks",),
    "search.cleanup": ("search.engine.callbacks",),
    "search.plan": ("search.engine.plan",),
    "search.jobs": ("search.cluster.jobs", "search.storage"),
    "search.export": ("search.results.export",),
    "search.experiment_files": ("search.results.folder",),
    "search.outcomes": ("search.results.outcomes",),
    "search.report": ("search.results.report",),
    "search.report_plots": ("search.results.report_plots",),
    "search.summary": ("search.results.summary",),
    "search.exits": ("search.cli.exits",),
    "search.cli_jobs": ("search.cli.jobs",),
    "search.cli_results": ("search.cli.results",),
}


class _MovedModule(types.ModuleType):
    """An old module name: attribute lookups go to the modules its code moved to."""

    def __init__(self, name: str, targets: Sequence[str]) -> None:
        super().__init__(name, f"moved to {', '.join(targets)}")
        self.__targets = tuple(targets)

    def __getattr__(self, attr: str) -> Any:
        if attr.startswith("__"):
            raise AttributeError(attr)
        for target in self.__targets:
            module = importlib.import_module(target)
            if hasattr(module, attr):
                return getattr(module, attr)
        raise AttributeError(f"module {self.__name__!r} has moved ({', '.join(self.__targets)}), "
                             f"and none of them has {attr!r}")


class _MovedFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> importlib.machinery.ModuleSpec | None:
        if fullname not in MOVED:
            return None
        return importlib.machinery.ModuleSpec(fullname, self, origin="moved")

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType:
        warnings.warn(f"{spec.name} has moved to {', '.join(MOVED[spec.name])}; import from there",
                      DeprecationWarning, stacklevel=3)
        return _MovedModule(spec.name, MOVED[spec.name])

    def exec_module(self, module: types.ModuleType) -> None:
        pass


def install() -> None:
    """Serve the old names (idempotent; ``import search`` calls it)."""
    if not any(isinstance(f, _MovedFinder) for f in sys.meta_path):
        sys.meta_path.append(_MovedFinder())
