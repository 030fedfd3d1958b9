"""The held-out test: once, after the search, the chosen trial on data no trial trained or was selected on."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
import yaml

from search.engine.run import RunOptions, run_experiment
from search.spec import load_spec

USER_TRAINABLE = '''
import json, tempfile
from pathlib import Path


def train(config, report):
    for epoch in (1, 2):
        folder = tempfile.mkdtemp()
        (Path(folder) / "state.json").write_text(json.dumps({"x": config["x"], "epoch": epoch}))
        report({"epoch": epoch, "score": config["x"] * epoch}, folder)


def evaluate(config, checkpoint_dir, data):
    state = json.loads((Path(checkpoint_dir) / "state.json").read_text())
    return {"score": state["x"] * 100 + state["epoch"], "ignored": "not a number"}


train.evaluate = evaluate  # how a trainable declares its held-out evaluation
'''


def _run(tmp_path: Path, raw: dict) -> Path:
    path = tmp_path / "space.yaml"
    path.write_text(yaml.safe_dump({**raw, "storage": str(tmp_path / "results")}))
    return Path(run_experiment(load_spec(path), RunOptions(spec_path=path)).path)


def test_the_best_trial_is_tested_once_on_the_test_split_and_the_table_shows_it(ray_cluster, tmp_path, tiny_spec):
    from search.results import load_model, open_results
    from search.results.summary import heldout_line
    from trainables.data import load_data

    raw = yaml.safe_load(tiny_spec)
    raw.update(name="heldout", scheduler={"type": "none"})
    folder = _run(tmp_path, raw)
    record = json.loads((folder / "heldout.json").read_text())
    table = open_results(folder).table
    best = table.iloc[0]
    assert list(record["trials"]) == [best["trial_id"]] and record["split"] == "test"
    assert table["test_accuracy"].notna().tolist() == [True, False, False]  # the chosen trial only
    # The same number, computed here from the best checkpoint and the spec's own test split.
    splits = load_data(raw["data"])
    with torch.no_grad():
        logits = load_model(folder)(torch.tensor(splits.x_test, dtype=torch.float32))
    expected = float((logits.argmax(dim=1).numpy() == splits.y_test).mean())
    assert best["test_accuracy"] == pytest.approx(expected, abs=1e-9)
    assert best["test_n"] == len(splits.y_test) > 0 and math.isfinite(best["test_task_loss"])
    line = heldout_line(best)
    assert line.startswith(f"held-out test ({len(splits.y_test)} samples): accuracy=")


def test_a_users_evaluation_function_is_used_and_without_one_there_are_no_test_columns(ray_cluster, tmp_path):
    from search.results import open_results

    for name, text in (("with", USER_TRAINABLE), ("without", USER_TRAINABLE.split("\n\n\ndef evaluate")[0] + "\n")):
        (tmp_path / name).mkdir()
        (tmp_path / name / f"mine_{name}.py").write_text(text)  # next to the spec; one module name each
    raw = {"name": "mine", "trainable": "mine_with:train", "metric": "score", "mode": "max",
           "search": {"num_samples": 2, "sampler": "random", "seed": 0}, "scheduler": {"type": "none"},
           "space": {"x": {"type": "float", "low": 1.0, "high": 2.0}}, "fixed": {"epochs": 2},
           "failure": {"max_retries": 0}}
    folder = _run(tmp_path / "with", raw)
    table = open_results(folder).table
    best = table.iloc[0]
    assert best["test_score"] == pytest.approx(best["x"] * 100 + 2)  # its config and its best (last) checkpoint
    assert "test_ignored" not in table and math.isnan(table.iloc[1]["test_score"])

    folder = _run(tmp_path / "without", {**raw, "trainable": "mine_without:train"})
    table = open_results(folder).table
    assert not (folder / "heldout.json").exists() and not [c for c in table if c.startswith("test_")]
