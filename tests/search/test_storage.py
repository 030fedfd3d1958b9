"""Storage: local paths are made absolute; URIs pass through untouched."""

from __future__ import annotations

from pathlib import Path

from search.runner import experiment_path, storage_root
from search.spec import Spec


def spec(storage: str) -> Spec:
    return Spec.model_validate({"name": "exp", "fixed": {"epochs": 2}, "storage": storage})


def test_local_storage_is_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert storage_root(spec("results")) == str(tmp_path / "results")
    assert experiment_path(spec("results")) == tmp_path / "results" / "exp"


def test_uri_storage_keeps_its_scheme():
    assert storage_root(spec("s3://bucket/runs/")) == "s3://bucket/runs"
    assert experiment_path(spec("gs://bucket/runs")) == "gs://bucket/runs/exp"
    assert not isinstance(experiment_path(spec("s3://b/r")), Path)
