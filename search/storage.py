"""Where an experiment lives: the one module that knows its folder, local path or URI.

An experiment is ``<storage>/<name>/``: Tune's state (``experiment_state-*.json``,
``tuner.pkl``, ``searcher-state-*.pkl``), one ``trial_<id>/`` folder per trial, the
TorchTrainer runs under :data:`TRAIN_RUNS_DIR`, and our copy of the spec
(:data:`SPEC_COPY`). ``storage`` is a local folder (made absolute) or a URI that
pyarrow's filesystems open (``s3://``, ``gs://``, ``file://``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = ["DEFAULT_STORAGE", "SPEC_COPY", "SPEC_SOURCE_COPY", "TRAIN_RUNS_DIR", "is_uri", "storage_root",
           "experiment_path", "write_files", "experiment_contents", "remove_experiment", "unwritable_reason", "probe_writable",
           "storage_warning"]

#: Where a bare experiment name is looked up (the spec's ``storage`` default, relative to CWD).
DEFAULT_STORAGE = Path("results")
#: The validated spec, as run: ``resume`` and the offline readers start from it.
SPEC_COPY = "spec.yaml"
#: The spec file as the user wrote it, comments and all.
SPEC_SOURCE_COPY = "spec.source.yaml"
#: Sub-folder of the experiment holding each TorchTrainer trial's Train run.
TRAIN_RUNS_DIR = "train_runs"


def is_uri(storage: str) -> bool:
    """``s3://…``, ``gs://…``, ``file://…``: a location pyarrow opens, not a local path."""
    return "://" in storage


def storage_root(storage: str) -> str:
    """The storage as Tune takes it: a URI untouched (bar a trailing ``/``), a local path made absolute."""
    return storage.rstrip("/") if is_uri(storage) else str(Path(storage).expanduser().resolve())


def experiment_path(storage: str, name: str) -> Path | str:
    """The experiment folder: a local :class:`Path`, or the URI string for remote storage."""
    root = f"{storage_root(storage)}/{name}"
    return root if is_uri(storage) else Path(root)


def write_files(folder: Path | str, files: Mapping[str, str]) -> None:
    """Write text files into an experiment folder (created if needed), local or remote."""
    if is_uri(str(folder)):
        fs, root = _filesystem(str(folder))
        fs.create_dir(root, recursive=True)
        for name, content in files.items():
            with fs.open_output_stream(f"{root}/{name}") as out:
                out.write(content.encode())
        return
    Path(folder).mkdir(parents=True, exist_ok=True)
    for name, content in files.items():
        (Path(folder) / name).write_text(content)


def _filesystem(folder: str) -> tuple[Any, str]:
    import pyarrow.fs

    return pyarrow.fs.FileSystem.from_uri(folder)


def unwritable_reason(storage: str) -> str | None:
    """Why experiments cannot be written under ``storage`` (checked without creating anything), or None.

    A local path must be creatable: its nearest existing ancestor a folder this user may write
    into. A URI must name a filesystem pyarrow knows; whether the bucket takes writes is only
    known by writing (:func:`probe_writable`, before ``run`` starts Ray).
    """
    if is_uri(storage):
        import pyarrow.fs

        scheme = storage.split("://", 1)[0]
        if scheme not in {"s3", "gs", "gcs", "file", "hdfs", "viewfs", "abfs", "abfss", "mock"}:
            return f"unknown storage scheme {scheme!r} in {storage!r}: use a local path, s3://, gs:// or file://"
        if scheme in {"file", "mock"}:  # opened without a network call; remote ones are probed by `run`
            try:
                pyarrow.fs.FileSystem.from_uri(storage)
            except (ValueError, OSError) as exc:
                return f"cannot open storage {storage!r}: {exc}"
        return None
    import os

    root = Path(storage_root(storage))
    existing = root
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        return (f"storage {storage!r} cannot be created: {existing} is a file, not a folder; "
                "choose another storage path")
    if not os.access(existing, os.W_OK | os.X_OK):
        verb = "written into" if existing == root else f"created (no permission to write into {existing})"
        return f"storage {storage!r} cannot be {verb}; choose a folder you may write, e.g. storage: results"
    return None


def probe_writable(folder: Path | str) -> None:
    """Create the experiment folder, write and delete a small file in it, remove what it created; OSError if that fails.

    Run before Ray starts, so an unreachable bucket or missing credentials cost seconds, not a cluster start.
    """
    probe = ".write-probe"
    try:
        if is_uri(str(folder)):
            fs, root = _filesystem(str(folder))
            fs.create_dir(root, recursive=True)
            with fs.open_output_stream(f"{root}/{probe}") as out:
                out.write(b"ok")
            fs.delete_file(f"{root}/{probe}")
        else:
            path = Path(folder)
            created = [p for p in (path, *path.parents) if not p.exists()]
            path.mkdir(parents=True, exist_ok=True)
            (path / probe).write_bytes(b"ok")
            (path / probe).unlink()
            for made in created:  # leave no trace: a run refused later (resources, data) leaves no folder
                made.rmdir()
    except (OSError, ValueError) as exc:
        raise OSError(f"cannot write into the experiment folder {folder}: {exc}") from exc


def experiment_contents(folder: Path | str) -> list[str]:
    """Names in an experiment folder that a run left (its spec copies aside); ``[]`` when there is none.

    A folder holding only the spec copies is a run that stopped before Tune saved anything:
    nothing is lost by running into it again.
    """
    ours = {SPEC_COPY, SPEC_SOURCE_COPY}
    if is_uri(str(folder)):
        import pyarrow.fs

        fs, root = _filesystem(str(folder))
        if fs.get_file_info(root).type == pyarrow.fs.FileType.NotFound:
            return []
        infos = fs.get_file_info(pyarrow.fs.FileSelector(root, allow_not_found=True))
        names = [info.base_name for info in infos]
    else:
        path = Path(folder)
        if not path.is_dir():
            return [path.name] if path.exists() else []
        names = [p.name for p in path.iterdir()]
    return sorted(n for n in names if n not in ours)


def remove_experiment(folder: Path | str) -> None:
    """Delete an experiment folder, local or remote (``run --overwrite``)."""
    if is_uri(str(folder)):
        fs, root = _filesystem(str(folder))
        fs.delete_dir(root)
        return
    import shutil

    path = Path(folder)
    if path.is_dir():
        shutil.rmtree(path)
    elif path.exists():
        path.unlink()


def storage_warning(storage: str, nodes: Sequence[Mapping[str, Any]]) -> str | None:
    """The warning (one line, no prefix) for a local storage path on a cluster of several machines, else None.

    Args:
        storage: the spec's ``storage`` (a path or a URI).
        nodes: the cluster's nodes, as ``ray.nodes()`` entries or as their ``Resources``
            dicts; dead nodes (``Alive: False``) are ignored. Nodes are told apart by their
            IP (``NodeManagerAddress`` or the ``node:<ip>`` resource), because several nodes
            on one machine share its disk.
    """
    if is_uri(storage) and not storage.startswith("file://"):  # s3://, gs://, ...: every node reaches it
        return None
    hosts = {_node_ip(node) for node in nodes if node.get("Alive", True)}
    if len(hosts) < 2:
        return None
    return (f"storage {storage!r} is a local path, but the cluster spans {len(hosts)} machines: results and "
            f"checkpoints of trials that run on other machines are written to their own disks and will not be "
            f"collected into {storage!r} here. Use a path every node mounts (NFS, a shared volume) or a URI "
            f"(s3://bucket/path, gs://bucket/path); if {storage!r} is already shared, ignore this")


def _node_ip(node: Mapping[str, Any]) -> str:
    if node.get("NodeManagerAddress"):
        return str(node["NodeManagerAddress"])
    resources = node.get("Resources", node)
    ips = sorted(k.removeprefix("node:") for k in resources if k.startswith("node:") and k != "node:__internal_head__")
    return ips[0] if ips else str(node.get("NodeID", id(node)))
