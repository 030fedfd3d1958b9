"""The layout of ``search/`` is its architecture: imports flow one way between rooms, with no cycles.

Read from the source (AST), so a lazy import inside a function counts as much as one at the top.
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PACKAGES = ("search", "trainables")

#: What each room of ``search/`` may import from the others (the README's "how the code is laid out").
ALLOWED = {
    "mirror": set(),
    "experiment": {"mirror"},
    "spec": set(),
    "results": {"spec", "experiment"},
    "trials": {"spec", "experiment", "internals"},
    "engine": {"trials", "spec", "experiment", "results", "internals"},
    "cluster": {"engine", "spec", "experiment"},
    "cli": {"engine", "trials", "spec", "experiment", "results", "cluster"},
    "api": {"engine", "spec", "experiment", "results"},
    "internals": set(),
    "__main__": {"cli"},
    "search": {"api"},  # the package's own __init__: the public API, imported lazily
}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for pkg in PACKAGES for p in sorted((REPO / pkg).rglob("*.py"))}


MODULES = _modules()


def _is_type_checking(test: ast.expr) -> bool:
    """``if TYPE_CHECKING:`` or ``if typing.TYPE_CHECKING:``, nothing looser (``if not TYPE_CHECKING`` runs)."""
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or \
        (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _runtime_nodes(tree: ast.AST):
    """Every node of ``tree`` except those under ``if TYPE_CHECKING:`` (annotations only, never run)."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            yield from (n for child in node.orelse for n in [child, *_runtime_nodes(child)])
            continue
        yield node
        yield from _runtime_nodes(node)


def _imports(name: str, path: Path) -> list[tuple[str, str | None]]:
    """(module imported, name taken from it or None) for every import of ``search``/``trainables``."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = []
    for node in _runtime_nodes(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(a.name, None) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([node.module] if node.module else []))
            for alias in node.names:
                submodule = f"{base}.{alias.name}"
                found.append((submodule, None) if submodule in MODULES else (base, alias.name))
    return [(m, n) for m, n in found if m.split(".")[0] in PACKAGES]


def _room(module: str) -> str:
    parts = module.split(".")
    return parts[1] if parts[0] == "search" and len(parts) > 1 else parts[0]



def test_every_module_of_the_layout_is_known():
    rooms = {_room(m) for m in MODULES if m.startswith("search")}
    assert rooms == set(ALLOWED), "a new room in search/: add it to ALLOWED and to the README's layout section"
    assert not (REPO / "search" / "runner.py").exists() and not (REPO / "search" / "trial.py").exists()


def test_imports_between_rooms_flow_one_way():
    wrong = defaultdict(set)
    for name, path in MODULES.items():
        if not name.startswith("search."):
            continue
        for target, _ in _imports(name, path):
            here, there = _room(name), _room(target)
            if target.startswith("search.") and there != here and there not in ALLOWED[here]:
                wrong[name].add(target)
    assert not wrong, f"imports against the layout: {dict(wrong)}"


def test_trainables_never_imports_search():
    offenders = {name: target for name, path in MODULES.items() if name.startswith("trainables")
                 for target, _ in _imports(name, path) if target.startswith("search")}
    assert not offenders


def test_no_import_cycles_between_modules():
    graph = {name: {t for t, _ in _imports(name, path) if t in MODULES and t != name} for name, path in MODULES.items()}
    state: dict[str, int] = {}
    cycles: list[list[str]] = []

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycles.append(stack[stack.index(nxt):] + [nxt] if nxt in stack else [node, nxt])
            elif nxt not in state:
                visit(nxt, stack + [nxt])
        state[node] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])
    assert not cycles, f"import cycles: {cycles}"


def test_one_module_knows_where_an_experiment_lives():
    # is_uri: defined in search.experiment and called nowhere else; the mirror is the experiment's own.
    callers = sorted({name for name, path in MODULES.items() if name.startswith("search.")
                      for node in ast.walk(ast.parse(path.read_text()))
                      if isinstance(node, ast.Call) and getattr(node.func, "id", getattr(node.func, "attr", None)) == "is_uri"})
    assert callers in ([], ["search.experiment"]), callers
    users = {name for name, path in MODULES.items() for target, _ in _imports(name, path) if target == "search.mirror"}
    assert users == {"search.experiment"}, users


def test_few_path_or_uri_unions_at_room_boundaries():
    # What the user typed becomes an Experiment once; past that boundary no signature takes "a path or a URI".
    found = []
    for name, path in MODULES.items():
        if name.split(".")[:2] not in (["search", r] for r in ("engine", "results", "cli", "cluster")):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                for arg in [*node.args.args, *node.args.kwonlyargs]:
                    text = ast.unparse(arg.annotation) if arg.annotation is not None else ""
                    if "Path" in text and "str" in text and "|" in text:
                        found.append(f"{name}.{node.name}({arg.arg}: {text})")
    assert len(found) <= 3, found


@pytest.mark.parametrize("name", sorted(n for n in MODULES if (REPO / MODULES[n]).suffix == ".py"))
def test_no_module_is_over_450_lines(name):
    lines = len(MODULES[name].read_text().splitlines())
    assert lines <= 450, f"{name} has {lines} lines: split it by concern"


def _third_party_imports(path: Path) -> list[tuple[str, str | None]]:
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found += [(a.name, None) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found += [(node.module, a.name) for a in node.names]
    return [(m, n) for m, n in found if m.split(".")[0] in ("ray", "optuna")]


def test_private_ray_and_optuna_names_only_in_the_internals_module():
    # A Ray upgrade means reading search/internals/, not hunting (each use is listed there).
    private = sorted((name, f"{module}{'.' + taken if taken else ''}") for name, path in MODULES.items()
                     if name.startswith("search.") and _room(name) != "internals"
                     for module, taken in _third_party_imports(path)
                     if any(part.startswith("_") for part in module.split(".")) or (taken or "").startswith("_")
                     or module in ("ray.tune.trainable.trainable_fn_utils", "ray.train.v2.api.train_fn_utils"))
    assert not private
    source = "\n".join(p.read_text() for n, p in MODULES.items() if n.startswith("search.") and _room(n) != "internals")
    for name in ("._checkpoint_results", "._latest_checkpoint_result", "._global_node", "._rungs", "._storage",
                 "._study_id", "._trial_id", "._contains("):
        assert not re.search(r"(?<!self)" + re.escape(name), source), name


def test_no_private_name_is_imported_from_another_module():
    private = [(name, f"{target}.{taken}") for name, path in MODULES.items()
               for target, taken in _imports(name, path)
               if taken and taken.startswith("_") and not taken.startswith("__") and target != name]
    assert not private


@pytest.mark.parametrize("name", ["did_you_mean", "close_match", "atomic_write", "CHECKPOINT_FILE", "SELECTION_FILE",
                                  "TRAIN_RUNS_DIR", "SPEC_COPY", "rungs", "is_uri", "is_finite_number"])
def test_each_shared_helper_and_constant_is_defined_once(name):
    defined = []
    for module, path in MODULES.items():
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.ClassDef)) and node.name == name:
                defined.append(module)
        for node in tree.body:  # module-level constants (a local variable of the same name is not a copy)
            if isinstance(node, (ast.Assign, ast.AnnAssign)):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                defined += [module for t in targets if isinstance(t, ast.Name) and t.id == name]
    assert len(defined) == 1, f"{name} defined in {defined}"


_LOADED = """
import sys
import {module}
heavy = sorted(m for m in ("ray", "torch", "optuna") if m in sys.modules)
print(",".join(heavy))
"""


@pytest.mark.parametrize(("module", "allowed"), [
    ("search.results", set()),          # reads folders offline: no Ray, no torch until a model is loaded
    ("search.spec", set()),
    ("search.experiment", set()),
    ("search.cli", set()),              # `--help` and `validate` stay fast
    ("search.results.report", set()),
    ("trainables.files", set()),
    ("trainables", set()),              # lazy: `import trainables` loads torch on first use of a name
    ("trainables.data", set()),         # `search data` and a run's data load: numpy, no torch
    ("trainables.tasks", set()),        # the built-in trainable, as `validate` and a run's driver see it
])
def test_offline_rooms_load_no_ray_at_import(module, allowed):
    out = subprocess.run([sys.executable, "-c", _LOADED.format(module=module)], cwd=REPO, capture_output=True,
                         text=True, check=True).stdout.strip()
    assert set(filter(None, out.split(","))) <= allowed, f"importing {module} loaded {out}"


def test_the_command_line_is_built_without_pandas_or_torch():
    # Building the parser ran before `run` started Ray: the results commands' error guard imported
    # search.results (pandas, pyarrow: ~0.7 s) for ResultsError; it is now named, not imported.
    code = ("import sys\nfrom search.cli.main import _parser\n_parser()\n"
            "print(','.join(m for m in ('pandas', 'pyarrow', 'torch', 'ray') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True).stdout
    assert out.strip() == ""


def test_validate_imports_neither_torch_nor_ray_tune():
    # validate counted the GPUs with torch (1.1 s of its 1.8 s here), and search.internals, where it now counts them
    # as Ray would, imported ray.tune at import (0.6 s) for classes made from Tune's.
    code = ("import sys\nfrom search.cli.main import main\ncode = main(['validate', 'spaces/breast_cancer.yaml'])\n"
            "print(code, ','.join(m for m in ('torch', 'ray.tune', 'pandas') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True).stdout
    assert out.splitlines()[-1] == "0 "  # exit 0, and none of the three imported


_DRIVER = """
import sys
from pathlib import Path
from search.spec.load import load_spec
from search.engine.run import load_data_once
import search.engine.run, search.engine.tuner, search.engine.callbacks, search.engine.session, search.engine.searcher
import search.engine.scheduler, search.engine.progress, search.engine.plan, search.internals
import search.trials.direct, search.trials.pool, search.trials.torch_trainer, search.trials.setup
from search.engine.callbacks import tensorboard_logger
spec_path = Path(sys.argv[1])
spec = load_spec(spec_path)
data = load_data_once(spec, spec_path)
tensorboard_logger()
print(type(data).__name__, 'torch' in sys.modules)
"""


def test_a_runs_driver_checks_loads_and_builds_without_torch(tmp_path):
    # What `run` does before its trials (the spec's checks with the built-in trainable, the data, the modules of
    # the tuner, the callbacks and the trial code Tune pickles) imports no torch: it was about a second of every
    # run's start (benchmarks/startup.py); the trials, which train, import it.
    spec = tmp_path / "spec.yaml"
    spec.write_text("name: t\ntrainable: feature_selection\ndata: {name: breast_cancer}\nmetric: val_accuracy\n"
                    "mode: max\nspace:\n  lr: {type: float, low: 1.0e-3, high: 1.0e-2, log: true}\n"
                    f"fixed: {{epochs: 2, optimizer: adamw}}\nstorage: {tmp_path}\n")
    out = subprocess.run([sys.executable, "-c", _DRIVER, str(spec)], cwd=REPO, capture_output=True, text=True,
                         check=True).stdout.split()
    assert out == ["DataSplits", "False"]


def test_the_builtin_trainable_is_declared_without_torch_and_its_training_module_imports_it():
    code = ("import sys\nfrom trainables.tasks import train_feature_selection as f, FeatureSelectionConfig\n"
            "print('torch' in sys.modules, len(f.metrics), f.validate_config({'lr': 0.1}).lr)\n"
            "from trainables.tasks import ReportCallback\n"
            "import trainables.task_training as t\n"
            "print('torch' in sys.modules, ReportCallback is t.ReportCallback)")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True).stdout
    assert out.splitlines() == ["False 19 0.1", "True True"]


def test_trainables_data_names_its_torch_classes_on_first_use():
    code = ("import sys, trainables.data as d\nbefore = 'torch' in sys.modules\n"
            "from trainables.data import TensorBatches, EpochShuffle\n"
            "from torch.utils.data import DataLoader, Sampler\n"
            "print(before, issubclass(TensorBatches, DataLoader), issubclass(EpochShuffle, Sampler))\n"
            "try:\n    d.NoSuchName\nexcept AttributeError as e:\n    print('AttributeError', e)")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True).stdout
    assert out.splitlines() == ["False True True", "AttributeError module 'trainables.data' has no attribute 'NoSuchName'"]


def test_the_old_public_entry_points_still_import():
    code = ("from search.results import load_results, best_trial, load_model, feature_table, open_results, ResultsError\n"
            "from search.spec import load_spec, parse_spec, Spec, SpecError\n"
            "from search.cli import main\n"
            "from trainables import Trainer, FeatureSelectionTrainer, FeatureSelectionModel\n"
            "print('ok')")
    assert subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True,
                          check=True).stdout.strip() == "ok"


def test_no_import_hook_for_old_module_names():
    # The 0.1.0 layout's names are gone: importing search installs nothing on sys.meta_path.
    code = ("import sys\nbefore = list(sys.meta_path)\nimport search\n"
            "print(len(sys.meta_path) - len(before))\n"
            "try:\n    import search.runner\nexcept ImportError:\n    print('gone')\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True).stdout.split()
    assert out == ["0", "gone"]


def _module_level_names(tree: ast.Module) -> set[str]:
    """Names a module binds at run time at its top level, under ``if``/``try``/``with``/``for``/``while``/
    ``match`` blocks too (optional imports), not under ``if TYPE_CHECKING:`` (never run), not names bound
    only inside a function's or class's body or a comprehension, and not names it deletes again."""
    names: set[str] = set()

    def stored(node: ast.AST | None) -> None:
        """The names an assignment target or an expression binds: walruses, not comprehension variables."""
        if node is None:
            return
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
        elif isinstance(node, ast.NamedExpr):
            stored(node.target)
            stored(node.value)
            return
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.comprehension):  # its target is the comprehension's own
                stored(child.iter)
                for condition in child.ifs:
                    stored(condition)
            elif not isinstance(child, ast.Lambda):
                stored(child)

    def pattern_names(pattern: ast.pattern) -> set[str]:
        found = set()
        for n in ast.walk(pattern):
            if isinstance(n, (ast.MatchAs, ast.MatchStar)) and n.name:
                found.add(n.name)
            elif isinstance(n, ast.MatchMapping) and n.rest:
                found.add(n.rest)
        return found

    def visit(body: list[ast.stmt]) -> None:
        for node in body:
            if isinstance(node, ast.If) and _is_type_checking(node.test):
                visit(node.orelse)
                continue
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                names.add(node.name)  # its body binds nothing at the top level
                continue
            if isinstance(node, ast.Delete):
                names.difference_update(t.id for t in node.targets if isinstance(t, ast.Name))
                continue
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                names.update((a.asname or a.name).split(".")[0] for a in node.names)
            elif isinstance(node, ast.AnnAssign):
                if node.value is not None:  # a bare annotation binds nothing
                    stored(node.target)
                    stored(node.value)
            elif isinstance(node, ast.Match):
                stored(node.subject)
                for case in node.cases:
                    names.update(pattern_names(case.pattern))
                    stored(case.guard)
                    visit(case.body)
            else:  # assignments, for targets, with ... as, walruses in any statement's own expressions
                for child in ast.iter_child_nodes(node):
                    if not isinstance(child, (ast.stmt, ast.excepthandler)):
                        stored(child)
            for field in ("body", "orelse", "finalbody"):  # if / try / with / for / while blocks
                visit(getattr(node, field, None) or [])
            for handler in getattr(node, "handlers", None) or []:
                visit(handler.body)  # not handler.name: Python deletes it when the handler ends

    visit(tree.body)
    return names


def test_module_level_names_are_the_top_levels_run():
    tree = ast.parse(
        "import a.b\nfrom c import d as e\nx = 1\ny: int = 2\nbare: int\nslots = {}\nslots[key] = 1\n"
        "try:\n    import f\nexcept ImportError as err:\n    f = None\n"
        "if True:\n    g = 3\nelse:\n    h = 4\n"
        "if TYPE_CHECKING:\n    from typing_only import OnlyHint\nelse:\n    Hint = object\n"
        "if not TYPE_CHECKING:\n    RunTime = 1\n"
        "with open('p') as fh:\n    i = 5\nfor j in []:\n    k = 6\nwhile (w := 0):\n    m = 7\n"
        "table = {kk: vv for kk, vv in ()}\ngone = 1\ndel gone\n"
        "match x:\n    case [1, *rest]:\n        n = 8\n    case {'k': 1, **kw}:\n        p = 10\n"
        "    case other:\n        o = 9\n"
        "def fn():\n    inner = 1\n    import hidden\n"
        "class C:\n    attribute = 1\n"
    )
    assert _module_level_names(tree) == {"a", "e", "x", "y", "slots", "f", "g", "h", "Hint", "RunTime", "fh", "i",
                                         "j", "k", "w", "m", "table", "rest", "n", "kw", "p", "other", "o", "fn",
                                         "C"}


@pytest.mark.parametrize("name", sorted(MODULES))
def test_every_name_in_all_is_defined(name):
    # `from module import *` raises AttributeError on a name __all__ lists and the module never defines.
    tree = ast.parse(MODULES[name].read_text(), str(MODULES[name]))
    listed = [ast.literal_eval(node.value) for node in tree.body if isinstance(node, ast.Assign)
              and any(isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets)]
    defined = _module_level_names(tree)
    if not listed or "__getattr__" in defined:  # PEP 562: names given on first use
        return
    assert sorted(set(listed[0]) - defined) == [], f"{name}.__all__ lists names it does not define"
