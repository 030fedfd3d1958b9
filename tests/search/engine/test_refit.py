"""The refit: the picked trial's configuration trained once more, on train + validation, for the epochs it ran.

The unit tests build an experiment folder by hand from real trainings of the built-in trainable
(no Ray): two trials, each with a checkpoint per epoch, as Tune lays them out. The ``ray`` test
runs a search, removes its refit (a run killed between its search and its refit) and resumes it.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from search.engine.heldout import evaluate_heldout
from search.engine.refit import refit_picked
from search.experiment import Experiment
from search.results import best_trial, feature_table, load_model, load_predictor, load_results, open_results
from search.results.summary import summary_text
from search.spec import Spec
from tests.search.helpers import results_cli as cli
from trainables.data import load_data
from trainables.tasks import ConfigError, evaluate_feature_selection, refit_feature_selection, train_feature_selection

DATA = {"name": "madelon", "n_samples": 300, "n_features": 10, "n_informative": 3, "seed": 0}
FIXED = {"checkpoint_every_s": 0, "epochs": 4, "batch_size": 32, "hidden_sizes": [8], "sparsity_lambda": 0.001, "seed": 3, "patience": 10}
LRS = {"t1": 0.002, "t2": 0.05}


@pytest.fixture(scope="module")
def splits():
    return load_data(DATA)


def _spec(**extra) -> Spec:
    return Spec.model_validate({"name": "fs", "trainable": "feature_selection", "data": DATA, "metric": "val_accuracy",
                                "mode": "max", "scheduler": {"type": "none"}, "fixed": FIXED,
                                "space": {"lr": {"type": "float", "low": 0.001, "high": 0.1, "log": True}}, **extra})


def _experiment(root: Path, splits, **extra) -> tuple[Spec, Path]:
    """Two trained trials in Tune's layout (params.json, result.json, checkpoint_NNNNNN/)."""
    spec = _spec(**extra)
    path = root / "fs"
    path.mkdir()
    (path / "spec.yaml").write_text(yaml.safe_dump(spec.model_dump(mode="json"), sort_keys=False))
    for trial_id, lr in LRS.items():
        folder = path / f"trial_{trial_id}"
        folder.mkdir()
        config = {**FIXED, "lr": lr, "data": DATA}
        (folder / "params.json").write_text(json.dumps(config))
        rows = []

        def report(metrics, checkpoint, folder=folder, rows=rows):
            name = f"checkpoint_{len(rows):06d}"
            shutil.copytree(checkpoint, folder / name)
            rows.append({**metrics, "checkpoint_dir_name": name, "time_total_s": float(len(rows) + 1)})

        train_feature_selection(config, report, data=splits)
        rows[-1]["done"] = True
        (folder / "result.json").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return spec, path


def _saved(checkpoint: Path) -> dict:
    from trainables.checkpoint import read_checkpoint

    return read_checkpoint(checkpoint, map_location="cpu")


def _weights(checkpoint: Path) -> dict[str, torch.Tensor]:
    return _saved(checkpoint)["model"]


def _same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_merged_train_joins_validation_to_train_and_keeps_test_and_scaling(splits):
    merged = splits.merged_train()
    assert len(merged.y_train) == len(splits.y_train) + len(splits.y_val) and len(merged.y_val) == 0
    np.testing.assert_array_equal(merged.x_train[len(splits.y_train):], splits.x_val)
    assert merged.x_test is splits.x_test and merged.preprocessing is splits.preprocessing
    assert merged.x_val.shape == (0, splits.num_features)


def test_the_built_in_refit_trains_exactly_the_epochs_asked_seeded(splits, tmp_path):
    config = {**FIXED, "lr": 0.01, "patience": 1}  # patience 1 would stop a validated run; the refit has none
    refit_feature_selection(config, splits, 3, tmp_path / "a")
    refit_feature_selection(config, splits, 3, tmp_path / "b")
    saved = _saved(tmp_path / "a")
    assert saved["epoch"] == 3
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == ["checkpoint.pt", "preprocessing.json",
                                                                   "selection.json"]
    assert _same(_weights(tmp_path / "a"), _weights(tmp_path / "b"))  # the trial's seed: the same model twice
    with pytest.raises(ConfigError, match="epochs must be an integer >= 1"):
        refit_feature_selection(config, splits, 0, tmp_path / "c")


def test_the_refit_trains_for_the_epochs_the_trial_ran_not_to_its_noisy_best_epoch(splits, tmp_path):
    # The picked trial peaks at epoch 2 of the 4 it ran (a validation curve's noisy maximum): the refit trains 4.
    spec, path = _experiment(tmp_path, splits)
    for trial_id, curve in {"t1": [0.5, 0.99, 0.6, 0.7], "t2": [0.5, 0.6, 0.6, 0.6]}.items():
        result = path / f"trial_{trial_id}" / "result.json"
        rows = [json.loads(line) for line in result.read_text().splitlines()]
        result.write_text("".join(json.dumps({**row, "val_accuracy": value}) + "\n" for row, value in zip(rows, curve)))
    best = best_trial(path)
    assert (best.trial_id, best.epoch) == ("t1", 2)
    record = refit_picked(spec, Experiment(str(path)), splits)
    assert (record["epochs"], record["best_epoch"]) == (4, 2)
    assert _saved(path / "refit" / "checkpoint")["epoch"] == 4
    assert "refit on train + validation for 4 epochs" in summary_text(open_results(path))[0]


def test_the_refit_is_what_every_reader_uses_and_trial_reaches_the_trials_own(splits, tmp_path):
    spec, path = _experiment(tmp_path, splits)
    best = best_trial(path)
    record = refit_picked(spec, Experiment(str(path)), splits)
    ran = int(open_results(path).table.set_index("trial_id").at[best.trial_id, "epochs_run"])
    assert record is not None and record["trial_id"] == best.trial_id
    assert record["epochs"] == ran and record["best_epoch"] == best.epoch
    assert record["rows"] == len(splits.y_train) + len(splits.y_val) and record["data"] == "train + validation"
    refit_dir, own_dir = path / "refit" / "checkpoint", best.checkpoint
    assert record["checkpoint"] == refit_dir
    assert _saved(refit_dir)["epoch"] == ran

    # The same training, run here: the refit is the trial's config on train + validation for the epochs it ran,
    # its gates read from the trial's best checkpoint.
    again = refit_feature_selection(best.config, splits, ran, tmp_path / "again", checkpoint=own_dir)
    assert _same(_weights(refit_dir), _weights(tmp_path / "again"))
    assert not _same(_weights(refit_dir), _weights(own_dir))

    # It keeps the trial's selection (its gates, frozen) and retrained only the classifier.
    refit_weights, own_weights = _weights(refit_dir), _weights(own_dir)
    own_mask = own_weights["gates.mu"] + 0.5 > 0
    assert 0 < int(own_mask.sum()) < len(own_mask)  # a real selection: the comparison below means something
    assert torch.equal(refit_weights["gates.mu"] + 0.5 > 0, own_mask)
    assert torch.equal(refit_weights["gates.mu"], own_weights["gates.mu"])  # the trial's gates, unchanged
    assert all(not torch.equal(refit_weights[k], own_weights[k]) for k in refit_weights if k.startswith("classifier."))
    own_selected = json.loads((own_dir / "selection.json").read_text())["selected"]
    assert json.loads((refit_dir / "selection.json").read_text())["selected"] == own_selected
    assert again == {"selection": "kept from the trial's checkpoint", "num_selected": len(own_selected)}
    assert record["selection"] == again["selection"] and record["num_selected"] == len(own_selected)
    assert record["from_checkpoint"] == str(own_dir.relative_to(path))
    torch.load(refit_dir / "checkpoint.pt", weights_only=True)  # loads as weights only
    assert torch.equal(load_model(path).gates.selected_mask(), own_mask)
    assert sorted(feature_table(path)["feature"]) == sorted(own_selected)

    assert _same(load_model(path).state_dict(), _weights(refit_dir))
    assert _same(load_model(path, best.trial_id).state_dict(), _weights(own_dir))
    predictor = load_predictor(path)
    assert predictor.refit and predictor.checkpoint == refit_dir and predictor.trial_id == best.trial_id
    own = load_predictor(path, best.trial_id)
    assert not own.refit and own.checkpoint == own_dir
    assert feature_table(path, all_features=True).attrs["refit"] is True

    # The held-out test: the refit model for the picked trial; the search's own figures kept beside it.
    shown = evaluate_heldout(spec, Experiment(str(path)), splits, results=open_results(path), refit=record)
    expected = evaluate_feature_selection(best.config, refit_dir, splits)
    assert shown == {f"test_{k}": v for k, v in expected.items()}
    heldout = json.loads((path / "heldout.json").read_text())
    assert heldout["refit"]["trial_id"] == best.trial_id and heldout["refit"]["checkpoint"] == "refit/checkpoint"
    search_model = evaluate_feature_selection(best.config, own_dir, splits)
    assert heldout["refit"]["search_model"] == {f"test_{k}": v for k, v in search_model.items()}
    table = load_results(path)
    assert table.attrs["refit"]["trial_id"] == best.trial_id and table.attrs["heldout"]["refit"]["epochs"] == ran
    assert table.set_index("trial_id").at[best.trial_id, "test_accuracy"] == expected["accuracy"]

    # predict: the refit model by default, the trial's own with --trial.
    frame = _raw_rows(splits)
    (tmp_path / "rows.csv").write_text(frame.to_csv(index=False))
    code, out, err = cli("predict", str(path), str(tmp_path / "rows.csv"))
    assert code == 0 and str(refit_dir) in err
    code, out, err = cli("predict", str(path), str(tmp_path / "rows.csv"), "--trial", best.trial_id)
    assert code == 0 and str(own_dir) in err


def _raw_rows(splits):
    import pandas as pd

    raw = load_data({**DATA, "scale": False})
    return pd.DataFrame(raw.x_test, columns=list(raw.feature_names))


def test_a_refit_is_made_once_and_replaced_when_the_pick_changes(splits, tmp_path):
    spec, path = _experiment(tmp_path, splits)
    first = refit_picked(spec, Experiment(str(path)), splits)
    stamp = (path / "refit" / "checkpoint" / "checkpoint.pt").stat().st_mtime_ns
    assert refit_picked(spec, Experiment(str(path)), splits) == first  # a resume end: kept, not trained again
    assert (path / "refit" / "checkpoint" / "checkpoint.pt").stat().st_mtime_ns == stamp
    # A refit of another trial (an older pick) is replaced by the picked trial's.
    record = json.loads((path / "refit" / "refit.json").read_text())
    other = next(t for t in LRS if t != first["trial_id"])
    (path / "refit" / "refit.json").write_text(json.dumps({**record, "trial_id": other}))
    assert load_predictor(path).refit is False  # not the picked trial's: the readers do not use it
    assert refit_picked(spec, Experiment(str(path)), splits)["trial_id"] == first["trial_id"]
    assert not (path / "refit.partial").exists()


def test_a_refit_function_without_checkpoint_is_called_as_before_and_kwargs_get_it(splits, tmp_path, monkeypatch):
    spec, path = _experiment(tmp_path, splits)
    best, calls = best_trial(path), []

    def user_train(config, report, data=None):  # a user's trainable, as resolved from the spec
        raise AssertionError("not called by the refit")

    def old_refit(config, data, epochs, out_dir):  # the contract before `checkpoint`: returns nothing
        calls.append(("old", epochs))
        refit_feature_selection(config, data, epochs, out_dir)

    user_train.refit = old_refit
    monkeypatch.setattr("search.engine.refit.resolve_trainable", lambda name, paths=(): user_train)
    record = refit_picked(spec, Experiment(str(path)), splits)
    assert calls == [("old", FIXED["epochs"])] and record["trial_id"] == best.trial_id  # the epochs it ran
    assert "from_checkpoint" not in record and "selection" not in record
    assert load_predictor(path).refit

    def keyword_refit(config, data, epochs, out_dir, **options):  # **kwargs: given the checkpoint too
        calls.append(("keywords", options))
        refit_feature_selection(config, data, epochs, out_dir, **options)
        return {"note": "mine", "trial_id": "not mine"}  # its own facts join the record; the core keys win

    user_train.refit = keyword_refit
    shutil.rmtree(path / "refit")  # else the refit of the same trial is kept as it is
    record = refit_picked(spec, Experiment(str(path)), splits)
    assert calls[-1] == ("keywords", {"checkpoint": best.checkpoint})
    assert record["note"] == "mine" and record["trial_id"] == best.trial_id
    assert record["from_checkpoint"] == str(best.checkpoint.relative_to(path))


def test_refit_false_and_a_trainable_without_refit_keep_the_searchs_model(splits, tmp_path):
    spec, path = _experiment(tmp_path, splits, refit=False)
    assert refit_picked(spec, Experiment(str(path)), splits) is None
    assert not (path / "refit").exists()
    best = best_trial(path)
    predictor = load_predictor(path)
    assert not predictor.refit and predictor.checkpoint == best.checkpoint
    evaluate_heldout(spec, Experiment(str(path)), splits, results=open_results(path))
    assert "refit" not in json.loads((path / "heldout.json").read_text())
    assert "refit" not in load_results(path).attrs
    assert Spec.model_fields["refit"].default is True


@pytest.mark.ray
def test_a_run_stopped_between_its_search_and_its_refit_gets_the_refit_on_resume(ray_cluster, tmp_path, tiny_spec):
    from search.engine.run import RunOptions, resume_experiment, run_experiment
    from search.spec import load_spec

    raw = yaml.safe_load(tiny_spec)
    raw.update(name="refit_resume", scheduler={"type": "none"}, storage=str(tmp_path / "results"))
    spec_path = tmp_path / "space.yaml"
    spec_path.write_text(yaml.safe_dump(raw))
    folder = Path(run_experiment(load_spec(spec_path), RunOptions(spec_path=spec_path)).path)
    made = json.loads((folder / "refit" / "refit.json").read_text())
    picked = best_trial(folder)
    assert made["trial_id"] == picked.trial_id and made["selection"] == "kept from the trial's checkpoint"
    selected = json.loads((picked.checkpoint / "selection.json").read_text())["selected"]  # the trial's own
    assert json.loads((folder / "refit" / "checkpoint" / "selection.json").read_text())["selected"] == selected
    assert json.loads((folder / "heldout.json").read_text())["refit"]["trial_id"] == made["trial_id"]
    shutil.rmtree(folder / "refit")  # as a driver killed after its search, before its refit, leaves it
    (folder / "heldout.json").unlink()
    resume_experiment(Experiment(str(folder)), RunOptions())
    again = json.loads((folder / "refit" / "refit.json").read_text())
    assert again["trial_id"] == made["trial_id"] and again["epochs"] == made["epochs"]
    assert load_predictor(folder).refit
    assert json.loads((folder / "heldout.json").read_text())["refit"]["trial_id"] == made["trial_id"]
