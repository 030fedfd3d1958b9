"""Ray Train workers that outlive a trial: one ``TorchTrainer`` serves a trial process's trials in turn.

A new ``TorchTrainer`` per trial starts six processes (Train's controller, a placement-group
cleaner, a synchronisation actor, a dataset manager, Tune's report queue and a worker),
each importing Ray and the worker torch: about 20 CPU-seconds and 15 s per trial on two cores, most of a
short trial. Tune already reuses the trial's own process between trials
(``reuse_actors``); this module keeps a ``TorchTrainer`` running in that process, whose
workers (process group and all) take one trial after another:

* the trial function (:func:`run_pooled_trial`, in the Tune trial process) posts a job to
  the pool's :class:`Mailbox` and relays what rank 0 reports to ``tune.report``;
* every worker runs :func:`_serve`: take the next job, run the ``trainables`` training
  function with a ``report`` that posts to the mailbox and waits for the trial's answer
  (go on, or stop: ASHA cut the trial), then take the next job.

Checkpoints travel as files through the object store and Tune stores them, as for the
``direct`` executor: Tune's checkpoint config, ``result.checkpoint`` and resume work the
same way. A worker error fails its trial (Tune retries it) and, when more than one worker
runs, shuts the pool down: the other ranks may be waiting in a collective that never
completes. The next trial starts a new pool. ``resources.reuse_workers: false`` runs a
``TorchTrainer`` per trial instead (see :func:`search.trials.torch_trainer.run_torch_trial`).
"""

from __future__ import annotations

import atexit
import contextlib
import gc
import sys
import threading
import time
import traceback
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import ray

from search.experiment import TRAIN_RUNS_DIR
from search.trials.checkpoints import resume_dir
from search.trials.mailbox import Mailbox, pack_folder, unpacked
from search.trials.direct import tune_report
from search.trials.setup import (TrialSetup, call_ray_style, checked_report, epoch_state, function_config, tracked,
                                 train_api_routed)

__all__ = ["ClosesPools", "PoolError", "TrialWorkerError", "close_pools", "pooled_trainable", "run_pooled_trial"]

#: How long a trial waits for the workers to drop a job it gave up (ASHA cut it, or it
#: failed) before it shuts the pool down. Tune gives a trial process 2 s to become free
#: for the next trial (``TUNE_FUNCTION_THREAD_TIMEOUT_S``).
CANCEL_WAIT_S = 1.5
#: Poll interval of a trial waiting on its workers; between polls it checks the pool is alive.
POLL_S = 1.0


class PoolError(RuntimeError):
    """The pool's ``TorchTrainer`` ended (a worker died, or it could not start)."""


class TrialWorkerError(RuntimeError):
    """The training function raised on a worker; the message ends with the worker's traceback."""


class _Stopped(BaseException):
    """Raised in a worker's ``report`` when the trial is stopped; not an ``Exception``, so user code lets it by."""


def _serve(loop_config: dict[str, Any]) -> None:
    """The Train workers' loop: run the mailbox's jobs until it closes."""
    from search.spec.registry import is_ray_style, resolve_trainable
    from trainables.api import call_training_function, ranked_report
    from trainables.distributed import WorldInfo

    mailbox = loop_config["mailbox"]
    ctx = ray.train.get_context()
    world = WorldInfo(ctx.get_world_rank(), ctx.get_world_size(), ctx.get_local_rank())
    ray.get(mailbox.hello.remote(world.rank, ray.get_runtime_context().current_actor))
    after = -1
    while (job := ray.get(mailbox.next_job.remote(world.rank, after))) is not None:
        seq = after = job["seq"]
        setup: TrialSetup = job["setup"]
        error = None
        try:
            fn = resolve_trainable(setup.trainable_ref, setup.search_paths)
            config = dict(job["config"])
            if setup.plan.use_gpu and "device" in getattr(fn, "config_keys", ()):
                from ray.train.torch import get_device

                config["device"] = str(get_device())
            resume_files = ray.get(job["resume"][0]) if job["resume"] else None
            with unpacked(resume_files, "search-resume-") as resume:
                report = ranked_report(_worker_report(mailbox, seq, world.rank), setup.checkpoint_score,
                                       setup.checkpoint_mode, every_epoch=setup.checkpoint_every_epoch)
                if is_ray_style(fn):
                    _run_ray_style(fn, config, report, resume, setup, world)
                else:
                    call_training_function(fn, function_config(fn, config, setup), report, data=setup.load_data(),
                                           resume_from=resume, world=world)
        except _Stopped:
            pass
        except BaseException:  # noqa: BLE001 - sys.exit() in user code too: the trial reports it, the worker goes on
            error = traceback.format_exc()
        ray.get(mailbox.finish.remote(seq, world.rank, error))
        _release_gpu_memory()  # the next job may need it all


class _Relay:
    """A Ray-style trainable's ``ray.train.report(metrics, checkpoint=Checkpoint)`` as the pool's ``report(metrics,
    folder)``; counts the reports (none at all is an error :func:`call_ray_style` explains)."""

    def __init__(self, report: Any, trainable: str) -> None:
        self.report, self.trainable, self.reports = report, trainable, 0

    def __call__(self, metrics: Mapping[str, Any], checkpoint: Any = None) -> None:
        self.reports += 1
        if checkpoint is None:
            self.report(metrics, None)
            return
        with checkpoint.as_directory() as folder:  # a local checkpoint: its own folder, nothing copied
            self.report(metrics, folder)


def _run_ray_style(fn: Any, config: dict[str, Any], report: Any, resume: str | None, setup: TrialSetup,
                   world: Any) -> None:
    """Run a Ray-style ``fn(config)`` on this worker: its ``ray.train.report`` / ``get_checkpoint`` (and
    ``ray.tune``'s) are the pool's for the duration of the job (:func:`search.trials.setup.train_api_routed`),
    not the pool's own ``TorchTrainer``'s, which serves every trial of this process."""
    relay = _Relay(report, setup.trainable_ref)
    checkpoint = ray.train.Checkpoint.from_directory(resume) if resume else None
    with train_api_routed(relay, checkpoint):
        call_ray_style(fn, config, relay, data=setup.load_data(), world=world)


def _worker_report(mailbox: Any, seq: int, rank: int) -> Any:
    index = 0

    def report(metrics: Mapping[str, Any], checkpoint_dir: str | Path | None = None) -> None:
        nonlocal index
        payload = None
        if rank == 0:
            files = [ray.put(pack_folder(checkpoint_dir))] if checkpoint_dir else None  # a list: not resolved in transit
            payload = {"metrics": dict(metrics), "checkpoint": files}
        go_on = ray.get(mailbox.report.remote(seq, rank, index, payload))
        index += 1
        if not go_on:
            raise _Stopped()

    return report


def _release_gpu_memory() -> None:
    """Free what the last trial left on the GPU (tensors in reference cycles, the allocator's cache)."""
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_initialized():
        gc.collect()
        torch.cuda.empty_cache()


# ----------------------------------------------------------------------------- the trial's side


class _Pool:
    """A running ``TorchTrainer`` whose workers serve :class:`Mailbox` jobs, in this trial process."""

    def __init__(self, setup: TrialSetup) -> None:
        from ray.train.torch import TorchConfig, TorchTrainer
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        plan = setup.plan
        self.key = _pool_key(setup)
        here = ray.get_runtime_context().get_node_id()
        self.mailbox = ray.remote(Mailbox).options(
            num_cpus=0, scheduling_strategy=NodeAffinitySchedulingStrategy(here, soft=True),
        ).remote(plan.num_workers)
        self.failure: BaseException | None = None
        self.trainer = TorchTrainer(
            _serve,
            train_loop_config={"mailbox": self.mailbox},
            scaling_config=ray.train.ScalingConfig(
                num_workers=plan.num_workers, use_gpu=plan.use_gpu, resources_per_worker=plan.worker_resources),
            torch_config=TorchConfig(backend=plan.ddp_backend),
            run_config=ray.train.RunConfig(
                name=f"pool_{ray.get_runtime_context().get_actor_id() or 'driver'}_{id(self):x}",
                storage_path=f"{setup.experiment_path}/{TRAIN_RUNS_DIR}",
                failure_config=ray.train.FailureConfig(max_failures=0),  # retries are Tune's
            ),
        )
        self.thread = threading.Thread(target=self._fit, name="search-worker-pool", daemon=True)
        self.thread.start()

    def _fit(self) -> None:
        try:
            self.trainer.fit()
        except BaseException as exc:  # noqa: BLE001 - kept for the trial that waits on it
            self.failure = exc

    @property
    def alive(self) -> bool:
        return self.thread.is_alive()

    def next_event(self, seq: int) -> tuple[str, Any, Any]:
        while True:
            event = ray.get(self.mailbox.next_event.remote(seq, POLL_S))
            if event is not None:
                return event
            if not self.alive:
                reason = f"{type(self.failure).__name__}: {self.failure}" if self.failure else "it ended"
                raise PoolError(f"the trial's Ray Train workers stopped ({reason})")

    def drop(self, seq: int) -> bool:
        """Cancel job ``seq`` and wait for every rank to leave it; False if they did not in time."""
        ray.get(self.mailbox.cancel.remote(seq))
        deadline = time.monotonic() + CANCEL_WAIT_S
        while (left := deadline - time.monotonic()) > 0 and self.alive:
            event = ray.get(self.mailbox.next_event.remote(seq, min(left, 0.25)))
            if event is not None and event[0] == "done":
                return True
        return False

    def close(self, *, kill: bool = False, timeout: float = 10.0) -> None:
        """End the workers' loop and wait for the ``TorchTrainer`` to finish; ``kill``: do not wait for them."""
        with contextlib.suppress(Exception):
            if kill:
                for handle in ray.get(self.mailbox.worker_handles.remote(), timeout=5):
                    ray.kill(handle)
            else:
                ray.get(self.mailbox.close.remote(), timeout=5)
        self.thread.join(timeout)
        with contextlib.suppress(Exception):
            ray.kill(self.mailbox)


def _pool_key(setup: TrialSetup) -> tuple[Any, ...]:
    return (setup.trainable_ref, setup.search_paths, setup.plan, setup.experiment_path)


_pools: list[_Pool] = []
_lock = threading.Lock()


def _pool_for(setup: TrialSetup) -> _Pool:
    """This process's pool for ``setup``; a new one if there is none, it ended, or it serves another set-up."""
    with _lock:
        for pool in list(_pools):
            if pool.alive and pool.key == _pool_key(setup):
                return pool
            _pools.remove(pool)
            pool.close(kill=not pool.alive)
        pool = _Pool(setup)
        _pools.append(pool)
        return pool


def close_pools() -> None:
    """Close this process's pools (the trial process exits, or a test is done)."""
    with _lock:
        while _pools:
            _pools.pop().close()


atexit.register(close_pools)  # a fallback; runs before Ray's own exit handler (registered earlier, run later)


class ClosesPools:
    """Mixin for Tune's function trainable: when Tune stops the trial process, end its pools cleanly first.

    Tune calls ``cleanup`` when it retires a trial process (not between the trials it
    reuses the process for). Closing the pool there normally lets the ``TorchTrainer``
    finish its run and release its workers' placement group itself. If that takes longer
    than Tune waits (a pool still starting, a rank stuck), the process is killed and
    Train's placement-group cleaner releases the group instead.
    """

    def cleanup(self) -> None:
        try:
            super().cleanup()  # type: ignore[misc]
        finally:
            close_pools()


def pooled_trainable(setup: TrialSetup) -> Any:
    """:func:`run_pooled_trial` as a Tune trainable whose trial processes close their pools when retired."""
    from ray import tune

    trainable = tune.with_parameters(run_pooled_trial, setup=setup)
    trainable.__mixins__ = (ClosesPools,)  # extra base classes for the class Tune wraps the function in
    return trainable


def run_pooled_trial(config: dict[str, Any], setup: TrialSetup) -> None:
    """Run one trial on this process's Train workers; rank 0's reports go to Tune."""
    from ray import tune

    pool = _pool_for(setup)
    checkpoint = tune.get_checkpoint()
    with resume_dir(checkpoint, ours=setup.builtin) as resume:
        resume_ref = [ray.put(pack_folder(resume))] if resume else None
    seq = ray.get(pool.mailbox.submit.remote({"config": config, "setup": setup, "resume": resume_ref}))
    report = checked_report(tune_report, setup.required_metrics, setup.trainable_ref, epoch_state(checkpoint),
                            params=tracked(setup, config))
    left = False
    try:
        while True:
            kind, where, payload = pool.next_event(seq)
            if kind == "done":
                left = True
                return
            if kind == "error":
                raise TrialWorkerError(f"the training function failed on worker rank {where}:\n{payload.rstrip()}")
            files = ray.get(payload["checkpoint"][0]) if payload["checkpoint"] else None
            with unpacked(files, "search-checkpoint-") as checkpoint_dir:
                report(payload["metrics"], checkpoint_dir)  # Tune copies the checkpoint into the trial folder
            ray.get(pool.mailbox.answer.remote(seq, where, True))
    finally:
        if not left and pool.alive and not pool.drop(seq):
            # A rank is still busy (in a collective another rank left, or a long step): the
            # pool cannot take the next trial. Retire it, so the next trial starts a fresh one,
            # and kill it in the background: Tune gives this thread 2 s to end before it
            # fails the next trial it meant to run in this process.
            with _lock:
                if pool in _pools:
                    _pools.remove(pool)
            threading.Thread(target=pool.close, kwargs={"kill": True}, name="search-pool-kill", daemon=True).start()
        with contextlib.suppress(Exception):
            pool.mailbox.forget.remote(seq)
