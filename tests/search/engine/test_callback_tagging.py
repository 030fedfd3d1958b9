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
    from ray.air.integrations.mlflow import MLflowLoggerCallback
    from ray.tune import Callback
    from ray.tune.logger import LoggerCallback

    from search.engine.callbacks import ProgressLines, tensorboard_logger
    from search.internals import count_callbacks, result_loggers

    class Mine(Callback):
        pass

    class MyLogger(LoggerCallback):
        pass

    callbacks = [ProgressLines("val_accuracy", "max"), *result_loggers(), *tensorboard_logger(),
                 MLflowLoggerCallback(tracking_uri=str(tmp_path / "mlruns")), Mine(), MyLogger(), Mine(), object()]
    counts = count_callbacks(callbacks)
    assert counts == dict(_count_callbacks(callbacks))
    assert counts["MLflowLoggerCallback"] == 1 and counts["CustomCallback"] == 3
    assert count_callbacks(None) == {} == dict(_count_callbacks(None))


SCRIPT = textwrap.dedent("""
    import sys
    import ray.tune.tune as tune_module
    from search.engine.callbacks import ProgressLines
    from search.internals import callbacks_tagged_lightly

    ray_own = tune_module.air_usage.tag_callbacks
    if sys.argv[1] == "lightly":
        with callbacks_tagged_lightly():
            tune_module.air_usage.tag_callbacks([ProgressLines("val_accuracy", "max")])  # as ray.tune.run calls it
        assert tune_module.air_usage.tag_callbacks is ray_own  # put back
    else:
        tune_module.air_usage.tag_callbacks([ProgressLines("val_accuracy", "max")])
    print("mlflow imported" if "mlflow" in sys.modules else "mlflow not imported")
""")


@pytest.mark.parametrize(("how", "expected"), [("lightly", "mlflow not imported"), ("ray", "mlflow imported")])
def test_the_tag_imports_no_integration(how, expected):
    pytest.importorskip("mlflow")
    proc = subprocess.run([sys.executable, "-c", SCRIPT, how], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip() == expected
