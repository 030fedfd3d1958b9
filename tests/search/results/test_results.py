"""Results: export, best, features, report and load_results, from the experiment folder alone.

The pure rules (trial status, Pareto front, atomic writes, formats) need no Ray. The rest
reads ONE small real experiment per session (4 trials of 3 epochs on the shared local Ray):
a medium trial, a strong one, a hopeless one that ASHA cuts, and one that fails.
"""

from __future__ import annotations

import io
import json
import math
import os
import re
import shutil
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml

from search.results import (
    DEFAULT_EXPORTS,
    Outcome,
    TrialFacts,
    best_trial,
    classify,
    feature_table,
    load_model,
    load_results,
    open_results,
    pareto_front,
    write_default_exports,
)
from search.results.export import format_for, to_markdown, write_output, write_table
from search.results.folder import (
    ExperimentInfo,
    ResultsError,
    TrialRecord,
    best_checkpoint,
    find_checkpoints,
    resolve_experiment,
)
from tests.search.helpers import results_cli

FAIL_LR = 0.0299
POINTS = [  # evaluated in this order, one at a time: ASHA's decisions follow from it
    {"lr": 0.003, "sparsity_lambda": 0.01},  # medium: first, so nothing can cut it
    {"lr": 0.03, "sparsity_lambda": 0.001},  # strong: above the medium one at every rung
    {"lr": 0.001, "sparsity_lambda": 0.1},  # hopeless: below the median at epoch 1, cut by ASHA
    {"lr": FAIL_LR, "sparsity_lambda": 0.001},  # strong, then fails when it reports epoch 2
]
SPEC = """
name: results
trainable: results_trainable:train
data: {name: madelon, n_samples: 200, n_features: 12, n_informative: 3}
metric: val_accuracy
mode: max
search: {num_samples: 4, seed: 0, max_concurrent_trials: 1}
scheduler: {type: asha, grace_period: 1, reduction_factor: 2}
space:
  lr: {type: float, low: 1.0e-3, high: 3.0e-2, log: true}
  sparsity_lambda: {type: float, low: 1.0e-3, high: 1.0e-1, log: true}
fixed: {epochs: 3, batch_size: 32}
resources: {num_workers: 1, cpus_per_worker: 1}
failure: {max_retries: 0}
"""
TRAINABLE = f'''
from trainables.tasks import train_feature_selection


def train(config, report, data=None, resume_from=None, world=None):
    """The built-in trainable; the trial with lr={FAIL_LR} fails when it reports its 2nd epoch."""
    def report_or_fail(metrics, checkpoint_dir=None):
        if config["lr"] == {FAIL_LR} and metrics["epoch"] == 2:
            raise RuntimeError("deliberate failure at epoch 2")
        report(metrics, checkpoint_dir)

    return train_feature_selection(config, report_or_fail, data=data, resume_from=resume_from, world=world)


train.metrics = train_feature_selection.metrics
train.config_keys = train_feature_selection.config_keys
'''
COLUMNS = ["trial_id", "status", "outcome", "lr", "sparsity_lambda", "best_val_accuracy", "last_val_accuracy",
           "best_epoch", "epochs_run", "num_selected", "train_time_s", "checkpoint"]


# ---------------------------------------------------------------- helpers
cli = results_cli  # the results commands, in-process


@dataclass
class Run:
    """The session's real experiment and what the run itself recorded."""

    path: Path
    spec: Any
    outcome: Any  # search.engine.run.ExperimentOutcome
    records: dict[str, pd.DataFrame]  # trial id -> its result.json lines, read here independently
    failed: set[str]


@pytest.fixture(scope="session")
def run(ray_cluster: None, tmp_path_factory: pytest.TempPathFactory) -> Run:
    from search.engine.run import RunOptions, run_experiment
    from search.spec import load_spec

    root = tmp_path_factory.mktemp("results_run")
    (root / "results_trainable.py").write_text(textwrap.dedent(TRAINABLE))
    raw = yaml.safe_load(SPEC)
    raw["storage"] = str(root / "results")
    raw["search"]["points_to_evaluate"] = POINTS
    (root / "space.yaml").write_text(yaml.safe_dump(raw))
    spec = load_spec(root / "space.yaml")
    outcome = run_experiment(spec, RunOptions(spec_path=root / "space.yaml"))
    records = {}
    for result in outcome.results:
        lines = (Path(result.path) / "result.json").read_text().splitlines()
        records[Path(result.path).name.removeprefix("trial_")] = pd.DataFrame([json.loads(ln) for ln in lines])
    failed = {Path(r.path).name.removeprefix("trial_") for r in outcome.results if r.error is not None}
    return Run(outcome.experiment.local, spec, outcome, records, failed)


@pytest.fixture
def copy_of(run: Run, tmp_path: Path) -> Path:
    """A copy of the experiment folder, safe to damage (and proof that a moved folder reads)."""
    return Path(shutil.copytree(run.path, tmp_path / "copied"))


def trial_by_lr(run: Run, lr: float) -> str:
    for result in run.outcome.results:
        if result.config["lr"] == lr:
            return Path(result.path).name.removeprefix("trial_")
    raise AssertionError(f"no trial with lr={lr}")


def read_export(path: Path, fmt: str) -> pd.DataFrame:
    """Read an exported table back with independent readers (strings where a format has no types)."""
    if fmt == "csv":
        return pd.read_csv(path, dtype={"trial_id": str})
    if fmt == "parquet":
        return pd.read_parquet(path)
    if fmt == "json":
        return pd.DataFrame(json.loads(path.read_text()))
    text = path.read_text()
    if fmt == "md":
        lines = [ln for ln in text.splitlines() if ln.startswith("|")]
        rows = [[c.strip() for c in ln.strip("|").split(" | ")] for ln in lines]
        return pd.DataFrame(rows[2:], columns=rows[0])
    header = re.findall(r"<th>(.*?)</th>", text)
    cells = [re.findall(r"<td>(.*?)</td>", row) for row in re.findall(r"<tr>\s*(<td>.*?)</tr>", text, re.S)]
    return pd.DataFrame(cells, columns=header)


def _number(value: Any) -> float:
    return math.nan if value in ("", None) or (isinstance(value, float) and math.isnan(value)) else float(value)


# ---------------------------------------------------------------- pure rules: no Ray
@pytest.mark.parametrize(("facts", "outcome", "words"), [
    (TrialFacts(3, True, "TERMINATED", planned_epochs=3, pruned=False), Outcome.COMPLETED, "completed"),
    (TrialFacts(1, True, "TERMINATED", planned_epochs=3, pruned=True), Outcome.PRUNED, "cut by ASHA at epoch 1"),
    (TrialFacts(2, True, "TERMINATED", planned_epochs=3, pruned=None), Outcome.PRUNED, "cut by ASHA at epoch 2"),
    (TrialFacts(2, True, "TERMINATED", planned_epochs=3, pruned=False), Outcome.STOPPED, "stopped short at epoch 2 of 3"),
    (TrialFacts(5, True, "TERMINATED", stop_reason="early_stopping", planned_epochs=9, pruned=None),
     Outcome.EARLY_STOPPED, "stopped early by patience at epoch 5"),
    (TrialFacts(2, True, "TERMINATED", stop_reason="diverged", planned_epochs=9), Outcome.DIVERGED, "diverged at epoch 2"),
    (TrialFacts(2, True, "TERMINATED", last_value=math.nan, planned_epochs=2), Outcome.DIVERGED, "diverged at epoch 2"),
    (TrialFacts(4, True, "TERMINATED", stop_reason="threshold", planned_epochs=9), Outcome.THRESHOLD,
     "reached the target at epoch 4"),
    (TrialFacts(1, False, "ERROR", error="RuntimeError: boom"), Outcome.FAILED, "failed: RuntimeError: boom"),
    (TrialFacts(None, False, None, error="ValueError: x"), Outcome.FAILED, "failed: ValueError: x"),
    (TrialFacts(2, False, "RUNNING", planned_epochs=3), Outcome.UNFINISHED, "unfinished at epoch 2"),
    (TrialFacts(None, False, "PENDING"), Outcome.UNFINISHED, "unfinished, no result yet"),
    (TrialFacts(2, False, "TERMINATED", planned_epochs=3), Outcome.UNFINISHED, "unfinished at epoch 2"),
    (TrialFacts(3, True, None, planned_epochs=None), Outcome.COMPLETED, "completed"),
])
def test_status_rules(facts: TrialFacts, outcome: Outcome, words: str) -> None:
    assert classify(facts) == (outcome, words)


def test_pareto_front_keeps_the_best_score_for_each_feature_count() -> None:
    scores = [0.9, 0.8, 0.95, 0.85, 0.9, math.nan]
    counts = [4, 2, 8, 4, 10, 1]
    assert pareto_front(scores, counts, "max") == [True, True, True, False, False, False]
    assert pareto_front([0.2, 0.1, 0.3, 0.25], [5, 7, 1, 6], "min") == [True, True, True, False]
    assert pareto_front([0.5, 0.5], [3, 3], "max") == [True, True]  # ties dominate neither


def test_write_output_replaces_or_leaves_the_old_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "table.csv"
    target.write_text("good old table\n")
    write_output(target, "new\n")
    assert target.read_text() == "new\n"

    def broken_fsync(fd: int) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "fsync", broken_fsync)
    with pytest.raises(OSError, match="disk full"):
        write_output(target, "half-written\n")
    assert target.read_text() == "new\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["table.csv"]  # no temporary file left behind
    with pytest.raises(ResultsError, match="does not exist"):
        write_output(tmp_path / "missing" / "t.csv", "x")


@pytest.mark.parametrize(("path", "fmt", "expected"), [
    ("t.csv", None, "csv"), ("t.PARQUET", None, "parquet"), ("t.json", None, "json"), ("t.md", None, "md"),
    ("t.html", None, "html"), (None, None, "csv"), ("t.txt", "md", "md"), (None, "JSON", "json"),
])
def test_format_from_the_option_or_the_suffix(path: str | None, fmt: str | None, expected: str) -> None:
    assert format_for(path, fmt) == expected


def test_unknown_formats_are_named_with_the_choices() -> None:
    with pytest.raises(ResultsError, match=r"unknown format 'parqet' \(did you mean 'parquet'\?\); choices: csv"):
        format_for(None, "parqet")
    with pytest.raises(ResultsError, match=r"from its suffix '\.xlsx'; use --format"):
        format_for("t.xlsx", None)


def test_markdown_escapes_pipes_and_leaves_missing_cells_empty() -> None:
    df = pd.DataFrame({"a": ["x|y", None], "b": [0.123456, math.nan]})
    assert to_markdown(df).splitlines() == ["| a | b |", "|---|---|", "| x\\|y | 0.1235 |", "|  |  |"]


def test_parquet_without_pyarrow_says_how_to_install_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(__import__("sys").modules, "pyarrow", None)
    (tmp_path / "t.parquet").write_text("keep me")
    with pytest.raises(ResultsError, match="pip install pyarrow"):
        write_table(pd.DataFrame({"a": [1]}), tmp_path / "t.parquet")
    assert (tmp_path / "t.parquet").read_text() == "keep me"


def test_a_bare_name_is_looked_up_under_results(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ResultsError, match=r"looked for 'nope' and 'results/nope'.*default storage \./results/"):
        resolve_experiment("nope")
    (tmp_path / "results" / "exp" / "trial_1").mkdir(parents=True)
    (tmp_path / "results" / "exp" / "trial_1" / "params.json").write_text("{}")
    assert resolve_experiment("exp") == (tmp_path / "results" / "exp").resolve()
    with pytest.raises(ResultsError, match="is not an experiment folder.*holds the experiments exp: pass one"):
        resolve_experiment(tmp_path / "results")


def test_not_an_experiment_exits_2_with_one_message(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("hello")
    for command in ("export", "best", "features", "report"):
        code, out, err = cli(command, str(tmp_path))
        assert code == 2 and out == ""
        assert "is not an experiment folder" in err and "Traceback" not in err


def test_tune_status_or_the_done_flag_marks_a_final_result() -> None:
    history = pd.DataFrame({"epoch": [1, 2], "done": [False, False]})
    assert TrialRecord("a", None, {}, history, tune_status="TERMINATED", tune_last_epoch=2).has_final_result
    assert not TrialRecord("a", None, {}, history, tune_status="TERMINATED", tune_last_epoch=3).has_final_result
    assert not TrialRecord("a", None, {}, history).has_final_result  # no state, no done flag: interrupted
    done = pd.DataFrame({"epoch": [1, 2], "done": [False, True]})
    assert TrialRecord("a", None, {}, done).has_final_result
    assert not TrialRecord("a", None, {}, pd.DataFrame(), tune_status="TERMINATED").has_final_result


def test_torch_trainer_checkpoints_are_found_in_a_moved_folder(tmp_path: Path) -> None:
    info = ExperimentInfo("e", "val_accuracy", "max", ("lr",))
    kept = [tmp_path / "train_runs" / "t1" / f"checkpoint_2026-01-01_00-00-0{i}" for i in (1, 2)]
    for folder in kept:
        folder.mkdir(parents=True)
    history = pd.DataFrame({"epoch": [1, 2, 3], "val_accuracy": [0.7, 0.9, 0.8],
                            "checkpoint_path": [f"/elsewhere/exp/train_runs/t1/{f.name}" for f in kept]
                            + ["/elsewhere/exp/train_runs/t1/checkpoint_deleted"]})
    record = TrialRecord("t1", None, {}, history)
    record.checkpoints = find_checkpoints(tmp_path, record)
    assert record.checkpoints == {f.name: f for f in kept}
    assert best_checkpoint(record, info) == kept[1]


def _fake_experiment(root: Path) -> Path:
    """A hand-written experiment folder of a user trainable (no features, no checkpoints, no Tune state)."""
    from search.spec import Spec

    spec = Spec.model_validate({"name": "fake", "trainable": "my_module:train", "metric": "score", "mode": "max",
                                "scheduler": {"type": "none"}, "fixed": {"epochs": 3},
                                "space": {"x": {"type": "float", "low": 0.0, "high": 1.0},
                                          "k": {"type": "int", "low": 1, "high": 4}}})
    path = root / "fake"
    path.mkdir()
    (path / "spec.yaml").write_text(yaml.safe_dump(spec.model_dump(mode="json"), sort_keys=False))
    trials = {"t1": (0.2, 1, [0.1, 0.3, 0.2], True), "t2": (0.8, 2, [0.4, 0.6, 0.7], True),
              "t3": (0.5, 3, [0.2, 0.5], False), "t4": (0.9, 4, [0.25], False)}
    for trial_id, (x, k, scores, done) in trials.items():
        folder = path / f"trial_{trial_id}"
        folder.mkdir()
        (folder / "params.json").write_text(json.dumps({"x": x, "k": k, "epochs": 3}))
        rows = [{"epoch": i + 1, "score": v, "done": done and i == len(scores) - 1, "time_total_s": i + 1.0,
                 "trial_id": trial_id} for i, v in enumerate(scores)]
        (folder / "result.json").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (path / "trial_t4" / "error.txt").write_text("Failure # 1\nTraceback ...\nValueError: k=4 is not supported\n")
    return path


def test_a_folder_without_tune_state_or_features(tmp_path: Path) -> None:
    path = _fake_experiment(tmp_path)
    df = load_results(path)
    assert list(df.columns) == ["trial_id", "status", "outcome", "x", "k", "best_score", "last_score", "best_epoch",
                                "epochs_run", "train_time_s", "checkpoint"]  # no gates: no num_selected
    assert df["trial_id"].tolist() == ["t2", "t3", "t1", "t4"]
    assert df["status"].tolist() == ["completed", "unfinished at epoch 2", "completed",
                                     "failed: ValueError: k=4 is not supported"]
    assert str(df["k"].dtype) == "Int64" and df["checkpoint"].isna().all()
    code, out, _ = cli("best", str(path))
    assert code == 0 and yaml.safe_load(out) == {"x": 0.8, "k": 2}
    code, _, err = cli("features", str(path))
    assert code == 2 and "trial t2 has no checkpoint on disk" in err
    code, _, err = cli("report", str(path))
    page = (path / "report.html").read_text()
    assert code == 0, err
    for plot in ("learning-curves", "parameters", "importance"):  # importance: a study rebuilt from the table
        assert f'id="plot-{plot}"' in page
    assert "the trainable does not select features" in page and 'id="plot-pareto"' not in page
    assert "no Optuna journal" in page


# ---------------------------------------------------------------- the real experiment
@pytest.mark.ray
def test_the_run_has_what_these_tests_need(run: Run) -> None:
    assert trial_by_lr(run, 0.001) in run.outcome.pruned  # ASHA cut the hopeless trial
    assert run.failed == {trial_by_lr(run, FAIL_LR)}
    assert len(run.records) == 4


@pytest.mark.ray
def test_load_results_matches_the_runs_own_records(run: Run) -> None:
    df = load_results(run.path)
    assert list(df.columns) == COLUMNS
    assert df.attrs["metric"] == "val_accuracy" and df.attrs["mode"] == "max"
    assert list(df["best_val_accuracy"].dropna()) == sorted(df["best_val_accuracy"].dropna(), reverse=True)
    assert set(df["trial_id"]) == set(run.records)
    for row in df.to_dict("records"):
        rec = run.records[row["trial_id"]]
        assert row["best_val_accuracy"] == rec["val_accuracy"].max()
        assert row["last_val_accuracy"] == rec["val_accuracy"].iloc[-1]
        assert row["epochs_run"] == rec["epoch"].iloc[-1]
        best_row = rec.set_index("epoch").loc[row["best_epoch"]]  # ties: the epoch whose checkpoint was kept
        assert best_row["val_accuracy"] == rec["val_accuracy"].max()
        assert row["num_selected"] == best_row["num_selected"]
        assert best_row["checkpoint_dir_name"] == Path(row["checkpoint"]).name
        assert row["train_time_s"] == pytest.approx(rec["time_total_s"].iloc[-1])
        assert row["lr"] == rec["config"].iloc[0]["lr"]
        assert Path(row["checkpoint"]).is_dir() and Path(row["checkpoint"]).parent.name == f"trial_{row['trial_id']}"
    status = dict(zip(df["trial_id"], df["status"]))
    for trial_id, epoch in run.outcome.pruned.items():
        assert status[trial_id] == f"cut by ASHA at epoch {epoch}"
    (failed,) = run.failed
    assert status[failed] == "failed: RuntimeError: deliberate failure at epoch 2"
    others = set(df["trial_id"]) - set(run.outcome.pruned) - run.failed
    assert others and all(status[t] == "completed" for t in others)


@pytest.mark.ray
def test_best_checkpoint_is_tunes_best(run: Run) -> None:
    df = load_results(run.path).set_index("trial_id")
    for result in run.outcome.results:
        trial_id = Path(result.path).name.removeprefix("trial_")
        kept = {str(Path(c.path)): metrics["val_accuracy"] for c, metrics in result.best_checkpoints}
        assert df.loc[trial_id, "checkpoint"] in kept  # ties aside, the one with the best score
        assert kept[df.loc[trial_id, "checkpoint"]] == max(kept.values())


@pytest.mark.ray
@pytest.mark.parametrize("fmt", ["csv", "parquet", "json", "md", "html"])
def test_every_export_format_has_the_columns_and_values(run: Run, copy_of: Path, tmp_path: Path, fmt: str) -> None:
    target = tmp_path / f"table.{fmt}"
    code, _, err = cli("export", str(copy_of), "-o", str(target))
    assert code == 0, err
    table = read_export(target, fmt)
    assert list(table.columns) == COLUMNS
    assert set(table["trial_id"].astype(str)) == set(run.records)
    for row in table.to_dict("records"):
        rec = run.records[str(row["trial_id"])]
        places = 3 if fmt in ("md", "html") else 12  # the human formats round to 4 significant digits
        assert _number(row["best_val_accuracy"]) == pytest.approx(rec["val_accuracy"].max(), abs=10**-places)
        assert _number(row["last_val_accuracy"]) == pytest.approx(rec["val_accuracy"].iloc[-1], abs=10**-places)
        assert int(_number(row["epochs_run"])) == rec["epoch"].iloc[-1]
        assert _number(row["lr"]) == pytest.approx(rec["config"].iloc[0]["lr"], rel=1e-3 if places == 3 else 1e-12)
        assert str(row["checkpoint"]).startswith(str(copy_of))  # re-rooted in the copy
    assert "cut by ASHA at epoch" in " ".join(table["status"].astype(str))


@pytest.mark.ray
def test_export_to_stdout_and_bad_formats(run: Run) -> None:
    code, out, _ = cli("export", str(run.path))
    assert code == 0 and out.splitlines()[0] == ",".join(COLUMNS)
    code, out, err = cli("export", str(run.path), "--format", "xlsx")
    assert (code, out) == (2, "") and "unknown format 'xlsx'" in err
    code, _, err = cli("export", str(run.path), "--format", "parquet")
    assert code == 2 and "-o results.parquet" in err


@pytest.mark.ray
def test_default_exports_are_written_beside_the_trials(run: Run, copy_of: Path) -> None:
    written = write_default_exports(copy_of, run.spec)
    assert [Path(p).name for p in written] == list(DEFAULT_EXPORTS)
    assert pd.read_csv(copy_of / "results.csv", dtype={"trial_id": str})["trial_id"].tolist() == \
        load_results(copy_of)["trial_id"].tolist()
    assert (copy_of / "results.md").read_text().startswith("| trial_id | status |")


@pytest.mark.ray
def test_best_prints_a_fixed_block_that_validates(run: Run) -> None:
    from search.spec import parse_spec
    from trainables.tasks import train_feature_selection

    code, out, err = cli("best", str(run.path))
    assert code == 0, err
    params = yaml.safe_load(out)
    assert set(params) == {"lr", "sparsity_lambda"} <= set(train_feature_selection.config_keys)
    raw = yaml.safe_load(SPEC) | {"trainable": "feature_selection", "space": {}}
    raw["fixed"] = {**raw["fixed"], **params}
    spec = parse_spec(raw)  # the whole spec, with its semantic checks of config keys
    assert spec.fixed["lr"] == params["lr"]
    best = best_trial(run.path)
    expected = max(run.records.items(), key=lambda kv: kv[1]["val_accuracy"].max())
    assert best.trial_id == expected[0] and best.value == expected[1]["val_accuracy"].max()
    assert params == {k: expected[1]["config"].iloc[0][k] for k in ("lr", "sparsity_lambda")}
    assert f"# checkpoint: {best.checkpoint}" in out and f"val_accuracy = {best.value:.6g}" in out


@pytest.mark.ray
def test_load_model_gives_the_trained_model(run: Run) -> None:
    import torch

    from trainables.feature_selection import FeatureSelectionModel

    model = load_model(run.path)
    assert isinstance(model, FeatureSelectionModel) and not model.training
    assert model(torch.zeros(5, 12)).shape == (5, 2)
    saved = torch.load(best_trial(run.path).checkpoint / "checkpoint.pt", weights_only=False)["model"]
    assert torch.equal(model.gates.mu, saved["gates.mu"])
    with pytest.raises(ResultsError, match="no trial 'nope'"):
        load_model(run.path, "nope")


@pytest.mark.ray
def test_features_names_real_features(run: Run) -> None:
    from trainables.data import load_data

    names = set(load_data(run.spec.data).feature_names)
    code, out, err = cli("features", str(run.path), "--top-k", "2", "--format", "csv", "--all")
    assert code == 0, err
    df = pd.read_csv(io.StringIO(out))
    assert set(df["feature"]) == names and {"f00", "f11"} <= names
    selection = json.loads((best_trial(run.path).checkpoint / "selection.json").read_text())
    probs = dict(zip(selection["feature_names"], selection["gate_probabilities"]))
    for row in df.to_dict("records"):
        assert row["gate_probability"] == pytest.approx(probs[row["feature"]])
        assert row["selected"] == (row["feature"] in selection["selected"])
        assert 0 <= row["selection_frequency"] <= 1 and row["times_selected"] <= 2
    assert list(df["gate_probability"]) == sorted(df["gate_probability"], reverse=True)
    assert "over the top 2 live trials" in err
    table = feature_table(run.path, top_k=10)
    assert len(table.attrs["top_trials"]) == 4  # every trial has a best checkpoint with a selection


@pytest.mark.ray
def test_report_has_every_section_and_its_plots_offline(run: Run, tmp_path: Path) -> None:
    target = tmp_path / "report.html"
    code, out, err = cli("report", str(run.path), "-o", str(target))
    assert code == 0, err
    assert out.strip() == str(target)
    page = target.read_text()
    for title in ("Results table", "Learning curves", "Parameters against the metric", "Parameter importance",
                  "Accuracy against selected features", "Feature selection stability"):
        assert f"<h2>{title}</h2>" in page
    for plot in ("learning-curves", "parameters", "importance", "pareto", "stability"):
        assert f'id="plot-{plot}" class="plotly-graph-div"' in page
    assert "ASHA rung 1" in page and "Pareto front" in page
    assert not re.search(r"<script[^>]+src=[\"']https?://", page)  # plotly.js is inline: opens offline
    assert 'class="note"' not in page
    for trial_id in run.records:
        assert trial_id in page


@pytest.mark.ray
def test_report_with_one_completed_trial_notes_the_importance(run: Run, copy_of: Path) -> None:
    keep = trial_by_lr(run, 0.03)
    for folder in copy_of.glob("trial_*"):
        if folder.name != f"trial_{keep}":
            shutil.rmtree(folder)
    (copy_of / "optuna.journal").unlink()  # the study is rebuilt from what is left
    code, _, err = cli("report", str(copy_of))
    assert code == 0, err
    page = (copy_of / "report.html").read_text()
    assert "parameter importance needs at least 2 completed trials" in page
    assert 'id="plot-learning-curves"' in page


@pytest.mark.ray
def test_importance_from_a_rebuilt_study_without_the_searcher_state(run: Run, copy_of: Path) -> None:
    (copy_of / "optuna.journal").unlink()
    results = open_results(copy_of)
    assert any("no Optuna journal" in note for note in results.notes)
    from search.results.report import render_report

    page = render_report(results)
    assert 'id="plot-importance"' in page and "2 completed trials" in page  # the medium and the strong one


@pytest.mark.ray
def test_missing_checkpoints_are_reported_clearly(run: Run, copy_of: Path) -> None:
    best = best_trial(copy_of)
    for folder in (copy_of / f"trial_{best.trial_id}").glob("checkpoint_*"):
        shutil.rmtree(folder)
    code, out, err = cli("export", str(copy_of), "--format", "csv")
    assert code == 0
    assert f"trial {best.trial_id}: its checkpoints are missing" in err
    row = pd.read_csv(io.StringIO(out), dtype={"trial_id": str}).set_index("trial_id").loc[best.trial_id]
    assert pd.isna(row["checkpoint"])
    code, out, err = cli("best", str(copy_of))
    assert code == 0 and yaml.safe_load(out)["lr"] == best.params["lr"] and "no checkpoint on disk" in err
    code, out, err = cli("features", str(copy_of))
    assert (code, out) == (2, "") and f"trial {best.trial_id} has no checkpoint on disk" in err
    with pytest.raises(ResultsError, match="has no checkpoint on disk"):
        load_model(copy_of)


@pytest.mark.ray
def test_the_state_read_as_plain_json_is_what_tunes_reader_gives(run: Run, copy_of: Path) -> None:
    """A real run's state, moved (``copy_of``): ids, statuses, trial folders and last epochs as Ray's
    ``ExperimentAnalysis`` gives them, without unpickling; and ``unfinished_trials`` counted from it."""
    from ray.tune import ExperimentAnalysis

    from search.engine.run import unfinished_trials
    from search.experiment import Experiment
    from search.results.tune_state import saved_trials

    def plain() -> dict[str, tuple[str, Path, Any]]:
        return {t.trial_id: (t.status, copy_of / t.relative_logdir, t.last_result.get("epoch"))
                for t in saved_trials(str(copy_of))}

    def tunes() -> dict[str, tuple[str, Path, Any]]:
        return {t.trial_id: (t.status, Path(t.path), (t.last_result or {}).get("epoch"))
                for t in ExperimentAnalysis(str(copy_of)).trials}

    assert plain() == tunes() and len(plain()) == len(run.records)
    assert all(folder.parent == copy_of and folder.is_dir() for _, folder, _ in plain().values())
    assert unfinished_trials(Experiment.at(copy_of), len(run.records)) == 0
    (state_file,) = copy_of.glob("experiment_state-*.json")
    state = json.loads(state_file.read_text())
    for entry, status in zip(state["trial_data"], ("RUNNING", "PAUSED")):
        entry[0] = json.dumps({**json.loads(entry[0]), "status": status})
    state_file.write_text(json.dumps(state))
    assert unfinished_trials(Experiment.at(copy_of), len(run.records)) == 2
    assert unfinished_trials(Experiment.at(copy_of), len(run.records) + 3) == 5
    ended = ("TERMINATED", "ERROR")  # Tune's reader loads a RUNNING trial as PENDING: both are open
    assert {tid for tid, (status, _, _) in plain().items() if status not in ended} \
        == {tid for tid, (status, _, _) in tunes().items() if status not in ended}


@pytest.mark.ray
def test_an_interrupted_experiment_exports_what_exists(run: Run, copy_of: Path) -> None:
    last = run.records[trial_by_lr(run, 0.03)]
    strong = trial_by_lr(run, 0.03)
    result_file = copy_of / f"trial_{strong}" / "result.json"
    lines = result_file.read_text().splitlines()
    result_file.write_text("\n".join(lines[:-1]) + "\n" + lines[-1][: len(lines[-1]) // 2])  # cut mid-line
    (state_file,) = copy_of.glob("experiment_state-*.json")
    state = json.loads(state_file.read_text())
    for entry in state["trial_data"]:
        trial = json.loads(entry[0])
        if trial["trial_id"] == strong:
            entry[0] = json.dumps({**trial, "status": "RUNNING"})
    state_file.write_text(json.dumps(state))
    (copy_of / "spec.yaml").unlink()  # a run writes it at the end: an interrupted one has none
    code, out, err = cli("export", str(copy_of), "--format", "json")
    assert code == 0, err
    rows = {r["trial_id"]: r for r in json.loads(out)}
    assert rows[strong]["status"] == f"unfinished at epoch {len(lines) - 1}"
    assert rows[strong]["outcome"] == "unfinished" and rows[strong]["epochs_run"] == last["epoch"].iloc[-2]
    assert "skipped 1 unreadable line" in err and "no spec.yaml" in err
    assert sum(r["outcome"] == "completed" for r in rows.values()) >= 1  # the others are unchanged
    assert list(next(iter(rows.values()))) == COLUMNS  # params come from the searcher state


@pytest.mark.ray
def test_a_failed_write_keeps_the_previous_table(run: Run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "table.csv"
    target.write_text("previous good table\n")

    def broken_replace(src: str, dst: str) -> None:
        raise OSError("no space left on device")

    monkeypatch.setattr(os, "replace", broken_replace)
    code, _, err = cli("export", str(run.path), "-o", str(target))
    assert code == 1 and "no space left on device" in err
    assert target.read_text() == "previous good table\n"
    assert [p.name for p in tmp_path.iterdir()] == ["table.csv"]


@pytest.mark.ray
def test_open_results_reads_the_copy_without_a_cluster_state(run: Run, copy_of: Path) -> None:
    for state in copy_of.glob("experiment_state-*.json"):
        state.unlink()
    results = open_results(copy_of)
    assert set(results.table["trial_id"]) == set(run.records)
    status = dict(zip(results.table["trial_id"], results.table["outcome"]))
    (failed,) = run.failed
    assert status[failed] == Outcome.FAILED.value
    assert all(status[t] == Outcome.PRUNED.value for t in run.outcome.pruned)


@pytest.mark.ray
def test_python_m_search_export_in_a_subprocess(run: Run, tmp_path: Path) -> None:
    import subprocess
    import sys

    repo = Path(__file__).resolve().parents[3]
    env = {**os.environ, "PYTHONPATH": str(repo)}
    (tmp_path / "results").mkdir()
    shutil.copytree(run.path, tmp_path / "results" / "copied")  # a bare name resolves under ./results
    proc = subprocess.run([sys.executable, "-m", "search", "export", "copied", "--format", "md"], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.startswith("| trial_id | status |") and len(proc.stdout.splitlines()) == 2 + len(run.records)
    proc = subprocess.run([sys.executable, "-m", "search", "best", str(tmp_path)], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "is not an experiment folder" in proc.stderr and "Traceback" not in proc.stderr
