"""What runs inside trial processes (and on Ray Train workers), on the contract of :mod:`trainables.api`.

* :mod:`.setup` — what every trial gets besides its config; the check on its reports;
* :mod:`.direct` — the ``direct`` executor: train in the Tune trial process;
* :mod:`.pool` — the ``torch_trainer`` executor: Train workers kept across trials;
* :mod:`.torch_trainer` — ``reuse_workers: false``: a ``TorchTrainer`` per trial;
* :mod:`.checkpoints` — which checkpoint a trial resumes from;
* :mod:`.resources` — what a trial asks of the cluster (pure; the driver plans with it).
"""
