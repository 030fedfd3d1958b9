"""Interrupts, kills, failures, divergence, damaged checkpoints and warm starts, with real processes."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import optuna
import psutil
import pytest
import yaml

from search.engine.run import RunOptions, run_experiment
from search.results.searcher_state import load_study
from search.spec import Executor, load_spec

REPO = Path(__file__).resolve().parents[3]

# Logs every epoch it runs ("x epoch attempt-pid") so tests can prove what ran twice.
SLOW_TRAINABLE = '''
import json, os, tempfile, time
from pathlib import Path

def train(config, report, resume_from=None):
    log = Path(config["log_dir"])
    start = 1
    if resume_from is not None:
        start = json.loads((Path(resume_from) / "state.json").read_text())["epoch"] + 1
    if config.get("pause_x") == config["x"] and not (log / "paused").exists():
        (log / "paused").write_text(str(os.getpid()))  # the test interrupts the run here, once
        time.sleep(120)
    for epoch in range(start, config["epochs"] + 1):
        time.sleep(config["sleep"])
        if config.get("fail_once") and epoch == 2 and resume_from is None:
            raise RuntimeError("boom on the first attempt")
        if config.get("pid_at") == epoch and resume_from is None:
            (log / f"pid-{config['x']}").write_text(str(os.getpid()))
            time.sleep(60)  # wait here to be killed
        diverged = config.get("nan_at") == epoch
        score = float("nan") if diverged else config["x"] * epoch
        # Logged before its report: an interrupt between this line and the checkpoint may
        # legitimately run the epoch again, but an epoch that ran is never missing from the log
        # (logged after report, a SIGINT landing between the two left a checkpointed epoch out).
        with open(log / "epochs.log", "a") as fh:
            fh.write(f"{config['x']} {epoch} {os.getpid()}\\n")
        folder = tempfile.mkdtemp()
        (Path(folder) / "state.json").write_text(json.dumps({"epoch": epoch}))
        report({"epoch": epoch, "score": score, "stop_reason": "diverged" if diverged else ""}, folder)
        if diverged:
            return
'''


def write_experiment(tmp_path: Path, name: str, **fixed) -> Path:
    (tmp_path / "slow.py").write_text(SLOW_TRAINABLE)
    logs = tmp_path / "logs"
    logs.mkdir(exist_ok=True)
    spec = {
        "name": name, "trainable": "slow:train", "metric": "score", "mode": "max",
        "search": {"num_samples": 4, "seed": 0, "sampler": "random", "max_concurrent_trials": 2},
        "scheduler": {"type": "none"},
        "space": {"x": {"type": "float", "low": 1.0, "high": 2.0}},
        "fixed": {"epochs": 4, "sleep": 0.3, "log_dir": str(logs), **fixed},
        "storage": str(tmp_path / "results"), "failure": {"max_retries": 1},
        "checkpoint": {"num_to_keep": 2},
    }
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def epochs_run(tmp_path: Path) -> Counter:
    lines = (tmp_path / "logs" / "epochs.log").read_text().split()
    return Counter(zip(lines[0::3], map(int, lines[1::3])))


def _env() -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": str(REPO), "PYTHONUNBUFFERED": "1"}
    env.pop("RAY_ADDRESS", None)
    return env


def _start(args: list[str], cwd: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "search", *args], cwd=cwd, env=_env(), text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _settled(children, quiet_s: float = 3.0, timeout: float = 20.0) -> list[psutil.Process]:
    """The killed driver's processes still alive once none has exited for ``quiet_s`` (at most ``timeout``).

    Raylet and workers notice the dead driver within seconds and exit; what is still there after
    a quiet spell is what a SIGKILL leaves behind (Ray's agents), without waiting a fixed 20 s.
    """
    alive = [p for p in children if _running(p)]
    deadline, last_change = time.monotonic() + timeout, time.monotonic()
    while time.monotonic() < deadline and time.monotonic() - last_change < quiet_s:
        time.sleep(0.25)
        still = [p for p in alive if _running(p)]
        if len(still) != len(alive):
            alive, last_change = still, time.monotonic()
    return alive


def _running(process: psutil.Process) -> bool:
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _resume(path: Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "search", "resume", str(path), "--num-cpus", "2"], cwd=cwd,
                          env=_env(), capture_output=True, text=True, timeout=300)


@pytest.mark.ray
@pytest.mark.slow
def test_asha_cuts_after_resume_against_the_rungs_of_before(tmp_path):
    """Two trials (the second cut at epoch 1), then an interrupt as a weak third starts: resumed, it is cut at
    its first rung, judged against the values recorded there before the interrupt (with empty rungs, alone
    at its rung, it would run on)."""
    path = write_experiment(tmp_path, "rungs", pause_x=1.0, sleep=0.1)
    raw = yaml.safe_load(path.read_text())
    raw["search"].update(num_samples=3, max_concurrent_trials=1, points_to_evaluate=[{"x": 2.0}, {"x": 1.9}, {"x": 1.0}])
    raw["scheduler"] = {"type": "asha", "grace_period": 1, "reduction_factor": 2}
    path.write_text(yaml.safe_dump(raw))
    proc = _start(["run", str(path), "--num-cpus", "2"], tmp_path)
    deadline = time.monotonic() + 300  # about 20 s here; 120 s was once too short with a busy loop beside the suite
    while not (tmp_path / "logs" / "paused").exists():
        assert time.monotonic() < deadline and proc.poll() is None, "the weak trial never started"
        time.sleep(0.1)
    proc.send_signal(signal.SIGINT)  # Ctrl-C: Tune saves its state, the command to continue is printed
    _, err = proc.communicate(timeout=240)
    assert proc.returncode == 130, err[-3000:]
    assert f"python -m search resume {tmp_path / 'results' / 'rungs'}" in err
    assert epochs_run(tmp_path) == Counter({("2.0", 1): 1, ("2.0", 2): 1, ("2.0", 3): 1, ("2.0", 4): 1, ("1.9", 1): 1})

    folder = tmp_path / "results" / "rungs"
    done = _resume(folder, tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "cut by ASHA at epoch 1" in done.stderr
    assert "[3/3 done]" in done.stderr  # the counts Tune saved with its state: 2 done before the interrupt
    from search.results import open_results

    table = open_results(folder).table.set_index("x")
    assert table.loc[1.0, "outcome"] == "pruned" and table.loc[1.0, "epochs_run"] == 1
    assert list(table.loc[[2.0, 1.9], "outcome"]) == ["completed", "pruned"]
    assert epochs_run(tmp_path)[("1.0", 1)] == 1 and ("1.0", 2) not in epochs_run(tmp_path)
    by_x = {t.params["x"]: t for t in load_study(folder).trials}
    assert by_x[1.0].state is optuna.trial.TrialState.PRUNED and by_x[1.0].intermediate_values == {1: 1.0}
    assert by_x[2.0].state is optuna.trial.TrialState.COMPLETE and by_x[1.9].state is optuna.trial.TrialState.PRUNED
    assert sorted(t.number for t in load_study(folder).trials) == [0, 1, 2]  # numbering kept, nothing asked twice
    assert set(epochs_run(tmp_path).values()) == {1}  # no epoch of a finished trial ran again


def _on(spec, executor: str, **search):
    """``spec`` with ``resources.executor`` and ``search`` fields replaced."""
    return spec.model_copy(update={"search": spec.search.model_copy(update=search),
                                   "resources": spec.resources.model_copy(update={"executor": Executor(executor)})})


@pytest.mark.ray
@pytest.mark.slow
@pytest.mark.parametrize("executor", ["direct", "torch_trainer"])
def test_a_trial_that_fails_once_is_retried_from_its_checkpoint(ray_cluster, tmp_path, executor):
    spec = load_spec(write_experiment(tmp_path, "flaky", fail_once=True))
    outcome = run_experiment(_on(spec, executor, num_samples=1), RunOptions(spec_path=tmp_path / "flaky.yaml"))
    (result,) = list(outcome.results)
    assert result.error is None and result.metrics["epoch"] == 4
    runs = epochs_run(tmp_path)
    assert sorted(runs.values()) == [1, 1, 1, 1]  # epoch 1 was not rerun: the retry resumed after it
    error_files = list(Path(result.path).glob("error.txt"))
    assert error_files and "boom on the first attempt" in error_files[0].read_text()
    # Optuna is told the final outcome once: one trial, COMPLETE, the table's value (not a FAIL from the first try).
    from search.results import open_results

    study = load_study(outcome.path)
    table = open_results(outcome.path).table
    assert [t.state for t in study.trials] == [optuna.trial.TrialState.COMPLETE]
    assert study.trials[0].value == pytest.approx(table.iloc[0]["best_score"])


@pytest.mark.ray
@pytest.mark.slow
@pytest.mark.parametrize("executor", ["direct", "torch_trainer"])
def test_a_killed_trial_process_is_retried_from_its_checkpoint(ray_cluster, tmp_path, executor):
    # direct: the Tune trial process is killed; torch_trainer: the Train worker of the pool.
    spec = _on(load_spec(write_experiment(tmp_path, "victim", pid_at=3)), executor, num_samples=1)
    logs = tmp_path / "logs"

    ran = threading.Event()

    def killer() -> None:  # until the run ends: under load a trial can take minutes to start
        while not ran.is_set():
            pid_files = list(logs.glob("pid-*"))
            if pid_files:
                os.kill(int(pid_files[0].read_text()), signal.SIGKILL)
                return
            time.sleep(0.1)

    thread = threading.Thread(target=killer, daemon=True)
    thread.start()
    try:
        outcome = run_experiment(spec, RunOptions(spec_path=tmp_path / "victim.yaml"))
    finally:
        ran.set()
    thread.join(timeout=5)
    (result,) = list(outcome.results)
    assert result.error is None and result.metrics["epoch"] == 4
    runs = epochs_run(tmp_path)
    assert sorted(e for _, e in runs) == [1, 2, 3, 4] and set(runs.values()) == {1}
    pids = {line.split()[2] for line in (logs / "epochs.log").read_text().splitlines()}
    assert len(pids) == 2  # epochs 1-2 in the killed process, 3-4 in the retry


@pytest.mark.ray
@pytest.mark.slow
def test_a_diverging_trial_is_pruned_in_optuna_and_the_experiment_goes_on(ray_cluster, tmp_path):
    spec = load_spec(write_experiment(tmp_path, "nan", nan_at=2))
    space = {"x": spec.space["x"]}
    spec = spec.model_copy(update={"search": spec.search.model_copy(update={"num_samples": 2}), "space": space})
    outcome = run_experiment(spec, RunOptions(spec_path=tmp_path / "nan.yaml"))
    assert not outcome.results.errors
    df = outcome.results.get_dataframe()
    assert set(df["stop_reason"]) == {"diverged"} and set(df["epoch"]) == {2}
    states = {t.state for t in outcome.searcher._ot_study.trials}
    assert states == {optuna.trial.TrialState.PRUNED}


def test_a_truncated_checkpoint_falls_back_to_the_previous_one(tmp_path, capsys):
    import torch

    from search.trials.checkpoints import usable_checkpoint
    from trainables import Trainer

    trainer = Trainer(torch.nn.Linear(3, 2), "sgd", device="cpu")
    for n in (1, 2, 3):
        trainer.save_checkpoint(tmp_path / f"checkpoint_00000{n}" / "checkpoint.pt")
    latest = tmp_path / "checkpoint_000003" / "checkpoint.pt"
    latest.write_bytes(latest.read_bytes()[:100])
    assert usable_checkpoint(latest.parent) == str(tmp_path / "checkpoint_000002")
    assert f"checkpoint {latest} is damaged" in capsys.readouterr().err
    (tmp_path / "checkpoint_000002" / "checkpoint.pt").write_bytes(b"garbage")
    (tmp_path / "checkpoint_000001" / "checkpoint.pt").write_bytes(b"")
    assert usable_checkpoint(latest.parent) is None
    assert "restarts from scratch" in capsys.readouterr().err


@pytest.mark.ray
@pytest.mark.slow
def test_warm_start_tells_the_searcher_the_earlier_results_first(ray_cluster, tmp_path):
    first = load_spec(write_experiment(tmp_path, "first", epochs=1, sleep=0.0))
    run_experiment(first, RunOptions(spec_path=tmp_path / "first.yaml"))
    earlier = load_study(tmp_path / "results" / "first")
    tpe = {"sampler": "tpe", "sampler_options": {"n_startup_trials": 2}, "num_samples": 2, "seed": 0}
    from search.spec import SearchSpec

    second = first.model_copy(update={"name": "second", "search": SearchSpec.model_validate({**first.search.model_dump(), **tpe})})
    outcome = run_experiment(second, RunOptions(spec_path=tmp_path / "first.yaml"),
                             warm_start_from=tmp_path / "results" / "first")
    trials = outcome.searcher._ot_study.get_trials(deepcopy=False)
    assert len(trials) == 6
    assert [t.params["x"] for t in trials[:4]] == [t.params["x"] for t in earlier.trials]
    assert [t.value for t in trials[:4]] == [t.value for t in earlier.trials]
    # With 4 finished trials already known, TPE is past its 2 random start-up trials: the new
    # trials are model-based (a cold seeded TPE would start with random suggestions).
    cold = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(n_startup_trials=2, seed=0))
    cold_x = cold.ask({"x": optuna.distributions.FloatDistribution(1.0, 2.0)}).params["x"]
    assert trials[4].params["x"] != pytest.approx(cold_x)


# Rank 1 fails at epoch 2 on the first attempt while rank 0 waits for it in an all-reduce.
DDP_FAILING_TRAINABLE = '''
import json, tempfile
from pathlib import Path
import torch
import torch.distributed as dist

def train(config, report, resume_from=None, world=None):
    start = 1
    if resume_from is not None:
        start = json.loads((Path(resume_from) / "state.json").read_text())["epoch"] + 1
    for epoch in range(start, config["epochs"] + 1):
        if epoch == 2 and resume_from is None and world.rank == 1:
            raise RuntimeError("rank 1 fails at epoch 2")
        total = torch.ones(1)
        dist.all_reduce(total)  # rank 0 waits here for a rank that has left
        folder = tempfile.mkdtemp()
        (Path(folder) / "state.json").write_text(json.dumps({"epoch": epoch}))
        report({"epoch": epoch, "score": float(total.item()) * epoch, "start": start}, folder)
'''


@pytest.mark.ray
@pytest.mark.slow
def test_a_ddp_rank_that_fails_while_the_other_waits_replaces_the_pool_and_the_trial_resumes(ray_cluster, tmp_path):
    (tmp_path / "ddp_fail.py").write_text(DDP_FAILING_TRAINABLE)
    spec_path = tmp_path / "ddp.yaml"
    spec_path.write_text(yaml.safe_dump({
        "name": "ddp_fail", "trainable": "ddp_fail:train", "metric": "score", "mode": "max",
        "search": {"num_samples": 1, "seed": 0}, "scheduler": {"type": "none"},
        "space": {"x": {"type": "float", "low": 1.0, "high": 2.0}}, "fixed": {"epochs": 3},
        "resources": {"num_workers": 2}, "failure": {"max_retries": 1}, "storage": str(tmp_path / "results"),
    }))
    spec = load_spec(spec_path)
    outcome = run_experiment(spec, RunOptions(spec_path=spec_path))
    assert outcome.plan.executor is Executor.TORCH_TRAINER and outcome.plan.reuse_workers
    (result,) = list(outcome.results)
    assert result.error is None and result.metrics["epoch"] == 3
    assert result.metrics["score"] == 2 * 3  # both ranks took part in the all-reduce
    assert result.metrics["start"] == 2  # the retry resumed after epoch 1's checkpoint
    error = (Path(result.path) / "error.txt").read_text()
    assert "failed on worker rank 1" in error and "rank 1 fails at epoch 2" in error


# ------------------------------------------------------------ SIGKILL at a placed moment
# The first trial to start is the victim. It reads Tune's newest saved state (with Ray's own
# readers) to place the fault exactly, then writes `kill-now` and waits to be killed:
#  after_rotation: the saved state names checkpoint_000000 as the trial's latest, and
#      retention (num_to_keep: 2) has already deleted it (two newer checkpoints came);
#  before_first_checkpoint: the saved state knows the trial, which has no checkpoint yet.
PLACED_TRAINABLE = '''
import json, os, signal, tempfile, threading, time
from pathlib import Path


def _fs(experiment):
    import pyarrow.fs

    return pyarrow.fs.FileSystem.from_uri(str(experiment))  # a local folder or an s3:// URI alike


def exists(experiment, name):
    import pyarrow.fs

    fs, root = _fs(experiment)
    return fs.get_file_info(f"{root}/{name}").type != pyarrow.fs.FileType.NotFound


def saved_latest(experiment, trial_id):
    """(is the trial in Tune's newest saved state, the name of its latest checkpoint there)."""
    import pyarrow.fs
    from ray.tune.trainable.metadata import _TrainingRunMetadata
    from ray.tune.utils.serialization import _loads_with_cloudpickle

    fs, root = _fs(experiment)
    states = sorted(i.path for i in fs.get_file_info(pyarrow.fs.FileSelector(root, allow_not_found=True))
                    if i.base_name.startswith("experiment_state-") and i.base_name.endswith(".json"))
    if not states:  # Tune's newest is the latest name (a timestamp), as its own reader picks it
        return False, None
    try:
        with fs.open_input_stream(states[-1]) as fh:
            state = _loads_with_cloudpickle(fh.read().decode())
    except Exception:  # being rewritten
        return False, None
    for trial_json, meta_json in state["trial_data"]:
        if json.loads(trial_json)["trial_id"] == trial_id:
            latest = _TrainingRunMetadata.from_json_state(meta_json).checkpoint_manager.latest_checkpoint_result
            return True, Path(latest.checkpoint.path).name if latest else None
    return False, None


def wait_for(condition, what, poll=0.05):
    deadline = time.monotonic() + 180
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(what)
        time.sleep(poll)


def kill_driver(log, named):
    """SIGKILL the driver from here, the moment the fault is placed (the test only waits)."""
    (log / "kill-now").write_text(named)
    os.kill(int((log / "driver-pid").read_text()), signal.SIGKILL)
    time.sleep(300)


def trial_id_of(experiment, x):
    """The trial whose params.json holds ``x`` (on a worker of the pool, Tune's context is not at hand)."""
    import pyarrow.fs

    fs, root = _fs(experiment)
    for info in fs.get_file_info(pyarrow.fs.FileSelector(root, allow_not_found=True)):
        if info.base_name.startswith("trial_"):
            try:
                with fs.open_input_stream(f"{info.path}/params.json") as fh:
                    if json.loads(fh.read().decode()).get("x") == x:
                        return info.base_name.removeprefix("trial_")
            except (OSError, ValueError):
                continue
    return None


def train(config, report, resume_from=None):
    log, experiment = Path(config["log_dir"]), config["experiment"]
    victim = False
    try:
        os.close(os.open(log / "victim", os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        victim = True
    except FileExistsError:
        pass
    # Only the victim needs its trial id. On a worker of the pool, finding it waits for the trial's params.json,
    # which Tune syncs some 10 s after the trial starts: every trial waiting for it (the resumed run's three too)
    # made the torch_trainer case ~25 s longer.
    if victim and config["executor"] == "direct":
        from ray import tune

        (log / "victim").write_text(trial_id := tune.get_context().get_trial_id())
    elif victim:
        found = []
        wait_for(lambda: found.append(trial_id_of(experiment, config["x"])) or found[-1], "the trial's params.json")
        (log / "victim").write_text(trial_id := found[-1])
    start = 1 if resume_from is None else json.loads((Path(resume_from) / "state.json").read_text())["epoch"] + 1

    def epoch_done(epoch):
        folder = tempfile.mkdtemp()
        (Path(folder) / "state.json").write_text(json.dumps({"epoch": epoch}))
        report({"epoch": epoch, "score": config["x"] * epoch}, folder)
        with open(log / "epochs.log", "a") as fh:
            fh.write(f"{config['x']} {epoch} {os.getpid()}\\n")

    if victim and config["fault"] == "before_first_checkpoint":
        wait_for(lambda: saved_latest(experiment, trial_id) == (True, None), "the state to know the trial")
        kill_driver(log, "")
    epoch = start
    if victim and config["fault"] == "after_rotation":
        while True:
            epoch_done(epoch)
            named = f"checkpoint_{epoch - 1:06d}"
            wait_for(lambda: saved_latest(experiment, trial_id) == (True, named), "a state naming " + named)
            epoch_done(epoch + 1)
            # The third report from a thread, while this one watches for the rotation: the driver deletes
            # ``named`` as it takes the report, and may snapshot the state soon after (forced after num_to_keep
            # checkpoints, at most every 2 s). Waiting for the report to return, as a worker of the pool does
            # for its answer, came after that snapshot on most tries (with Tune's own unspaced forcing).
            third = threading.Thread(target=epoch_done, args=(epoch + 2,), daemon=True)
            third.start()
            wait_for(lambda: not exists(experiment, f"trial_{trial_id}/{named}"), "retention to delete " + named,
                     poll=0.002)
            # Frozen, the driver cannot write a snapshot between this check and the kill.
            os.kill(int((log / "driver-pid").read_text()), signal.SIGSTOP)
            if saved_latest(experiment, trial_id) == (True, named):  # no snapshot since: the fault is placed
                kill_driver(log, named)
            os.kill(int((log / "driver-pid").read_text()), signal.SIGCONT)
            third.join()
            epoch += 3  # a snapshot came in between: place it again
            if epoch + 2 > config["epochs"]:
                raise RuntimeError(f"could not place the fault within {config['epochs']} epochs")
    for e in range(epoch, config["epochs"] + 1):
        time.sleep(config["sleep"])
        epoch_done(e)
'''


#: Epochs of each placed trial: room for the fault's placement to be tried again (3 epochs a try) when
#: Tune saves its state between the rotation and the freeze, which the worker pool's slower hand-over makes
#: likelier.
PLACED_EPOCHS = 12


def _load_module(file: Path):
    import importlib.util

    spec = importlib.util.spec_from_file_location(file.stem, file)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.ray
@pytest.mark.slow
@pytest.mark.parametrize(("fault", "storage", "executor"), [
    # after_rotation on the torch_trainer pool: placed on the first try in 5 of 5 runs since the victim watches
    # for the rotation while its third report is under way (waiting for that report to return, as a worker of
    # the pool waits for its answer, came after Tune's next snapshot on most tries).
    ("after_rotation", "local", "direct"), ("before_first_checkpoint", "local", "direct"),
    ("after_rotation", "s3", "direct"), ("before_first_checkpoint", "local", "torch_trainer"),
    ("after_rotation", "local", "torch_trainer"),
])
def test_sigkill_at_a_placed_moment_then_resume_finishes_every_trial_exactly_once(tmp_path, fault, storage, executor,
                                                                                   request, monkeypatch):
    if storage == "s3":  # a real S3 API on loopback; this process and the CLI's reach it through the environment
        s3 = request.getfixturevalue("s3_server")
        for key, value in {**s3.env, "SEARCH_CACHE_DIR": str(tmp_path / "cache")}.items():
            monkeypatch.setenv(key, value)
        root = f"s3://{s3.bucket}/{tmp_path.name}"
    else:
        root = str(tmp_path / "results")
    (tmp_path / "placed.py").write_text(PLACED_TRAINABLE)
    (tmp_path / "logs").mkdir()
    path = f"{root}/placed" if storage == "s3" else Path(root) / "placed"
    spec_file = tmp_path / "placed.yaml"
    spec_file.write_text(yaml.safe_dump({
        "name": "placed", "trainable": "placed:train", "metric": "score", "mode": "max",
        "search": {"num_samples": 3, "seed": 0, "sampler": "random", "max_concurrent_trials": 1},
        "scheduler": {"type": "none"},
        "space": {"x": {"type": "float", "low": 1.0, "high": 2.0}},
        "fixed": {"epochs": PLACED_EPOCHS, "sleep": 0.05, "log_dir": str(tmp_path / "logs"), "experiment": str(path),
                  "fault": fault, "executor": executor},
        "resources": {"executor": executor, "num_workers": 1, "cpus_per_worker": 1},
        "storage": root, "failure": {"max_retries": 0}, "checkpoint": {"num_to_keep": 2},
    }))
    proc = _start(["run", str(spec_file), "--num-cpus", "2"], tmp_path)
    (tmp_path / "logs" / "driver-pid").write_text(str(proc.pid))
    children: set[psutil.Process] = set()
    deadline = time.monotonic() + 300  # a minute here; 180 s was once too short with a busy loop beside the suite
    while proc.poll() is None:  # the victim kills the driver; keep a list of the driver's Ray processes
        assert time.monotonic() < deadline, "the fault was never placed"
        with contextlib.suppress(psutil.Error):
            children.update(psutil.Process(proc.pid).children(recursive=True))
        time.sleep(0.05)
    proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL and (tmp_path / "logs" / "kill-now").exists()
    alive = _settled(children)
    try:
        _check_placed_resume(tmp_path, path, fault, alive)
    finally:
        for leftover in alive:  # stop what we started, by pid, whatever happened
            with contextlib.suppress(psutil.Error):
                leftover.kill()


def _check_placed_resume(tmp_path: Path, path: Path | str, fault: str, leftovers: list[psutil.Process]) -> None:
    from search.results import open_results
    from search.results.folder import resolve_experiment
    from search.experiment import EMBEDDED_RAY_RECORD, Experiment, filesystem

    record = Experiment.at(path).local / EMBEDDED_RAY_RECORD
    assert record.is_file()  # the killed driver's record of its embedded Ray (a URI's: in its local copy)

    victim = (tmp_path / "logs" / "victim").read_text()
    placed = _load_module(tmp_path / "placed.py")
    if fault == "after_rotation":  # the fault as placed: the saved state names a checkpoint that is gone
        named = (tmp_path / "logs" / "kill-now").read_text()
        assert placed.saved_latest(path, victim) == (True, named)
        assert not placed.exists(path, f"trial_{victim}/{named}")
    else:
        assert placed.saved_latest(path, victim) == (True, None)
    # What a trial created after the last snapshot leaves: a folder neither the state nor the study knows.
    fs, root = filesystem(str(path))
    fs.create_dir(f"{root}/trial_0rphan00")
    for name, text in {"result.json": '{"epoch": 1, "score": 99.0, "trial_id": "0rphan00"}\n',
                       "params.json": '{"x": 1.5}'}.items():
        with fs.open_output_stream(f"{root}/trial_0rphan00/{name}") as out:
            out.write(text.encode())
    leftovers = [p for p in leftovers if _running(p)]  # what the resume must stop
    done = _resume(path, tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "does not exist on storage anymore" not in done.stderr
    assert not placed.exists(path, "trial_0rphan00")
    assert "removed trial_0rphan00: created after Tune's last saved state" in done.stderr
    # What the killed cluster left running (its session folder names it) was stopped, and only that.
    # (A leftover may also end by itself meanwhile, e.g. a Train worker finding its raylet gone.)
    import re

    stopped = re.search(r"note: stopped \d+ process\(es\) the killed run's embedded Ray left running \(pids ([\d, ]+)\)",
                        done.stderr)
    if leftovers:
        assert stopped is not None, done.stderr[-3000:]
    if stopped is not None:
        assert {int(pid) for pid in stopped.group(1).split(", ")} <= {p.pid for p in leftovers}
    assert not [p.pid for p in leftovers if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    assert not record.exists()  # the resumed run ended cleanly
    if fault == "after_rotation":
        assert f"trial {victim}: resumes from checkpoint_" in done.stderr and f"({named} named by" in done.stderr

    study = load_study(resolve_experiment(path))  # a URI: its local copy, brought up to date
    assert len(study.trials) == 3 and all(t.state is optuna.trial.TrialState.COMPLETE for t in study.trials)
    table = open_results(path).table
    assert len(table) == 3 and set(table["outcome"]) == {"completed"}, (table[["trial_id", "status"]], done.stderr[-3000:])
    assert table["epochs_run"].tolist() == [PLACED_EPOCHS] * 3
    assert sorted(t.value for t in study.trials) == sorted(table["best_score"])  # the study and the table agree
    # Every epoch in each trial's history (the rows the killed driver never synced came back from its staging
    # folder), and each checkpoint name one epoch's (the resumed run named its checkpoints past the killed run's).
    import json

    for trial_id in table["trial_id"].astype(str):
        with fs.open_input_stream(f"{root}/trial_{trial_id}/result.json") as fh:
            rows = [json.loads(line) for line in fh.read().decode().splitlines()]
        assert {r["epoch"] for r in rows} == set(range(1, PLACED_EPOCHS + 1)), (trial_id, [r["epoch"] for r in rows])
        named_epochs: dict[str, set[int]] = {}
        for r in rows:
            named_epochs.setdefault(r.get("checkpoint_dir_name"), set()).add(r["epoch"])
        assert all(len(epochs) == 1 for name, epochs in named_epochs.items() if name), named_epochs
    # Optuna's journal (what optuna-dashboard opens), rewritten by the resumed run, holds each trial once, finished.
    from search.results.searcher_state import load_journal_study
    from search.experiment import OPTUNA_JOURNAL

    assert (Path(resolve_experiment(path)) / OPTUNA_JOURNAL).is_file()
    journal = load_journal_study(resolve_experiment(path))
    assert sorted(t.user_attrs["trial_id"] for t in journal.trials) == sorted(table["trial_id"].astype(str))
    assert sorted((t.state, t.value) for t in journal.trials) == sorted((t.state, t.value) for t in study.trials)
    runs = epochs_run(tmp_path)
    assert {e for (x, e) in runs} == set(range(1, PLACED_EPOCHS + 1)) and len({x for x, _ in runs}) == 3
    for (x, e), count in runs.items():  # an epoch runs twice only if its checkpoint was not yet on disk
        assert count == 1 or (count == 2 and e >= 2), runs


@pytest.mark.slow
def test_run_stops_what_a_killed_run_left_running_before_it_refuses_or_overwrites(tmp_path):
    """The record a killed driver left names its embedded Ray's session folder: the next `run` into the
    experiment stops the processes holding files there (and nothing else), even when it then refuses."""
    import json

    from search.experiment import EMBEDDED_RAY_RECORD

    folder = tmp_path / "results" / "t"
    folder.mkdir(parents=True)
    (folder / "tuner.pkl").write_bytes(b"an earlier experiment")
    session = tmp_path / "session_2026-12-04_killed"
    (session / "logs").mkdir(parents=True)
    opened = session / "logs" / "dashboard_agent.log"
    hold = f"import time; f = open({str(opened)!r}, 'a'); time.sleep(600)"
    holder = subprocess.Popen([sys.executable, "-c", hold, "ray::DashboardAgent"])  # named as Ray names its agents
    # Not Ray's, though it holds a file in that session folder (an editor, a `tail -f`): never stopped.
    bystander = subprocess.Popen([sys.executable, "-c", hold])
    try:
        deadline = time.monotonic() + 30
        def holds(pid: int) -> bool:
            for fd in Path(f"/proc/{pid}/fd").iterdir():
                with contextlib.suppress(FileNotFoundError):  # closed between the listing and the look
                    if os.readlink(fd) == str(opened):
                        return True
            return False

        while not all(holds(p.pid) for p in (holder, bystander)):
            assert time.monotonic() < deadline, "the stand-in agent never opened its log"
            time.sleep(0.05)
        driver = subprocess.Popen([sys.executable, "-c", "pass"])
        driver.wait()  # a driver that is gone (SIGKILLed)
        (folder / EMBEDDED_RAY_RECORD).write_text(json.dumps({"driver_pid": driver.pid, "session_dir": str(session)}))
        (tmp_path / "space.yaml").write_text("name: t\nfixed: {epochs: 2}\nstorage: results\n")
        proc = subprocess.run([sys.executable, "-m", "search", "run", "space.yaml"], cwd=tmp_path, env=_env(),
                              capture_output=True, text=True, timeout=120)
        assert proc.returncode == 2 and "already holds an experiment" in proc.stderr, proc.stderr
        assert f"note: stopped 1 process(es) the killed run's embedded Ray left running (pids {holder.pid})" in proc.stderr
        assert holder.wait(timeout=10) == -signal.SIGTERM
        assert bystander.poll() is None  # only Ray's processes that hold files in the record's session folder
        assert not (folder / EMBEDDED_RAY_RECORD).exists() and (folder / "tuner.pkl").is_file()
    finally:
        for proc in (holder, bystander):
            proc.kill()
            proc.wait()
