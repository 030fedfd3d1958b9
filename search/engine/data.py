"""The spec's ``data:``, loaded once in the driver: a built-in set, a table file, or the user's own loader.

``data: {loader: "module:function", ...keyword arguments}`` calls ``function(**keyword arguments)``
in the driver, once, before Ray starts; whatever it returns (tensors, a ``Dataset``, a dict of
splits, a :class:`trainables.data.DataSplits`) reaches every trial as its ``data`` argument
through Ray's object store, not pickled into each trial. The module is found as a trainable's is:
installed, or beside the spec or in the current folder (never shadowing an installed package).
A keyword argument naming a file or folder that is not in the current folder but is beside the
spec is passed as that path, as ``data.name`` is found (and the experiment's spec copy keeps it
absolute, so ``resume`` finds it from anywhere).
The built-in trainables need a :class:`~trainables.data.DataSplits`; any other trainable takes
what the loader returns.
"""

from __future__ import annotations

import contextlib
import importlib
import threading
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

__all__ = ["LOADER_KEY", "load_spec_data", "loader_of", "with_paths_resolved", "loading"]

#: The key of ``data:`` naming a user's loader function.
LOADER_KEY = "loader"


def loader_of(data: Mapping[str, Any] | None) -> str | None:
    """The ``module:function`` of a ``data:`` section with a loader, else None."""
    if not data or LOADER_KEY not in data:
        return None
    return str(data[LOADER_KEY])


def with_paths_resolved(data: Mapping[str, Any], search_paths: tuple[Path, ...]) -> dict[str, Any]:
    """A loader's keyword arguments with each relative path found under ``search_paths`` (the current folder,
    then the spec's) made absolute; every other value as it is."""
    def resolved(value: Any) -> Any:
        if not isinstance(value, str) or not value or "\n" in value or Path(value).expanduser().is_absolute():
            return value
        for base in search_paths:
            candidate = Path(base) / value
            if candidate.exists():
                return str(candidate.resolve())
        return value

    return {k: (v if k == LOADER_KEY else resolved(v)) for k, v in data.items()}


def load_spec_data(data: Mapping[str, Any], search_paths: tuple[Path, ...], *, needs_splits: bool) -> Any:
    """Load ``data:`` once. ``needs_splits``: the trainable is a built-in one, which trains on a ``DataSplits``.

    Raises:
        DataError: the loader raised, or returned what the trainable cannot take; a table file that
            cannot be read (:func:`trainables.data.load_data`).
        TrainableError: the loader cannot be imported.
    """
    from trainables.data import DataError, DataSplits, load_data

    ref = loader_of(data)
    if ref is None:
        return load_data(dict(data))
    from search.spec.registry import resolve_callable

    fn = resolve_callable(ref, search_paths, "data loader")
    kwargs = {k: v for k, v in with_paths_resolved(data, search_paths).items() if k != LOADER_KEY}
    try:
        loaded = fn(**kwargs)
    except Exception as exc:  # noqa: BLE001 - the user's code: one located message, exit 2
        raise DataError(f"data.loader {ref!r} raised {type(exc).__name__}: {exc} (called with "
                        f"{', '.join(f'{k}={v!r}' for k, v in kwargs.items()) or 'no arguments'})") from exc
    if loaded is None:
        raise DataError(f"data.loader {ref!r} returned None: return the data the trials train on")
    if needs_splits and not isinstance(loaded, DataSplits):
        raise DataError(f"data.loader {ref!r} returned a {type(loaded).__name__}, but the built-in trainable trains "
                        "on a trainables.data.DataSplits: return one (its x_/y_ train, val and test arrays and names) or "
                        "use a trainable of your own, which gets whatever the loader returns as its `data` argument")
    return loaded


def loading(load: Callable[[], Any], data: Mapping[str, Any] | None, address: str | None = None) -> Callable[[], Any]:
    """``load()`` (the spec's data, loaded once) now, or on a thread while Ray starts: a function that gives it.

    A built-in set (``data.name`` one of :data:`trainables.data.BUILTIN_DATASETS`, no loader) is generated from
    its configuration, which the spec's checks have already passed; its scikit-learn import and its generation
    (about 0.6 s) run beside ``ray.init``, which leaves about 1.6 of 2 CPUs' 4.2 CPU-s idle on this machine
    (``benchmarks/startup.py``). The two import no module in common but ``argparse`` and ``gettext``, which do
    not import each other, so their imports cannot deadlock; should they ever, the data is loaded again here.
    A file or a user's loader is loaded now, on the caller's thread: a bad file fails before anything starts;
    so is every set when this process starts no cluster (``address`` or ``RAY_ADDRESS`` given, or Ray already
    initialized): joining one is quick, and what its ``ray.init`` imports was not checked against the load's.
    The function re-raises what the load raised.

    While it loads on the thread, BLAS runs every product on the calling thread (:func:`_blas_on_this_thread`):
    ``ray.init`` forks its processes meanwhile, and OpenBLAS's fork handler waits for its worker threads, which
    wait for a product the loading thread started: the run hung for good in ``ray.init`` (a ``madelon`` set with
    300 informative features, generated beside it; ``docs/ray_optuna_notes.md``).
    """
    from search.engine.session import joins_cluster
    from trainables.data.config import BUILTIN_DATASETS

    if not data or loader_of(data) is not None or data.get("name") not in BUILTIN_DATASETS or joins_cluster(address):
        loaded = load()
        return lambda: loaded
    outcome: dict[str, Any] = {}

    def work() -> None:
        try:
            with _blas_on_this_thread():
                outcome["data"] = load()
        except BaseException as exc:  # noqa: BLE001 - re-raised on the caller's thread
            outcome["error"] = exc

    thread = threading.Thread(target=work, name="data-loader", daemon=True)
    thread.start()

    def loaded_data() -> Any:
        thread.join()
        error = outcome.get("error")
        if isinstance(error, getattr(importlib._bootstrap, "_DeadlockError", ())):  # two threads' imports crossed
            return load()
        if error is not None:
            raise error
        return outcome["data"]

    return loaded_data


@contextlib.contextmanager
def _blas_on_this_thread() -> Iterator[None]:
    """While a built-in set is generated beside ``ray.init``: the BLAS libraries that numpy and SciPy load run every
    product on its calling thread (``threadpoolctl``, which scikit-learn depends on; the limit is the process's,
    for every thread, until the set is generated); as they were after.

    ``ray.init`` starts its processes with a ``preexec_fn``, so Python forks, and OpenBLAS's ``pthread_atfork``
    handler (``blas_thread_shutdown_``) waits until its worker threads are idle, while they work on a product the
    other thread waits for: neither goes on. With one BLAS thread the workers stay idle and the handler returns at
    once. The generators' imports come first, so the libraries they load are limited too. The built-in sets'
    products (a few million multiply-adds) take no longer on one thread. Where threadpoolctl cannot read the
    loaded libraries, the set is generated without the limit, as before.
    """
    import sklearn.datasets  # noqa: F401 - loads numpy's and SciPy's BLAS, which threadpoolctl limits only once loaded
    import sklearn.preprocessing  # noqa: F401

    try:
        from threadpoolctl import threadpool_limits

        limits = threadpool_limits(limits=1, user_api="blas")
    except Exception:  # noqa: BLE001 - an unreadable library: generated as before, without the limit
        limits = contextlib.nullcontext()
    with limits:
        yield

