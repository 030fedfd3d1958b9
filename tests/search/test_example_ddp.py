"""``examples/custom_model_ddp`` on a real local Ray: two trials, each trained by two DDP workers.

The example folder is copied as a user would copy it; only the budget is made smaller (2 trials of 2
epochs). A probe module beside it runs the example's own ``train`` and records, on each Train worker,
the rows every pass of the train loader handed that rank: what ``prepare_data_loader`` really did inside
Ray Train's process group, not what it would do.
"""

from __future__ import annotations

import json
import shutil
import textwrap
from collections import defaultdict
from pathlib import Path

import pytest
import yaml

pytestmark = [pytest.mark.ray]

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "custom_model_ddp"

PROBE = '''
"""The example's train(), its train loader's sampler recording each pass's rows (one JSON file per loader)."""
import importlib.util
import itertools
import json
import os
from pathlib import Path

from trainables import prepare_data_loader
from trainables.distributed import world_info

HERE = Path(__file__).resolve().parent
OUT = HERE / "shards"
# By path, under its own name: no other test's my_model.py can stand in for it.
_spec = importlib.util.spec_from_file_location("custom_model_ddp_example", HERE / "my_model.py")
example = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(example)
_loaders = itertools.count()
_trial = {}


def _recording(loader, **kwargs):
    prepared = prepare_data_loader(loader, **kwargs)
    if kwargs.get("evaluation"):
        return prepared
    world, passes = world_info(), []
    path = OUT / f"{os.getpid()}-{next(_loaders)}.json"
    base = type(prepared.sampler)

    class Recording(base):
        def __iter__(self):
            rows = [int(i) for i in base.__iter__(self)]
            passes.append(rows)
            path.write_text(json.dumps({"rank": world.rank, "world_size": world.world_size, "lr": _trial["lr"],
                                        "rows": len(loader.dataset), "passes": passes}))
            return iter(rows)

    prepared.sampler.__class__ = Recording
    return prepared


example.prepare_data_loader = _recording


def train(config, report, data, resume_from=None):
    _trial["lr"] = config["lr"]
    example.train(config, report, data, resume_from)


train.metrics = example.train.metrics
train.config_keys = example.train.config_keys
'''


def test_the_ddp_example_trains_each_trial_on_two_workers_with_disjoint_shards(ray_cluster, tmp_path):
    from search.engine.run import RunOptions, run_experiment
    from search.results import open_results
    from search.spec import load_spec

    copy = tmp_path / "custom_model_ddp"
    shutil.copytree(EXAMPLE, copy)
    (copy / "ddp_probe.py").write_text(textwrap.dedent(PROBE))
    (copy / "shards").mkdir()
    raw = yaml.safe_load((copy / "space.yaml").read_text())
    assert raw["resources"]["num_workers"] == 2  # the example's own
    raw["trainable"] = "ddp_probe:train"
    raw["search"]["num_samples"] = 2
    raw["fixed"]["epochs"] = 2
    raw["storage"] = str(tmp_path / "results")
    (copy / "space.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))

    spec = load_spec(copy / "space.yaml")
    outcome = run_experiment(spec, RunOptions(spec_path=copy / "space.yaml"))
    assert not outcome.results.errors
    assert outcome.plan.num_workers == 2

    table = open_results(outcome.experiment).table
    assert len(table) == 2 and set(table["outcome"]) == {"completed"}, table
    assert table["best_val_accuracy"].between(0, 1).all() and set(table["epochs_run"]) == {2}

    records = [json.loads(p.read_text()) for p in (copy / "shards").glob("*.json")]
    by_trial: dict[float, dict[int, dict]] = defaultdict(dict)
    for record in records:
        assert record["world_size"] == 2
        by_trial[record["lr"]][record["rank"]] = record
    assert len(by_trial) == 2 and all(set(ranks) == {0, 1} for ranks in by_trial.values()), records
    for ranks in by_trial.values():
        n = ranks[0]["rows"]
        half = -(-n // 2)  # DistributedSampler pads an odd count with one repeated row
        assert [len(ranks[r]["passes"]) for r in (0, 1)] == [2, 2]  # one pass per epoch on each rank
        for zero, one in zip(ranks[0]["passes"], ranks[1]["passes"]):
            assert len(zero) == len(one) == half
            assert set(zero) | set(one) == set(range(n))  # together, every train row
            assert len(set(zero) & set(one)) == 2 * half - n  # apart, nothing but the padding
        assert ranks[0]["passes"][0] != ranks[0]["passes"][1]  # reshuffled each epoch
    # Both trials use the example's seed (0): the same shards, whatever the hyperparameters.
    first, second = by_trial.values()
    assert first[0]["passes"] == second[0]["passes"] and first[1]["passes"] == second[1]["passes"]
