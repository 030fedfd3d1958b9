"""search.internals imports no Ray Tune; the classes it makes from Tune's are made once, where pickle finds them."""

from __future__ import annotations

import pickle
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_importing_internals_imports_no_ray_tune():
    code = "import sys, search.internals\nprint('ray.tune' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_the_classes_made_from_tunes_are_made_once_and_unpickle_by_their_module_name():
    import search.internals as internals
    from ray.tune.logger import CSVLoggerCallback, JsonLoggerCallback
    from ray.tune.schedulers.async_hyperband import _Bracket

    first, second = internals.result_loggers(), internals.result_loggers()
    assert [type(c) for c in first] == [type(c) for c in second]
    json_logger, csv_logger = first
    assert isinstance(json_logger, JsonLoggerCallback) and isinstance(csv_logger, CSVLoggerCallback)
    assert type(json_logger) is internals.KeepLocalJsonLoggerCallback  # what a saved tuner.pkl names
    assert type(json_logger).__module__ == "search.internals"
    assert type(pickle.loads(pickle.dumps(json_logger))) is type(json_logger)
    assert internals.Bracket is _Bracket
    try:
        internals.NoSuchThing  # noqa: B018
    except AttributeError as exc:
        assert "NoSuchThing" in str(exc)
    else:
        raise AssertionError("an unknown name must raise AttributeError")
