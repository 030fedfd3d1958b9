"""Storage: local paths are made absolute; URIs pass through untouched."""

from __future__ import annotations

from pathlib import Path

from search.spec import Spec
from search.storage import experiment_path, storage_root


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
