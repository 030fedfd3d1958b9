"""MLflow through Ray's MLflowLoggerCallback: a run per trial, its epochs, its best checkpoint, in the experiment folder."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from search.engine.run import RunOptions, run_experiment
from search.spec import load_spec

mlflow = pytest.importorskip("mlflow")


def test_every_trial_is_an_mlflow_run_with_its_epochs_and_best_checkpoint(ray_cluster, tmp_path, tiny_spec):
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
