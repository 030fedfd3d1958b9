"""Tune's usage tag of a run's callbacks, counted without importing MLflow, W&B, Comet and Aim."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]


def test_the_counts_are_rays_own(tmp_path):
    pytest.importorskip("mlflow")
    from ray.air._internal.usage import _count_callbacks
    from ray.air.integrations.comet import CometLoggerCallback
    from ray.air.integrations.mlflow import MLflowLoggerCallback
    from ray.air.integrations.wandb import WandbLoggerCallback
    from ray.tune import Callback
    from ray.tune.logger import CSVLoggerCallback, LoggerCallback
    from ray.tune.logger.aim import AimLoggerCallback

    from search.engine.callbacks import ProgressLines, tensorboard_logger
    from search.internals import INTEGRATION_CALLBACKS, count_callbacks, result_loggers

    # The names ours reads without importing: Ray's four classes', in Ray's order.
    assert INTEGRATION_CALLBACKS == tuple(cls.__name__ for cls in (WandbLoggerCallback, MLflowLoggerCallback,
                                                                   CometLoggerCallback, AimLoggerCallback))

    class Mine(Callback):
        pass

    class MyLogger(LoggerCallback):
        pass

    callbacks = [ProgressLines("val_accuracy", "max"), *result_loggers(), *tensorboard_logger(), CSVLoggerCallback(),
                 MLflowLoggerCallback(tracking_uri=str(tmp_path / "mlruns")), Mine(), MyLogger(), Mine(), object()]
    counts = count_callbacks(callbacks)
    assert counts == _count_callbacks(callbacks)
    assert counts["MLflowLoggerCallback"] == 1 and counts["CSVLoggerCallback"] == 1 and counts["CustomCallback"] == 3
    assert count_callbacks(None) == {} == _count_callbacks(None)


SCRIPT = textwrap.dedent("""
    import sys
    import ray.tune.tune as tune_module
    from ray._common.usage import usage_lib
    from ray.air._internal import usage
    from search.engine.callbacks import ProgressLines
    from search.internals import callbacks_tagged_lightly, result_loggers

    callbacks = [ProgressLines("val_accuracy", "max"), *result_loggers()]
    rays_count = usage._count_callbacks
    if sys.argv[1] == "lightly":
        with callbacks_tagged_lightly():
            tune_module.air_usage.tag_callbacks(callbacks)  # as ray.tune.run calls it
        assert usage._count_callbacks is rays_count  # put back
        try:  # and put back when the run inside fails
            with callbacks_tagged_lightly():
                raise KeyboardInterrupt
        except KeyboardInterrupt:
            assert usage._count_callbacks is rays_count
    else:
        tune_module.air_usage.tag_callbacks(callbacks)
    print("mlflow imported" if "mlflow" in sys.modules else "mlflow not imported")
    print(usage_lib._recorded_extra_usage_tags["air_callbacks"])
""")


def test_the_tag_imports_no_integration_and_records_rays_value():
    pytest.importorskip("mlflow")
    lines = {}
    for how in ("lightly", "ray"):
        proc = subprocess.run([sys.executable, "-c", SCRIPT, how], cwd=REPO, capture_output=True, text=True,
                              timeout=120)
        assert proc.returncode == 0, proc.stderr[-2000:]
        lines[how] = proc.stdout.splitlines()
    assert lines["lightly"][0] == "mlflow not imported" and lines["ray"][0] == "mlflow imported"
    assert lines["lightly"][1] == lines["ray"][1]  # the tag Ray records: the same JSON
    assert lines["ray"][1] == '{"CustomCallback": 1, "CustomLoggerCallback": 2}'  # ours, and our two result loggers


def test_a_failure_of_ours_falls_back_to_rays_count(monkeypatch):
    from ray.air._internal import usage

    import search.internals.usage_tag as usage_tag
    from search.engine.callbacks import ProgressLines

    def broken(callbacks):
        raise AttributeError("DEFAULT_CALLBACK_CLASSES moved")

    monkeypatch.setattr(usage_tag, "count_callbacks", broken)
    rays_count = usage._count_callbacks
    with usage_tag.callbacks_tagged_lightly():
        assert usage._count_callbacks is not rays_count
        assert usage._count_callbacks([ProgressLines("val_accuracy", "max")]) == {"CustomCallback": 1}
