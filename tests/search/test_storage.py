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
