"""``resume EXP --num-samples N`` / ``--time-budget S``: grow a search already run (issue 26, item 6)."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest
import yaml

from search.cli.main import main
from search.engine.grow import Growth
from search.engine.run import RunOptions, resume_experiment, run_experiment
from search.experiment import Experiment, ExperimentError
from search.spec import load_spec

TRAINABLE = '''
import json, os, tempfile, time
from pathlib import Path


def train(config, report, resume_from=None):
    for epoch in (1, 2):
        time.sleep(config["sleep"])
        folder = tempfile.mkdtemp()
        (Path(folder) / "state.json").write_text(json.dumps({"epoch": epoch}))
        report({"epoch": epoch, "score": config["x"] * epoch}, folder)
'''


def _spec(tmp_path: Path, **search) -> Path:
    (tmp_path / "growing.py").write_text(TRAINABLE)
    raw = {"name": "grow", "trainable": "growing:train", "metric": "score", "mode": "max",
           "search": {"num_samples": 2, "sampler": "tpe", "seed": 0, "max_concurrent_trials": 1,
                      "sampler_options": {"n_startup_trials": 2}, **search},
           "scheduler": {"type": "none"}, "space": {"x": {"type": "float", "low": 0.0, "high": 1.0}},
           "fixed": {"sleep": 0.0}, "failure": {"max_retries": 0}, "storage": str(tmp_path / "results")}
    path = tmp_path / "space.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def _rows(folder: Path) -> dict[str, str]:
    return {d.name: (d / "result.json").read_text() for d in sorted(folder.glob("trial_*"))}


def _as_a_fresh_process(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """What a later `resume` in another process, run from another folder, has: the trainable's folder not on
    sys.path (the run put it there) and the module not imported."""
    import sys

    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in (str(tmp_path), "")])
    monkeypatch.delitem(sys.modules, "growing", raising=False)
    monkeypatch.chdir(tmp_path.parent)


@pytest.mark.ray
def test_a_finished_search_grows_to_more_trials_and_keeps_what_it_had(ray_cluster, tmp_path, capsys, monkeypatch):
    from search.results import open_results
    from search.results.searcher_state import load_study

    path = _spec(tmp_path)
    folder = Path(run_experiment(load_spec(path), RunOptions(spec_path=path)).path)
    _as_a_fresh_process(tmp_path, monkeypatch)  # resume finds growing.py beside the spec it ran (spec.origin.json)
    before_rows, before_study = _rows(folder), load_study(folder)
    before = [(t.number, t.state, t.value, t.params) for t in before_study.trials]
    assert len(before) == 2 and all(state is optuna.trial.TrialState.COMPLETE for _, state, _, _ in before)

    # Fewer or as many as it has: refused, nothing changed (exit 2 from the CLI).
    assert main(["resume", str(folder), "--num-samples", "2"]) == 2
    assert "--num-samples 2: " in capsys.readouterr().err and _rows(folder) == before_rows
    with pytest.raises(ExperimentError, match="give the new total, more than 2"):
        resume_experiment(Experiment.at(folder), RunOptions(), Growth(num_samples=1))

    resume_experiment(Experiment.at(folder), RunOptions(), Growth(num_samples=4))
    err = capsys.readouterr().err
    assert "growing the search from 2 to 4 trials (the study continues at trial 2" in err
    after_rows = _rows(folder)
    assert len(after_rows) == 4 and {k: after_rows[k] for k in before_rows} == before_rows  # the first two untouched
    study = load_study(folder)
    assert [(t.number, t.state, t.value, t.params) for t in study.trials[:2]] == before
    assert [t.number for t in study.trials] == [0, 1, 2, 3]
    assert all(t.state is optuna.trial.TrialState.COMPLETE for t in study.trials)
    table = open_results(folder).table
    assert len(table) == 4 and set(table["outcome"]) == {"completed"}
    assert yaml.safe_load((folder / "spec.yaml").read_text())["search"]["num_samples"] == 4

    # The CLI: a finished experiment without --num-samples is left alone; with it, it grows again, and its
    # tables are rewritten with every trial.
    assert main(["resume", str(folder)]) == 0  # the API's resume wrote no tables (the CLI does): written now
    capsys.readouterr()
    assert main(["resume", str(folder)]) == 0
    assert "is finished" in capsys.readouterr().err
    assert main(["resume", str(folder), "--num-samples", "5"]) == 0
    table = open_results(folder).table
    assert len(table) == 5
    exported = (folder / "results.csv").read_text().splitlines()
    assert len(exported) == 1 + 5 and table["trial_id"].iloc[0] in exported[1]


@pytest.mark.ray
def test_a_budget_ended_search_continues_with_a_new_budget(ray_cluster, tmp_path, capsys):
    from search.results import open_results
    from search.results.searcher_state import load_study

    path = _spec(tmp_path, num_samples=4, time_budget_s=1.0)
    raw = yaml.safe_load(path.read_text())
    raw["fixed"]["sleep"] = 0.6  # 1.2 s a trial: the 1 s budget ends the search within its first two trials
    path.write_text(yaml.safe_dump(raw))
    folder = Path(run_experiment(load_spec(path), RunOptions(spec_path=path)).path)
    first = open_results(folder).table
    assert len(first) < 4  # the budget ended it

    assert main(["resume", str(folder), "--time-budget", "600"]) == 0
    err = capsys.readouterr().err
    assert "time budget of the continued search: 600 s (was 1 s)" in err
    table = open_results(folder).table
    assert len(table) == 4  # the whole search, under the new budget
    kept = first[first["outcome"] == "completed"]["trial_id"].tolist()
    assert set(kept) <= set(table[table["outcome"] == "completed"]["trial_id"])
    assert yaml.safe_load((folder / "spec.yaml").read_text())["search"]["time_budget_s"] == 600
    assert len(load_study(folder).trials) == 4


def test_growing_a_folder_without_tunes_saved_state_is_a_clear_error_and_a_plain_resume_is_not_hurt(tmp_path):
    """A driver killed before Tune's first save leaves tuner.pkl and our spec copy, no state to grow."""
    from search.engine.grow import fresh_budget, grow_saved_state

    folder = tmp_path / "results" / "grow"
    folder.mkdir(parents=True)
    (folder / "spec.yaml").write_text(_spec(tmp_path, time_budget_s=5.0).read_text())
    with pytest.raises(ExperimentError, match=r"cannot grow .*no search_gen_state-\*\.json"):
        grow_saved_state(Experiment.at(folder), Growth(num_samples=5))
    fresh_budget(Experiment.at(folder), 5.0)  # nothing saved, nothing to restart: no error
    assert yaml.safe_load((folder / "spec.yaml").read_text())["search"]["num_samples"] == 2  # unchanged
