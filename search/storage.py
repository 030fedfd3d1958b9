"""Where an experiment lives: the one module that knows its folder, local path or URI.

An experiment is ``<storage>/<name>/``: Tune's state (``experiment_state-*.json``,
``tuner.pkl``, ``searcher-state-*.pkl``), one ``trial_<id>/`` folder per trial, the
TorchTrainer runs under :data:`TRAIN_RUNS_DIR`, and our copy of the spec
(:data:`SPEC_COPY`). ``storage`` is a local folder (made absolute) or a URI that
pyarrow's filesystems open (``s3://``, ``gs://``, ``file://``).

A URI experiment is read through a local copy (:func:`local_copy`): the offline readers
(tables, ``best``, ``features``, ``report``, ``load_model``) and ``resume``'s repair work on
files, and an incremental copy costs one listing plus the files that changed. What they
write back (``results.csv``, ``report.html``, a repaired state) goes up with :func:`publish`.
Credentials never travel in a URI (:func:`unwritable_reason` refuses them): pyarrow and boto
read them from the environment, ``~/.aws`` or the machine's role, and an endpoint other
than AWS comes from ``AWS_ENDPOINT_URL`` (or ``?endpoint_override=…`` in the URI).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = ["DEFAULT_STORAGE", "HELDOUT_FILE", "RUN_LOG", "OPTUNA_JOURNAL", "SPEC_COPY", "SPEC_SOURCE_COPY", "TRAIN_RUNS_DIR", "CACHE_ENV", "is_uri", "storage_root",
           "experiment_path", "experiment_location", "filesystem", "write_files", "experiment_contents", "remove_experiment",
           "unwritable_reason", "probe_writable", "storage_warning", "EMBEDDED_RAY_RECORD", "copy_folder", "local_folder", "local_copy", "origin_of", "publish", "delete_remote"]

#: Where a bare experiment name is looked up (the spec's ``storage`` default, relative to CWD).
DEFAULT_STORAGE = Path("results")
#: The validated spec, as run: ``resume`` and the offline readers start from it.
SPEC_COPY = "spec.yaml"
#: The spec file as the user wrote it, comments and all.
SPEC_SOURCE_COPY = "spec.source.yaml"
#: Sub-folder of the experiment holding each TorchTrainer trial's Train run.
TRAIN_RUNS_DIR = "train_runs"
#: The chosen trial's metrics on the held-out test split, measured once after the search (engine.heldout).
HELDOUT_FILE = "heldout.json"
#: Optuna's journal of the study (engine.searcher): ``optuna-dashboard`` and ``optuna.load_study`` open it.
OPTUNA_JOURNAL = "optuna.journal"
#: Ray's and Tune's own output during a quiet run (the terminal shows ours only).
RUN_LOG = "run.log"
#: Where local copies of URI experiments are kept (default ``$XDG_CACHE_HOME/search``, i.e. ``~/.cache/search``).
CACHE_ENV = "SEARCH_CACHE_DIR"
#: In a local copy: the URI it copies.
_ORIGIN_FILE = ".search-origin"
#: The embedded Ray a running driver started (engine.session); for a URI experiment, kept in its local copy.
EMBEDDED_RAY_RECORD = ".embedded-ray.json"
#: Query keys of a URI that would carry credentials into Tune's saved state and our spec copy.
_SECRET_KEYS = {"access_key", "secret_key", "session_token", "aws_access_key_id", "aws_secret_access_key",
                "credential", "token"}


def is_uri(storage: str) -> bool:
    """``s3://…``, ``gs://…``, ``file://…``: a location pyarrow opens, not a local path."""
    return "://" in storage


def _split_query(uri: str) -> tuple[str, str]:
    base, _, query = uri.partition("?")
    return base, query


def storage_root(storage: str) -> str:
    """The storage as Tune takes it: a URI untouched (bar a trailing ``/``), a local path made absolute."""
    if not is_uri(storage):
        return str(Path(storage).expanduser().resolve())
    base, query = _split_query(storage)
    return base.rstrip("/") + (f"?{query}" if query else "")


def experiment_path(storage: str, name: str) -> Path | str:
    """The experiment folder: a local :class:`Path`, or the URI string for remote storage.

    A URI's query string (``?endpoint_override=…``) stays at the end: ``s3://b/runs?q`` and
    ``exp`` give ``s3://b/runs/exp?q``.
    """
    if not is_uri(storage):
        return Path(storage_root(storage)) / name
    base, query = _split_query(storage_root(storage))
    return f"{base}/{name}" + (f"?{query}" if query else "")


def experiment_location(given: str | Path) -> Path | str:
    """A command line's experiment argument: a URI kept as given (``Path`` would fold ``s3://`` to ``s3:/``), else a path."""
    return str(given) if is_uri(str(given)) else Path(given)


def filesystem(uri: str) -> tuple[Any, str]:
    """(pyarrow filesystem, path inside it) for a URI, the way Ray's storage opens it."""
    import pyarrow.fs

    return pyarrow.fs.FileSystem.from_uri(uri)


def write_files(folder: Path | str, files: Mapping[str, str]) -> None:
    """Write text files into an experiment folder (created if needed), local or remote."""
    if is_uri(str(folder)):
        fs, root = filesystem(str(folder))
        fs.create_dir(root, recursive=True)
        for name, content in files.items():
            with fs.open_output_stream(f"{root}/{name}") as out:
                out.write(content.encode())
        return
    Path(folder).mkdir(parents=True, exist_ok=True)
    for name, content in files.items():
        (Path(folder) / name).write_text(content)


def unwritable_reason(storage: str) -> str | None:
    """Why experiments cannot be written under ``storage`` (checked without creating anything), or None.

    A local path must be creatable: its nearest existing ancestor a folder this user may write
    into. A URI must name a filesystem pyarrow knows; whether the bucket takes writes is only
    known by writing (:func:`probe_writable`, before ``run`` starts Ray).
    """
    if is_uri(storage):
        import pyarrow.fs

        scheme = storage.split("://", 1)[0]
        from urllib.parse import parse_qsl

        if secrets := sorted({k for k, _ in parse_qsl(_split_query(storage)[1])} & _SECRET_KEYS):
            return (f"storage {_split_query(storage)[0]!r} carries credentials in its query string ({', '.join(secrets)}): "
                    "they would be saved with the experiment. Remove them and set AWS_ACCESS_KEY_ID / "
                    "AWS_SECRET_ACCESS_KEY (or ~/.aws/credentials, or the machine's role) instead")
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
            fs, root = filesystem(str(folder))
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

    A folder holding only the spec copies (and a log) is a run that stopped before Tune saved anything:
    nothing is lost by running into it again.
    """
    ours = {SPEC_COPY, SPEC_SOURCE_COPY, RUN_LOG}
    if is_uri(str(folder)):
        import pyarrow.fs

        fs, root = filesystem(str(folder))
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
        fs, root = filesystem(str(folder))
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


# ---------------------------------------------------------------- local copies of URI experiments
def _cache_root() -> Path:
    import os

    if configured := os.environ.get(CACHE_ENV):
        return Path(configured).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "search"


def copy_folder(uri: str) -> Path:
    """Where :func:`local_copy` keeps the copy of ``uri`` (``<cache>/experiments/<scheme>/<bucket>/<path>``)."""
    from urllib.parse import urlsplit

    parts = urlsplit(_split_query(uri)[0])
    return _cache_root() / "experiments" / parts.scheme / (parts.netloc or "_") / parts.path.strip("/")


def local_folder(experiment: Path | str) -> Path:
    """The experiment's folder on this machine: itself, or where its URI's local copy is kept (not synced here)."""
    return copy_folder(str(experiment)) if is_uri(str(experiment)) else Path(experiment)


def local_copy(uri: str) -> Path:
    """Bring a URI experiment's folder up to date in the local cache and return that folder.

    Incremental: a file is fetched when its size or modification time differs from the copy's;
    files gone from the URI (checkpoints retention deleted) are deleted from the copy. Files of
    this machine's runs stay: the embedded-Ray record, and ``run.log`` (a run into the URI
    writes it here and uploads it at its end; the readers may sync the copy meanwhile).

    Raises:
        FileNotFoundError: nothing at the URI.
        OSError: the storage cannot be listed or read (credentials, endpoint, network).
    """
    import os

    import pyarrow.fs

    fs, root = filesystem(uri)
    if fs.get_file_info(root).type == pyarrow.fs.FileType.NotFound:
        raise FileNotFoundError(f"nothing at {uri}")
    local = copy_folder(uri)
    local.mkdir(parents=True, exist_ok=True)
    seen: set[Path] = set()
    for info in fs.get_file_info(pyarrow.fs.FileSelector(root, recursive=True)):
        target = local / info.path[len(root):].lstrip("/")
        seen.add(target)
        if info.type == pyarrow.fs.FileType.Directory:
            target.mkdir(parents=True, exist_ok=True)
            continue
        if target == local / RUN_LOG and target.exists():  # this machine's log, maybe being written now: ours wins
            continue
        mtime_ns = info.mtime_ns
        if target.is_file() and target.stat().st_size == info.size and (
                mtime_ns is None or target.stat().st_mtime_ns == mtime_ns):
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(target.name + ".partial")
        with fs.open_input_stream(info.path) as source, open(partial, "wb") as out:
            while chunk := source.read(1 << 20):
                out.write(chunk)
        os.replace(partial, target)
        if mtime_ns is not None:
            os.utime(target, ns=(mtime_ns, mtime_ns))
    for path in sorted(local.rglob("*"), key=lambda p: len(p.parts), reverse=True):  # deepest first
        if path in seen or path.name in (_ORIGIN_FILE, EMBEDDED_RAY_RECORD, RUN_LOG) and path.parent == local:
            continue
        if path.is_dir():
            if not any(path.iterdir()):
                path.rmdir()
        else:
            path.unlink()
    (local / _ORIGIN_FILE).write_text(uri)
    return local


def origin_of(folder: Path | str) -> str | None:
    """The URI a local copy (:func:`local_copy`) copies; None for an experiment that lives here."""
    if is_uri(str(folder)):
        return str(folder)
    marker = Path(folder) / _ORIGIN_FILE
    return marker.read_text().strip() if marker.is_file() else None


def publish(folder: Path, names: Sequence[str], to: str | None = None) -> list[str]:
    """Upload files written into a local copy back to its URI (or ``to``); the URIs written (``[]``: a local experiment)."""
    uri = to or origin_of(folder)
    if uri is None:
        return []
    fs, root = filesystem(uri)
    base, query = _split_query(uri)
    written = []
    for name in names:
        with open(Path(folder) / name, "rb") as source, fs.open_output_stream(f"{root}/{name}") as out:
            out.write(source.read())
        written.append(f"{base}/{name}" + (f"?{query}" if query else ""))
    return written


def delete_remote(uri: str, name: str) -> None:
    """Delete a file or folder ``name`` inside the experiment at ``uri``."""
    import pyarrow.fs

    fs, root = filesystem(uri)
    target = f"{root}/{name}"
    kind = fs.get_file_info(target).type
    if kind == pyarrow.fs.FileType.Directory:
        fs.delete_dir(target)
    elif kind == pyarrow.fs.FileType.File:
        fs.delete_file(target)
