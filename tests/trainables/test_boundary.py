"""The one-way boundary: trainables works with ray, optuna and pydantic impossible to import."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import trainables

FORBIDDEN = ("ray", "optuna", "pydantic")
PACKAGE_DIR = Path(trainables.__file__).resolve().parent

BLOCKED_RUN = textwrap.dedent(
    """
    import importlib, json, pkgutil, sys

    FORBIDDEN = ("ray", "optuna", "pydantic")

    class Block:
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in FORBIDDEN:
                raise ImportError(f"blocked by test_boundary: {name}")
            return None

    sys.meta_path.insert(0, Block())
    for name in FORBIDDEN:
        try:
            __import__(name)
        except ImportError:
            pass
        else:
            raise SystemExit(f"the blocker let {name} through")

    import trainables
    modules = sorted(m.name for m in pkgutil.walk_packages(trainables.__path__, "trainables."))
    for name in modules:
        importlib.import_module(name)

    from trainables.data import load_data
    from trainables.tasks import train_feature_selection

    epochs = []
    splits = load_data({"name": "madelon", "n_samples": 120, "n_features": 8, "n_informative": 3})
    result = train_feature_selection({"epochs": 1, "hidden_sizes": [4], "batch_size": 32},
                                     lambda metrics, checkpoint_dir=None: epochs.append(metrics["epoch"]),
                                     data=splits)
    leaked = sorted(m for m in sys.modules if m.split(".")[0] in FORBIDDEN)
    print(json.dumps({"modules": modules, "epochs": epochs, "status": result["status"], "leaked": leaked}))
    """
)


def test_trainables_imports_and_trains_with_ray_optuna_and_pydantic_blocked():
    proc = subprocess.run([sys.executable, "-c", BLOCKED_RUN], cwd=PACKAGE_DIR.parent, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    expected = {"trainables." + ".".join(p.relative_to(PACKAGE_DIR).with_suffix("").parts).removesuffix(".__init__")
                for p in PACKAGE_DIR.rglob("*.py") if p != PACKAGE_DIR / "__init__.py"}
    assert set(result["modules"]) == expected
    assert result["epochs"] == [1]
    assert result["status"] == "completed"
    assert result["leaked"] == []


IMPORT_LINE = re.compile(r"^\s*(?:import|from)\s+(" + "|".join(FORBIDDEN) + r")\b", re.MULTILINE)
DYNAMIC_IMPORT = re.compile(r"""(?:import_module|__import__)\(\s*['"](""" + "|".join(FORBIDDEN) + r")\b")


def test_no_trainables_source_file_imports_them():
    files = sorted(PACKAGE_DIR.rglob("*.py"))
    assert len(files) >= 15
    offenders = [f"{path.relative_to(PACKAGE_DIR)}: {match.group(0).strip()}"
                 for path in files
                 for pattern in (IMPORT_LINE, DYNAMIC_IMPORT)
                 for match in pattern.finditer(path.read_text())]
    assert offenders == []


def test_the_static_check_would_catch_an_import():
    assert IMPORT_LINE.search("x = 1\n    from ray import tune\n")
    assert IMPORT_LINE.search("import optuna.samplers\n")
    assert DYNAMIC_IMPORT.search("importlib.import_module('pydantic')")
    assert not IMPORT_LINE.search("import rays_of_light\nfrom trainables import api  # ray-free\n")
