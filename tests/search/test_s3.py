"""S3 storage end to end, against a real S3 API on loopback (moto's server), never a mock of ours.

One experiment is run into ``s3://runs/e2e`` by the command line (an embedded Ray in a
subprocess, the endpoint and dummy credentials in its environment only), then every reader
is pointed at the URI: the end-of-run tables, a second run refused, ``export``, ``best``,
``features``, ``report``, ``load_results``/``load_model`` in Python. A ``resume`` from S3 after a SIGKILL
is in ``engine/test_fault_tolerance.py`` (``after_rotation-s3-direct``).
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from tests.search.helpers import TINY_SPEC

REPO = Path(__file__).resolve().parents[2]
URI = "s3://runs/e2e/tiny"

pytestmark = [pytest.mark.ray, pytest.mark.slow]


def _env(s3, cache: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_") and k != "RAY_ADDRESS"}
    return {**env, **s3.env, "SEARCH_CACHE_DIR": str(cache), "PYTHONPATH": str(REPO), "PYTHONUNBUFFERED": "1"}


def _cli(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "search", *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=300)


@pytest.fixture(scope="module")
def s3_experiment(s3_server, tmp_path_factory):
    """The tiny spec run into s3://runs/e2e by ``python -m search run``: (server, workdir, env, the run)."""
    work = tmp_path_factory.mktemp("s3")
    env = _env(s3_server, work / "cache")
    (work / "space.yaml").write_text(TINY_SPEC)
    done = _cli("run", "space.yaml", "--storage", "s3://runs/e2e/", "--num-cpus", "2", env=env, cwd=work)
    return s3_server, work, env, done


def test_run_into_s3_writes_everything_there_and_reads_its_own_tables(s3_experiment):
    s3, work, _, done = s3_experiment
    assert done.returncode == 0, done.stderr[-3000:]
    assert "warning: could not write the results table" not in done.stderr
    assert "best trial " in done.stdout and "(no results table here" not in done.stdout
    assert f"results table: {URI}/results.csv" in done.stderr
    files = s3.files("e2e/tiny")
    assert {"e2e/tiny/spec.yaml", "e2e/tiny/tuner.pkl", "e2e/tiny/results.csv", "e2e/tiny/results.md",
            "e2e/tiny/optuna.journal", "e2e/tiny/run.log"} <= set(files)  # Ray syncs the journal up with its state
    trials = {k.split("/")[2] for k in files if k.split("/")[2].startswith("trial_")}
    assert len(trials) == 3 and all(f"e2e/tiny/{t}/result.json" in files for t in trials)
    table = pd.read_csv(io.StringIO(s3.read("e2e/tiny/results.csv")))
    assert len(table) == 3 and table["best_val_accuracy"].notna().all()
    assert not (work / "results").exists()  # nothing written to the default local storage
    # The dummy credentials live in the environment only: no file of ours or Tune's (pickles too) holds them.
    for key in files:
        assert b"testing" not in s3.read_bytes(key), key


def test_a_second_run_into_the_s3_experiment_is_refused(s3_experiment):
    s3, work, env, _ = s3_experiment
    again = _cli("run", "space.yaml", "--storage", "s3://runs/e2e", env=env, cwd=work)
    assert again.returncode == 2 and f"experiment folder {URI} already holds an experiment" in again.stderr
    assert f"python -m search resume {URI}" in again.stderr
    assert len(pd.read_csv(io.StringIO(s3.read("e2e/tiny/results.csv")))) == 3  # untouched


def test_export_best_features_and_report_read_the_uri(s3_experiment):
    s3, work, env, _ = s3_experiment
    exported = _cli("export", URI, env=env, cwd=work)
    assert exported.returncode == 0, exported.stderr[-2000:]
    table = pd.read_csv(io.StringIO(exported.stdout))
    uploaded = pd.read_csv(io.StringIO(s3.read("e2e/tiny/results.csv")))
    assert table["trial_id"].tolist() == uploaded["trial_id"].tolist()
    assert table["best_val_accuracy"].tolist() == pytest.approx(uploaded["best_val_accuracy"].tolist())

    best = _cli("best", URI, env=env, cwd=work)
    assert best.returncode == 0, best.stderr[-2000:]
    fixed = yaml.safe_load(best.stdout)
    assert set(fixed) >= {"lr", "sparsity_lambda"}
    assert fixed["lr"] == pytest.approx(float(table.iloc[0]["lr"]))

    features = _cli("features", URI, "--format", "csv", env=env, cwd=work)
    assert features.returncode == 0, features.stderr[-2000:]
    assert len(pd.read_csv(io.StringIO(features.stdout))) == 10  # one row per input feature

    report = _cli("report", URI, env=env, cwd=work)
    assert report.returncode == 0, report.stderr[-2000:]
    assert report.stdout.strip() == f"{URI}/report.html"
    assert "<html" in s3.read("e2e/tiny/report.html")


def test_load_results_and_load_model_from_the_uri(s3_experiment, monkeypatch):
    s3, work, env, _ = s3_experiment
    for key, value in env.items():
        if key.startswith("AWS_") or key == "SEARCH_CACHE_DIR":
            monkeypatch.setenv(key, value)
    from search.results import load_model, load_results

    table = load_results(URI)
    assert len(table) == 3
    best = table.iloc[0]
    model = load_model(URI)
    assert not model.training and int(model.gates.mu.shape[0]) == 10
    # The checkpoint column names the local copy, a folder that exists here.
    assert Path(best["checkpoint"]).is_dir() and str(work / "cache") in best["checkpoint"]
    # Retention on S3 is mirrored: a checkpoint deleted there is gone from the copy at the next read.
    trial = table.iloc[-1]["trial_id"]
    checkpoints = sorted({k.rsplit("/", 2)[1] for k in s3.files(f"e2e/tiny/trial_{trial}") if "/checkpoint_" in k})
    s3.filesystem().delete_dir(f"runs/e2e/tiny/trial_{trial}/{checkpoints[0]}")
    again = load_results(URI)
    copy = Path(best["checkpoint"]).parents[1] / f"trial_{trial}"
    assert not (copy / checkpoints[0]).exists() and len(again) == 3


def test_storage_with_credentials_in_the_uri_is_refused_before_anything_starts(s3_server, tmp_path):
    env = _env(s3_server, tmp_path / "cache")
    (tmp_path / "space.yaml").write_text(TINY_SPEC + "storage: s3://runs/x?access_key=def&secret_key=abc\n")
    for command in ("validate", "run"):
        done = _cli(command, "space.yaml", env=env, cwd=tmp_path)
        assert done.returncode == 2, (command, done.stderr[-2000:])
        assert "space.yaml:15: storage: storage 's3://runs/x' carries credentials in its query string " \
               "(access_key, secret_key)" in done.stderr
        assert "abc" not in done.stderr and not s3_server.files("x")


def test_an_endpoint_in_the_uri_query_keeps_the_experiment_name_in_the_path(s3_server, tmp_path):
    """``?endpoint_override=`` instead of AWS_ENDPOINT_URL: the experiment name goes before the query."""
    env = {k: v for k, v in _env(s3_server, tmp_path / "cache").items() if k != "AWS_ENDPOINT_URL"}
    spec = yaml.safe_load(TINY_SPEC)
    spec.update(name="query", search={"num_samples": 1, "seed": 0}, scheduler={"type": "none"})
    (tmp_path / "space.yaml").write_text(yaml.safe_dump(spec))
    host = s3_server.endpoint.removeprefix("http://")
    storage = f"s3://runs/q?endpoint_override={host}&scheme=http"
    done = _cli("run", "space.yaml", "--storage", storage, "--num-cpus", "2", env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "q/query/spec.yaml" in s3_server.files("q") and "q/query/results.csv" in s3_server.files("q")
    exported = _cli("export", f"s3://runs/q/query?endpoint_override={host}&scheme=http", env=env, cwd=tmp_path)
    assert exported.returncode == 0 and len(pd.read_csv(io.StringIO(exported.stdout))) == 1


@pytest.mark.parametrize("verb", ["validate", "run"])
def test_a_bucket_that_does_not_exist_is_refused_before_anything_starts(s3_server, tmp_path, verb):
    env = _env(s3_server, tmp_path / "cache")
    (tmp_path / "space.yaml").write_text(TINY_SPEC + "storage: s3://no-such-bucket/runs\n")
    proc = _cli(verb, "space.yaml", env=env, cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert "space.yaml:" in proc.stderr and "cannot write into the experiment folder s3://no-such-bucket/runs/tiny" in proc.stderr
    assert "Traceback" not in proc.stderr and "Started a local Ray" not in proc.stderr
    assert not any(key.startswith("no-such-bucket") for key in s3_server.files(""))
