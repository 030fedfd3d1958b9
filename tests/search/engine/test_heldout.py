"""The held-out test: once, after the search, the chosen trial on data no trial trained or was selected on."""

from __future__ import annotations

import io
import json
import math
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml

from search.engine.run import RunOptions, run_experiment
from search.spec import load_spec
from tests.search.helpers import results_cli

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


@pytest.mark.ray
def test_the_best_trial_is_tested_once_on_the_test_split_and_the_table_shows_it(ray_cluster, tmp_path, tiny_spec):
    from search.results import load_model, open_results
    from search.results.summary import heldout_line
    from trainables.data import load_data

    raw = yaml.safe_load(tiny_spec)
    # checkpoint_every past the last epoch: only the final epoch's checkpoint is due, and the best epoch's must still
    # be saved (issue 22, item 10): one epoch for the table, Optuna, the kept checkpoint, load_model and the test.
    raw.update(name="heldout", scheduler={"type": "none"}, fixed={**raw["fixed"], "epochs": 4, "checkpoint_every": 99})
    folder = _run(tmp_path, raw)
    record = json.loads((folder / "heldout.json").read_text())
    table = open_results(folder).table
    best = table.iloc[0]
    from search.results.searcher_state import load_study

    told = {t.params["lr"]: t.value for t in load_study(folder).trials if t.state.name == "COMPLETE"}
    assert told and told == {row.lr: row.best_val_accuracy for row in table.itertuples() if row.lr in told}
    saved_at = {row.trial_id: torch.load(Path(row.checkpoint) / "checkpoint.pt", weights_only=True)["epoch"]
                for row in table.itertuples()}
    assert saved_at == dict(zip(table["trial_id"], table["best_epoch"]))  # the kept checkpoint is the best epoch's
    assert any(epoch < 4 for epoch in saved_at.values()), "no trial peaked before its last epoch: the case is not tested"
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

    # `predict` on the raw test rows of the built-in set, labels in its "target" column: the same accuracy again.
    raw_rows = load_data({**raw["data"], "scale": False})
    frame = pd.DataFrame(raw_rows.x_test, columns=list(raw_rows.feature_names))
    frame["target"] = [raw_rows.class_names[k] for k in raw_rows.y_test]
    (tmp_path / "test.csv").write_text(frame.to_csv(index=False))
    code, out, err = results_cli("predict", str(folder), str(tmp_path / "test.csv"))
    assert code == 0, err
    assert f"accuracy {best['test_accuracy']:.4f} on {len(splits.y_test)} labelled rows (target column 'target')" in err
    assert len(pd.read_csv(io.StringIO(out))) == len(splits.y_test)


@pytest.mark.ray
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


@pytest.mark.ray
def test_a_two_objective_search_end_to_end_front_pick_cuts_test_and_report(ray_cluster, tmp_path, tiny_spec):
    """metric: [val_accuracy, num_selected]: the study, the table's front, `best` with a rule, the test, the report."""
    import optuna

    from search.results import open_results
    from search.results.report import render_report
    from search.results.summary import render_summary
    from search.results.searcher_state import load_study
    from tests.search.helpers import results_cli

    raw = yaml.safe_load(tiny_spec)
    raw.update(name="two", metric=["val_accuracy", "num_selected"], mode=["max", "min"], select={"tolerance": 0.05},
               # One trial at a time: seeded sampler and training, results in one order, so the same cuts every run.
               search={"num_samples": 5, "seed": 0, "sampler": "tpe", "sampler_options": {"n_startup_trials": 2},
                       "max_concurrent_trials": 1},
               scheduler={"type": "asha", "grace_period": 1, "reduction_factor": 2, "metric": "val_task_loss",
                          "mode": "min"}, fixed={"epochs": 4, "batch_size": 32})
    path = tmp_path / "space.yaml"
    path.write_text(yaml.safe_dump({**raw, "storage": str(tmp_path / "results")}))
    outcome = run_experiment(load_spec(path), RunOptions(spec_path=path))
    folder = Path(outcome.path)
    results = open_results(folder)
    table = results.table.set_index("trial_id")
    study = load_study(folder)
    assert [d.name for d in study.directions] == ["MAXIMIZE", "MINIMIZE"]
    by_trial = {tid: study.trials[ot.number] for tid, ot in outcome.searcher._ot_trials.items()}
    for trial_id, row in table.iterrows():
        frozen = by_trial[trial_id]
        if row["outcome"] == "pruned":  # ASHA's cut: PRUNED, no values, what it had at the cut kept aside
            assert frozen.state is optuna.trial.TrialState.PRUNED and frozen.values is None
            assert set(frozen.user_attrs["values_at_cut"]) == {"val_accuracy", "num_selected"}
        else:  # both values from one epoch, the table's best_epoch
            history = results.record(trial_id).history.set_index("epoch")
            assert frozen.values == [row["best_val_accuracy"], row["best_num_selected"]]
            assert list(history.loc[row["best_epoch"], ["val_accuracy", "num_selected"]]) == frozen.values
        # ASHA recorded val_task_loss by epoch (the metric named in scheduler.metric), not the objectives.
        history = results.record(trial_id).history
        assert outcome.searcher.rung_values()[trial_id] == pytest.approx(dict(zip(history["epoch"], history["val_task_loss"])))
    # Optuna's journal (for optuna-dashboard) holds the same trials, states and values.
    from search.results.searcher_state import load_journal_study

    journal = load_journal_study(folder)
    assert [(t.state, t.values) for t in journal.trials] == [(t.state, t.values) for t in study.trials]
    front = set(table.index[table["pareto"]])
    assert front == {tid for tid, t in by_trial.items() if t.number in {b.number for b in study.best_trials}}
    assert {"pruned"} < set(table["outcome"])  # both branches above ran: an ASHA cut, and trials that ended

    # `best`: the front as comments, the pick by the spec's rule, YAML ready for `fixed:`.
    code, out, _ = results_cli("best", str(folder))
    picked = json.loads((folder / "heldout.json").read_text())["chosen"]
    assert code == 0 and f"# picked trial {picked}" in out and "within 0.05 of the best val_accuracy" in out
    assert yaml.safe_load(out) == {k: results.record(picked).config[k] for k in ("lr", "sparsity_lambda")}
    assert all(f"{tid}" in out for tid in front)
    fewest = table.loc[list(front), "best_num_selected"].min()
    code, out, _ = results_cli("best", str(folder), "--limit", f"num_selected={fewest:g}")
    assert code == 0 and "# picked: num_selected <= " in out
    assert table.loc[out.split("# picked trial ")[1].split()[0], "best_num_selected"] == fewest
    code, _, err = results_cli("best", str(folder), "--limit", "num_selected=-1")
    assert code == 2 and "no trial of the front has num_selected <= -1" in err

    # The held-out test ran on every trial of the front, the picked one first; nothing else.
    record = json.loads((folder / "heldout.json").read_text())
    assert set(record["trials"]) == front and next(iter(record["trials"])) == record["chosen"]
    assert table["test_accuracy"].notna().to_dict() == {tid: tid in front for tid in table.index}
    text, ok = render_summary(outcome.spec or load_spec(path), outcome, results=results)
    assert ok and f"Pareto front: {len(front)} trial(s)" in text and f"picked trial {record['chosen']}" in text
    html_text = render_report(results)
    assert "the front the study found" in html_text and "Pareto front:" in html_text
    assert f"trial {record['chosen']} (picked)" in html_text  # the picked point drawn on the front
    assert "Held-out test (" in html_text and "measured once, after the search" in html_text
