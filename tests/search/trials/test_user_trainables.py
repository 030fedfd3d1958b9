"""A trainable of your own, as people write them (issue 22, items 13 and 14), on the shared local Ray."""

from __future__ import annotations

import textwrap

import optuna
import pytest
import yaml

from search.engine.run import RunOptions, run_experiment
from search.results import open_results
from search.results.searcher_state import load_study
from search.spec import load_spec

pytestmark = [pytest.mark.ray]

TRAINABLE = '''
import os, tempfile
import numpy as np
import torch

SCORES = {1: 0.1, 2: 0.9, 3: 0.5, 4: 0.4, 5: 0.3}


def train(config, report, resume_from=None):
    start = 1
    if resume_from:  # a checkpoint.pt of our own format, as Ray Tune's examples save it
        start = torch.load(os.path.join(resume_from, "checkpoint.pt"))["epoch"] + 1
    for epoch in range(start, config["epochs"] + 1):
        with open(config["log"], "a") as log:
            log.write(f"{epoch}\\n")
        if epoch == 3 and not os.path.exists(config["log"] + ".failed"):
            open(config["log"] + ".failed", "w").close()
            raise RuntimeError("injected failure at epoch 3, after the checkpoint of epoch 2")
        folder = tempfile.mkdtemp()
        torch.save({"net": {"w": torch.ones(1) * epoch}, "epoch": epoch}, os.path.join(folder, "checkpoint.pt"))
        # numpy scalars, as `loss.cpu().numpy()` gives them
        report({"epoch": np.int64(epoch), "score": np.float32(SCORES[epoch]) * config["x"]}, folder)
'''


def test_a_users_checkpoint_resumes_a_retried_trial_and_numpy_metrics_count(ray_cluster, tmp_path):
    (tmp_path / "own_format_trainable.py").write_text(TRAINABLE)
    raw = yaml.safe_load(textwrap.dedent(f"""
        name: own
        trainable: own_format_trainable:train
        metric: score
        mode: max
        search: {{num_samples: 1, sampler: random, seed: 0}}
        scheduler: {{type: none}}
        space: {{x: {{type: float, low: 1.0, high: 1.0}}}}
        fixed: {{epochs: 5, log: {str(tmp_path / "epochs.log")!r}}}
        failure: {{max_retries: 1}}
        storage: {str(tmp_path / "results")!r}
    """))
    path = tmp_path / "space.yaml"
    path.write_text(yaml.safe_dump(raw))
    outcome = run_experiment(load_spec(path), RunOptions(spec_path=path))
    assert not outcome.results.errors
    started = [int(e) for e in (tmp_path / "epochs.log").read_text().split()]
    assert started == [1, 2, 3, 3, 4, 5], started  # before: [1, 2, 3, 1, 2, 3, 4, 5], the checkpoint discarded
    table = open_results(outcome.experiment).table
    assert table["best_score"].tolist() == pytest.approx([0.9]) and table["best_epoch"].tolist() == [2]
    (trial,) = load_study(outcome.experiment.local).get_trials(deepcopy=False)
    assert trial.state is optuna.trial.TrialState.COMPLETE
    assert trial.value == pytest.approx(0.9)  # before: numpy values dropped, Optuna told the last epoch's 0.3
