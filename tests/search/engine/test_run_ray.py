"""Real experiments of a few tiny trials on the shared local Ray (2 CPUs)."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import optuna
import pandas as pd
import pytest
import yaml

from search.engine.run import RunOptions, run_experiment
from search.results.searcher_state import load_study
from search.spec import Executor, load_spec
from search.trials.resources import ResourcePlanError

pytestmark = [pytest.mark.ray]

REPO = Path(__file__).resolve().parents[3]


def spec_with(tmp_path: Path, text: str, **changes) -> tuple[Path, object]:
    raw = yaml.safe_load(text)
    raw["storage"] = str(tmp_path / "results")
    for dotted, value in changes.items():
        node = raw
        *parents, last = dotted.split(".")
        for key in parents:
            node = node.setdefault(key, {})
        node[last] = value
    path = tmp_path / "space.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path, load_spec(path)


@pytest.mark.parametrize("executor", [Executor.DIRECT, Executor.TORCH_TRAINER])
def test_asha_cuts_a_weak_trial_and_optuna_sees_it_pruned(ray_cluster, tmp_path, tiny_spec, executor):
    # One trial at a time makes ASHA's decision deterministic: the strong first trial sets
    # the rung, the hopeless second one (tiny lr, huge sparsity weight) falls below it.
    # With torch_trainer, the trials share one pool of Train workers: the cut trial's
    # workers must leave it and take the next trial.
    path, spec = spec_with(tmp_path, tiny_spec, **{
        "search.max_concurrent_trials": 1, "search.num_samples": 3, "fixed.epochs": 4,
        "search.points_to_evaluate": [{"lr": 0.03, "sparsity_lambda": 0.001}, {"lr": 0.001, "sparsity_lambda": 0.1}],
        "resources.executor": executor.value,
    })
    outcome = run_experiment(spec, RunOptions(spec_path=path))
    assert outcome.plan.executor is executor
    assert not outcome.results.errors
    df = outcome.results.get_dataframe()
    assert len(df) == 3 and df["val_accuracy"].notna().all()
    study = outcome.searcher._ot_study
    by_number = {t.number: t for t in study.get_trials(deepcopy=False)}
    assert by_number[0].state is optuna.trial.TrialState.COMPLETE
    assert by_number[0].params["lr"] == pytest.approx(0.03)
    assert by_number[1].state is optuna.trial.TrialState.PRUNED, outcome.pruned
    assert len(outcome.pruned) >= 1 and all(epoch < 4 for epoch in outcome.pruned.values())
    # Intermediate values are keyed by the trial's own epoch, 1-based.
    assert sorted(by_number[0].intermediate_values) == [1, 2, 3, 4]
    # Every trial checkpointed; kept checkpoints are bounded by num_to_keep and load back.
    for result in outcome.results:
        kept = sorted(Path(result.path).glob("checkpoint_*"))
        assert 1 <= len(kept) <= spec.checkpoint.num_to_keep + 1  # + the latest, kept for resume
        assert (kept[-1] / "checkpoint.pt").is_file() and (kept[-1] / "selection.json").is_file()
    best = outcome.results.get_best_result(metric="val_accuracy", mode="max")
    _assert_checkpoint_loads(Path(best.checkpoint.path) / "checkpoint.pt", num_features=10)
    assert (outcome.experiment.local / "spec.yaml").is_file()


def _assert_checkpoint_loads(path: Path, num_features: int) -> None:
    import torch

    from trainables import FeatureSelectionModel, FeatureSelectionTrainer

    trainer = FeatureSelectionTrainer(FeatureSelectionModel(num_features, 2, (64,)), device="cpu")
    data = trainer.load_checkpoint(path)
    assert data["epoch"] >= 1 and data["config"]["batch_size"] == 32
    assert torch.isfinite(trainer.gates.mu).all()


def test_a_torch_trainer_per_trial_reports_and_checkpoints(ray_cluster, tmp_path, tiny_spec):
    path, spec = spec_with(tmp_path, tiny_spec, **{"resources.executor": "torch_trainer", "search.num_samples": 1,
                                                   "resources.reuse_workers": False,
                                                   "fixed.epochs": 2, "scheduler.type": "none"})
    outcome = run_experiment(spec, RunOptions(spec_path=path))
    assert outcome.plan.executor is Executor.TORCH_TRAINER and not outcome.plan.reuse_workers
    assert not outcome.results.errors
    (result,) = list(outcome.results)
    assert result.metrics["epoch"] == 2 and 0 <= result.metrics["val_accuracy"] <= 1
    checkpoint = Path(result.metrics["checkpoint_path"])
    assert checkpoint.is_relative_to(outcome.experiment.local / "train_runs")
    _assert_checkpoint_loads(checkpoint / "checkpoint.pt", num_features=10)


POOL_TRAINABLE = '''
import os, tempfile
from pathlib import Path
import ray.train

def train(config, report, resume_from=None, world=None):
    ctx = ray.train.get_context()  # fails outside a Ray Train worker
    for epoch in range(1, config["epochs"] + 1):
        folder = tempfile.mkdtemp()
        (Path(folder) / "state.txt").write_text(f"{config['x']} {epoch}")
        report({"epoch": epoch, "score": config["x"] * epoch, "pid": os.getpid(),
                "rank": world.rank, "world_size": ctx.get_world_size()}, folder)
'''


def test_torch_trainer_trials_share_one_pool_of_train_workers(ray_cluster, tmp_path):
    (tmp_path / "pooled.py").write_text(POOL_TRAINABLE)
    path, spec = spec_with(tmp_path, """
        name: pooled
        trainable: pooled:train
        metric: score
        mode: max
        search: {num_samples: 3, sampler: random, seed: 1, max_concurrent_trials: 1}
        scheduler: {type: none}
        space: {x: {type: float, low: 1, high: 2}}
        fixed: {epochs: 2}
        resources: {executor: torch_trainer}
        checkpoint: {num_to_keep: 1}
    """)
    outcome = run_experiment(spec, RunOptions(spec_path=path))
    assert outcome.plan.reuse_workers and not outcome.results.errors
    df = outcome.results.get_dataframe()
    assert len(df) == 3 and set(df["world_size"]) == {1} and set(df["rank"]) == {0}
    assert (df["score"] == 2 * df["config/x"]).all()
    pids = {pid for result in outcome.results for pid in result.metrics_dataframe["pid"]}
    assert len(pids) == 1 and os.getpid() not in pids  # every epoch of every trial in one Train worker
    for result in outcome.results:  # Tune stores the checkpoints in the trial folder, as for direct trials
        checkpoint = Path(result.checkpoint.path)
        assert checkpoint.parent == Path(result.path)
        assert (checkpoint / "state.txt").read_text() == f"{result.config['x']} 2"
        assert len(list(Path(result.path).glob("checkpoint_*"))) == 1  # num_to_keep


def test_two_worker_ddp_trials(ray_cluster, tmp_path, tiny_spec):
    # Two trials, one after the other, on the same two DDP workers and process group.
    path, spec = spec_with(tmp_path, tiny_spec, **{"resources.num_workers": 2, "search.num_samples": 2,
                                                   "search.max_concurrent_trials": 1,
                                                   "fixed.epochs": 2, "scheduler.type": "none"})
    outcome = run_experiment(spec, RunOptions(spec_path=path))
    assert outcome.plan.executor is Executor.TORCH_TRAINER and outcome.plan.num_workers == 2
    assert not outcome.results.errors
    for result in outcome.results:
        history = result.metrics_dataframe
        assert list(history["epoch"]) == [1, 2]
        assert history["val_accuracy"].between(0, 1).all()
        _assert_checkpoint_loads(Path(result.checkpoint.path) / "checkpoint.pt", num_features=10)


def test_user_trainable_gets_shared_data(ray_cluster, tmp_path):
    (tmp_path / "my_trainable.py").write_text(textwrap.dedent("""
        def train(config, report, data=None):
            for epoch in range(1, config["epochs"] + 1):
                report({"epoch": epoch, "score": config["x"] * epoch, "n_features": data.num_features})
    """))
    path, spec = spec_with(tmp_path, """
        name: custom
        trainable: my_trainable:train
        data: {name: wine}
        metric: score
        mode: max
        search: {num_samples: 2, sampler: random, seed: 3}
        scheduler: {type: none}
        space: {x: {type: float, low: 1, high: 2}}
        fixed: {epochs: 2}
    """)
    outcome = run_experiment(spec, RunOptions(spec_path=path))
    df = outcome.results.get_dataframe()
    assert len(df) == 2 and set(df["n_features"]) == {13}
    assert (df["score"] == 2 * df["config/x"]).all()


def test_impossible_gpu_request_is_refused_before_any_trial(ray_cluster, tmp_path, tiny_spec):
    path, spec = spec_with(tmp_path, tiny_spec, **{"resources.use_gpu": True})
    with pytest.raises(ResourcePlanError, match="no GPU"):
        run_experiment(spec, RunOptions(spec_path=path))
    assert not (tmp_path / "results" / "tiny").exists()


def _cli(*args: str, cwd: Path, **env_vars: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO), **env_vars}
    env.pop("RAY_ADDRESS", None)
    return subprocess.run([sys.executable, "-m", "search", *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=300)


def _tensorboard_scalars(folder: Path) -> dict[str, dict[int, float]]:
    """tag -> step -> value, read back from a folder's event files by TensorBoard's own reader."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(folder), size_guidance={"scalars": 0})  # 0: keep every value
    events.Reload()
    return {tag: {e.step: e.value for e in events.Scalars(tag)} for tag in events.Tags()["scalars"]}


def test_cli_run_in_a_subprocess(tmp_path, tiny_spec):
    path, _ = spec_with(tmp_path, tiny_spec, **{"search.num_samples": 2, "fixed.epochs": 2})
    proc = _cli("run", str(path), "--num-cpus", "2", "--name", "cli", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "best trial" in proc.stdout and "top 2 trials" in proc.stdout
    assert "Configuration for experiment" not in proc.stdout  # Tune's banner does not pollute results
    # The terminal holds our lines only: one per trial event, no epoch lines, nothing of Ray's.
    ours = re.compile(r"^(\[ *\d+\.\ds\] (trial [0-9a-f]+ (started|completed|stopped|cut by ASHA|diverged|collapsed|reached|"
                      r"failed|FAILED)|\d+/\d+ trials done)"
                      r"|running cli: |starting Ray \(embedded|refit: trial [0-9a-f]+'s configuration|"
                      r"held-out test \(\d+ samples\) of the refit model of trial [0-9a-f]+: |results table: |Ray's own output: |note: |warning: )")
    lines = proc.stderr.splitlines()
    assert lines and [line for line in lines if not ours.match(line)] == [], proc.stderr
    assert sum(" started " in line for line in lines) == 2 and "epoch 2 val_accuracy=" not in proc.stderr
    assert re.search(r"held-out test \(\d+ samples\) of the refit model of trial [0-9a-f]+: test_accuracy=", proc.stderr)
    assert "  held-out test (" in proc.stdout  # in the summary, under the best trial
    log = tmp_path / "results" / "cli" / "run.log"
    assert f"Ray's own output: {log}" in proc.stderr
    assert "Started a local Ray instance" in log.read_text()  # Ray's own lines, kept
    assert "View the dashboard" not in log.read_text()  # trials in their own processes: no dashboard started
    # TensorBoard (`tensorboard --logdir <experiment>`) reads what Tune's logger wrote: every epoch's metrics.
    for trial in sorted((tmp_path / "results" / "cli").glob("trial_*")):
        rows = [json.loads(line) for line in (trial / "result.json").read_text().splitlines()]
        scalars = _tensorboard_scalars(trial)
        assert scalars["ray/tune/val_accuracy"] == pytest.approx({r["training_iteration"]: r["val_accuracy"] for r in rows})
        assert set(scalars["ray/tune/num_selected"]) == {r["training_iteration"] for r in rows}
    assert (tmp_path / "results" / "cli" / "spec.yaml").is_file()
    assert not list((tmp_path / "results" / "cli").glob("optuna.journal.lock*"))  # no lock copied with the folder
    saved = yaml.safe_load((tmp_path / "results" / "cli" / "spec.yaml").read_text())
    assert saved["name"] == "cli" and saved["search"]["num_samples"] == 2

    # A second run into the same name is refused before Ray starts: nothing of the first is touched.
    folder = tmp_path / "results" / "cli"
    before = {p.relative_to(folder): p.stat().st_mtime_ns for p in folder.rglob("*")}
    again = _cli("run", str(path), "--num-cpus", "2", "--name", "cli", "--num-samples", "1", cwd=tmp_path)
    assert again.returncode == 2, again.stderr[-3000:]
    assert f"experiment folder {folder} already holds an experiment" in again.stderr
    assert f"python -m search resume {folder}" in again.stderr and "--name NEW" in again.stderr
    assert "--overwrite" in again.stderr and "Traceback" not in again.stderr
    assert {p.relative_to(folder): p.stat().st_mtime_ns for p in folder.rglob("*")} == before
    first_table = pd.read_csv(folder / "results.csv")
    assert len(first_table) == 2

    # --overwrite replaces it: one experiment's trials in the table, not two runs' merged.
    replaced = _cli("run", str(path), "--num-cpus", "2", "--name", "cli", "--num-samples", "1", "--overwrite",
                    "--verbose", "--dashboard", cwd=tmp_path, PYTHONPROFILEIMPORTTIME="1")
    assert replaced.returncode == 0, replaced.stderr[-3000:]
    assert "View the dashboard at" in replaced.stderr  # asked for
    # MLflow is installed here (the test extra) but not used: the driver never imports it (Tune's usage tag of
    # the callbacks would, about 1 s before the first trial). Driver lines only: workers' come prefixed "(".
    assert importlib.util.find_spec("mlflow") is not None  # else the check below would hold whatever the code did
    driver_imports = [line.split("|")[-1].strip() for line in replaced.stderr.splitlines()
                      if line.startswith("import time:")]
    assert "ray.tune" in driver_imports
    assert "mlflow" not in driver_imports
    # --verbose: every epoch, and Ray's own output, in the terminal; no log file.
    assert "epoch 2 val_accuracy=" in replaced.stderr and "Started a local Ray instance" in replaced.stderr
    assert not log.exists()
    assert f"--overwrite: deleted the earlier experiment {folder}" in replaced.stderr
    table = pd.read_csv(folder / "results.csv")
    assert len(table) == 1 and not set(table["trial_id"]) & set(first_table["trial_id"])
    assert yaml.safe_load((folder / "spec.yaml").read_text())["search"]["num_samples"] == 1
    assert len(list(folder.glob("experiment_state-*.json"))) == 1


def test_cli_bad_spec_exits_2_and_starts_nothing(tmp_path, write_spec):
    path = write_spec("name: t\nmetric: val_acuracy\nfixed: {epochs: 2}\nstorage: out\n")
    proc = _cli("run", str(path), cwd=tmp_path)
    assert proc.returncode == 2
    assert "did you mean 'val_accuracy'" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "out").exists()
    proc = _cli("validate", str(path), cwd=tmp_path)
    assert proc.returncode == 2 and "space.yaml:2: metric" in proc.stderr


def test_a_metric_the_trainable_never_reports_fails_trials_with_a_clear_error(ray_cluster, tmp_path):
    (tmp_path / "wrong_metric.py").write_text(
        "def train(config, report):\n    report({'epoch': 1, 'score': 1.0})\n")
    path, spec = spec_with(tmp_path, """
        name: wrong
        trainable: wrong_metric:train
        metric: accuracy
        mode: max
        search: {num_samples: 1}
        space: {x: {type: float, low: 0, high: 1}}
        fixed: {epochs: 1}
        failure: {max_retries: 0}
    """)
    outcome = run_experiment(spec, RunOptions(spec_path=path))
    (error,) = outcome.results.errors
    assert "reported ['epoch', 'score'] but the spec needs ['accuracy']" in str(error)
    from search.results.summary import render_summary

    text, ok = render_summary(spec, outcome)
    assert not ok and "the spec needs ['accuracy']" in text


VALUE_CURVES = '''
import os
import time

# x -> the metric per epoch. 0 runs to its end (best at epoch 3, not the last); 1 stops itself
# by patience at epoch 3; 2 is hopeless at ASHA's first rung; 3 is still running when the time
# budget ends the search.
CURVES = {0: [0.5, 0.6, 0.8, 0.7], 1: [0.9, 0.95, 0.85], 2: [0.1, 0.2, 0.3, 0.4], 3: [0.95, 0.96, 0.97, 0.98]}
SPEC_COPY, BUDGET_S = "@SPEC_COPY@", @BUDGET_S@

def train(config, report):
    x = int(config["x"])
    for epoch, score in enumerate(CURVES[x], start=1):
        if x == 3 and epoch == 3:
            # The budget ends the search here. Its clock starts just after the run writes its spec copy, before
            # any trial: sleeping until 2 s past it outlasts it however long the trials before took (the run
            # waits for this sleep to end).
            time.sleep(max(0.0, os.path.getmtime(SPEC_COPY) + BUDGET_S + 2 - time.time()))
        stop = "early_stopping" if x == 1 and epoch == 3 else ""
        report({"epoch": epoch, "score": score, "stop_reason": stop})
        if stop:
            return
'''


def test_optuna_is_told_the_values_the_table_shows(ray_cluster, tmp_path):
    # The budget is most of this test's wall time: the four trials share one trial process, and x=3 sleeps until
    # the budget has run out. It must leave the trials before x=3's sleep time to run on a loaded machine (12 s did
    # not once, beside other work: x=0 was still unfinished); too short a budget fails the asserts, never passes them.
    from search.results import open_results

    spec_copy = tmp_path / "results" / "values" / "spec.yaml"  # written as the run starts, just before the budget's clock
    (tmp_path / "curves.py").write_text(VALUE_CURVES.replace("@SPEC_COPY@", str(spec_copy)).replace("@BUDGET_S@", "20"))
    path, spec = spec_with(tmp_path, """
        name: values
        trainable: curves:train
        metric: score
        mode: max
        search: {num_samples: 4, max_concurrent_trials: 1, sampler: random, time_budget_s: 20,
                 points_to_evaluate: [{x: 0}, {x: 1}, {x: 2}, {x: 3}]}
        scheduler: {type: asha, grace_period: 1, reduction_factor: 2}
        space: {x: {type: categorical, choices: [0, 1, 2, 3]}}
        fixed: {epochs: 4}
        failure: {max_retries: 0}
    """)
    outcome = run_experiment(spec, RunOptions(spec_path=path))
    table = open_results(outcome.path).table.set_index("x")
    study = load_study(outcome.path)
    by_x = {int(t.params["x"]): t for t in study.trials}
    State = optuna.trial.TrialState

    assert table.loc[0, "outcome"] == "completed" and table.loc[0, "best_epoch"] == 3
    assert by_x[0].state is State.COMPLETE and by_x[0].value == pytest.approx(0.8) == table.loc[0, "best_score"]
    assert table.loc[0, "last_score"] == pytest.approx(0.7)  # what Ray's OptunaSearch would have told
    assert table.loc[1, "outcome"] == "early_stopped"
    assert by_x[1].state is State.COMPLETE and by_x[1].value == pytest.approx(0.95) == table.loc[1, "best_score"]
    assert table.loc[2, "outcome"] == "pruned"
    assert by_x[2].state is State.PRUNED and by_x[2].intermediate_values == {1: pytest.approx(0.1)}
    # Stopped by the budget: PRUNED with what it reported, not RUNNING for ever, nor COMPLETE with a partial value.
    assert table.loc[3, "outcome"] == "stopped", table.loc[3, "status"]
    assert by_x[3].state is State.PRUNED
    assert by_x[3].intermediate_values == {1: pytest.approx(0.95), 2: pytest.approx(0.96)}
    # The values of the cut and the budget-stopped trials are the table's too (the best of what they reported).
    for x in (2, 3):
        assert by_x[x].value == pytest.approx(table.loc[x, "best_score"]), x
    assert outcome.unfinished == 0
    # Optuna's own journal beside it holds the same study: what optuna-dashboard and optuna.load_study open.
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    journal = optuna.load_study(study_name="values",
                                storage=JournalStorage(JournalFileBackend(str(Path(outcome.path) / "optuna.journal"))))
    assert len(journal.trials) == 4 and journal.direction is optuna.study.StudyDirection.MAXIMIZE
    for trial in journal.trials:
        same = by_x[int(trial.params["x"])]
        assert (trial.state, trial.value, trial.intermediate_values) == (same.state, same.value, same.intermediate_values)
        assert (Path(outcome.path) / f"trial_{trial.user_attrs['trial_id']}").is_dir()  # which trial folder it is


@pytest.mark.parametrize("executor", [Executor.DIRECT, Executor.TORCH_TRAINER])
def test_a_reported_checkpoint_is_registered_from_its_result_without_a_save_round_trip(ray_cluster, tmp_path,
                                                                                       tiny_spec, executor,
                                                                                       monkeypatch):
    """Issue 25, item 3: Tune answers a result that carries a checkpoint with a save() task on the trial's actor
    and holds the next epoch until the reply; ours registers the same checkpoint from the result at once."""
    from ray.tune.execution.tune_controller import TuneController
    from ray.tune.trainable.metadata import _TrainingRunMetadata
    from ray.tune.utils.serialization import _loads_with_cloudpickle

    saves, registered = [], []
    schedule_save, process_save = TuneController._schedule_trial_save, TuneController._process_trial_save
    monkeypatch.setattr(TuneController, "_schedule_trial_save",
                        lambda self, trial, *a, **k: (saves.append(trial.trial_id), schedule_save(self, trial, *a, **k))[1])
    monkeypatch.setattr(TuneController, "_process_trial_save",
                        lambda self, trial, value: (registered.append((trial.trial_id, Path(value.checkpoint.path).name,
                                                                      value.metrics.get("val_accuracy"))),
                                                    process_save(self, trial, value))[1])
    path, spec = spec_with(tmp_path, tiny_spec, **{"resources.executor": executor.value, "scheduler.type": "none",
                                                   "checkpoint.num_to_keep": None, "fixed.checkpoint_every_s": 0})
    outcome = run_experiment(spec, RunOptions(spec_path=path))
    experiment = Path(outcome.path)
    reported = {}  # trial id -> [(checkpoint folder, val_accuracy)] in result.json order
    for trial in experiment.glob("trial_*"):
        rows = [json.loads(line) for line in (trial / "result.json").read_text().splitlines()]
        reported[rows[0]["trial_id"]] = [(r["checkpoint_dir_name"], r["val_accuracy"]) for r in rows]
    assert len(reported) == 3 and all(len(rows) == 3 for rows in reported.values())  # every epoch saved
    assert saves == []  # no save() task sent to any trial's actor
    assert sorted(registered) == sorted((t, name, acc) for t, rows in reported.items() for name, acc in rows)
    # Tune's saved state holds each trial's checkpoints with their metrics, every folder on disk.
    state_file = sorted(experiment.glob("experiment_state-*.json"))[-1]
    state = _loads_with_cloudpickle(state_file.read_text())
    for trial_json, meta_json in state["trial_data"]:
        trial_id = json.loads(trial_json)["trial_id"]
        manager = _TrainingRunMetadata.from_json_state(meta_json).checkpoint_manager
        kept = [(Path(r.checkpoint.path).name, r.metrics["val_accuracy"]) for r in manager.best_checkpoint_results]
        assert sorted(kept) == sorted(reported[trial_id])
        assert Path(manager.latest_checkpoint_result.checkpoint.path).name == reported[trial_id][-1][0]
        assert all((experiment / f"trial_{trial_id}" / name / "checkpoint.pt").is_file() for name, _ in kept)
