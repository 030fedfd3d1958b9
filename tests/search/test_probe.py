"""``python -m search validate --probe`` (issue 26, item 8): one trial, one epoch, on a slice of the data, in this
process, with no Ray started; its metrics, its checkpoint's round trip and ``evaluate`` checked.

Each user trainable lives in a module of its own name: a module imported by one test stays in ``sys.modules``.
"""

from __future__ import annotations

import contextlib
import io
import sys
import textwrap
from pathlib import Path

import psutil
import pytest
import yaml

from search.cli.main import main
from tests.search.helpers import TINY_SPEC


@pytest.fixture(autouse=True)
def _own_sys_path(monkeypatch):
    monkeypatch.setattr(sys, "path", list(sys.path))  # resolve_trainable appends the spec's folder


def _ray_processes() -> set[int]:
    found = set()
    for child in psutil.Process().children(recursive=True):
        with contextlib.suppress(psutil.Error):
            if "ray" in " ".join(child.cmdline()).lower():
                found.add(child.pid)
    return found


def probe(path: Path) -> tuple[int, str, str]:
    """``validate --probe`` in-process: (exit code, stdout, stderr); checks that it started no Ray."""
    import ray

    before, ray_before = ray.is_initialized(), _ray_processes()
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["validate", "--probe", str(path)])
    assert ray.is_initialized() is before  # False, unless another test's cluster is up in this session
    assert _ray_processes() <= ray_before, "the probe started Ray processes"
    print(out.getvalue(), err.getvalue())  # the probe's summary, with its time, in the test's output
    return code, out.getvalue(), err.getvalue()


def _spec(tmp_path: Path, module: str, source: str, **changes) -> Path:
    (tmp_path / f"{module}.py").write_text(textwrap.dedent(source))
    raw = {"name": "probed", "trainable": f"{module}:train", "metric": "score", "mode": "max",
           "search": {"num_samples": 2, "sampler": "random", "seed": 0}, "scheduler": {"type": "none"},
           "space": {"x": {"type": "float", "low": 0.5, "high": 1.0}}, "fixed": {"epochs": 5},
           "storage": str(tmp_path / "results"), **changes}
    path = tmp_path / "space.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


# A trainable of one's own, as in test_user_trainables: its own checkpoint format, resumed from resume_from.
OWN = '''
import os, tempfile
import torch

def train(config, report, resume_from=None):
    start = 1
    if resume_from:
        {resume}
    for epoch in range(start, config["epochs"] + 1):
        folder = tempfile.mkdtemp()
        torch.save({{"epoch": epoch}}, os.path.join(folder, "state.pt"))
        report({{"epoch": epoch, {metric}: 0.5 * config["x"]}}, folder)
'''
RESUMES = 'start = torch.load(os.path.join(resume_from, "state.pt"))["epoch"] + 1'


def test_the_built_in_tiny_spec_probes_ok_without_ray_and_writes_nothing(tmp_path):
    from search.engine.searcher import PruningAwareOptunaSearch
    from search.spec.load import load_spec
    from search.spec.registry import build_sampler
    from search.spec.space import DefineByRun

    path = tmp_path / "space.yaml"
    path.write_text(TINY_SPEC + f"storage: {str(tmp_path / 'results')!r}\n")
    code, out, err = probe(path)
    assert code == 0, out + err
    assert "space.yaml: valid" in out and "probe passed" in out
    assert "data        madelon: 120 of 120 train, 40 of 40 val, 40 of 40 test rows" in out
    assert "epochs=1 (the probe's)" in out and "batch_size=32 (fixed)" in out
    assert "epoch 1     val_accuracy=" in out
    assert "metrics     OK: every one the search reads is reported, as a number: val_accuracy, epoch" in out
    assert "checkpoint  OK: 3 file(s)" in out and "checkpoint.pt" in out and "loads with weights_only=True" in out
    assert "resume      OK: continued from the checkpoint to epoch 2" in out
    assert "evaluate    OK: accuracy=" in out and "on 40 test rows" in out
    assert not (tmp_path / "results").exists()  # nothing in the spec's storage
    # The configuration probed is the one the run's searcher suggests first (same sampler, same seed).
    spec = load_spec(path)
    searcher = PruningAwareOptunaSearch(
        space=DefineByRun(spec.space), metric=spec.primary_metric, mode=spec.primary_mode,
        sampler=build_sampler(spec.search.sampler.value, spec.search.seed, spec.search.sampler_options))
    first = searcher.suggest("t1")
    assert f"lr={first['lr']:.4g} sparsity_lambda={first['sparsity_lambda']:.4g} (the tpe sampler's" in out


def test_a_trainable_that_misses_the_metric_fails_with_exit_2_and_names_it(tmp_path):
    path = _spec(tmp_path, "probe_misses_metric", OWN.format(resume=RESUMES, metric='"scroe"'))
    code, out, err = probe(path)
    assert code == 2
    assert "metrics     FAILED: trainable probe_misses_metric:train reported ['epoch', 'scroe'] but the spec " \
           "needs ['score'] (did you mean 'scroe'?)" in out
    assert "probe failed (metrics)" in err and "Traceback" not in out + err


def test_a_checkpoint_that_cannot_be_resumed_fails_with_a_clear_line(tmp_path):
    broken = 'raise RuntimeError("cannot read my own checkpoint")'
    path = _spec(tmp_path, "probe_no_resume", OWN.format(resume=broken, metric='"score"'))
    code, out, err = probe(path)
    assert code == 2
    assert "checkpoint  OK: 1 file(s)" in out and "(state.pt)" in out
    assert "resume      FAILED: resuming from its checkpoint failed (take `resume_from`" in out
    assert "RuntimeError: cannot read my own checkpoint" in out
    assert "probe_no_resume.py" in out  # the frame of the user's code that raised
    assert "probe failed (resume)" in err


def test_a_trainable_that_raises_is_reported_with_its_last_frames_and_exit_2(tmp_path):
    source = '''
    def helper(x):
        raise ValueError(f"bad x {x}")

    def train(config, report):
        helper(config["x"])
    '''
    code, out, err = probe(_spec(tmp_path, "probe_raises", source))
    assert code == 2
    assert "trainable   FAILED: trainable probe_raises:train raised ValueError: bad x" in out
    assert 'probe_raises.py", line 3, in helper' in out and "Traceback" not in out + err


def test_a_trainable_that_starts_over_when_resumed_is_warned_about_not_failed(tmp_path):
    path = _spec(tmp_path, "probe_starts_over", OWN.format(resume="pass", metric='"score"'))
    code, out, _ = probe(path)
    assert code == 0
    assert "resume      warning: resumed from its epoch-1 checkpoint, trainable probe_starts_over:train reported " \
           "epoch 1: it started over" in out


def test_a_metric_that_is_not_a_number_fails(tmp_path):
    source = '''
    def train(config, report):
        report({"epoch": 1, "score": str(config["x"])})
    '''
    code, out, _ = probe(_spec(tmp_path, "probe_text_metric", source))
    assert code == 2
    assert "metrics     FAILED: score was reported as '0.7744" in out and "(str), not a number" in out


NO_CHECKPOINT = '''
def train(config, report):
    for epoch in range(1, config["epochs"] + 1):
        report({"epoch": epoch, "score": config["x"]})
'''


@pytest.mark.parametrize(("evaluate", "code", "status"), [(False, 0, "warning"), (True, 2, "FAILED")])
def test_no_checkpoint_is_a_warning_unless_evaluate_needs_one(tmp_path, evaluate, code, status):
    module = f"probe_no_checkpoint_{evaluate}"
    source = NO_CHECKPOINT + ("\ntrain.evaluate = lambda config, checkpoint, data: {'acc': 1.0}\n" if evaluate else "")
    got, out, _ = probe(_spec(tmp_path, module, source))
    assert got == code
    assert f"checkpoint  {status}: trainable {module}:train reported no checkpoint in its first epoch" in out
    assert ("resume      not checked: no checkpoint" in out) is not evaluate


RAY_STYLE = '''
import os, tempfile
import ray.{api}

def train(config):
    start = 1
    checkpoint = ray.{api}.get_checkpoint()
    if checkpoint:
        with checkpoint.as_directory() as folder:
            start = int(open(os.path.join(folder, "epoch.txt")).read()) + 1
    for epoch in range(start, config["epochs"] + 1):
        with tempfile.TemporaryDirectory() as folder:
            open(os.path.join(folder, "epoch.txt"), "w").write(str(epoch))
            ray.{api}.report({{"epoch": epoch, "score": config["x"]}},
                             checkpoint=ray.{api}.Checkpoint.from_directory(folder))
'''


@pytest.mark.parametrize(("api", "executor"), [("tune", "direct"), ("train", "torch_trainer")])
def test_a_ray_style_trainable_probes_ok_on_its_executor(tmp_path, api, executor):
    module = f"probe_ray_style_{api}"
    path = _spec(tmp_path, module, RAY_STYLE.format(api=api), resources={"executor": executor})
    code, out, err = probe(path)
    assert code == 0, out + err
    assert "epoch 1     score=" in out
    assert "checkpoint  OK: 1 file(s)" in out and "(epoch.txt)" in out
    assert "resume      OK: continued from the checkpoint to epoch 2" in out


def test_ray_train_report_on_the_direct_executor_fails_and_says_which_executor_it_needs(tmp_path):
    path = _spec(tmp_path, "probe_train_on_direct", RAY_STYLE.format(api="train"), resources={"executor": "direct"})
    code, out, _ = probe(path)
    assert code == 2
    assert "trainable   FAILED" in out and "ray.train.report needs resources.executor: torch_trainer" in out


EVALUATED = OWN + '''

def evaluate(config, checkpoint, data):
    open(os.path.join(config["marks"], "evaluated"), "w").write(str(len(data.y_test)))
    return {result}

train.evaluate = evaluate
'''


def test_a_declared_evaluate_is_called_on_the_checkpoint_and_the_test_slice(tmp_path):
    source = EVALUATED.format(resume=RESUMES, metric='"score"', result='{"acc": 0.75, "note": "text"}')
    path = _spec(tmp_path, "probe_evaluated", source, fixed={"epochs": 5, "marks": str(tmp_path)},
                 data={"name": "madelon", "n_samples": 1000, "n_features": 10, "n_informative": 3})
    code, out, err = probe(path)
    assert code == 0, out + err
    assert "data        madelon: 256 of 600 train, 128 of 200 val, 128 of 200 test rows" in out
    assert "evaluate    OK: acc=0.75 on 128 test rows; not numbers, dropped: note" in out
    assert (tmp_path / "evaluated").read_text() == "128"


def test_an_evaluate_that_returns_no_metrics_fails(tmp_path):
    source = EVALUATED.format(resume=RESUMES, metric='"score"', result="None")
    path = _spec(tmp_path, "probe_evaluates_nothing", source, fixed={"epochs": 5, "marks": str(tmp_path)},
                 data={"name": "madelon", "n_samples": 200, "n_features": 10, "n_informative": 3})
    code, out, err = probe(path)
    assert code == 2
    assert "evaluate    FAILED: evaluate(config, checkpoint, data) returned None: it must return {metric: number}" in out
    assert "probe failed (evaluate)" in err


def test_an_invalid_spec_stops_before_the_probe_with_exit_2(tmp_path):
    path = _spec(tmp_path, "probe_never_called", "def train(config, report):\n    raise SystemExit('ran')\n",
                 mode="maximise")
    code, out, err = probe(path)
    assert code == 2 and "probe:" not in out and "space.yaml:4: mode" in err
