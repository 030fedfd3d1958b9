"""Where an experiment lives (search.experiment): paths made absolute, URIs untouched, a mirror that keeps what is ours,
an --overwrite that deletes only experiments, credentials never shown, records that stop only Ray's processes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from search.spec import Spec
from search.experiment import Experiment, storage_root

REPO = Path(__file__).resolve().parents[2]


def spec(storage: str) -> Spec:
    return Spec.model_validate({"name": "exp", "fixed": {"epochs": 2}, "storage": storage})


def where(spec: Spec) -> Experiment:
    return Experiment.in_storage(spec.storage, spec.name)


def test_local_storage_is_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert storage_root(spec("results").storage) == str(tmp_path / "results")
    assert where(spec("results")).local == tmp_path / "results" / "exp"
    assert not where(spec("results")).is_remote


def test_uri_storage_keeps_its_scheme():
    assert storage_root(spec("s3://bucket/runs/").storage) == "s3://bucket/runs"
    assert where(spec("gs://bucket/runs")).location == "gs://bucket/runs/exp"
    assert where(spec("s3://b/r")).is_remote and where(spec("s3://b/r")).name == "exp"


def test_what_a_user_typed_becomes_an_experiment_once(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "results" / "quick").mkdir(parents=True)
    assert Experiment.at("quick").local == tmp_path / "results" / "quick"  # a bare name: under ./results
    assert Experiment.at("results/quick").local == tmp_path / "results" / "quick"
    assert Experiment.at("s3://b/runs/exp/").location == "s3://b/runs/exp"  # Path() would fold s3:// to s3:/
    assert Experiment.at(Experiment.at("quick")) == Experiment.at("quick")


def test_an_experiment_folder_counts_as_used_once_a_run_left_more_than_its_spec(tmp_path):
    from search.experiment import SPEC_COPY, SPEC_SOURCE_COPY

    for folder in (str(tmp_path / "local"), f"file://{tmp_path}/remote"):
        experiment = Experiment.at(folder)
        assert experiment.contents() == []  # not there yet
        experiment.write_files({SPEC_COPY: "name: exp\n", SPEC_SOURCE_COPY: "# mine\n"})
        assert experiment.contents() == []  # a run that stopped before Tune saved anything
        local = Path(str(folder).removeprefix("file://"))
        (local / "trial_0001").mkdir()
        (local / "experiment_state-2026.json").write_text("{}")
        assert experiment.contents() == ["experiment_state-2026.json", "trial_0001"]
        experiment.remove()
        assert not local.exists() and experiment.contents() == []
    (tmp_path / "a_file").write_text("x")
    assert Experiment.at(tmp_path / "a_file").contents() == ["a_file"]  # a file where the folder should be


def test_a_storage_that_cannot_be_created_is_named_before_anything_starts(tmp_path):
    from search.experiment import unwritable_reason

    (tmp_path / "a_file").write_text("x")
    assert "is a file, not a folder" in unwritable_reason(str(tmp_path / "a_file" / "results"))
    assert unwritable_reason(str(tmp_path / "new" / "deeper")) is None  # creatable
    assert not (tmp_path / "new").exists()  # checking creates nothing
    assert "unknown storage scheme 'ftp'" in unwritable_reason("ftp://host/runs")
    # A name longer than the file system allows (found by the spec-mutation property test): a reason, not OSError.
    assert "File name too long; choose a shorter storage path" in unwritable_reason(str(tmp_path / ("x" * 300)))
    assert unwritable_reason(f"file://{tmp_path}/runs") is None
    with pytest.raises(OSError, match="cannot write into the experiment folder"):
        Experiment.at(tmp_path / "a_file" / "exp").probe_writable()
    Experiment.at(tmp_path / "ok" / "exp").probe_writable()
    assert not (tmp_path / "ok").exists()  # what the probe created is gone again
    (tmp_path / "kept").mkdir()
    Experiment.at(tmp_path / "kept").probe_writable()
    assert (tmp_path / "kept").is_dir() and list((tmp_path / "kept").iterdir()) == []


@pytest.mark.parametrize("verb", ["validate", "run"])
def test_validate_and_run_refuse_an_uncreatable_storage_with_exit_2(tmp_path, verb):
    (tmp_path / "blocker").write_text("x")
    spec_file = tmp_path / "space.yaml"
    spec_file.write_text("name: t\nfixed: {epochs: 2}\nstorage: blocker/results\n")
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    proc = subprocess.run([sys.executable, "-m", "search", verb, str(spec_file)], cwd=tmp_path, capture_output=True,
                          text=True, env={**env, "PYTHONPATH": str(REPO)}, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert f"{spec_file}:3: storage: storage 'blocker/results' cannot be created" in proc.stderr
    assert "Traceback" not in proc.stderr and "ray" not in proc.stderr.lower()
    assert (tmp_path / "blocker").read_text() == "x"


def test_a_uri_query_string_stays_after_the_experiment_name():
    assert Experiment.in_storage("s3://b/runs/?endpoint_override=h:9000&scheme=http", "exp").location == \
        "s3://b/runs/exp?endpoint_override=h:9000&scheme=http"
    assert storage_root("s3://b/runs/?region=x") == "s3://b/runs?region=x"


def test_credentials_in_a_uri_are_refused_and_not_echoed():
    from search.experiment import redact, unwritable_reason

    reason = unwritable_reason("s3://b/runs?access_key=AKIA123&scheme=http")
    assert "carries credentials in its query string (access_key)" in reason and "AKIA123" not in reason
    assert unwritable_reason("s3://b/runs?endpoint_override=h:9000&scheme=http") is None
    # In the user part too (it passed the check before, and the secret was echoed in the error).
    reason = unwritable_reason("s3://AKIAKEY:SeCrEt/x@bucket/runs")
    assert reason is not None and "user part" in reason and "SeCrEt" not in reason and "AKIAKEY" not in reason
    reason = unwritable_reason("s3://AKIAKEY:SeCrEt@bucket/runs")
    assert reason is not None and "SeCrEt" not in reason
    assert redact("cannot open s3://K:S@b/r?secret_key=S2&region=x") == "cannot open s3://***@b/r?secret_key=***&region=x"
    assert str(Experiment.at("s3://K:S@b/r/exp")) == "s3://***@b/r/exp"  # anything printed is redacted


def test_a_local_copy_follows_its_uri_incrementally_and_publish_writes_back(tmp_path, monkeypatch):
    """file:// stands in for a bucket here (the S3 server tests run the same code against S3)."""
    from search.experiment import CACHE_ENV

    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))
    remote = tmp_path / "bucket" / "exp"
    (remote / "trial_a" / "checkpoint_000000").mkdir(parents=True)
    (remote / "trial_a" / "checkpoint_000000" / "checkpoint.pt").write_bytes(b"w0")
    (remote / "trial_a" / "result.json").write_text('{"epoch": 1}\n')
    (remote / "spec.yaml").write_text("name: exp\n")
    uri = f"file://{remote}"
    experiment = Experiment.at(uri)
    copy = experiment.sync()
    assert copy == experiment.local and copy.is_relative_to(tmp_path / "cache")
    assert (copy / "trial_a" / "checkpoint_000000" / "checkpoint.pt").read_bytes() == b"w0"
    unchanged = (copy / "spec.yaml").stat().st_ino
    # The run goes on: a new row, a new checkpoint, retention deletes the old one.
    (remote / "trial_a" / "result.json").write_text('{"epoch": 1}\n{"epoch": 2}\n')
    (remote / "trial_a" / "checkpoint_000001").mkdir()
    (remote / "trial_a" / "checkpoint_000001" / "checkpoint.pt").write_bytes(b"w1")
    (remote / "trial_a" / "checkpoint_000000" / "checkpoint.pt").unlink()
    (remote / "trial_a" / "checkpoint_000000").rmdir()
    (copy / "mlflow.db").write_text("a store written here, never published")  # the user's, not the mirror's
    assert experiment.sync() == copy
    assert (copy / "trial_a" / "result.json").read_text().count("epoch") == 2
    assert not (copy / "trial_a" / "checkpoint_000000").exists()  # fetched once, gone upstream: deleted here
    assert (copy / "mlflow.db").read_text() == "a store written here, never published"  # a cache never deletes what it did not fetch
    assert (copy / "trial_a" / "checkpoint_000001" / "checkpoint.pt").read_bytes() == b"w1"
    assert (copy / "spec.yaml").stat().st_ino == unchanged  # not fetched again (fetching replaces the file)
    # This machine's run.log (a run into the URI writes it here, uploads it at its end) survives a sync.
    (remote / "run.log").write_text("an older run's log\n")
    (copy / "run.log").write_text("this run's log, still being written\n")
    experiment.sync()
    assert (copy / "run.log").read_text() == "this run's log, still being written\n"
    (copy / "run.log").unlink()
    experiment.sync()  # none here (another machine resumes): the URI's is fetched, to be appended to
    assert (copy / "run.log").read_text() == "an older run's log\n"
    (copy / "report.html").write_text("<html/>")
    assert experiment.publish(["report.html"]) == [f"{uri}/report.html"]
    assert (remote / "report.html").read_text() == "<html/>"
    (remote / "report.html").unlink()  # published, then deleted upstream: the mirror's own now, so it goes too
    experiment.sync()
    assert not (copy / "report.html").exists() and (copy / "mlflow.db").exists()
    assert Experiment.at(tmp_path / "bucket" / "exp").publish(["report.html"]) == []  # a local experiment: nothing to upload


def test_overwrite_deletes_only_what_is_recognisably_an_experiment(tmp_path):
    from search.experiment import ExperimentError

    notes = tmp_path / "results" / "quickstart"
    notes.mkdir(parents=True)
    (notes / "ideas.txt").write_text("my notes")
    with pytest.raises(ExperimentError, match=r"not an experiment folder \(it holds ideas.txt.*nothing deleted"):
        Experiment.at(notes).remove()
    assert (notes / "ideas.txt").read_text() == "my notes"
    target = tmp_path / "elsewhere"
    target.mkdir()
    (target / "tuner.pkl").write_bytes(b"x")
    link = tmp_path / "results" / "linked"
    link.symlink_to(target)
    with pytest.raises(ExperimentError, match="is a symbolic link"):
        Experiment.at(link).remove()
    assert (target / "tuner.pkl").exists()
    real = tmp_path / "results" / "real"
    (real / "trial_abc").mkdir(parents=True)
    (real / "trial_abc" / "result.json").write_text("{}")
    Experiment.at(real).remove()
    assert not real.exists()


def test_run_overwrite_of_a_folder_of_notes_exits_2_and_deletes_nothing(tmp_path):
    (tmp_path / "results" / "t").mkdir(parents=True)
    (tmp_path / "results" / "t" / "notes.md").write_text("keep me")
    (tmp_path / "space.yaml").write_text("name: t\nfixed: {epochs: 2}\nstorage: results\n")
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    proc = subprocess.run([sys.executable, "-m", "search", "run", "space.yaml", "--overwrite"], cwd=tmp_path,
                          capture_output=True, text=True, env={**env, "PYTHONPATH": str(REPO)}, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert "not an experiment folder" in proc.stderr and "Traceback" not in proc.stderr
    assert (tmp_path / "results" / "t" / "notes.md").read_text() == "keep me"


@pytest.mark.parametrize("session_dir", ["", "/", "relative/session_x", "/tmp"])
def test_a_crafted_embedded_ray_record_stops_nothing(tmp_path, session_dir):
    import json

    from search.engine.session import stop_leftovers
    from search.experiment import EMBEDDED_RAY_RECORD

    bystander = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"], cwd="/")
    try:
        gone = subprocess.Popen([sys.executable, "-c", "pass"])
        gone.wait()
        folder = tmp_path / "exp"
        folder.mkdir()
        (folder / EMBEDDED_RAY_RECORD).write_text(json.dumps({"driver_pid": gone.pid, "session_dir": session_dir}))
        assert stop_leftovers(Experiment.at(folder)) == []
        assert bystander.poll() is None  # before the fix: every process that held any file under "/" was stopped
        assert not (folder / EMBEDDED_RAY_RECORD).exists()  # an unusable record is dropped
    finally:
        bystander.kill()
        bystander.wait()


def test_resume_refuses_while_the_driver_of_the_experiment_still_runs(tmp_path):
    import json
    import socket

    from search.engine.session import _process_start
    from search.experiment import DRIVER_RECORD

    folder = tmp_path / "results" / "t"
    folder.mkdir(parents=True)
    (folder / "tuner.pkl").write_bytes(b"not read: the refusal comes first")
    (folder / "trial_live").mkdir()
    driver = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    try:
        (folder / DRIVER_RECORD).write_text(json.dumps({"pid": driver.pid, "started": _process_start(driver.pid),
                                                        "host": socket.gethostname()}))
        env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
        proc = subprocess.run([sys.executable, "-m", "search", "resume", str(folder)], capture_output=True, text=True,
                              env={**env, "PYTHONPATH": str(REPO)}, timeout=120)
        assert proc.returncode == 2, proc.stderr
        assert f"being run right now by process {driver.pid}" in proc.stderr and "Traceback" not in proc.stderr
        assert (folder / "trial_live").is_dir() and driver.poll() is None
    finally:
        driver.kill()
        driver.wait()
    # The driver gone (or its pid reused by another process): the record no longer blocks.
    from search.engine.session import live_driver

    assert live_driver(Experiment.at(folder)) is None
