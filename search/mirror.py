"""A local mirror of an experiment stored at a URI: sync down, publish up, and never delete what it did not fetch.

The offline readers (tables, ``best``, ``features``, ``report``, ``load_model``) and ``resume``'s
repair work on files, so a URI experiment is read through a copy under the cache folder
(``$SEARCH_CACHE_DIR``, else ``$XDG_CACHE_HOME/search``, else ``~/.cache/search``). A sync costs one
listing plus the files that changed.

The mirror keeps a manifest (:data:`MANIFEST`) of every file it downloaded or uploaded, with the
size and modification time the storage reported. Only those files are its own: one that vanished
upstream (checkpoint retention) is deleted here, one that changed upstream is fetched again. A file
written locally and never published (an MLflow store, a ``run.log`` being written, a report) is not
in the manifest and is never overwritten or deleted. Only :mod:`search.experiment` uses this module.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = ["CACHE_ENV", "MANIFEST", "ORIGIN_FILE", "filesystem", "mirror_folder", "sync", "publish", "write_remote",
           "delete_remote", "list_remote"]

#: Where local copies of URI experiments are kept.
CACHE_ENV = "SEARCH_CACHE_DIR"
#: In a mirror: the files it fetched or uploaded, ``{relative path: [size, mtime_ns]}`` as the storage has them.
MANIFEST = ".search-mirror.json"
#: In a mirror: the URI it copies.
ORIGIN_FILE = ".search-origin"


def _split_query(uri: str) -> tuple[str, str]:
    base, _, query = uri.partition("?")
    return base, query


def filesystem(uri: str) -> tuple[Any, str]:
    """(pyarrow filesystem, path inside it) for a URI, the way Ray's storage opens it."""
    import pyarrow.fs

    return pyarrow.fs.FileSystem.from_uri(uri)


def _cache_root() -> Path:
    if configured := os.environ.get(CACHE_ENV):
        return Path(configured).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "search"


def mirror_folder(uri: str) -> Path:
    """Where the mirror of ``uri`` is kept (``<cache>/experiments/<scheme>/<bucket>/<path>``)."""
    from urllib.parse import urlsplit

    parts = urlsplit(_split_query(uri)[0])
    host = (parts.hostname or "_") + (f"_{parts.port}" if parts.port else "")  # never the user part
    return _cache_root() / "experiments" / parts.scheme / host / parts.path.strip("/")


def _read_manifest(local: Path) -> dict[str, list[int | None]]:
    try:
        data = json.loads((local / MANIFEST).read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _write_manifest(local: Path, manifest: Mapping[str, Any]) -> None:
    tmp = local / (MANIFEST + ".tmp")
    tmp.write_text(json.dumps(dict(sorted(manifest.items()))))
    os.replace(tmp, local / MANIFEST)


def _same(path: Path, size: int | None, mtime_ns: int | None) -> bool:
    try:
        stat = path.stat()
    except OSError:
        return False
    return stat.st_size == size and (mtime_ns is None or stat.st_mtime_ns == mtime_ns)


def sync(uri: str) -> Path:
    """Bring the mirror of ``uri`` up to date and return its folder.

    Raises:
        FileNotFoundError: nothing at the URI.
        OSError: the storage cannot be listed or read (credentials, endpoint, network).
    """
    import pyarrow.fs

    fs, root = filesystem(uri)
    if fs.get_file_info(root).type == pyarrow.fs.FileType.NotFound:
        raise FileNotFoundError(f"nothing at {uri}")
    local = mirror_folder(uri)
    local.mkdir(parents=True, exist_ok=True)
    known = _read_manifest(local)
    manifest: dict[str, list[int | None]] = {}
    for info in fs.get_file_info(pyarrow.fs.FileSelector(root, recursive=True)):
        relative = info.path[len(root):].lstrip("/")
        target = local / relative
        if info.type == pyarrow.fs.FileType.Directory:
            target.mkdir(parents=True, exist_ok=True)
            continue
        remote = [info.size, info.mtime_ns]
        if relative not in known and target.exists():
            if _same(target, info.size, info.mtime_ns):
                manifest[relative] = remote  # fetched by a mirror from before the manifest: adopt it
            continue  # written here and never published (a log being written, a store): ours wins
        if relative in known and known[relative] == remote and target.exists():
            manifest[relative] = remote
            continue
        _download(fs, info.path, target, info.mtime_ns)
        manifest[relative] = remote
    for relative in set(known) - set(manifest):  # fetched once, gone upstream now: retention deleted it
        target = local / relative
        if target.is_file() and not target.is_symlink():
            target.unlink()
            _prune_empty(target.parent, local)
    _write_manifest(local, manifest)
    (local / ORIGIN_FILE).write_text(_split_query(uri)[0])
    return local


def _download(fs: Any, source_path: str, target: Path, mtime_ns: int | None) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".partial")
    with fs.open_input_stream(source_path) as source, open(partial, "wb") as out:
        while chunk := source.read(1 << 20):
            out.write(chunk)
    os.replace(partial, target)
    if mtime_ns is not None:
        os.utime(target, ns=(mtime_ns, mtime_ns))


def _prune_empty(folder: Path, stop: Path) -> None:
    while folder != stop and folder.is_dir() and not any(folder.iterdir()):
        folder.rmdir()
        folder = folder.parent


def publish(uri: str, local: Path, names: Sequence[str]) -> list[str]:
    """Upload files of the mirror to ``uri``; the URIs written. Uploaded files join the manifest."""
    fs, root = filesystem(uri)
    base, query = _split_query(uri)
    manifest = _read_manifest(local) if local.is_dir() else {}
    written = []
    for name in names:
        with open(local / name, "rb") as source, fs.open_output_stream(f"{root}/{name}") as out:
            out.write(source.read())
        info = fs.get_file_info(f"{root}/{name}")
        manifest[name] = [info.size, info.mtime_ns]
        if info.mtime_ns is not None:  # so the next sync sees the same file and fetches nothing
            os.utime(local / name, ns=(info.mtime_ns, info.mtime_ns))
        written.append(f"{base}/{name}" + (f"?{query}" if query else ""))
    if local.is_dir():
        _write_manifest(local, manifest)
    return written


def write_remote(uri: str, files: Mapping[str, str]) -> None:
    """Write text files into the folder at ``uri`` (created if needed)."""
    fs, root = filesystem(uri)
    fs.create_dir(root, recursive=True)
    for name, content in files.items():
        with fs.open_output_stream(f"{root}/{name}") as out:
            out.write(content.encode())


def delete_remote(uri: str, name: str) -> None:
    """Delete a file or folder ``name`` inside the folder at ``uri`` (``""``: the folder itself)."""
    import pyarrow.fs

    fs, root = filesystem(uri)
    target = f"{root}/{name}".rstrip("/") if name else root
    kind = fs.get_file_info(target).type
    if kind == pyarrow.fs.FileType.Directory:
        fs.delete_dir(target)
    elif kind == pyarrow.fs.FileType.File:
        fs.delete_file(target)


def list_remote(uri: str) -> list[str]:
    """Names at the top of the folder at ``uri`` (``[]`` when there is none)."""
    import pyarrow.fs

    fs, root = filesystem(uri)
    if fs.get_file_info(root).type == pyarrow.fs.FileType.NotFound:
        return []
    return sorted(i.base_name for i in fs.get_file_info(pyarrow.fs.FileSelector(root, allow_not_found=True)))
