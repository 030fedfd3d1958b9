"""Tune's TensorBoard files written off the driver's loop (``BackgroundTensorBoard``), without a cluster."""

from __future__ import annotations

import pickle
import threading
from pathlib import Path
from typing import Any

import pytest
from tensorboardX import SummaryWriter

from search.engine.callbacks import BackgroundTensorBoard, tensorboard_logger


class _Trial:
    """What Tune's TBX logger reads of a trial."""

    def __init__(self, folder: Path) -> None:
        self.local_path = str(folder)
        self.evaluated_params = {"lr": 0.01}
        self.config = {"lr": 0.01}

    def init_local_path(self) -> None:
        Path(self.local_path).mkdir(parents=True, exist_ok=True)


class _SlowWriter(SummaryWriter):
    """Records on which thread each scalar was written, and is released by the test."""

    threads: list[str] = []
    release = threading.Event()

    def add_scalar(self, tag, value, global_step=None, **kwargs):
        type(self).release.wait(10)
        type(self).threads.append(threading.current_thread().name)
        return super().add_scalar(tag, value, global_step=global_step, **kwargs)


def _scalars(folder: Path) -> dict[str, dict[int, float]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(folder), size_guidance={"scalars": 0})
    events.Reload()
    return {tag: {e.step: e.value for e in events.Scalars(tag)} for tag in events.Tags()["scalars"]}


def _result(epoch: int) -> dict:
    return {"training_iteration": epoch, "val_accuracy": epoch / 10, "config": {"lr": 0.01}, "done": False}


def _slow_logger() -> BackgroundTensorBoard:
    """A logger whose writer holds every scalar until the test sets ``_SlowWriter.release``."""
    logger = BackgroundTensorBoard()
    logger._summary_writer_cls = _SlowWriter
    _SlowWriter.threads.clear()
    _SlowWriter.release.clear()
    return logger


def test_results_return_at_once_and_every_epoch_reaches_the_event_file_in_order(tmp_path):
    logger = _slow_logger()
    trial = _Trial(tmp_path / "trial_1")
    logger.log_trial_start(trial)
    for epoch in (1, 2, 3):
        logger.log_trial_result(epoch, trial, _result(epoch))  # returns although no scalar can be written yet
    assert _SlowWriter.threads == []
    _SlowWriter.release.set()
    logger.log_trial_end(trial)
    logger.on_experiment_end([trial])
    assert set(_SlowWriter.threads) == {"tensorboard-logger"}
    assert _scalars(tmp_path / "trial_1")["ray/tune/val_accuracy"] == pytest.approx({1: 0.1, 2: 0.2, 3: 0.3})


def test_a_trial_first_seen_by_its_result_gets_its_writer_on_the_thread(tmp_path):
    logger = BackgroundTensorBoard()
    trial = _Trial(tmp_path / "trial_2")
    logger.log_trial_result(1, trial, _result(1))  # Tune's logger starts the trial itself then
    logger.log_trial_end(trial)
    logger.on_experiment_end([trial])
    assert _scalars(tmp_path / "trial_2")["ray/tune/val_accuracy"] == pytest.approx({1: 0.1})


def test_a_failing_write_is_logged_and_the_next_trials_are_still_written(tmp_path, caplog):
    logger = BackgroundTensorBoard()
    bad = _Trial(tmp_path / "file")
    (tmp_path / "file").write_text("a file where the trial's folder should be")
    good = _Trial(tmp_path / "trial_3")
    logger.log_trial_start(bad)
    logger.log_trial_start(good)
    logger.log_trial_result(1, good, _result(1))
    logger.log_trial_end(good)
    logger.on_experiment_end([bad, good])
    assert "TensorBoard logger: log_trial_start failed" in caplog.text
    assert _scalars(tmp_path / "trial_3")["ray/tune/val_accuracy"] == pytest.approx({1: 0.1})


def test_it_pickles_as_the_tuner_pickles_its_callbacks_and_works_after(tmp_path):
    logger = BackgroundTensorBoard()
    trial = _Trial(tmp_path / "trial_4")
    logger.log_trial_start(trial)
    logger.log_trial_result(1, _Trial(tmp_path / "other"), _result(1))
    logger.get_state()  # the thread is alive and a trial's writer open (an event file), as in a run
    assert logger._writer.is_alive() and logger._trial_writer
    copy = pickle.loads(pickle.dumps(logger))
    assert copy._trial_writer == {} and copy._writer is None
    logger.on_experiment_end([trial])
    copy.log_trial_result(1, trial, _result(1))
    copy.log_trial_end(trial)
    copy.on_experiment_end([trial])
    assert copy._writer is None and _scalars(tmp_path / "trial_4")["ray/tune/val_accuracy"] == {1: pytest.approx(0.1)}


def test_the_run_replaces_tune_default_logger_with_it():
    from ray.tune.logger import TBXLoggerCallback
    from ray.tune.utils.callback import _create_default_callbacks

    callbacks = _create_default_callbacks(tensorboard_logger(), air_verbosity=None)
    tbx = [c for c in callbacks if isinstance(c, TBXLoggerCallback)]
    assert len(tbx) == 1 and type(tbx[0]) is BackgroundTensorBoard


def _run_logger(logger: BackgroundTensorBoard, folder: Path, epochs: int = 3) -> None:
    trial = _Trial(folder)
    logger.log_trial_start(trial)
    for epoch in range(1, epochs + 1):
        logger.log_trial_result(epoch, trial, {**_result(epoch), "train_loss": 1 / epoch, "lr_now": 0.01})
    logger.log_trial_end(trial)
    logger.on_experiment_end([trial])


def _hparams(folder: Path) -> dict[str, float]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams import plugin_data_pb2

    events = EventAccumulator(str(folder))
    events.Reload()
    content = events.PluginTagToContent("hparams")["_hparams_/session_start_info"]
    info = plugin_data_pb2.HParamsPluginData.FromString(content).session_start_info
    return {name: value.number_value for name, value in info.hparams.items()}


def test_the_direct_writer_writes_what_tensorboardx_own_writer_writes(tmp_path):
    ours, theirs = BackgroundTensorBoard(), BackgroundTensorBoard()
    theirs._summary_writer_cls = SummaryWriter  # tensorboardX's, as Tune's logger uses it
    _run_logger(ours, tmp_path / "ours")
    _run_logger(theirs, tmp_path / "theirs")
    assert _scalars(tmp_path / "ours") == _scalars(tmp_path / "theirs")
    assert _scalars(tmp_path / "ours")["ray/tune/train_loss"] == pytest.approx({1: 1.0, 2: 0.5, 3: 1 / 3})
    assert _hparams(tmp_path / "ours") == _hparams(tmp_path / "theirs") == {"lr": pytest.approx(0.01)}


def test_the_direct_writer_starts_no_thread_and_leaves_no_exit_hook_per_trial(tmp_path):
    import atexit

    logger = BackgroundTensorBoard()
    _run_logger(logger, tmp_path / "warm")  # the logger's own thread comes and goes; imports done
    threads, hooks = threading.active_count(), atexit._ncallbacks()
    seen: list[int] = []
    logger.log_trial_result = lambda *a, _f=logger.log_trial_result: (_f(*a), seen.append(threading.active_count()))
    for n in range(3):
        _run_logger(logger, tmp_path / f"trial_{n}")
    # while writing: the logger's thread only (tensorboardX's writer adds a thread and a queue feeder per trial)
    assert max(seen) <= threads + 1
    assert atexit._ncallbacks() == hooks  # tensorboardX's adds one per trial, holding its writer until exit
    assert all(_scalars(tmp_path / f"trial_{n}")["ray/tune/val_accuracy"] == pytest.approx({1: 0.1, 2: 0.2, 3: 0.3})
               for n in range(3))


def test_a_snapshot_waits_for_the_queued_writes_so_storage_gets_every_event(tmp_path):
    # Tune asks callbacks for their state (get_state), then copies the staging folder to storage: the final
    # snapshot comes before on_experiment_end, so events still queued then would never reach storage.
    logger = _slow_logger()
    trial = _Trial(tmp_path / "trial_5")
    logger.log_trial_start(trial)
    for epoch in (1, 2, 3):
        logger.log_trial_result(epoch, trial, _result(epoch))
    logger.log_trial_end(trial)
    snapshot = threading.Thread(target=logger.get_state)
    snapshot.start()
    snapshot.join(0.3)
    assert snapshot.is_alive()  # held while the writes are queued
    _SlowWriter.release.set()
    snapshot.join(10)
    assert not snapshot.is_alive()
    # before on_experiment_end: every epoch and the trial's hparams are on disk already
    assert _scalars(tmp_path / "trial_5")["ray/tune/val_accuracy"] == pytest.approx({1: 0.1, 2: 0.2, 3: 0.3})
    assert _hparams(tmp_path / "trial_5") == {"lr": pytest.approx(0.01)}
    logger.on_experiment_end([trial])


def _tune_trial(folder: Path) -> Any:
    """A real Tune ``Trial`` (its JSON-state cache, ``init_local_path``), its folder here, not in Ray's session."""
    from ray.tune.experiment import Trial

    class _LocalTrial(Trial):
        @property
        def local_path(self) -> str:  # Ray's needs a running Ray (the session's staging folder)
            return str(folder)

    trial = _LocalTrial("train", stub=True, config={"lr": 0.01}, evaluated_params={"lr": 0.01}, trial_id="t1")
    trial.relative_logdir = folder.name  # named already, as Tune names a trial before its start
    return trial


@pytest.mark.parametrize("first_call", ["start", "result"])
def test_the_trials_saved_state_is_only_dropped_on_the_drivers_thread(tmp_path, monkeypatch, first_call):
    # Tune's snapshot (Trial.get_json_state, on the driver's thread) sets the trial's cached JSON and then returns
    # the attribute again; init_local_path drops that cache. Called from the writer's thread, it can land in
    # between, and the snapshot saves the trial as null: a run interrupted then could not be read or resumed
    # (seen in CI: TypeError in ExperimentAnalysis at the interrupted PBT run's end).
    trial = _tune_trial(tmp_path / "trial_1")
    dropped_on = []
    drop = trial.invalidate_json_state
    monkeypatch.setattr(trial, "invalidate_json_state",
                        lambda: (dropped_on.append(threading.current_thread().name), drop())[1])
    logger = BackgroundTensorBoard()
    if first_call == "start":
        logger.log_trial_start(trial)
    logger.log_trial_result(1, trial, _result(1))  # "result": Tune's logger starts the trial from it, on the thread
    logger.log_trial_end(trial)
    logger.on_experiment_end([trial])
    # Started by log_trial_start: the folder made (the cache dropped) here; first seen by a result: on the writer's
    # thread, which makes the folder without touching the trial.
    assert dropped_on == ([threading.current_thread().name] if first_call == "start" else [])
    assert _scalars(tmp_path / "trial_1")["ray/tune/val_accuracy"] == {1: pytest.approx(0.1)}


_WITHOUT_TORCH = """
import sys
from pathlib import Path
from search.engine.callbacks import tensorboard_logger
tensorboard_logger()
from search.engine.tensorboard_writer import DirectSummaryWriter  # what the logger's thread imports
print('torch' in sys.modules)
folder = Path(sys.argv[1])
writer = DirectSummaryWriter(str(folder / 'a'))
writer.add_scalar('val_accuracy', 0.5, 1)
writer.close()
import torch  # hidden only while tensorboardX was imported: it imports now
writer = DirectSummaryWriter(str(folder / 'b'))
writer.add_scalar('val_accuracy', torch.tensor(0.25), 2)
writer.close()
print(torch.__name__)
"""


def test_the_tensorboard_logger_is_built_without_importing_torch_and_torch_imports_after(tmp_path):
    # tensorboardX's writer imported torch at its import (about a second of every run's start in a driver that
    # trains nothing); it is hidden meanwhile, and scalars, numbers or torch's, are written as before.
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-c", _WITHOUT_TORCH, str(tmp_path)], capture_output=True, text=True,
                         check=True).stdout.split()
    assert out == ["False", "torch"]
    assert _scalars(tmp_path / "a") == {"val_accuracy": {1: 0.5}}
    assert _scalars(tmp_path / "b") == {"val_accuracy": {2: 0.25}}


_NEEDS_TORCH = """
import sys
import importlib.abc


class NeedsTorch(importlib.abc.MetaPathFinder):
    # A tensorboardX whose record writer cannot be imported without torch.
    def find_spec(self, name, path=None, target=None):
        if name == 'tensorboardX.record_writer' and any(type(f).__name__ == '_TorchHidden' for f in sys.meta_path):
            raise ImportError('this tensorboardX needs torch')
        return None


sys.meta_path.insert(0, NeedsTorch())
from search.engine import tensorboard_writer
import tensorboardX
print(tensorboard_writer.SummaryWriter is tensorboardX.SummaryWriter, tensorboard_writer.directory_check is not None,
      'torch' in sys.modules)
"""


def test_a_tensorboardx_that_needs_torch_to_import_is_imported_with_it():
    # Hiding torch must not turn TensorBoard off: a tensorboardX that fails without torch is imported again with it.
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-c", _NEEDS_TORCH], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["True", "True", "True"]


def test_each_results_flush_reaches_the_file_without_a_sync_to_disk_until_the_trial_ends(tmp_path, monkeypatch):
    # Tune flushes after every result; tensorboardX's record writer fsyncs then (1-2 ms a result, the journal
    # committed with the trials' checkpoint files). Ours hands the events to the OS: readable at once, no fsync.
    import tensorboardX.record_writer as record_writer

    synced = []
    monkeypatch.setattr(record_writer.os, "fsync", lambda fd: synced.append(fd))
    logger = BackgroundTensorBoard()
    trial = _Trial(tmp_path / "trial_1")
    logger.log_trial_start(trial)
    for epoch in (1, 2):
        logger.log_trial_result(epoch, trial, _result(epoch))
    logger.get_state()  # waits for the queued writes, as Tune's snapshot does: the writer is still open
    assert _scalars(tmp_path / "trial_1")["ray/tune/val_accuracy"] == pytest.approx({1: 0.1, 2: 0.2})
    assert synced == []
    logger.log_trial_end(trial)
    logger.on_experiment_end([trial])
    assert len(synced) == 1  # tensorboardX's close, once a trial


_IMPORTED_WHERE = """
import sys, threading
from pathlib import Path
import importlib.abc


class Where(importlib.abc.MetaPathFinder):
    seen = []

    def find_spec(self, name, path=None, target=None):
        if name == 'tensorboardX':
            Where.seen.append(threading.current_thread().name)
        return None


sys.meta_path.insert(0, Where())
from search.engine.callbacks import tensorboard_logger

(logger,) = tensorboard_logger()
built = 'tensorboardX' in sys.modules


class Trial:
    local_path = sys.argv[1]
    evaluated_params = config = {'lr': 0.01}

    def init_local_path(self):
        Path(self.local_path).mkdir(parents=True, exist_ok=True)


trial = Trial()
logger.log_trial_start(trial)
logger.log_trial_result(1, trial, {'training_iteration': 1, 'val_accuracy': 0.5})
logger.log_trial_end(trial)
logger.on_experiment_end([trial])
print(built, Where.seen[-1])  # the last look-up is the import (the first, tensorboard_logger's find_spec)
"""


def test_tensorboardx_is_imported_on_the_loggers_thread_when_the_first_trial_starts(tmp_path):
    # Its import (0.15-0.2 s) was on the driver's path from ray.init to the first trial's request.
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-c", _IMPORTED_WHERE, str(tmp_path / "trial_1")], capture_output=True,
                         text=True, check=True).stdout
    assert out.split() == ["False", "tensorboard-logger"]
    assert _scalars(tmp_path / "trial_1")["ray/tune/val_accuracy"] == {1: 0.5}


def test_a_tensorboardx_that_does_not_import_leaves_no_event_files_and_says_so_once(tmp_path, monkeypatch, caplog):
    import sys

    monkeypatch.setitem(sys.modules, "search.engine.tensorboard_writer", None)  # its import fails: ImportError
    (logger,) = tensorboard_logger()
    trials = [_Trial(tmp_path / "trial_1"), _Trial(tmp_path / "trial_2")]
    with caplog.at_level("WARNING", logger="search.engine.callbacks"):
        for trial in trials:
            logger.log_trial_start(trial)
            logger.log_trial_result(1, trial, _result(1))
            logger.log_trial_end(trial)
        logger.on_experiment_end(trials)
    said = [r.getMessage() for r in caplog.records]
    assert len(said) == 1 and said[0].startswith("TensorBoard: no event files, tensorboardX does not import"), said
    assert not list(tmp_path.glob("*/events.out.tfevents.*"))


def test_a_logger_pickled_before_the_writer_moved_still_unpickles():
    # A tuner.pkl saved before tensorboard_writer existed names search.engine.callbacks.DirectSummaryWriter.
    import pickletools

    from search.engine.tensorboard_writer import DirectSummaryWriter

    logger = BackgroundTensorBoard()
    state = {**logger.__getstate__(), "_summary_writer_cls": DirectSummaryWriter}
    old = pickle.dumps(state, protocol=2).replace(b"search.engine.tensorboard_writer", b"search.engine.callbacks")
    assert b"search.engine.callbacks" in pickletools.optimize(old)
    assert pickle.loads(old)["_summary_writer_cls"] is DirectSummaryWriter


_OTHER_THREAD = """
import sys, threading
from search.engine import tensorboard_writer

imported = {}
with tensorboard_writer._torch_hidden():
    try:
        import torch  # this thread: hidden
    except ImportError:
        imported['here'] = False
    other = threading.Thread(target=lambda: imported.update(there=__import__('torch').__name__ == 'torch'))
    other.start()
    other.join()
print(imported['here'], imported['there'])
"""


def test_torch_is_hidden_from_the_importing_thread_only():
    # tensorboardX is imported on the logger's thread while Tune's loop runs on the driver's: Optuna's GP sampler or
    # a result holding a tensor may import torch there meanwhile.
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-c", _OTHER_THREAD], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "True"]
