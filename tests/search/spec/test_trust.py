"""Specs as other people write them: someone else's folder, values typed carelessly, mutations of every shipped spec.

Every outcome of ``validate`` is exit 0, or exit 2 with a message that says where; never a traceback,
and nothing beside the spec runs unless the spec names it.
"""

from __future__ import annotations

import contextlib
import io
import re
import shutil
import textwrap
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from search.cli.main import main
from search.spec.load import load_spec

REPO = Path(__file__).resolve().parents[3]
SHIPPED = sorted([*(REPO / "spaces").glob("*.yaml"), REPO / "examples" / "custom_model" / "space.yaml"])


def validate(path: Path) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["validate", str(path)])
    return code, out.getvalue(), err.getvalue()


def test_files_beside_someone_elses_spec_do_not_shadow_installed_packages(tmp_path, monkeypatch):
    marker = tmp_path / "ran"
    for name in ("numpy", "optuna", "torch", "pandas"):
        (tmp_path / f"{name}.py").write_text(f"open({str(marker)!r}, 'a').write('{name} ')\n")
    spec = tmp_path / "space.yaml"
    spec.write_text(textwrap.dedent("""\
        name: theirs
        data: {name: madelon, n_samples: 200, n_features: 10, n_informative: 3}
        metric: val_accuracy
        mode: max
        space:
          lr: {type: float, low: 1e-3, high: 1e-1, log: true}
        fixed: {epochs: 2}
    """))
    monkeypatch.chdir(REPO)  # run from elsewhere, as one validates a spec received from someone
    code, _, err = validate(spec)
    assert code == 0, err
    assert not marker.exists(), marker.read_text()  # before: numpy.py beside the spec ran during validate


def test_a_users_module_beside_the_spec_is_found_without_shadowing(tmp_path, monkeypatch):
    marker = tmp_path / "ran"
    (tmp_path / "numpy.py").write_text(f"open({str(marker)!r}, 'a').write('numpy')\n")
    (tmp_path / "their_model.py").write_text(textwrap.dedent("""\
        import numpy
        assert hasattr(numpy, "ndarray"), "the installed numpy, not the file beside the spec"

        def train(config, report):
            report({"epoch": 1, "loss": 1.0})
    """))
    spec = tmp_path / "space.yaml"
    spec.write_text("name: theirs\ntrainable: their_model:train\nmetric: loss\nscheduler: {type: none}\n"
                    "space:\n  x: {type: float, low: 0, high: 1}\nfixed: {epochs: 2}\n")
    monkeypatch.chdir(REPO)
    code, _, err = validate(spec)
    assert code == 0, err
    assert not marker.exists()


def test_numbers_are_read_as_yaml_1_2_reads_them(tmp_path):
    spec = tmp_path / "space.yaml"
    spec.write_text("name: t\nspace:\n  sparsity_lambda: {type: float, low: 1e-4, high: 1E-1, log: true}\n"
                    "fixed: {epochs: 2, lr: 1e-3, weight_decay: 5e-5}\n")
    loaded = load_spec(spec)
    assert loaded.fixed["lr"] == 0.001 and isinstance(loaded.fixed["lr"], float)  # PyYAML alone: the text "1e-3"
    assert loaded.fixed["weight_decay"] == 5e-5
    assert loaded.space["sparsity_lambda"].low == 1e-4 and loaded.space["sparsity_lambda"].high == 0.1


@pytest.mark.parametrize(("text", "where", "says"), [
    ("fixed: {epochs: 2}\nresources: {gpus_per_worker: half}\n", ":3: resources.gpus_per_worker:", "number"),
    ("fixed: &loop {epochs: 2, again: *loop}\n", ":2:", "refers to itself"),
    ("fixed: {epochs: 16.0}\n", ":2: fixed", "epochs must be an integer"),
    ("fixed: {epochs: 2, lr: fast}\n", ":2: fixed", "lr must be a number"),
])
def test_careless_values_are_located_errors_not_tracebacks(tmp_path, text, where, says):
    spec = tmp_path / "space.yaml"
    spec.write_text("name: t\n" + text)
    code, _, err = validate(spec)
    assert code == 2, err
    assert f"{spec}{where}" in err and says in err, err
    assert "Traceback" not in err


# ---------------------------------------------------------------- mutations of every shipped spec
_VALUES = st.one_of(
    st.none(), st.booleans(), st.integers(-3, 10**6), st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(["half", "1e-3", "16.0", "", "auto", "max", "min", "tpe", "asha", "none", "s3://", "ab:cd",
                     "val_accuracy", "x" * 300, "~", "null", "../../etc", "feature_selection"]),
    st.lists(st.integers(0, 5), max_size=3), st.dictionaries(st.sampled_from(["type", "low", "high", "x"]),
                                                             st.integers(-2, 5), max_size=2),
)


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix] if prefix else []
    if isinstance(node, dict):
        for key, value in node.items():
            found += _paths(value, (*prefix, key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            found += _paths(value, (*prefix, i))
    return found


def _mutate(raw: dict[str, Any], path: tuple[Any, ...], how: str, value: Any) -> dict[str, Any]:
    parent: Any = raw
    for key in path[:-1]:
        parent = parent[key]
    last = path[-1]
    if how == "set":
        parent[last] = value
    elif how == "delete":
        del parent[last]
    elif how == "unknown_key" and isinstance(parent, dict):
        parent[f"{last}_typo"] = value
    elif how == "wrap":
        parent[last] = [parent[last]]
    elif how == "nest":
        parent[last] = {"value": parent[last]}
    return raw


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_every_mutation_of_a_shipped_spec_is_valid_or_a_located_error(data, tmp_path, monkeypatch):
    monkeypatch.setenv("SEARCH_CACHE_DIR", str(tmp_path / "cache"))
    source = data.draw(st.sampled_from(SHIPPED), label="spec")
    raw = yaml.safe_load(source.read_text())
    path = data.draw(st.sampled_from(_paths(raw)), label="path")
    how = data.draw(st.sampled_from(["set", "set", "set", "delete", "unknown_key", "wrap", "nest"]), label="how")
    raw = _mutate(raw, path, how, data.draw(_VALUES, label="value"))
    if isinstance(raw.get("storage"), str) and "://" in raw["storage"]:
        raw["storage"] = "results"  # a URI's probe reaches the network; storage URIs have tests of their own
    folder = tmp_path / source.parent.name
    if not folder.is_dir():  # a copy of the spec's folder: a user's module beside it resolves as it would there
        shutil.copytree(source.parent, folder, ignore=shutil.ignore_patterns("__pycache__"))
    spec = folder / "mutated.yaml"
    spec.write_text(yaml.safe_dump(raw, sort_keys=False))
    code, _, err = validate(spec)
    assert code in (0, 2), err
    assert "Traceback" not in err
    if code == 2:
        located = re.search(re.escape(str(spec)) + r"(:\d+)?: ", err) or err.startswith("error: ")
        assert located, err


@pytest.mark.parametrize("name", ["x" * 300, "data/" + "y" * 300 + ".csv", "bad\x00name.csv", "~nosuchuser_zz/d.csv"])
def test_a_data_name_no_file_can_have_is_a_located_error(tmp_path, monkeypatch, capsys, name):
    # Found by the mutation property above: a 300-character name made pathlib raise "File name too long".
    from search.cli.main import main

    monkeypatch.chdir(tmp_path)
    spec = tmp_path / "space.yaml"
    spec.write_text(yaml.safe_dump({"name": "n", "trainable": "feature_selection", "data": {"name": name},
                                    "metric": "val_accuracy", "mode": "max",
                                    "space": {"lr": {"type": "float", "low": 1e-3, "high": 1e-1, "log": True}}}))
    assert main(["validate", str(spec)]) == 2
    err = capsys.readouterr().err
    assert "data.name" in err and ("unknown data set" in err or "data file not found" in err), err
