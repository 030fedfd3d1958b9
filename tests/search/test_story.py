"""One story on every screen: the event lines, the status line, the panel, the summary, the table,
the report and ``best`` say the same thing in the same words (search.results.outcomes).

Offline: an experiment folder written here, trial by trial, and the same trials fed to the run's
progress callback as Tune would; no Ray.
"""

from __future__ import annotations

import io
import json
import math
import re
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest

from search.engine import console as terminal
from search.engine.progress import ProgressLines
from search.results import open_results
from search.results.outcomes import WORDS, Outcome, count_words, describe
from search.results.summary import WIDTH, summary_text

SPEC = """
name: story
trainable: feature_selection
data: {{name: madelon, n_samples: 200}}
metric: {metric}
mode: {mode}
{select}
search: {{num_samples: {n}, seed: 0}}
scheduler: {{type: asha, grace_period: 1, reduction_factor: 2}}
space:
  lr: {{type: float, low: 1.0e-3, high: 3.0e-2, log: true}}
  sparsity_lambda: {{type: float, low: 1.0e-3, high: 1.0e-1, log: true}}
  selector_learning_rate_ratio: {{type: float, low: 1.0, high: 30.0, log: true}}
  patience_of_the_early_stopping: {{type: int, low: 5, high: 10}}
fixed: {{epochs: 4, batch_size: 32}}
"""

#: trial id -> (epochs as (val_accuracy, num_selected), stop_reason, done, error, pruned by ASHA)
TRIALS = {
    "a0000001": ([(0.6, 9), (0.7, 8), (0.82, 7), (0.8, 7)], "", True, None, False),  # completed
    "a0000002": ([(0.6, 9), (0.86, 12)], "early_stopping", True, None, False),  # stopped early by patience
    "a0000003": ([(0.55, 9)], "", True, None, True),  # cut by ASHA
    "a0000004": ([(0.6, 9), (math.nan, 9)], "diverged", True, None, False),  # diverged
    "a0000005": ([(0.58, 9)], "", False, "RuntimeError: boom", False),  # failed
    "a0000006": ([(0.6, 0), (0.61, 0), (0.62, 0), (0.6, 0)], "", True, None, False),  # collapsed: no feature kept
}
UNFINISHED = {"a0000007": ([(0.6, 9), (0.65, 9)], "", False, None, False)}


def _params(tid: str) -> dict:
    k = int(tid[-1])
    return {"lr": 0.001 * k, "sparsity_lambda": 0.01 * k, "selector_learning_rate_ratio": 1.5 * k,
            "patience_of_the_early_stopping": 5 + k, "epochs": 4, "batch_size": 32}


def write_experiment(root: Path, trials: dict, *, objectives: int = 1, heldout: str | None = None) -> Path:
    """An experiment folder as a run leaves it (spec.yaml, trial_*/params.json, result.json, error.txt)."""
    folder = root / "story"
    folder.mkdir(parents=True)
    two = objectives == 2
    (folder / "spec.yaml").write_text(SPEC.format(
        metric="[val_accuracy, num_selected]" if two else "val_accuracy", mode="[max, min]" if two else "max",
        select="select: {tolerance: 0.05}" if two else "", n=len(trials)))
    for tid, (epochs, reason, done, error, _) in trials.items():
        trial = folder / f"trial_{tid}"
        trial.mkdir()
        (trial / "params.json").write_text(json.dumps(_params(tid)))
        lines = []
        for k, (accuracy, kept) in enumerate(epochs, 1):
            last = k == len(epochs)
            row = {"epoch": k, "val_accuracy": accuracy, "num_selected": kept, "time_total_s": 0.5 * k,
                   "trial_id": tid, "done": bool(last and done)}
            if last and reason:
                row["stop_reason"] = reason
            lines.append(json.dumps(row))
        (trial / "result.json").write_text("\n".join(lines) + "\n")
        if error:
            (trial / "error.txt").write_text(f"Traceback (most recent call last):\n  ...\n{error}\n")
    if heldout:
        (folder / "heldout.json").write_text(json.dumps({"split": "test", "chosen": heldout, "trials": {
            heldout: {"test_accuracy": 0.8, "test_n": 40.0}}}))
    return folder


@pytest.fixture(autouse=True)
def _command_starts_now():
    terminal.start_clock()


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    return write_experiment(tmp_path, TRIALS)


def _ending_lines(text: str) -> dict[str, str]:
    """trial id -> its ending event line, from ``trial <id>`` on (the stamp and ``started`` lines left out)."""
    found = {}
    for line in text.splitlines():
        if (m := re.match(r"\[ *[\d.]+s\] (trial (\w+) .*\[\d+/\d+ done\])$", line)):
            found[m.group(2)] = m.group(1)
    return found


def test_every_outcome_has_one_set_of_words_used_by_the_table(folder: Path) -> None:
    table = open_results(folder).table.set_index("trial_id")
    expected = {"a0000001": Outcome.COMPLETED, "a0000002": Outcome.EARLY_STOPPED, "a0000003": Outcome.PRUNED,
                "a0000004": Outcome.DIVERGED, "a0000005": Outcome.FAILED, "a0000006": Outcome.COLLAPSED}
    assert table["outcome"].to_dict() == {t: o.value for t, o in expected.items()}
    for tid, outcome in expected.items():
        assert table.loc[tid, "status"].startswith(WORDS[outcome]), (tid, table.loc[tid, "status"])
    assert table.loc["a0000002", "status"] == describe(Outcome.EARLY_STOPPED, 2) == "stopped early by patience at epoch 2"
    assert table.loc["a0000003", "status"] == "cut by ASHA at epoch 1"
    assert table.loc["a0000005", "status"] == "failed: RuntimeError: boom"
    assert set(WORDS) == set(Outcome)  # every outcome, the collapsed one too, has its words


def test_event_lines_say_what_the_table_says(folder: Path) -> None:
    """Each trial's ending line (live) and its status (read back from the folder) are the same words."""
    out = io.StringIO()
    lines = ProgressLines("val_accuracy", "max", stream=out, num_samples=len(TRIALS), status_every_s=0,
                          pruned={"a0000003": 1})
    feed_into(lines, TRIALS, folder)
    table = open_results(folder).table.set_index("trial_id")
    ending = _ending_lines(out.getvalue())
    assert set(ending) == set(table.index)
    for tid, status in table["status"].items():  # the status, then the values (": val_accuracy=...") or the count
        # A failure's line adds where its traceback is (the table's status is the error alone).
        assert re.match(rf"trial {tid} {re.escape(status)}(: val_accuracy=|( \(traceback: [^)]+error\.txt\))? +\[)",
                        ending[tid]), (ending[tid], status)
    # The status line counts in the same words as the summary's header, and they add up.
    status = [ln for ln in out.getvalue().splitlines() if "trials done" in ln][-1]
    counts = count_words(table["outcome"].value_counts().to_dict())
    assert f"6/6 trials done, 0 running: {counts}" in status
    assert summary_text(open_results(folder))[0].splitlines()[1] == f"6 trials: {counts}"
    assert counts == ("1 completed, 1 stopped early by patience, 1 cut by ASHA, 1 diverged, 1 collapsed, 1 failed")


def feed_into(lines: ProgressLines, trials: dict, folder: Path) -> None:
    lines.setup()
    stubs = {t: SimpleNamespace(trial_id=t, status="RUNNING", evaluated_params={"lr": _params(t)["lr"]},
                                last_result={}, config=_params(t), error_file=None) for t in trials}
    for tid, (epochs, reason, done, error, _) in trials.items():
        trial = stubs[tid]
        lines.on_trial_start(0, [trial], trial)
        for k, (accuracy, kept) in enumerate(epochs, 1):
            result = {"epoch": k, "val_accuracy": accuracy, "num_selected": kept}
            lines.on_trial_result(0, [trial], trial, result)
            trial.last_result = {**result, **({"stop_reason": reason} if reason and k == len(epochs) else {})}
        if error:
            trial.status, trial.error_file = "ERROR", str(folder / f"trial_{tid}" / "error.txt")
            lines.on_trial_error(0, [trial], trial)
        else:
            trial.status = "TERMINATED"
            lines.on_trial_complete(0, [trial], trial)
    lines.on_step_end(0, list(stubs.values()))


def test_the_summary_adds_up_and_fits_100_columns(folder: Path) -> None:
    text, ok = summary_text(open_results(folder))
    assert ok
    header = text.splitlines()[1]
    numbers = [int(n) for n in re.findall(r"(\d+) [a-z]", header.split(": ", 1)[1])]
    assert sum(numbers) == 6 == int(header.split()[0])
    assert max(len(line) for line in text.splitlines() if not line.startswith("  checkpoint:")) <= WIDTH, text
    assert "best trial a0000002: val_accuracy = 0.86 at epoch 2 (stopped early by patience at epoch 2)" in text
    assert "more columns and every trial in results.md" in text


def test_report_and_best_use_the_same_words(folder: Path) -> None:
    from search.results.report import render_report
    from tests.search.helpers import results_cli

    table = open_results(folder).table
    page = render_report(folder)
    assert f"{len(table)} trials: {count_words(table['outcome'].value_counts().to_dict())}." in page
    assert "Best trial: a0000002, val_accuracy = 0.86 at epoch 2 (stopped early by patience at epoch 2)" in page
    assert "position:sticky" in page
    for status in table["status"]:
        assert f">{status}<" in page
    code, out, _ = results_cli("best", str(folder))
    assert code == 0 and "# best trial a0000002" in out and "; stopped early by patience at epoch 2" in out


def test_two_objectives_picked_and_best_kept_apart(tmp_path: Path) -> None:
    """Several objectives: the summary, the report and the panel name the picked trial, and say so."""
    from rich.console import Console

    from search.results.report import render_report

    trials = {t: v for t, v in TRIALS.items() if t in ("a0000001", "a0000002", "a0000003")}
    folder = write_experiment(tmp_path, trials, objectives=2, heldout="a0000001")
    text, _ = summary_text(open_results(folder))
    # a0000002 has the highest accuracy (0.86, 12 features); a0000001 is within 0.05 with fewer (7): picked.
    assert "picked trial a0000001: val_accuracy = 0.82, num_selected = 7 at epoch 3 (completed)" in text
    assert "highest val_accuracy: trial a0000002" in text and "best trial" not in text
    top = text.split("top 3 trials:\n")[1].splitlines()
    assert re.split(r"\s+", top[0].strip())[:4] == ["trial_id", "val_accuracy", "num_selected", "front"]
    assert "best_num_selected" not in text  # one column per objective, side by side
    page = render_report(folder)
    assert "Held-out test (40 samples) of the picked trial a0000001" in page and "Highest val_accuracy: trial a0000002" in page

    lines = ProgressLines("val_accuracy", "max", stream=io.StringIO(), num_samples=3, pruned={"a0000003": 1},
                          objectives=[("val_accuracy", "max"), ("num_selected", "min")], select=(0.05, {}))
    feed_into(lines, trials, folder)
    assert lines.picked()[0] == "a0000001"
    assert "picked val_accuracy=0.82 num_selected=7 (trial a0000001, front of 2)" in lines.status([], 1.0)
    console = Console(width=100, record=True, file=io.StringIO())
    running = SimpleNamespace(trial_id="a0000009", status="RUNNING", evaluated_params=_params("a0000009"))
    lines.running["a0000009"] = (2, {"val_accuracy": 0.7, "num_selected": 11})
    console.print(lines.render([running], 75.0))
    panel = console.export_text()
    assert "picked: trial a0000001  val_accuracy=0.82 num_selected=7  lr=0.001" in panel
    assert "from a front of 2 trial(s): fewest num_selected within 0.05 of the best val_accuracy" in panel
    assert re.search(r"running\s+epoch\s+val_accuracy\s+num_selected", panel)  # both objectives, side by side
    assert "3/3 trials done · 1 running · 75s elapsed" in panel and "ended: 1 completed, 1 stopped early" in panel
    assert max(len(line) for line in panel.splitlines()) <= 100


def test_times_count_from_the_command_start(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = [100.0]
    monkeypatch.setattr("search.engine.console.time.monotonic", lambda: clock[0])
    terminal.start_clock()
    clock[0] = 130.0  # Ray took 30 s to start; then the tuner starts
    out = io.StringIO()
    lines = ProgressLines("val_accuracy", "max", stream=out, num_samples=1)
    lines.setup()
    trial = SimpleNamespace(trial_id="t1", evaluated_params={}, status="RUNNING")
    lines.on_trial_start(0, [trial], trial)
    assert out.getvalue().startswith("[   30.0s] trial t1 started")


def test_the_header_waits_for_the_run_to_start(capsys: pytest.CaptureFixture) -> None:
    with terminal.announced("running story: 6 trials -> results/story"):
        pass  # refused before its first line: the header is never said
    terminal.say("after")
    with terminal.announced("running story: 6 trials -> results/story"):
        terminal.say("starting Ray (embedded, 2 CPUs)…")
        terminal.say("next")
    assert capsys.readouterr().err.splitlines() == [
        "after", "running story: 6 trials -> results/story", "starting Ray (embedded, 2 CPUs)…", "next"]


def test_a_refused_run_prints_no_header(folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture,
                                        tiny_spec: str) -> None:
    from search.cli.main import main

    spec = tmp_path / "space.yaml"
    spec.write_text(tiny_spec.replace("name: tiny", "name: story"))
    code = main(["run", str(spec), "--storage", str(folder.parent)])
    err = capsys.readouterr().err
    assert code == 2 and "already holds an experiment" in err and "running story" not in err


def test_resume_of_a_finished_experiment_changes_nothing(folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                         capsys: pytest.CaptureFixture) -> None:
    from search.cli.main import main

    def no_resume(*args, **kwargs):
        raise AssertionError("resume_experiment (Ray) must not start")

    monkeypatch.setattr("search.engine.run.resume_experiment", no_resume)
    finished = write_experiment(tmp_path / "done", {t: v for t, v in TRIALS.items() if t != "a0000005"})
    called = []
    monkeypatch.setattr("search.engine.run.resume_experiment", lambda *a, **k: called.append(a) or 1 / 0)
    with pytest.raises(ZeroDivisionError):  # its trials ended, but not the run: no tables yet (killed in its test)
        main(["resume", str(finished)])
    monkeypatch.setattr("search.engine.run.resume_experiment", no_resume)
    for name in ("results.csv", "results.md"):
        (finished / name).write_text("as the run wrote it\n")
    before = {p: p.stat().st_mtime_ns for p in finished.rglob("*")}
    assert main(["resume", str(finished)]) == 0
    err = capsys.readouterr().err
    assert "is finished (5 trials: 1 completed," in err and "nothing to resume" in err and "--force" in err
    assert {p: p.stat().st_mtime_ns for p in finished.rglob("*")} == before  # nothing rewritten

    monkeypatch.setattr("search.engine.run.resume_experiment", lambda *a, **k: called.append(a) or 1 / 0)
    for unfinished in (folder,  # a failed trial: resume retries it
                       write_experiment(tmp_path / "open", {**dict(list(TRIALS.items())[:2]), **UNFINISHED})):
        for name in ("results.csv", "results.md"):  # tables of an interrupted run: still something to resume
            (unfinished / name).write_text("as the run wrote it\n")
        with pytest.raises(ZeroDivisionError):
            main(["resume", str(unfinished)])
    with pytest.raises(ZeroDivisionError):
        main(["resume", "--force", str(finished)])
    assert len(called) == 4


def test_every_argument_of_every_command_says_what_it_is_and_its_default() -> None:
    import argparse

    from search.cli.main import _parser

    missing = []

    def walk(parser: argparse.ArgumentParser, path: str) -> None:
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    walk(sub, f"{path} {name}")
            elif isinstance(action, argparse._HelpAction):
                continue
            elif not action.help:
                missing.append(f"{path} {action.dest}: no help")
            elif action.option_strings and "default" not in action.help:
                missing.append(f"{path} {action.option_strings[0]}: no default in {action.help!r}")

    walk(_parser(), "python -m search")
    assert not missing, missing


def test_a_wrong_target_shows_the_closest_columns_first(tmp_path: Path) -> None:
    from search.spec.checks import _check_target  # the rule itself, on a 101-column header

    columns = [f"feature_{i:03d}" for i in range(100)] + ["diagnosis_label"]
    path = tmp_path / "wide.csv"
    pd.DataFrame([range(101)], columns=columns).to_csv(path, index=False)
    lines = SimpleNamespace(line_of=lambda keys: 3)
    (problem,) = list(_check_target(path, "diagnosis", lines))
    assert "closest first: diagnosis_label, feature_000" in problem.message
    assert "… and 89 more" in problem.message and "101 columns" in problem.message
    (problem,) = list(_check_target(path, None, lines))
    assert "label-like first: diagnosis_label" in problem.message


def test_data_writes_raw_rows_that_the_model_scales_as_in_training(tmp_path: Path) -> None:
    import numpy as np

    from search.cli.main import main
    from trainables.data import load_data

    out = tmp_path / "rows.csv"
    assert main(["data", "madelon_guyon", "--split", "test", "--set", "n_samples=300", "--set", "n_probes=10",
                 "-o", str(out)]) == 0
    rows = pd.read_csv(out)
    splits = load_data({"name": "madelon_guyon", "n_samples": 300, "n_probes": 10})
    assert list(rows.columns) == [*splits.feature_names, "target"] and len(rows) == len(splits.y_test)
    raw = rows[list(splits.feature_names)].to_numpy()
    assert not np.allclose(raw, splits.x_test, atol=1e-3)  # not the standardised arrays
    assert np.allclose(splits.preprocessing.transform(raw), splits.x_test, atol=1e-4)  # but exactly what the model saw
    assert rows["target"].astype(str).tolist() == [splits.class_names[i] for i in splits.y_test]


@pytest.mark.ray
def test_a_two_objective_run_names_its_metrics_in_the_journal(ray_cluster, tmp_path: Path, tiny_spec: str) -> None:
    """optuna-dashboard and load_study show the objectives by name, not values_0 / values_1."""
    import optuna
    import yaml
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    from search.engine.run import RunOptions, run_experiment
    from search.spec import load_spec

    raw = yaml.safe_load(tiny_spec)
    raw.update(name="named", metric=["val_accuracy", "num_selected"], mode=["max", "min"], storage=str(tmp_path),
               search={"num_samples": 2, "seed": 0}, fixed={"epochs": 2, "batch_size": 32})
    path = tmp_path / "space.yaml"
    path.write_text(yaml.safe_dump(raw))
    outcome = run_experiment(load_spec(path), RunOptions(spec_path=path))
    storage = JournalStorage(JournalFileBackend(str(Path(outcome.path) / "optuna.journal")))
    study = optuna.load_study(study_name="named", storage=storage)
    assert study.metric_names == ["val_accuracy", "num_selected"]
    text, ok = summary_text(open_results(outcome.path))
    assert ok and text.splitlines()[1].startswith("2 trials: ") and "picked trial" in text
