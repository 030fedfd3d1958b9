"""MLflow through Ray's MLflowLoggerCallback: a run per trial, its epochs, its best checkpoint, in the experiment folder."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from search.engine.run import RunOptions, run_experiment
from search.spec import load_spec


@pytest.mark.ray
def test_every_trial_is_an_mlflow_run_with_its_epochs_and_best_checkpoint(ray_cluster, tmp_path, tiny_spec):
    pytest.importorskip("mlflow")  # the `mlflow` extra; the journal test below runs without it
    from mlflow.tracking import MlflowClient

    from search.results import open_results

    raw = yaml.safe_load(tiny_spec)
    raw.update(name="tracked", storage=str(tmp_path / "results"), scheduler={"type": "none"},
               tracking={"mlflow": {"tags": {"team": "fs"}}})
    raw["search"].update(num_samples=2)
    raw["fixed"].update(epochs=2)
    path = tmp_path / "space.yaml"
    path.write_text(yaml.safe_dump(raw))
    outcome = run_experiment(load_spec(path), RunOptions(spec_path=path))
    folder = Path(outcome.path)
    assert (folder / "mlflow.db").is_file() and not (tmp_path / "mlruns").exists()

    client = MlflowClient(f"sqlite:///{folder / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("tracked")
    assert experiment.artifact_location == (folder / "mlartifacts").as_uri()
    runs = client.search_runs([experiment.experiment_id])
    table = open_results(folder).table.set_index("trial_id")
    assert len(runs) == 2 and {r.info.status for r in runs} == {"FINISHED"}
    for run in runs:
        trial_id = run.data.tags["trial_name"].rsplit("_", 1)[-1]
        assert run.data.tags["team"] == "fs"
        assert float(run.data.params["lr"]) == pytest.approx(table.loc[trial_id, "lr"])
        assert run.data.params["epochs"] == "2"
        rows = [json.loads(line) for line in (folder / f"trial_{trial_id}" / "result.json").read_text().splitlines()]
        history = {m.step: m.value for m in client.get_metric_history(run.info.run_id, "val_accuracy")}
        assert history == pytest.approx({r["training_iteration"]: r["val_accuracy"] for r in rows})
        logged = Path(client.download_artifacts(run.info.run_id, "best_checkpoint", str(tmp_path / trial_id)))
        best = Path(table.loc[trial_id, "checkpoint"])  # the table's best checkpoint, byte for byte
        assert (logged / "checkpoint.pt").read_bytes() == (best / "checkpoint.pt").read_bytes()


# Trial x=3 (the last, one trial at a time) waits, mid-run, until Optuna's journal in the experiment
# folder shows the two finished trials and itself running with its first epoch, then goes on.
WATCHING_TRAINABLE = '''
import json, time
from pathlib import Path


def journal_view(folder):
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    journal = Path(folder) / "optuna.journal"
    if not journal.exists():
        return None
    study = optuna.load_study(study_name="watched", storage=JournalStorage(JournalFileBackend(str(journal))))
    return sorted((t.params["x"], t.state.name, dict(t.intermediate_values)) for t in study.trials)


def train(config, report):
    for epoch in (1, 2):
        report({"epoch": epoch, "score": config["x"] * epoch})
        if config["x"] == 3 and epoch == 1:
            deadline, seen = time.monotonic() + 90, None
            while time.monotonic() < deadline:
                seen = journal_view(config["folder"])
                if seen and [s[1] for s in seen] == ["COMPLETE", "COMPLETE", "RUNNING"] and seen[2][2]:
                    break
                time.sleep(0.2)
            Path(config["seen"]).write_text(json.dumps(seen))
'''


@pytest.mark.ray
def test_optunas_journal_shows_the_study_during_the_run_and_optuna_dashboard_opens_it(ray_cluster, tmp_path):
    import io
    from wsgiref.util import setup_testing_defaults

    optuna_dashboard = pytest.importorskip("optuna_dashboard")
    (tmp_path / "watching.py").write_text(WATCHING_TRAINABLE)
    folder = tmp_path / "results" / "watched"
    spec = {"name": "watched", "trainable": "watching:train", "metric": "score", "mode": "max",
            "search": {"num_samples": 3, "max_concurrent_trials": 1, "sampler": "random",
                       "points_to_evaluate": [{"x": 1}, {"x": 2}, {"x": 3}]},
            "scheduler": {"type": "none"}, "space": {"x": {"type": "categorical", "choices": [1, 2, 3]}},
            "fixed": {"epochs": 2, "folder": str(folder), "seen": str(tmp_path / "seen.json")},
            "storage": str(tmp_path / "results"), "failure": {"max_retries": 0}}
    path = tmp_path / "space.yaml"
    path.write_text(yaml.safe_dump(spec))
    run_experiment(load_spec(path), RunOptions(spec_path=path))
    seen = json.loads((tmp_path / "seen.json").read_text())  # during the run, from the trial itself
    assert [s[:2] for s in seen] == [[1, "COMPLETE"], [2, "COMPLETE"], [3, "RUNNING"]], seen
    assert seen[2][2] == {"1": 3.0}  # the running trial's first epoch, already there
    # After the run, optuna-dashboard's own app (its WSGI server) opens the file.
    app = optuna_dashboard.wsgi(str(folder / "optuna.journal"))

    def get(url: str) -> dict:
        environ = {"PATH_INFO": url}
        setup_testing_defaults(environ)
        status = []
        body = b"".join(app(environ, lambda s, h, e=None: status.append(s)))
        assert status == ["200 OK"], (url, status, body[:300])
        return json.load(io.BytesIO(body))

    (summary,) = get("/api/studies")["study_summaries"]
    assert summary["study_name"] == "watched"
    trials = get(f"/api/studies/{summary['study_id']}")["trials"]
    assert sorted((t["params"][0]["param_external_value"], t["state"]) for t in trials) == \
        [("1", "Complete"), ("2", "Complete"), ("3", "Complete")]
    by_x = {t["params"][0]["param_external_value"]: t for t in trials}
    assert [v["value"] for v in by_x["3"]["intermediate_values"]] == [3.0, 6.0]
