"""Searches on a CUDA GPU through the command line (skipped without one).

Four trials sharing one GPU (``gpus_per_worker: 0.25``) on the direct executor, and
two-worker DDP trials on fractions of one GPU through the TorchTrainer pool, whose GPU
checkpoints then feed the held-out test and ``predict`` on the CPU. Each run is its own
``python -m search run`` with its own embedded Ray (which finds the GPU), not the session's
CPU-only test cluster.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pandas as pd
import pytest

torch = pytest.importorskip("torch")
pytestmark = [pytest.mark.gpu, pytest.mark.slow, pytest.mark.ray,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")]

REPO = Path(__file__).resolve().parents[3]

PROBE = '''
import os
import time

import torch


def train(config, report, world=None):
    """Sleeps while holding a tensor on the GPU Ray gave it; reports where it ran and when."""
    start = time.time()
    x = torch.ones(1024, device="cuda")
    time.sleep(config["hold_s"])
    report({"epoch": 1, "score": config["x"], "on_cuda": float(x.is_cuda), "start": start, "end": time.time(),
            "visible_gpus": float(torch.cuda.device_count())})


train.metrics = ("epoch", "score", "on_cuda", "start", "end", "visible_gpus")
'''


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    env.pop("RAY_ADDRESS", None)
    return subprocess.run([sys.executable, "-m", "search", *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=600)


def test_four_trials_share_one_gpu(tmp_path):
    (tmp_path / "gpu_probe.py").write_text(PROBE)
    (tmp_path / "space.yaml").write_text(textwrap.dedent("""
        name: share
        trainable: gpu_probe:train
        metric: score
        mode: max
        search: {sampler: random, num_samples: 4, seed: 0}
        scheduler: {type: none}
        space: {x: {type: float, low: 0, high: 1}}
        fixed: {hold_s: 4}
        resources: {use_gpu: true, gpus_per_worker: 0.25, cpus_per_worker: 1}
        storage: results
    """))
    plan = _cli("validate", "space.yaml", cwd=tmp_path)
    assert plan.returncode == 0, plan.stderr
    assert "4 trial(s) at once" in plan.stdout

    proc = _cli("run", "space.yaml", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    table = pd.read_csv(tmp_path / "results" / "share" / "results.csv")
    assert len(table) == 4 and set(table["outcome"]) == {"completed"}
    rows = pd.concat(pd.read_json(p, lines=True) for p in (tmp_path / "results" / "share").glob("trial_*/result.json"))
    assert (rows["on_cuda"] == 1.0).all() and (rows["visible_gpus"] == 1.0).all()
    # All four held the GPU at the same moment: the latest start comes before the earliest end.
    assert rows["start"].max() < rows["end"].min()


def test_two_worker_ddp_trials_on_one_gpu_then_test_and_predict_on_the_cpu(tmp_path):
    (tmp_path / "space.yaml").write_text(textwrap.dedent("""
        name: ddp
        trainable: feature_selection
        data: {name: madelon, n_samples: 600, n_features: 12, n_informative: 3}
        metric: val_accuracy
        mode: max
        search: {num_samples: 2, seed: 0, max_concurrent_trials: 1}
        scheduler: {type: none}
        space: {lr: {type: float, low: 1.0e-3, high: 3.0e-2, log: true}}
        fixed: {epochs: 2, batch_size: 32}
        resources: {num_workers: 2, use_gpu: true, gpus_per_worker: 0.5, cpus_per_worker: 1}
        storage: results
        failure: {max_retries: 0}
    """))
    proc = _cli("run", "space.yaml", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    folder = tmp_path / "results" / "ddp"
    table = pd.read_csv(folder / "results.csv")
    assert len(table) == 2 and set(table["outcome"]) == {"completed"}
    assert set(table["epochs_run"]) == {2}
    assert table["test_accuracy"].notna().sum() >= 1  # the held-out test read a GPU checkpoint on the CPU

    # The best trial's GPU-trained model on the raw test rows, on the CPU: its test accuracy again.
    import numpy as np

    from search.results import load_predictor
    from trainables.data import load_data

    raw = load_data({"name": "madelon", "n_samples": 600, "n_features": 12, "n_informative": 3, "scale": False})
    predictor = load_predictor(folder)
    labels = predictor.predict(pd.DataFrame(raw.x_test, columns=list(raw.feature_names)))
    codes = np.array([list(predictor.class_names).index(label) for label in labels])
    best = table.loc[table["trial_id"] == predictor.trial_id].iloc[0]
    assert float((codes == raw.y_test).mean()) == pytest.approx(best["test_accuracy"], abs=1e-9)
