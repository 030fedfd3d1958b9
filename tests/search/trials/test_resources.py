"""Resource planning: concurrency from the cluster, refusals before the run, ASHA rungs."""

from __future__ import annotations

import pytest

from search.engine.plan import asha_rungs, render_plan
from search.spec import Executor, Spec
from search.trials.resources import (
    DRIVER_RESOURCE,
    FRACTIONAL_DRIVER_CPU,
    ResourcePlanError,
    plan_trials,
)


def make_spec(**resources) -> Spec:
    return Spec.model_validate({"name": "t", "fixed": {"epochs": 9}, "search": {"num_samples": 20},
                                "resources": resources, "scheduler": {"grace_period": 1, "reduction_factor": 3}})


CPU4 = {"CPU": 4.0, DRIVER_RESOURCE: 100.0}


def test_single_cpu_worker_runs_direct_and_fills_the_cpus():
    plan = plan_trials(make_spec(), CPU4, [CPU4], driver_resource=True)
    assert plan.executor is Executor.DIRECT and plan.trial_resources == {"CPU": 1.0}
    assert plan.max_concurrent == 4


def test_torch_trainer_drivers_take_no_worker_cpu():
    plan = plan_trials(make_spec(num_workers=2), CPU4, [CPU4], driver_resource=True)
    assert plan.executor is Executor.TORCH_TRAINER
    assert plan.trial_resources == {DRIVER_RESOURCE: 1.0}
    assert plan.demand() == {DRIVER_RESOURCE: 1.0, "CPU": 4.0 / 2}
    assert plan.max_concurrent == 2  # 2 trials x 2 workers x 1 CPU = 4 CPUs: no driver starves a worker


def test_foreign_cluster_uses_fractional_driver_and_counts_it():
    cluster = {"CPU": 2.0}
    plan = plan_trials(make_spec(executor="torch_trainer"), cluster, [cluster], driver_resource=False)
    assert plan.trial_resources == {"CPU": FRACTIONAL_DRIVER_CPU}
    assert plan.max_concurrent == 1  # 2 x (1 + 0.01) > 2: a second trial could deadlock


def test_user_concurrency_is_capped_with_a_note():
    spec = Spec.model_validate({"name": "t", "fixed": {"epochs": 3}, "search": {"max_concurrent_trials": 8, "num_samples": 20}})
    plan = plan_trials(spec, CPU4, [CPU4], driver_resource=True)
    assert plan.max_concurrent == 4 and "lowered to 4" in plan.notes[0]


def test_fractional_gpus_let_trials_share_a_gpu():
    cluster = {"CPU": 8.0, "GPU": 1.0, DRIVER_RESOURCE: 100.0}
    plan = plan_trials(make_spec(gpus_per_worker=0.5, cpus_per_worker=1), cluster, [cluster], driver_resource=True)
    assert plan.use_gpu and plan.trial_resources == {"CPU": 1.0, "GPU": 0.5}
    assert plan.max_concurrent == 2


@pytest.mark.parametrize(("resources", "backend"), [
    ({"num_workers": 2, "use_gpu": False}, "gloo"),  # CPUs
    ({"num_workers": 2, "use_gpu": True}, "nccl"),  # a whole GPU per rank
    ({"num_workers": 1, "use_gpu": True, "gpus_per_worker": 0.25}, "nccl"),  # one rank: nothing to share
    # Two ranks on fractions may land on one device, which NCCL refuses: gloo reduces CUDA tensors too.
    ({"num_workers": 2, "use_gpu": True, "gpus_per_worker": 0.5}, "gloo"),
])
def test_ddp_backend_follows_the_devices(resources, backend):
    cluster = {"CPU": 8.0, "GPU": 2.0, DRIVER_RESOURCE: 100.0}
    plan = plan_trials(make_spec(executor="torch_trainer", **resources), cluster, [cluster], driver_resource=True)
    assert plan.ddp_backend == backend


@pytest.mark.parametrize(("resources", "cluster", "match"), [
    ({"use_gpu": True}, {"CPU": 4.0}, "the cluster has no GPU"),
    ({"num_workers": 2, "gpus_per_worker": 1}, {"CPU": 8.0, "GPU": 1.0}, r"2 workers x 1 GPU = 2 GPU, but the cluster has 1"),
    ({"cpus_per_worker": 8}, {"CPU": 4.0}, "each worker asks for 8 CPU but the largest node has 4"),
])
def test_impossible_requests_are_refused_before_the_run(resources, cluster, match):
    with pytest.raises(ResourcePlanError, match=match):
        plan_trials(make_spec(**resources), cluster, [cluster], driver_resource=True)


def test_asha_rungs_come_from_rays_scheduler():
    assert asha_rungs(make_spec()) == [1, 3]  # grace 1, factor 3, max_t 9 (9 itself is the end)
    spec = Spec.model_validate({"name": "t", "fixed": {"epochs": 16}, "scheduler": {"grace_period": 2, "reduction_factor": 2}})
    assert asha_rungs(spec) == [2, 4, 8]


def test_plan_text_lists_parameters_rungs_and_concurrency(tiny_spec, write_spec):
    from search.spec import load_spec

    text, plan = render_plan(load_spec(write_spec(tiny_spec)))
    assert plan is not None
    assert "lr                   float [0.001, 0.03] log" in text
    assert "trials can be cut at epochs 1, 2" in text
    assert "concurrency" in text and "executor direct" in text
    assert "checkpoints ranked by" not in text  # by the metric: one definition of a trial's value

    other = load_spec(write_spec(tiny_spec + "checkpoint: {score: val_loss, mode: min}\n", "other.yaml"))
    assert ("note        checkpoints ranked by val_loss, not by val_accuracy: the checkpoint kept (and load_model's) "
            "may be another epoch than the table's best_epoch") in render_plan(other)[0]


@pytest.mark.parametrize(("changes", "expected"), [
    ({}, "checkpoints best epochs (by val_accuracy), the last, and at most one every 10 s between "
         "(fixed.checkpoint_every_s); 2 kept per trial (by max val_accuracy) and the latest"),
    ({"fixed: {epochs: 3, batch_size: 32}": "fixed: {epochs: 3, checkpoint_every_s: 2.5, checkpoint_every: 3}",
      "failure:": "checkpoint: {num_to_keep: null}\nfailure:"},
     "checkpoints best epochs (by val_accuracy), the last, and at most one every 2.5 s between (on multiples of 3 "
     "epochs) (fixed.checkpoint_every_s); all kept"),
    ({"batch_size: 32}": "checkpoint_every_s: 0}"}, "checkpoints every epoch; 2 kept per trial"),
    ({"batch_size: 32}": "checkpoint_every: 0}"},
     "checkpoints none (fixed.checkpoint_every 0): a failed or interrupted trial starts again"),
    ({"trainable: feature_selection": "trainable: trainables.tasks:train_feature_selection"},  # by its module path
     "checkpoints best epochs (by val_accuracy), the last, and at most one every 10 s between"),
    ({"space:\n": "space:\n  checkpoint_every_s: {type: float, low: 0.0, high: 5.0}\n"},
     "checkpoints as each trial's checkpoint_every_s say (searched); 2 kept per trial"),
])
def test_plan_text_says_when_a_trial_checkpoints_and_what_it_keeps(tiny_spec, write_spec, changes, expected):
    """Issue 25, item 3: the built-in trainable no longer saves every epoch by default; validate says what it saves."""
    from search.spec import load_spec

    text = tiny_spec
    for old, new in changes.items():
        assert old in text
        text = text.replace(old, new)
    assert expected in render_plan(load_spec(write_spec(text)))[0]


@pytest.mark.parametrize(("reuse", "expected"), [(True, "executor torch_trainer, workers kept across trials"),
                                                 (False, "executor torch_trainer, a new TorchTrainer per trial")])
def test_plan_text_says_whether_train_workers_are_kept(tiny_spec, write_spec, reuse, expected):
    from search.spec import load_spec

    spec = load_spec(write_spec(tiny_spec.replace("resources: {num_workers: 1, cpus_per_worker: 1}",
                                                  f"resources: {{executor: torch_trainer, reuse_workers: {str(reuse).lower()}}}")))
    text, plan = render_plan(spec)
    assert plan is not None and plan.reuse_workers is reuse
    assert expected in text


def test_concurrency_follows_free_resources_but_refusal_follows_totals():
    # Inside a Ray job, the job's driver holds a CPU: 3 of 4 are free.
    plan = plan_trials(make_spec(), CPU4, [CPU4], driver_resource=True, available={"CPU": 3.0, DRIVER_RESOURCE: 100.0})
    assert plan.max_concurrent == 3
    plan = plan_trials(make_spec(cpus_per_worker=4), CPU4, [CPU4], driver_resource=True, available={"CPU": 3.0})
    assert plan.max_concurrent == 1  # never below one: the trial waits for the CPU rather than being refused


def _pbt(num_samples: int, **resources) -> Spec:
    return Spec.model_validate({
        "name": "t", "fixed": {"epochs": 9}, "search": {"num_samples": num_samples}, "resources": resources,
        "scheduler": {"type": "pbt", "perturbation_interval": 2},
        "space": {"lr": {"type": "float", "low": 1e-3, "high": 1e-1}}})


def test_pbt_on_train_workers_needs_the_whole_population_at_once():
    # Pooled trials wait for workers inside a running Tune trial: PBT could not pause one for another.
    with pytest.raises(ResourcePlanError, match=r"trains the whole population at once, and 2 trial\(s\) .* fit at "
                                                r"once, not 3: lower search.num_samples to 2"):
        plan_trials(_pbt(3, num_workers=2), CPU4, [CPU4], driver_resource=True)
    assert plan_trials(_pbt(2, num_workers=2), CPU4, [CPU4], driver_resource=True).max_concurrent == 2
    # In the trial process (executor direct), PBT pauses trials to take turns: any population.
    assert plan_trials(_pbt(12), CPU4, [CPU4], driver_resource=True).max_concurrent == 4
