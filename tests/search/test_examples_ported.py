"""The two ported examples (issue 26, item 10) run as a user would run them, tiny: 3 trials of 2-3 epochs.

``examples/optuna_pytorch_simple``: Optuna's objective with its per-layer space as ``when: {n_layers:
{ge: ...}}`` and its 0-based epoch. ``examples/ray_tune_cifar``: Ray Tune's ``train_cifar(config)``
with ``tune.report`` / ``tune.get_checkpoint``, no epoch. Each folder is copied (a user's copy of
someone else's example) and only its budget is made smaller.
"""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import pandas as pd
import pytest
import yaml

pytestmark = [pytest.mark.ray]

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def _run_example(tmp_path: Path, folder: str, changes: dict, capsys):
    from search.engine.run import RunOptions, run_experiment
    from search.results import open_results
    from search.spec import load_spec

    copy = tmp_path / folder
    shutil.copytree(EXAMPLES / folder, copy)
    raw = yaml.safe_load((copy / "space.yaml").read_text())
    for section, values in changes.items():
        raw[section] = {**raw.get(section, {}), **values} if isinstance(values, dict) else values
    raw["storage"] = str(tmp_path / "results")
    (copy / "space.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    outcome = run_experiment(load_spec(copy / "space.yaml"), RunOptions(spec_path=copy / "space.yaml"))
    assert not outcome.results.errors
    return open_results(outcome.experiment).table


def _missing(value) -> bool:
    return value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value))


def test_optunas_pytorch_simple_runs_with_its_per_layer_space(ray_cluster, tmp_path, capsys):
    table = _run_example(tmp_path, "optuna_pytorch_simple", {
        "search": {"num_samples": 3, "max_concurrent_trials": 1,
                   "points_to_evaluate": [{"n_layers": 1}, {"n_layers": 3}]},
        "scheduler": {"type": "asha", "grace_period": 1, "reduction_factor": 2},
        "fixed": {"epochs": 2},
    }, capsys)
    assert len(table) == 3
    assert table["best_accuracy"].between(0, 1).all() and not table["best_accuracy"].isna().any()
    # Optuna's 0-based step, numbered 1-based: two epochs are epochs 1 and 2, never 0.
    assert set(table["best_epoch"]) <= {1, 2} and table["epochs_run"].max() == 2
    by_layers = {int(n): row for n, row in zip(table["n_layers"], table.to_dict("records"))}
    assert {1, 3} <= set(by_layers)
    assert _missing(by_layers[1]["n_units_l1"]) and not _missing(by_layers[3]["n_units_l2"])
    for row in table.to_dict("records"):  # a layer's parameters exist exactly when the trial has the layer
        for layer in (1, 2):
            assert _missing(row[f"n_units_l{layer}"]) == (row["n_layers"] <= layer), row
            assert _missing(row[f"dropout_l{layer}"]) == (row["n_layers"] <= layer), row


def test_ray_tunes_cifar_tutorial_runs_unchanged(ray_cluster, tmp_path, capsys):
    table = _run_example(tmp_path, "ray_tune_cifar", {
        "search": {"num_samples": 3, "max_concurrent_trials": 1,
                   "points_to_evaluate": [{"lr": 0.05, "batch_size": 16, "l1": 64, "l2": 32},
                                          {"lr": 0.0001, "batch_size": 16, "l1": 4, "l2": 4}]},
        "space": {"batch_size": {"type": "categorical", "choices": [16, 32]}},
        "scheduler": {"type": "asha", "max_t": 3, "grace_period": 1, "reduction_factor": 2},
        "fixed": {"epochs": 3},
    }, capsys)
    assert len(table) == 3 and not table["best_loss"].isna().any()
    # No epoch in train_cifar's reports: search counted them, so ASHA could cut (before: it never did).
    assert set(table["best_epoch"]) <= {1, 2, 3} and table["epochs_run"].max() == 3
    assert (table["outcome"] == "pruned").any(), table[["trial_id", "outcome", "best_loss", "epochs_run"]]
    best = table.iloc[0]
    # Learnt: chance is ln(10) = 2.303. The tutorial is unseeded, so its loss scatters: 40 seeded runs
    # of this trial outside Ray gave 0.54-1.50 after 3 epochs, and one CI run 2.03 (a network that
    # half-died at lr 0.05). Below chance by 0.1 is learning; the lr-0.0001 trial stays at about 2.3.
    assert best["lr"] == pytest.approx(0.05) and best["best_loss"] < math.log(10) - 0.1
