"""``data: {loader: module:function, ...}``: your own data, loaded once in the driver (issue 26, item 1)."""

from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np
import pytest
import yaml

from search.cli.main import main

LOADER = '''
import os
from pathlib import Path

import numpy as np
import torch


def load(path, rows=64, calls=None):
    """Tensors from a .npy file: what a table reader cannot take."""
    if calls:  # where this ran, once per call: the driver, once
        with open(calls, "a") as out:
            out.write(f"{os.getpid()}\\n")
    x = torch.from_numpy(np.load(path))[:rows]
    return {"x": x, "y": (x.sum(dim=1) > 0).long()}


def splits(rows=120):
    from trainables.data import load_data

    return load_data({"name": "madelon", "n_samples": rows, "n_features": 6, "n_informative": 2})


def broken(path):
    raise FileNotFoundError(f"no such file: {path}")
'''

TRAINABLE = '''
def train(config, report, data):
    for epoch in (1, 2):
        # what reached the trial: the loader's own object, its rows
        report({"epoch": epoch, "rows": float(len(data["x"])), "score": float(data["x"].mean()) * epoch})
'''


def _write(tmp_path: Path, data: dict, trainable: str = "mine:train", **more) -> Path:
    (tmp_path / "my_data.py").write_text(LOADER)
    (tmp_path / "mine.py").write_text(TRAINABLE)
    np.save(tmp_path / "features.npy", np.random.default_rng(0).normal(size=(100, 5)).astype("float32"))
    raw = {"name": "own_data", "trainable": trainable, "data": data, "metric": "score", "mode": "max",
           "search": {"num_samples": 2, "sampler": "random", "seed": 0}, "scheduler": {"type": "none"},
           "space": {"x": {"type": "float", "low": 0.0, "high": 1.0}}, "fixed": {"epochs": 2},
           "storage": str(tmp_path / "results"), **more}
    path = tmp_path / "space.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def _validate(path: Path, capsys) -> tuple[int, str]:
    code = main(["validate", str(path)])
    return code, capsys.readouterr().err


def test_a_loader_beside_the_spec_validates(tmp_path, capsys):
    path = _write(tmp_path, {"loader": "my_data:load", "path": "features.npy", "rows": 50})
    code, err = _validate(path, capsys)
    assert code == 0, err


@pytest.mark.parametrize(("data", "message"), [
    ({"loader": "my_data:lod", "path": "x.npy"}, "module 'my_data' has no function 'lod' (did you mean 'load'?)"),
    ({"loader": "no_such_module:load"}, "cannot import module 'no_such_module' of data loader 'no_such_module:load'"),
    ({"loader": "my_data"}, "data.loader must be 'module:function'"),
    ({"loader": "my_data:load", "path": "f.npy", "row": 5}, "my_data:load cannot be called with the other keys of "
                                                            "data (path, row): got an unexpected keyword argument 'row'"),
    ({"loader": "my_data:load", "name": "digits"}, "data has both 'name' and 'loader'"),
])
def test_a_bad_loader_is_a_located_error_at_validate(tmp_path, capsys, data, message):
    path = _write(tmp_path, data)
    code, err = _validate(path, capsys)
    assert code == 2 and message in err, err
    assert f"{path}:" in err and "data" in err  # the file and line of the spec, as every spec error


def test_a_file_that_is_not_a_table_points_to_the_loader(tmp_path, capsys):
    path = _write(tmp_path, {"name": "features.npy", "target": "y"})
    code, err = _validate(path, capsys)
    assert code == 2 and "a .npy file is not read as a table (data files are .csv, .parquet, .pq)" in err, err
    assert "data: {loader: 'my_data:load', path: features.npy}" in err


def test_load_data_once_calls_the_loader_with_the_other_keys(tmp_path):
    import torch

    from search.engine.run import load_data_once
    from search.spec import load_spec
    from trainables.data import DataError, DataSplits

    # "features.npy" is beside the spec, not in the current folder: found there, as data.name would be.
    assert not Path("features.npy").exists()
    path = _write(tmp_path, {"loader": "my_data:load", "path": "features.npy", "rows": 30})
    data = load_data_once(load_spec(path), path)
    assert isinstance(data["x"], torch.Tensor) and data["x"].shape == (30, 5)
    from search.engine.run import resolved_spec

    saved = resolved_spec(load_spec(path), path).data  # what the experiment's spec copy keeps, for resume
    assert saved == {"loader": "my_data:load", "path": str(tmp_path / "features.npy"), "rows": 30}
    # The built-in trainable on a loader's DataSplits: taken; on anything else: a DataError (exit 2) before Ray.
    path = _write(tmp_path, {"loader": "my_data:splits", "rows": 90}, trainable="feature_selection",
                  metric="val_accuracy", space={"lr": {"type": "float", "low": 1e-3, "high": 1e-2}})
    assert isinstance(load_data_once(load_spec(path), path), DataSplits)
    path = _write(tmp_path, {"loader": "my_data:load", "path": "features.npy"}, trainable="feature_selection",
                  metric="val_accuracy", space={"lr": {"type": "float", "low": 1e-3, "high": 1e-2}})
    with pytest.raises(DataError, match="returned a dict, but the built-in trainable trains on a trainables.data.DataSplits"):
        load_data_once(load_spec(path), path)


def test_a_loader_that_raises_is_exit_2_before_ray_starts(tmp_path, capsys):
    import ray

    path = _write(tmp_path, {"loader": "my_data:broken", "path": "missing.npy"})
    was = ray.is_initialized()  # this worker's shared cluster may be up already: the run must not start another
    code = main(["run", str(path)])
    err = capsys.readouterr().err
    assert code == 2, err
    assert "data.loader 'my_data:broken' raised FileNotFoundError: no such file: missing.npy (called with " \
           "path='missing.npy')" in err
    assert ray.is_initialized() == was and "starting Ray" not in err
    assert not (tmp_path / "results" / "own_data").exists()


@pytest.mark.ray
def test_the_loaders_object_reaches_every_trial_loaded_once(ray_cluster, tmp_path):
    from search.engine.run import RunOptions, run_experiment
    from search.results import open_results
    from search.spec import load_spec

    calls = tmp_path / "calls.log"
    path = _write(tmp_path, {"loader": "my_data:load", "path": "features.npy", "rows": 40, "calls": str(calls)})
    outcome = run_experiment(load_spec(path), RunOptions(spec_path=path))
    import os

    assert calls.read_text().split() == [str(os.getpid())]  # once, in the driver (this process)
    table = open_results(outcome.experiment).table
    assert len(table) == 2 and set(table["outcome"]) == {"completed"}
    history = open_results(outcome.experiment).record(table["trial_id"][0]).history
    assert history["rows"].tolist() == [40.0, 40.0]  # the loader's object, its keyword arguments applied
    x = np.load(tmp_path / "features.npy")[:40]
    assert table["best_score"].tolist() == pytest.approx([float(x.mean()) * 2] * 2, rel=1e-5)


# ------------------------------------------- loaded beside Ray's start (search.engine.data.loading)


@pytest.fixture
def starts_embedded_ray(monkeypatch):
    """As when the run starts its own cluster: no address, no RAY_ADDRESS, Ray not initialized in this process."""
    import ray

    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    monkeypatch.setattr(ray, "is_initialized", lambda: False)


def test_a_built_in_set_loads_on_a_thread_while_the_caller_goes_on_and_a_file_or_loader_loads_at_once(
        starts_embedded_ray):
    import threading

    from search.engine.data import loading

    went_on = threading.Event()
    where = []

    def load():
        where.append(threading.current_thread().name)
        assert went_on.wait(30)  # the caller went on (to start Ray) before the load ended
        return "data"

    get = loading(load, {"name": "madelon_guyon", "n_samples": 200})
    went_on.set()
    assert get() == "data" and get() == "data"
    assert where == ["data-loader"]
    # A file, a user's loader and no data at all: loaded before loading() returns, on the caller's thread.
    for data in ({"name": "features.csv", "target": "y"}, {"loader": "my_data:load", "name": "madelon"}, None):
        where.clear()
        get = loading(lambda: where.append(threading.current_thread().name) or "now", data)
        assert where == [threading.current_thread().name]
        assert get() == "now"


def test_a_built_in_set_is_generated_with_one_blas_thread_and_the_limit_is_lifted_after(starts_embedded_ray):
    from threadpoolctl import threadpool_info

    from search.engine.data import loading

    def blas_threads():
        return sorted({lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"})

    before = blas_threads()
    if before == [1]:
        pytest.skip("BLAS runs on one thread here already (one core, or OPENBLAS_NUM_THREADS=1): nothing to limit")
    seen = []
    get = loading(lambda: seen.append(blas_threads()) or "data", {"name": "madelon_guyon", "n_samples": 200})
    assert get() == "data"
    assert seen == [[1]]  # every BLAS library loaded (numpy's, SciPy's) on one thread
    assert blas_threads() == before


# A built-in set's generation whose BLAS products run (on OpenBLAS's worker threads) all through an embedded
# ray.init, which forks its processes meanwhile: OpenBLAS's fork handler waited for its busy workers, for good.
BLAS_BESIDE_RAY_INIT = """
import threading, time
import numpy as np
from search.engine.data import loading
from search.engine.session import ray_session

def generate():
    a, deadline = np.random.default_rng(0).random((300, 300)), time.monotonic() + 4
    while time.monotonic() < deadline:
        a @ a
    return threading.current_thread().name

get = loading(generate, {"name": "madelon", "n_informative": 300, "n_features": 400})
with ray_session(num_cpus=1, include_dashboard=False):
    print("started", get(), flush=True)
"""


@pytest.mark.ray
@pytest.mark.slow
def test_blas_products_beside_an_embedded_ray_init_do_not_hang_it(tmp_path):
    import os
    import signal
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-c", BLAS_BESIDE_RAY_INIT], cwd=Path(__file__).resolve().parents[2],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
                            env={**{name: value for name, value in os.environ.items() if name != "RAY_ADDRESS"},
                                 "OPENBLAS_NUM_THREADS": "2"})  # worker threads, as on 2 or more cores
    try:
        out, _ = proc.communicate(timeout=90)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # the hung driver and whatever Ray processes it had started
        out, _ = proc.communicate()
        pytest.fail(f"ray.init hung while a built-in set was generated beside it:\n{out[-2000:]}")
    assert proc.returncode == 0, out[-3000:]
    assert "started data-loader" in out  # generated on its thread, beside ray.init


def test_a_run_that_joins_a_cluster_loads_a_built_in_set_at_once(starts_embedded_ray, monkeypatch):
    import threading

    import ray

    from search.engine.data import loading

    def here():
        return threading.current_thread().name

    me = threading.current_thread().name
    assert loading(here, {"name": "wine"}, "ray://head:10001")() == me  # --address
    monkeypatch.setenv("RAY_ADDRESS", "10.0.0.1:6379")
    assert loading(here, {"name": "wine"})() == me
    monkeypatch.delenv("RAY_ADDRESS")
    monkeypatch.setattr(ray, "is_initialized", lambda: True)  # a notebook's or a test's own cluster
    assert loading(here, {"name": "wine"})() == me
    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    assert loading(here, {"name": "wine"})() == "data-loader"


def test_a_built_in_sets_error_is_raised_to_the_caller_and_a_crossed_import_loads_again_there(starts_embedded_ray):
    import importlib
    import threading

    from search.engine.data import loading
    from trainables.data import DataError

    def broken():
        raise DataError("madelon_guyon: cannot split 40 samples stratified")

    get = loading(broken, {"name": "madelon_guyon"})
    with pytest.raises(DataError, match="cannot split 40 samples"):
        get()
    deadlock = importlib.import_module("importlib._bootstrap")._DeadlockError
    calls = []

    def crossed():
        calls.append(threading.current_thread().name)
        if len(calls) == 1:
            raise deadlock("deadlock detected by _ModuleLock('sklearn')")
        return "loaded"

    assert loading(crossed, {"name": "breast_cancer"})() == "loaded"
    assert calls == ["data-loader", threading.current_thread().name]


def test_a_data_file_that_fails_to_load_is_exit_2_before_ray_starts(tmp_path, capsys):
    import ray

    (tmp_path / "one.csv").write_text("a,b,target\n" + "".join(f"{i / 50},{i % 7},1\n" for i in range(50)))
    spec = tmp_path / "spec.yaml"
    spec.write_text("name: oneclass\ntrainable: feature_selection\ndata: {name: one.csv, target: target}\n"
                    "metric: val_accuracy\nmode: max\nfixed: {epochs: 2}\n"
                    "space:\n  lr: {type: float, low: 1.0e-3, high: 1.0e-2}\nstorage: results\n")
    was = ray.is_initialized()
    code = main(["run", str(spec)])
    err = capsys.readouterr().err
    assert code == 2, err
    assert "found 1 class(es) ['1']; classification needs at least 2 distinct target values" in err
    assert ray.is_initialized() == was and "starting Ray" not in err
    assert not (tmp_path / "results" / "oneclass").exists()
