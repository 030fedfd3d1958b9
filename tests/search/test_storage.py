"""Storage: local paths are made absolute; URIs pass through untouched."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from search.spec import Spec
from search.storage import experiment_path, storage_root

REPO = Path(__file__).resolve().parents[2]


def spec(storage: str) -> Spec:
    return Spec.model_validate({"name": "exp", "fixed": {"epochs": 2}, "storage": storage})


def where(spec: Spec) -> Path | str:
    return experiment_path(spec.storage, spec.name)


def test_local_storage_is_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert storage_root(spec("results").storage) == str(tmp_path / "results")
    assert where(spec("results")) == tmp_path / "results" / "exp"


def test_uri_storage_keeps_its_scheme():
    assert storage_root(spec("s3://bucket/runs/").storage) == "s3://bucket/runs"
    assert where(spec("gs://bucket/runs")) == "gs://bucket/runs/exp"
    assert not isinstance(where(spec("s3://b/r")), Path)


def test_an_experiment_folder_counts_as_used_once_a_run_left_more_than_its_spec(tmp_path):
    from search.storage import SPEC_COPY, SPEC_SOURCE_COPY, experiment_contents, remove_experiment, write_files

    for folder in (tmp_path / "local", f"file://{tmp_path}/remote"):
        assert experiment_contents(folder) == []  # not there yet
        write_files(folder, {SPEC_COPY: "name: exp\n", SPEC_SOURCE_COPY: "# mine\n"})
        assert experiment_contents(folder) == []  # a run that stopped before Tune saved anything
        local = Path(str(folder).removeprefix("file://"))
        (local / "trial_0001").mkdir()
        (local / "experiment_state-2026.json").write_text("{}")
        assert experiment_contents(folder) == ["experiment_state-2026.json", "trial_0001"]
        remove_experiment(folder)
        assert not local.exists() and experiment_contents(folder) == []
    (tmp_path / "a_file").write_text("x")
    assert experiment_contents(tmp_path / "a_file") == ["a_file"]  # a file where the folder should be


def test_a_storage_that_cannot_be_created_is_named_before_anything_starts(tmp_path):
    from search.storage import probe_writable, unwritable_reason

    (tmp_path / "a_file").write_text("x")
    assert "is a file, not a folder" in unwritable_reason(str(tmp_path / "a_file" / "results"))
    assert unwritable_reason(str(tmp_path / "new" / "deeper")) is None  # creatable
    assert not (tmp_path / "new").exists()  # checking creates nothing
    assert "unknown storage scheme 'ftp'" in unwritable_reason("ftp://host/runs")
    assert unwritable_reason(f"file://{tmp_path}/runs") is None
    with pytest.raises(OSError, match="cannot write into the experiment folder"):
        probe_writable(tmp_path / "a_file" / "exp")
    probe_writable(tmp_path / "ok" / "exp")
    assert not (tmp_path / "ok").exists()  # what the probe created is gone again
    (tmp_path / "kept").mkdir()
    probe_writable(tmp_path / "kept")
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
    assert experiment_path("s3://b/runs/?endpoint_override=h:9000&scheme=http", "exp") == \
        "s3://b/runs/exp?endpoint_override=h:9000&scheme=http"
    assert storage_root("s3://b/runs/?region=x") == "s3://b/runs?region=x"


def test_credentials_in_a_uri_are_refused_and_not_echoed():
    from search.storage import unwritable_reason

    reason = unwritable_reason("s3://b/runs?access_key=AKIA123&scheme=http")
    assert "carries credentials in its query string (access_key)" in reason and "AKIA123" not in reason
    assert unwritable_reason("s3://b/runs?endpoint_override=h:9000&scheme=http") is None


def test_a_local_copy_follows_its_uri_incrementally_and_publish_writes_back(tmp_path, monkeypatch):
    """file:// stands in for a bucket here (the S3 server tests run the same code against S3)."""
    from search.storage import CACHE_ENV, copy_folder, local_copy, origin_of, publish

    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))
    remote = tmp_path / "bucket" / "exp"
    (remote / "trial_a" / "checkpoint_000000").mkdir(parents=True)
    (remote / "trial_a" / "checkpoint_000000" / "checkpoint.pt").write_bytes(b"w0")
    (remote / "trial_a" / "result.json").write_text('{"epoch": 1}\n')
    (remote / "spec.yaml").write_text("name: exp\n")
    uri = f"file://{remote}"
    copy = local_copy(uri)
    assert copy == copy_folder(uri) and copy.is_relative_to(tmp_path / "cache") and origin_of(copy) == uri
    assert (copy / "trial_a" / "checkpoint_000000" / "checkpoint.pt").read_bytes() == b"w0"
    unchanged = (copy / "spec.yaml").stat().st_ino
    # The run goes on: a new row, a new checkpoint, retention deletes the old one.
    (remote / "trial_a" / "result.json").write_text('{"epoch": 1}\n{"epoch": 2}\n')
    (remote / "trial_a" / "checkpoint_000001").mkdir()
    (remote / "trial_a" / "checkpoint_000001" / "checkpoint.pt").write_bytes(b"w1")
    (remote / "trial_a" / "checkpoint_000000" / "checkpoint.pt").unlink()
    (remote / "trial_a" / "checkpoint_000000").rmdir()
    (copy / "results.csv").write_text("trial_id\na\n")  # written here, not yet published: not the URI's
    assert local_copy(uri) == copy
    assert (copy / "trial_a" / "result.json").read_text().count("epoch") == 2
    assert not (copy / "trial_a" / "checkpoint_000000").exists() and not (copy / "results.csv").exists()
    assert (copy / "trial_a" / "checkpoint_000001" / "checkpoint.pt").read_bytes() == b"w1"
    assert (copy / "spec.yaml").stat().st_ino == unchanged  # not fetched again (fetching replaces the file)
    # This machine's run.log (a run into the URI writes it here, uploads it at its end) survives a sync.
    (remote / "run.log").write_text("an older run's log\n")
    (copy / "run.log").write_text("this run's log, still being written\n")
    local_copy(uri)
    assert (copy / "run.log").read_text() == "this run's log, still being written\n"
    (copy / "run.log").unlink()
    local_copy(uri)  # none here (another machine resumes): the URI's is fetched, to be appended to
    assert (copy / "run.log").read_text() == "an older run's log\n"
    (copy / "report.html").write_text("<html/>")
    assert publish(copy, ["report.html"]) == [f"{uri}/report.html"]
    assert (remote / "report.html").read_text() == "<html/>"
    assert publish(tmp_path / "bucket" / "exp", ["report.html"]) == []  # a local experiment: nothing to upload
