"""One experiment's location: the one module that knows where an experiment lives.

An experiment is ``<storage>/<name>/``: Tune's state (``experiment_state-*.json``,
``tuner.pkl``, ``searcher-state-*.pkl``), one ``trial_<id>/`` folder per trial, the
TorchTrainer runs under :data:`TRAIN_RUNS_DIR`, our copy of the spec (:data:`SPEC_COPY`),
Optuna's journal, the tables. ``storage`` is a local folder (made absolute) or a URI that
pyarrow's filesystems open (``s3://``, ``gs://``, ``file://``).

An :class:`Experiment` is built once, where the user's text comes in (the CLI, the spec,
the public API), and handed to the engine, the results readers and the cluster code; none of
them asks whether it is a URI. A URI experiment is read through a local mirror
(:mod:`search.mirror`): :meth:`Experiment.sync` brings it up to date, :meth:`Experiment.publish`
uploads what was written into it.

Credentials never travel in a URI (:func:`unwritable_reason` refuses them, :func:`redact`
hides them in anything printed): pyarrow and boto read them from the environment,
``~/.aws`` or the machine's role; an endpoint other than AWS comes from ``AWS_ENDPOINT_URL``
(or ``?endpoint_override=…`` in the URI).
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Union

from search import mirror

__all__ = ["Experiment", "ExperimentLike", "ExperimentError", "DEFAULT_STORAGE", "SPEC_COPY", "SPEC_SOURCE_COPY",
           "SPEC_ORIGIN", "TRAIN_RUNS_DIR", "HELDOUT_FILE", "OPTUNA_JOURNAL", "OPTUNA_JOURNAL_LOCK", "RUN_LOG",
           "EMBEDDED_RAY_RECORD", "DRIVER_RECORD",
           "CACHE_ENV", "CHECKPOINT_STATE_KEY", "is_uri", "redact", "storage_root", "unwritable_reason", "filesystem"]

#: Where a bare experiment name is looked up (the spec's ``storage`` default, relative to CWD).
DEFAULT_STORAGE = Path("results")
#: The validated spec, as run: ``resume`` and the offline readers start from it.
SPEC_COPY = "spec.yaml"
#: The spec file as the user wrote it, comments and all.
SPEC_SOURCE_COPY = "spec.source.yaml"
#: Where that spec file was (JSON ``{"spec": path}``): ``resume`` finds a user's module beside it, as ``run`` did.
SPEC_ORIGIN = "spec.origin.json"
#: Sub-folder of the experiment holding each TorchTrainer trial's Train run.
TRAIN_RUNS_DIR = "train_runs"
#: The chosen trial's metrics on the held-out test split, measured once after the search (engine.heldout).
HELDOUT_FILE = "heldout.json"
#: Optuna's journal of the study (engine.searcher): ``optuna-dashboard`` and ``optuna.load_study`` open it.
OPTUNA_JOURNAL = "optuna.journal"
#: Optuna's default lock for that journal (a symlink it creates and removes around each write). Our writer takes
#: none in the folder (engine.searcher), so a plain file of that name in an experiment is a copy a sync left.
OPTUNA_JOURNAL_LOCK = OPTUNA_JOURNAL + ".lock"
#: Ray's and Tune's own output during a quiet run (the terminal shows ours only).
RUN_LOG = "run.log"
#: The embedded Ray a running driver started (engine.session): its pid and Ray's session folder.
EMBEDDED_RAY_RECORD = ".embedded-ray.json"
#: The driver process running the experiment now (also for ``run --address``): resume refuses while it lives.
DRIVER_RECORD = ".driver.json"
#: Key of a trial checkpoint's metadata (Ray's ``Checkpoint.set_metadata``) under which our bookkeeping travels with
#: it: how its epochs are counted and, under PBT, its model's schedule (search.trials.setup.CheckedReport).
CHECKPOINT_STATE_KEY = "hpsearch_epoch"
#: Where local copies of URI experiments are kept (default ``$XDG_CACHE_HOME/search``, i.e. ``~/.cache/search``).
CACHE_ENV = mirror.CACHE_ENV

#: Files whose presence makes a folder recognisably an experiment (``--overwrite`` deletes only those).
_MARKERS = ("tuner.pkl", "experiment_state-*.json", "searcher-state-*.pkl", SPEC_COPY)
#: Query keys of a URI that would carry credentials into Tune's saved state and our spec copy.
_SECRET_KEYS = {"access_key", "secret_key", "session_token", "aws_access_key_id", "aws_secret_access_key",
                "credential", "credentials", "token", "password", "sas_token", "account_key"}
#: ``scheme://user:secret@`` (a secret may hold ``/``): what is between ``://`` and the last ``@`` before ``?``.
_USERINFO = re.compile(r"(\b[a-z][a-z0-9+.-]*://)[^\s?@]*:[^\s?]*@", re.IGNORECASE)
_SCHEMES = {"s3", "gs", "gcs", "file", "hdfs", "viewfs", "abfs", "abfss", "mock"}


class ExperimentError(ValueError):
    """An experiment folder that cannot be used for what was asked."""


def is_uri(storage: str) -> bool:
    """``s3://…``, ``gs://…``, ``file://…``: a location pyarrow opens, not a local path."""
    return "://" in storage


def _split_query(uri: str) -> tuple[str, str]:
    base, _, query = uri.partition("?")
    return base, query


def redact(text: str) -> str:
    """``text`` with any credentials a URI in it carries replaced by ``***`` (the user part, secret query values)."""
    text = _USERINFO.sub(r"\1***@", str(text))
    return re.sub(r"([?&](?:%s)=)[^&\s]*" % "|".join(sorted(_SECRET_KEYS)), r"\1***", text, flags=re.IGNORECASE)


def storage_root(storage: str) -> str:
    """The storage as Tune takes it: a URI untouched (bar a trailing ``/``), a local path made absolute."""
    if not is_uri(storage):
        return str(Path(storage).expanduser().resolve())
    base, query = _split_query(storage)
    return base.rstrip("/") + (f"?{query}" if query else "")


def filesystem(uri: str) -> tuple[Any, str]:
    """(pyarrow filesystem, path inside it) for a URI, the way Ray's storage opens it."""
    return mirror.filesystem(uri)


def unwritable_reason(storage: str) -> str | None:
    """Why experiments cannot be written under ``storage`` (checked without creating anything), or None.

    A local path must be creatable: its nearest existing ancestor a folder this user may write
    into. A URI must carry no credentials and name a filesystem pyarrow knows; whether the
    bucket takes writes is only known by writing (:meth:`Experiment.probe_writable`).
    """
    if is_uri(storage):
        from urllib.parse import parse_qsl

        shown = redact(storage)
        base, query = _split_query(storage)
        if _USERINFO.search(base) or "@" in base.split("://", 1)[1].split("/", 1)[0]:
            return (f"storage {shown!r} carries credentials in its user part (user:secret@): they would be saved "
                    "with the experiment and printed. Remove them and set AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY "
                    "(or ~/.aws/credentials, or the machine's role) instead")
        if secrets := sorted({k.lower() for k, _ in parse_qsl(query)} & _SECRET_KEYS):
            return (f"storage {_split_query(shown)[0]!r} carries credentials in its query string "
                    f"({', '.join(secrets)}): they would be saved with the experiment. Remove them and set "
                    "AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (or ~/.aws/credentials, or the machine's role) instead")
        scheme = storage.split("://", 1)[0]
        if scheme not in _SCHEMES:
            return f"unknown storage scheme {scheme!r} in {shown!r}: use a local path, s3://, gs:// or file://"
        if scheme in {"file", "mock"}:  # opened without a network call; remote ones are probed by `run`
            try:
                filesystem(storage)
            except (ValueError, OSError) as exc:
                return f"cannot open storage {shown!r}: {redact(str(exc))}"
        return None
    root = Path(storage_root(storage))
    existing = root
    try:
        while not existing.exists():
            existing = existing.parent
    except OSError as exc:  # a name longer than the file system allows (ENAMETOOLONG), and the like
        return f"storage {storage!r} cannot be used: {exc.strerror or exc}; choose a shorter storage path"
    if not existing.is_dir():
        return (f"storage {storage!r} cannot be created: {existing} is a file, not a folder; "
                "choose another storage path")
    if not os.access(existing, os.W_OK | os.X_OK):
        verb = "written into" if existing == root else f"created (no permission to write into {existing})"
        return f"storage {storage!r} cannot be {verb}; choose a folder you may write, e.g. storage: results"
    return None


@dataclass(frozen=True)
class Experiment:
    """Where one experiment lives: an absolute local folder or a URI (its query string kept at the end).

    Build it with :meth:`in_storage` (a spec's storage and name) or :meth:`at` (what a user typed:
    a path, a URI, or a bare name under ``./results``).
    """

    location: str

    # ------------------------------------------------------------ construction
    @classmethod
    def in_storage(cls, storage: str, name: str) -> Experiment:
        """``<storage>/<name>``: ``s3://b/runs?q`` and ``exp`` give ``s3://b/runs/exp?q``."""
        root = storage_root(str(storage))
        if not is_uri(root):
            return cls(str(Path(root) / name))
        base, query = _split_query(root)
        return cls(f"{base}/{name}" + (f"?{query}" if query else ""))

    @classmethod
    def at(cls, given: ExperimentLike, *, bare_names: bool = True) -> Experiment:
        """The experiment a user named: a URI as given, a path made absolute, or a bare name under ``./results``.

        A bare name (one path part, not an existing folder here) is looked up under
        :data:`DEFAULT_STORAGE` when ``bare_names`` is set and that folder exists.
        """
        if isinstance(given, Experiment):
            return given
        text = str(given.path) if hasattr(given, "files") and hasattr(given, "table") else os.fspath(given)
        if is_uri(text):
            return cls(storage_root(text))
        path = Path(text).expanduser()
        if bare_names and len(path.parts) == 1 and not path.is_absolute() and not path.exists() \
                and (DEFAULT_STORAGE / path).exists():
            path = DEFAULT_STORAGE / path
        return cls(str(path.absolute()))

    # ------------------------------------------------------------ what it is
    @property
    def is_remote(self) -> bool:
        return is_uri(self.location)

    @property
    def name(self) -> str:
        return _split_query(self.location)[0].rstrip("/").rsplit("/", 1)[-1]

    @property
    def local(self) -> Path:
        """The folder on this machine: itself, or where a URI's mirror is kept (not synced by this)."""
        return mirror.mirror_folder(self.location) if self.is_remote else Path(self.location)

    @property
    def storage_path(self) -> str:
        """The folder as seen inside its filesystem (a URI's bucket path; a local path as is)."""
        return filesystem(self.location)[1] if self.is_remote else self.location

    def __str__(self) -> str:  # what the user sees: credentials never shown
        return redact(self.location)

    def file(self, name: str) -> Path:
        """A file of the experiment on this machine (a URI's: in its mirror)."""
        return self.local / name

    # ------------------------------------------------------------ reading and writing
    def sync(self) -> Path:
        """The experiment's folder on this machine, brought up to date (a URI's mirror); raises ExperimentError."""
        if not self.is_remote:
            return Path(self.location)
        try:
            return mirror.sync(self.location)
        except FileNotFoundError:
            raise ExperimentError(f"no experiment at {self}: nothing is stored there (check the bucket and path; "
                                  "an experiment is <storage>/<name>)") from None
        except (OSError, ValueError) as exc:
            raise ExperimentError(f"cannot read the experiment at {self}: {redact(str(exc))}; check the credentials "
                                  "and, for a server other than AWS, AWS_ENDPOINT_URL") from None

    def publish(self, names: Sequence[str]) -> list[str]:
        """Upload files written into a URI's mirror; the URIs written (``[]`` for a local experiment)."""
        if not self.is_remote:
            return []
        return [redact(u) for u in mirror.publish(self.location, self.local, names)]

    def write_files(self, files: Mapping[str, str]) -> None:
        """Write text files into the experiment folder (created if needed), local or remote."""
        if self.is_remote:
            mirror.write_remote(self.location, files)
            return
        Path(self.location).mkdir(parents=True, exist_ok=True)
        for name, content in files.items():
            (Path(self.location) / name).write_text(content)

    def delete(self, name: str) -> None:
        """Delete a file or folder inside the experiment (a URI's in the bucket)."""
        if self.is_remote:
            mirror.delete_remote(self.location, name)
            return
        target = Path(self.location) / name
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)
        else:
            target.unlink(missing_ok=True)

    def probe_writable(self) -> None:
        """Create the folder, write and delete a small file in it, remove what it created; OSError if that fails.

        Run before Ray starts, so an unreachable bucket or missing credentials cost seconds, not a cluster start.
        """
        probe = ".write-probe"
        try:
            if self.is_remote:
                mirror.write_remote(self.location, {probe: "ok"})
                mirror.delete_remote(self.location, probe)
                return
            path = Path(self.location)
            created = [p for p in (path, *path.parents) if not p.exists()]
            path.mkdir(parents=True, exist_ok=True)
            (path / probe).write_bytes(b"ok")
            (path / probe).unlink()
            for made in created:  # leave no trace: a run refused later (resources, data) leaves no folder
                made.rmdir()
        except (OSError, ValueError) as exc:
            raise OSError(f"cannot write into the experiment folder {self}: {redact(str(exc))}") from exc

    def names(self) -> list[str]:
        """Every name at the top of the folder (``[]`` when there is none)."""
        if self.is_remote:
            return mirror.list_remote(self.location)
        path = Path(self.location)
        if not path.is_dir():
            return [path.name] if path.exists() or path.is_symlink() else []
        return sorted(p.name for p in path.iterdir())

    def contents(self) -> list[str]:
        """Names a run left (its spec copies and log aside); ``[]``: nothing is lost by running into it."""
        ours = {SPEC_COPY, SPEC_SOURCE_COPY, RUN_LOG, DRIVER_RECORD, EMBEDDED_RAY_RECORD}
        return [n for n in self.names() if n not in ours]

    def is_experiment(self, names: Sequence[str] | None = None) -> bool:
        """The folder holds what ``run`` writes: Tune's state, a searcher state, our spec copy or trial folders."""
        names = self.names() if names is None else names
        if any(Path(n).match(m) for n in names for m in _MARKERS):
            return True
        if self.is_remote:
            return any(n.startswith("trial_") for n in names)
        return any(_trial_folder(Path(self.location) / n) for n in names if n.startswith("trial_"))

    def remove(self) -> None:
        """Delete the experiment (``run --overwrite``): only a folder that is recognisably one.

        Raises:
            ExperimentError: a symbolic link, a file, or a folder that holds no experiment (nothing deleted).
        """
        if not self.is_remote:
            path = Path(self.location)
            if path.is_symlink():
                raise ExperimentError(f"--overwrite: {path} is a symbolic link (to {os.readlink(path)}); not "
                                      "deleting through it. Remove the link yourself, or run under another --name")
            if path.exists() and not path.is_dir():
                raise ExperimentError(f"--overwrite: {path} is a file, not an experiment folder; nothing deleted")
        names = self.names()
        if not names:
            return
        if not self.is_experiment(names):
            shown = ", ".join(names[:6]) + (f", … ({len(names)} entries)" if len(names) > 6 else "")
            raise ExperimentError(f"--overwrite: {self} is not an experiment folder (it holds {shown}; no tuner.pkl, "
                                  "experiment state, searcher state or spec.yaml): nothing deleted. Choose another "
                                  "--name or --storage, or move that folder away yourself")
        if self.is_remote:
            mirror.delete_remote(self.location, "")
        else:
            shutil.rmtree(self.location)

    # ------------------------------------------------------------ the processes running it
    def write_record(self, name: str, content: Mapping[str, Any]) -> Path:
        """Write a record of this machine's processes (kept locally: a URI's in its mirror)."""
        self.local.mkdir(parents=True, exist_ok=True)
        record = self.local / name
        record.write_text(json.dumps(dict(content)))
        return record

    def read_record(self, name: str) -> dict[str, Any] | None:
        """A record written by :meth:`write_record`, or None (missing or unreadable)."""
        try:
            data = json.loads((self.local / name).read_text())
        except (OSError, ValueError):
            return None
        return data if isinstance(data, dict) else None

    def drop_record(self, name: str) -> None:
        (self.local / name).unlink(missing_ok=True)


#: What a user may pass where an experiment is expected: a path, a URI, an :class:`Experiment`,
#: or an opened :class:`search.results.ExperimentResults`.
ExperimentLike = Union[str, "os.PathLike[str]", Experiment, Any]


def _trial_folder(path: Path) -> bool:
    return path.is_dir() and ((path / "params.json").exists() or (path / "result.json").exists())
