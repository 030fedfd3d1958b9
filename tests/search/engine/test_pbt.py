"""Population-based training: ``scheduler: {type: pbt}`` on Tune's PopulationBasedTraining (issue 26, item 7)."""

from __future__ import annotations

import json
import math
import random
from pathlib import Path

import pytest
import torch
import yaml

from search.spec import SpecError, load_spec
from search.spec.load import dump_spec

REPO = Path(__file__).resolve().parents[3]

BASE = {
    "name": "pbt",
    "trainable": "feature_selection",
    "data": {"name": "madelon_guyon", "n_samples": 400, "n_probes": 20, "seed": 0},
    "metric": "val_accuracy",
    "mode": "max",
    "search": {"num_samples": 4, "seed": 0},
    "scheduler": {"type": "pbt", "perturbation_interval": 2},
    "space": {"lr": {"type": "float", "low": 3e-3, "high": 3e-2, "log": True},
              "sparsity_lambda": {"type": "float", "low": 2e-4, "high": 3e-3, "log": True}},
    "fixed": {"epochs": 6, "batch_size": 64, "patience": 6},
    "failure": {"max_retries": 0},
}


def _problems(tmp_path: Path, **changes) -> dict[str, str]:
    raw = {**BASE, **changes}
    path = tmp_path / "space.yaml"
    path.write_text(yaml.safe_dump(raw))
    try:
        load_spec(path)
    except SpecError as exc:
        return {p.path: p.message for p in exc.problems}
    return {}


# ---------------------------------------------------------------- the spec's rules
def test_the_shipped_pbt_spec_is_valid_and_its_copy_reads_back(tmp_path):
    spec = load_spec(REPO / "spaces" / "pbt.yaml")
    assert spec.scheduler.type == "pbt" and spec.checkpoints_to_keep == 1_000_000 and not spec.refits
    # The experiment keeps a copy with every field written out (ASHA's defaults too): it must still be valid.
    (tmp_path / "spec.yaml").write_text(dump_spec(spec))
    assert load_spec(tmp_path / "spec.yaml") == spec


@pytest.mark.parametrize(("changes", "path", "words"), [
    ({"scheduler": {"type": "pbt", "grace_period": 3}}, "scheduler", "grace_period: ASHA's setting(s), but scheduler.type is pbt"),
    ({"scheduler": {"type": "asha", "perturbation_interval": 3}}, "scheduler", "perturbation_interval: PBT's setting(s)"),
    ({"scheduler": {"type": "pbt", "mutate": []}}, "scheduler", "mutate: an empty list"),
    ({"scheduler": {"type": "pbt", "mutate": ["lrr"]}}, "scheduler.mutate.0", "'lrr' is not a searched parameter (did you mean 'lr'?); PBT mutates the space's parameters"),
    ({"scheduler": {"type": "pbt", "perturbation_interval": 6}}, "scheduler.perturbation_interval",
     "burn_in_period + perturbation_interval (0 + 6) must be < the 6 epochs a trial runs"),
    ({"search": {"num_samples": 4, "sampler": "random"}}, "search.sampler", "Ray Tune takes no searcher with PBT"),
    ({"metric": ["val_accuracy", "num_selected"], "mode": ["max", "min"]}, "scheduler.metric",
     "PBT copies the better trials by one metric"),
    ({"space": {"lr": {"type": "float", "low": 3e-3, "high": 3e-2},
                "dropout": {"type": "float", "low": 0.0, "high": 0.5, "when": {"lr": {"ge": 0.01}}}}},
     "space.dropout.when", "a conditional parameter needs scheduler type asha or none"),
    # The built-in trainable's architecture is in its checkpoint: a restore cannot change it.
    ({"space": {"lr": {"type": "float", "low": 3e-3, "high": 3e-2}, "dropout": {"type": "float", "low": 0.0, "high": 0.5}},
      "scheduler": {"type": "pbt", "perturbation_interval": 2, "mutate": ["lr", "dropout"]}}, "scheduler.mutate.1",
     "cannot change 'dropout' when PBT restores a trial from another's checkpoint"),
    ({"space": {"dropout": {"type": "float", "low": 0.0, "high": 0.5}}}, "scheduler",
     "PBT has nothing to mutate: trainable 'feature_selection' cannot change any searched parameter (dropout)"),
    # A trial that never checkpoints, or not every epoch, would hand weaker trials no model, or an older one.
    ({"fixed": {"epochs": 6, "checkpoint_every": 0}}, "fixed.checkpoint_every",
     "PBT copies a trial's latest checkpoint into weaker trials, so every epoch is saved (checkpoint_every 1); "
     "remove fixed.checkpoint_every, or use asha"),
    ({"fixed": {"epochs": 6, "checkpoint_every": 2}}, "fixed.checkpoint_every", "every epoch is saved"),
    ({"fixed": {"epochs": 6, "checkpoint_every_s": 30}}, "fixed.checkpoint_every_s",
     "every epoch is saved (checkpoint_every_s 0); remove fixed.checkpoint_every_s"),
    ({"space": {"lr": {"type": "float", "low": 3e-3, "high": 3e-2},
                "checkpoint_every_s": {"type": "float", "low": 0.0, "high": 5.0}}}, "space.checkpoint_every_s",
     "remove space.checkpoint_every_s"),
    # A TorchTrainer per trial keeps its checkpoints in its own Train run: PBT would never copy one.
    ({"resources": {"num_workers": 2, "reuse_workers": False}}, "resources.reuse_workers",
     "scheduler pbt with executor torch_trainer needs reuse_workers: true (the default): a TorchTrainer per trial "
     "keeps its checkpoints in its own Train run, which PBT cannot copy from one trial into another"),
    ({"resources": {"executor": "torch_trainer", "reuse_workers": False}}, "resources.reuse_workers",
     "needs reuse_workers: true"),
])
def test_a_pbt_spec_that_cannot_run_is_refused_where_it_is_wrong(tmp_path, changes, path, words):
    problems = _problems(tmp_path, **changes)
    assert path in problems, problems
    assert words in problems[path]


def test_pbt_takes_the_built_in_trainables_checkpoint_settings_when_they_say_every_epoch(tmp_path):
    assert _problems(tmp_path, fixed={"epochs": 6, "checkpoint_every": 1, "checkpoint_every_s": 0}) == {}
    assert _problems(tmp_path, resources={"num_workers": 2, "reuse_workers": True}) == {}  # the kept pool
    assert _problems(tmp_path, resources={"num_workers": 1, "reuse_workers": False}) == {}  # direct: no Train


def test_under_pbt_a_function_that_takes_checkpoint_every_s_is_called_with_0_whatever_its_report_says():
    """A wrapper of the built-in's report that drops the report's request for every epoch still saves every epoch."""
    from search.trials.setup import TrialSetup, checked_report, function_config
    from trainables.tasks import train_feature_selection

    def setup(tracked: tuple[str, ...]) -> TrialSetup:
        return TrialSetup("trainables.tasks:train_feature_selection", (), None, None, "/x", 2,
                          "val_accuracy", "max", ("val_accuracy",), tracked)

    pbt, asha = setup(("lr",)), setup(())
    assert pbt.checkpoint_every_epoch and not asha.checkpoint_every_epoch
    config = {"lr": 0.01, "checkpoint_every_s": 30}
    assert function_config(train_feature_selection, config, pbt) == {"lr": 0.01, "checkpoint_every_s": 0}
    assert function_config(train_feature_selection, config, asha) == config
    assert function_config(lambda config, report: None, config, pbt) == config  # a function without the key
    assert config == {"lr": 0.01, "checkpoint_every_s": 30}  # the trial's own config is not changed
    report = checked_report(lambda metrics, checkpoint=None: None, ("val_accuracy",), "t",
                            every_epoch=pbt.checkpoint_every_epoch)
    assert report.checkpoint_every_epoch is True


def test_by_default_pbt_mutates_what_the_built_in_trainable_can_change_at_a_restore(tmp_path):
    from search.spec.schedulers import pbt_mutations
    from trainables.tasks import train_feature_selection

    space = ["lr", "dropout", "sparsity_lambda", "hidden_sizes"]
    assert pbt_mutations(None, space, train_feature_selection) == ["lr", "sparsity_lambda"]
    assert pbt_mutations(["lr"], space, train_feature_selection) == ["lr"]
    assert pbt_mutations(None, space, lambda config, report: None) == space  # declares nothing: all of them
    assert _problems(tmp_path) == {}


def test_validate_prints_what_pbt_does(tmp_path, capsys):
    from search.cli.main import main

    assert main(["validate", str(REPO / "spaces" / "pbt.yaml")]) == 0
    out = capsys.readouterr().out
    assert "search      random population (PBT), 6 trials, seed 0" in out
    assert "PBT on epoch and max val_accuracy: every 3 epochs (from epoch 3) the bottom 0.25" in out
    assert "there is no refit" in out
    assert "checkpoints every epoch (PBT copies a trial's latest checkpoint); all kept" in out


# ---------------------------------------------------------------- the space, as Tune draws and PBT mutates it
def test_tune_domains_keep_the_spec_bounds_inclusive_and_on_their_step():
    from search.engine.pbt import tune_domain
    from search.spec.models import CategoricalParam, FloatParam, IntParam

    cases = [IntParam(type="int", low=2, high=4), IntParam(type="int", low=1, high=8, log=True),
             IntParam(type="int", low=16, high=64, step=16), FloatParam(type="float", low=0.1, high=0.5, step=0.1),
             FloatParam(type="float", low=1e-4, high=1e-1, log=True), CategoricalParam(type="categorical", choices=["a", 3])]
    for param in cases:
        drawn = {tune_domain(param).sample(random_state=i) for i in range(400)}
        if isinstance(param, CategoricalParam):
            assert drawn == {"a", 3}
            continue
        assert min(drawn) >= param.low and max(drawn) <= param.high
        if isinstance(param, IntParam):
            assert all(isinstance(v, int) for v in drawn) and {param.low, param.high} <= drawn
        if param.step:
            assert all(abs((v - param.low) / param.step - round((v - param.low) / param.step)) < 1e-9 for v in drawn)


def test_a_mutated_value_goes_back_into_the_space():
    from search.engine.pbt import IntoSpace
    from search.spec.models import CategoricalParam, FloatParam, IntParam

    into = IntoSpace({"lr": FloatParam(type="float", low=1e-3, high=1e-2, log=True),
                      "width": IntParam(type="int", low=16, high=64, step=16),
                      "ratio": FloatParam(type="float", low=0.1, high=0.5, step=0.1),
                      "act": CategoricalParam(type="categorical", choices=["relu", "tanh"])})
    out = into({"lr": 1e-2 * 1.2, "width": 48 * 1.2, "ratio": 0.3 * 0.8, "act": "tanh", "epochs": 9})
    assert out == {"lr": 1e-2, "width": 64, "ratio": pytest.approx(0.2), "act": "tanh", "epochs": 9}
    assert into({"lr": 1e-3 * 0.8, "width": 16 * 0.8, "ratio": 0.5 * 1.2})["width"] == 16
    assert isinstance(into({"width": 38.0})["width"], int) and into({"width": 38.0})["width"] == 32


# ---------------------------------------------------------------- the built-in trainable takes the new settings
def test_the_feature_selection_trainer_takes_new_settings_and_keeps_its_optimizer_state():
    from trainables.feature_selection import FeatureSelectionModel, FeatureSelectionTrainer

    torch.manual_seed(0)
    trainer = FeatureSelectionTrainer(FeatureSelectionModel(6, 2, (8,)), lr=1e-3, selector_lr_ratio=10.0,
                                      sparsity_lambda=0.01, max_norm=5.0, device="cpu")
    x, y = torch.randn(32, 6), torch.randint(0, 2, (32,))
    trainer.fit([(x, y)], 1)
    moments = [s["exp_avg"].clone() for s in trainer.optimizers[0].state.values()]
    trainer.set_hyperparameters(lr=4e-3, selector_lr_ratio=2.0, sparsity_lambda=0.5, weight_decay=1e-4, max_norm=1.0)
    classifier, gates = trainer.optimizers
    assert classifier.param_groups[0]["lr"] == 4e-3 and classifier.param_groups[0]["weight_decay"] == 1e-4
    assert gates.param_groups[0]["lr"] == pytest.approx(8e-3) and gates.param_groups[0]["weight_decay"] == 0.0
    assert trainer.sparsity_lambda == 0.5
    assert [cb.max_norm for cb in trainer.callbacks if type(cb).__name__ == "GradientClipping"] == [1.0]
    assert all(torch.equal(a, s["exp_avg"]) for a, s in zip(moments, classifier.state.values()))  # Adam's moments kept


def test_a_trial_restored_under_a_new_config_trains_with_it(tmp_path):
    from trainables.tasks import train_feature_selection

    config = {"lr": 1e-3, "sparsity_lambda": 0.01, "epochs": 2, "batch_size": 64, "device": "cpu",
              "data": {"name": "madelon_guyon", "n_samples": 200, "n_probes": 10, "seed": 0}}
    saved: list[tuple[dict, str]] = []

    def keep(metrics, checkpoint=None):
        if checkpoint is not None:
            folder = tmp_path / f"epoch{metrics['epoch']}"
            import shutil

            shutil.copytree(checkpoint, folder)
            saved.append((dict(metrics), str(folder)))

    train_feature_selection(config, keep)
    reported: list[dict] = []
    train_feature_selection({**config, "lr": 7e-3, "epochs": 3}, lambda m, c=None: reported.append(dict(m)),
                            resume_from=saved[-1][1])
    assert [m["epoch"] for m in reported] == [3] and reported[0]["lr"] == pytest.approx(7e-3)


# ---------------------------------------------------------------- the table's schedule
def test_a_checkpoint_carries_its_models_schedule_and_the_table_reads_it(tmp_path):
    from search.results.folder import TrialRecord
    from search.results.schedule import read_schedule
    from search.results.schedule import describe_schedule
    from search.trials.setup import checked_report, epoch_state

    def run(params, resumed, epochs, name):
        report = checked_report(lambda metrics, checkpoint=None: None, ("score",), "t", resumed, params=params)
        for epoch in epochs:
            folder = tmp_path / f"{name}{epoch}"
            folder.mkdir()
            report({"epoch": epoch, "score": 1.0}, str(folder))
        return folder

    from ray.tune import Checkpoint

    a, b, c = {"lr": 0.01, "wd": 0.0}, {"lr": 0.012, "wd": 0.0}, {"lr": 0.012, "wd": 1e-4}
    first = run(a, None, [1, 2], "a")
    paused = run(a, epoch_state(Checkpoint.from_directory(str(first))), [3], "p")  # same values: no new part
    copied = run(b, epoch_state(Checkpoint.from_directory(str(paused))), [4, 5], "b")  # another trial's, mutated
    last = run(c, epoch_state(Checkpoint.from_directory(str(copied))), [6], "c")
    schedule = read_schedule(last)
    assert schedule == [(1, a), (4, b), (6, c)]
    assert read_schedule(tmp_path / "a1") == [(1, a)] and read_schedule(None) == []
    record = TrialRecord("x", None, {"epochs": 6, **c}, None, schedule=schedule)  # type: ignore[arg-type]
    assert record.config_at(3)["lr"] == 0.01 and record.config_at(4)["lr"] == 0.012 and record.config_at(5)["wd"] == 0.0
    assert record.config_at(6)["wd"] == 1e-4 and record.config_at(None) == {"epochs": 6, **c}
    assert describe_schedule(schedule, ("lr", "wd")) == "1: lr=0.01 wd=0 → 4: lr=0.012 → 6: wd=0.0001"


def test_a_row_whose_checkpoint_folder_was_written_again_no_longer_names_it(tmp_path):
    import pandas as pd
    from ray.tune import Checkpoint

    from search.results.schedule import forget_overwritten_checkpoints
    from search.trials.setup import EPOCH_STATE_KEY

    folders = {}
    for name, saved_at in (("checkpoint_000001", 2), ("checkpoint_000002", 5), ("checkpoint_000003", 4)):
        folders[name] = tmp_path / name
        folders[name].mkdir()
        Checkpoint.from_directory(str(folders[name])).set_metadata({EPOCH_STATE_KEY: {"mode": "own", "reported": saved_at}})
    # Epoch 3 saved checkpoint_000002, then the trial restarted from another's epoch 4 and saved epoch 5 there.
    history = pd.DataFrame({"epoch": [2, 3, 4, 5], "checkpoint_dir_name": [
        "checkpoint_000001", "checkpoint_000002", "checkpoint_000003", "checkpoint_000002"]})
    forget_overwritten_checkpoints(history, folders)
    names = [None if pd.isna(name) else name for name in history["checkpoint_dir_name"]]
    assert names == ["checkpoint_000001", None, "checkpoint_000003", "checkpoint_000002"]


# ---------------------------------------------------------------- a real PBT search
@pytest.fixture(scope="module")
def pbt_run(ray_cluster, tmp_path_factory):
    import contextlib
    import io

    from search.engine.run import RunOptions, run_experiment

    tmp = tmp_path_factory.mktemp("pbt")
    path = tmp / "space.yaml"
    path.write_text(yaml.safe_dump({**BASE, "storage": str(tmp / "results")}))
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        outcome = run_experiment(load_spec(path), RunOptions(spec_path=path))
    return Path(outcome.path), err.getvalue()


def _rows(trial: Path) -> list[dict]:
    return [json.loads(line) for line in (trial / "result.json").read_text().splitlines() if line.strip()]


def _state(trial: Path, row: dict) -> dict:
    from ray.tune import Checkpoint

    from search.trials.setup import EPOCH_STATE_KEY

    return Checkpoint.from_directory(str(trial / row["checkpoint_dir_name"])).get_metadata()[EPOCH_STATE_KEY]


@pytest.mark.ray
def test_pbt_copies_better_trials_and_every_trial_trains_every_epoch_under_its_config(pbt_run):
    folder, err = pbt_run
    trials = sorted(folder.glob("trial_*"))
    assert len(trials) == 4
    assert sorted(folder.glob("pbt_policy_*.txt")), "no trial was ever perturbed"
    copied = 0
    for trial in trials:
        rows = _rows(trial)
        assert rows[-1]["epoch"] == 6, (trial.name, [r["epoch"] for r in rows])
        for row in rows:
            # The built-in trainable trains with the configuration it is given at each (re)start: its reported lr.
            assert row["lr"] == pytest.approx(row["config"]["lr"])
            assert 3e-3 - 1e-12 <= row["config"]["lr"] <= 3e-2 + 1e-12  # mutated values stay in the space
            # Each checkpoint carries its model's schedule, which ends with the values this epoch trained under
            # (a folder a restarted trial wrote again holds a later epoch's: it says so).
            state = _state(trial, row)
            if state["reported"] != row["epoch"]:
                continue
            first, values = state["schedule"][-1]
            assert first <= row["epoch"] and values == {k: row["config"][k] for k in ("lr", "sparsity_lambda")}
            firsts = [f for f, _ in state["schedule"]]
            assert firsts[0] == 1 and firsts == sorted(set(firsts))
        # Every epoch a trial trained is in its result.json, to the last: Tune's loggers copied the storage's older
        # copy over the driver's file at each restart, and a trial PBT paused or restarted lost the rows since the
        # last sync. A row follows the one before it, or starts a new part of the schedule (a copy of another trial).
        for before, after in zip(rows, rows[1:]):
            follows = after["epoch"] == before["epoch"] + 1 and after["config"] == before["config"]
            restarted = after["config"] != before["config"] and (
                _state(trial, after)["reported"] != after["epoch"] or _state(trial, after)["schedule"][-1][0] == after["epoch"])
            assert follows or restarted, (trial.name, [r["epoch"] for r in rows])
            copied += restarted
    assert copied >= 1
    assert "(PBT), now  lr=" in err and "continues from trial " in err
    assert err.count(" started  ") == 4  # a trial PBT pauses and resumes is not "started" again


@pytest.mark.ray
def test_the_table_and_report_show_each_trials_configuration_over_time(pbt_run):
    from search.results import best_trial, open_results
    from search.results.report import render_report

    folder, err = pbt_run
    results = open_results(folder)
    table = results.table
    assert list(table["outcome"]) == ["completed"] * 4 and set(table["epochs_run"]) == {6}
    assert not results.files.warnings  # no "no Optuna journal" note: PBT has none by design
    changed = table[table["schedule"].str.contains("→")]
    assert len(changed) >= 1
    row = changed.iloc[0]
    record = results.record(row["trial_id"])
    assert row["lr"] == pytest.approx(record.config_at(int(row["best_epoch"]))["lr"])  # the config of its best epoch
    best = best_trial(results)
    assert best.params["lr"] == pytest.approx(results.record(best.trial_id).config_at(best.epoch)["lr"])
    for row in table.itertuples(index=False):  # each trial's checkpoint is its best epoch's, not a later one's
        assert _state(folder / f"trial_{row.trial_id}", {"checkpoint_dir_name": Path(row.checkpoint).name})[
            "reported"] == row.best_epoch
    assert not (folder / "refit").exists()  # a schedule is not one configuration: no refit
    assert json.loads((folder / "heldout.json").read_text())["chosen"] == best.trial_id
    page = render_report(folder)
    assert 'id="schedules"' in page and "plot-schedules" in page


@pytest.mark.ray
def test_a_pbt_search_cannot_be_grown_or_warm_started(pbt_run, tmp_path):
    from search.engine.grow import Growth
    from search.engine.run import RunOptions, resume_experiment, run_experiment
    from search.experiment import Experiment, ExperimentError

    folder, _ = pbt_run
    before = {p.name: p.stat().st_mtime_ns for p in folder.iterdir()}
    with pytest.raises(ExperimentError, match="--num-samples: .* population is fixed when it starts"):
        resume_experiment(Experiment.at(folder), RunOptions(), Growth(num_samples=8))
    with pytest.raises(ExperimentError, match="--time-budget: .* trials a time budget stopped have ended"):
        resume_experiment(Experiment.at(folder), RunOptions(), Growth(time_budget_s=60))
    assert {p.name: p.stat().st_mtime_ns for p in folder.iterdir()} == before
    path = tmp_path / "space.yaml"
    path.write_text(yaml.safe_dump({**BASE, "name": "again", "storage": str(tmp_path / "results")}))
    with pytest.raises(ExperimentError, match="PBT .* draws its population at random"):
        run_experiment(load_spec(path), RunOptions(spec_path=path), warm_start_from=Experiment.at(folder))
    assert not (tmp_path / "results" / "again").exists()


# ---------------------------------------------------------------- Tune's result logs across a restart
class _Trial:
    """What Tune's result loggers read of a trial: its config, checkpoint, staging folder and storage."""

    def __init__(self, staging: Path, storage: Path) -> None:
        import pyarrow.fs

        from types import SimpleNamespace

        self.config = {"x": 1}
        self.checkpoint = object()  # a trial with a checkpoint: Tune's loggers restore its files from storage
        self.local_path = str(staging)
        self.storage = SimpleNamespace(trial_fs_path=str(storage), storage_filesystem=pyarrow.fs.LocalFileSystem())

    def init_local_path(self) -> None:
        Path(self.local_path).mkdir(parents=True, exist_ok=True)


@pytest.mark.parametrize("name", ["result.json", "progress.csv"])
def test_a_trial_restarted_by_the_same_driver_keeps_the_result_rows_it_wrote(tmp_path, name):
    from search.internals import result_loggers

    staging, storage = tmp_path / "staging", tmp_path / "storage"
    staging.mkdir()
    storage.mkdir()
    (storage / name).write_text("synced\n")  # the storage's copy: synced a while ago
    (staging / name).write_text("synced\nsince\n")  # this driver's, with the rows reported since
    json_logger, csv_logger = result_loggers()

    def start(trial: _Trial) -> None:  # the JSON logger opens its file when the trial starts, the CSV one at a result
        if name == "result.json":
            json_logger.log_trial_start(trial)
        else:
            csv_logger.log_trial_result(1, trial, {"epoch": 1})
        (json_logger if name == "result.json" else csv_logger).log_trial_end(trial)

    start(_Trial(staging, storage))  # a retry, or PBT restarting the trial
    assert (staging / name).read_text().startswith("synced\nsince\n")
    # A driver that has no file of its own (a resume in a new process) still starts from the storage's copy.
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    start(_Trial(fresh, storage))
    assert (fresh / name).read_text().startswith("synced\n")


@pytest.mark.ray
@pytest.mark.slow
def test_a_pbt_search_interrupted_after_a_copy_resumes_to_the_end(tmp_path):
    """Ctrl-C right after the first trial went on from another's checkpoint; `resume` restores Tune's PBT search
    (with the same param space, which Tuner.restore insists on) and every trial trains to its last epoch."""
    import os
    import signal
    import subprocess
    import sys

    env = {**os.environ, "PYTHONPATH": str(REPO), "PYTHONUNBUFFERED": "1"}
    env.pop("RAY_ADDRESS", None)
    path = tmp_path / "space.yaml"
    path.write_text(yaml.safe_dump({**BASE, "fixed": {**BASE["fixed"], "epochs": 10}, "storage": str(tmp_path / "results")}))
    proc = subprocess.Popen([sys.executable, "-m", "search", "run", str(path), "--num-cpus", "2"], cwd=tmp_path, env=env,
                            text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    seen = []
    for line in proc.stderr:  # the run's own lines, as they come
        seen.append(line)
        if " continues from trial " in line:
            proc.send_signal(signal.SIGINT)
            break
    _, rest = proc.communicate(timeout=180)
    assert proc.returncode == 130, "".join(seen)[-2000:] + rest[-2000:]
    folder = tmp_path / "results" / "pbt"
    done = subprocess.run([sys.executable, "-m", "search", "resume", str(folder), "--num-cpus", "2"], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    from search.results import open_results

    table = open_results(folder).table
    assert list(table["outcome"]) == ["completed"] * 4 and set(table["epochs_run"]) == {10}
    assert table["schedule"].str.contains("→").any()


RAY_STYLE = '''
import json, tempfile
from pathlib import Path
from ray import tune


def train(config):
    """Ray Tune's own shape: it resumes from tune.get_checkpoint() and reports with tune.report."""
    start, w = 0, 0.0
    checkpoint = tune.get_checkpoint()
    if checkpoint:
        with checkpoint.as_directory() as folder:
            state = json.loads((Path(folder) / "state.json").read_text())
            start, w = state["epoch"], state["w"]
    for epoch in range(start + 1, config["epochs"] + 1):
        w += config["lr"] * (3.0 - w)
        folder = tempfile.mkdtemp()
        (Path(folder) / "state.json").write_text(json.dumps({"epoch": epoch, "w": w}))
        tune.report({"epoch": epoch, "score": -(3.0 - w) ** 2, "lr_used": config["lr"]},
                    checkpoint=tune.Checkpoint.from_directory(folder))
'''


@pytest.mark.ray
def test_pbt_runs_a_ray_tune_function_unchanged_and_keeps_its_schedule(ray_cluster, tmp_path):
    from search.engine.run import RunOptions, run_experiment
    from search.results import open_results

    (tmp_path / "quadratic.py").write_text(RAY_STYLE)
    path = tmp_path / "space.yaml"
    path.write_text(yaml.safe_dump({
        "name": "quadratic", "trainable": "quadratic:train", "metric": "score", "mode": "max",
        "search": {"num_samples": 4, "seed": 0},
        "scheduler": {"type": "pbt", "perturbation_interval": 2, "quantile_fraction": 0.5},
        "space": {"lr": {"type": "float", "low": 0.01, "high": 0.5, "log": True}},
        "fixed": {"epochs": 8}, "failure": {"max_retries": 0}, "storage": str(tmp_path / "results")}))
    folder = Path(run_experiment(load_spec(path), RunOptions(spec_path=path)).path)
    for trial in folder.glob("trial_*"):  # its own code trained with the lr it was given at each (re)start
        assert all(row["lr_used"] == row["config"]["lr"] for row in _rows(trial))
    table = open_results(folder).table
    assert set(table["epochs_run"]) == {8}
    copied = table[table["schedule"].str.contains("→")]
    assert len(copied) >= 1  # a copied trial's schedule starts with the lr of the trial it was copied from
    firsts = {row.trial_id: row.schedule.split(" → ")[0] for row in table.itertuples()}
    assert all(first.startswith("1: lr=") for first in firsts.values())


@pytest.mark.parametrize(("scheduler", "kept", "period"), [
    ({"type": "pbt", "perturbation_interval": 2}, None, 10),  # every checkpoint kept: no count forces Tune's syncs
    ({"type": "asha"}, None, 10),                               # num_to_keep: null, the same
    ({"type": "asha"}, 2, 300),                                 # Tune syncs every 2 checkpoints of a trial itself
])
def test_a_run_that_keeps_every_checkpoint_syncs_its_rows_every_few_seconds(tmp_path, scheduler, kept, period):
    """Tune syncs the driver's files (each trial's result.json) to the storage every `num_to_keep` checkpoints of a
    trial, else every sync_period (5 min by default). Seen: a PBT run killed (SIGKILL) seconds into its trials had no
    result.json in its storage; resumed, every trial's history began at the epoch it resumed from (7 or 10). With
    a 10-s period, a run killed 15 s after its first copy kept every trial's rows up to epoch 24 (by hand)."""
    from search.engine.tuner import sync_config_of
    from search.spec.models import Spec

    spec = Spec.model_validate({**BASE, "scheduler": scheduler, "checkpoint": {"num_to_keep": kept},
                                "storage": str(tmp_path)})
    assert sync_config_of(spec).sync_period == period
