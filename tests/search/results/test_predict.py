"""Applying a trial's model to new raw data: load_predictor, Predictor and ``python -m search predict``.

The unit tests build a Predictor by hand (no Ray). The rest reads ONE tiny real experiment per
module (2 trials of 3 epochs of the built-in trainable on the shared local Ray), trained on a
CSV file whose columns are neither sorted nor standardised and whose labels are words, so that
a wrong column order, a missing scaling or a wrong class order shows in the predictions.
"""

from __future__ import annotations

import io
import json
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from search.results import (
    InputDataError,
    Predictor,
    ResultsError,
    best_trial,
    load_model,
    load_predictor,
    open_results,
)
from search.results.predict import accuracy
from tests.search.helpers import results_cli
from trainables.data import Preprocessing, load_data, make_madelon
from trainables.files import PREPROCESSING_FILE, SELECTION_FILE

FEATURES = ["zeta", "alpha", "mu", "beta", "omega", "gamma", "kappa", "delta"]  # training order, not sorted
WORDS = {0: "cat", 1: "ant", 2: "bee"}  # sorted, the class order is ant, bee, cat
CLASSES = ["ant", "bee", "cat"]
TARGET = "species"
SPEC = """
name: predict
trainable: feature_selection
metric: val_accuracy
mode: max
search: {num_samples: 2, seed: 0}
scheduler: {type: none}
space:
  lr: {type: float, low: 3.0e-2, high: 1.0e-1, log: true}
fixed: {epochs: 3, batch_size: 32, hidden_sizes: [8], sparsity_lambda: 0.001, selector_lr_ratio: 1.0}
resources: {num_workers: 1, cpus_per_worker: 1}
failure: {max_retries: 0}
"""


def raw_frame(rows: int = 240, seed: int = 0) -> pd.DataFrame:
    """Three separable classes in 8 columns with means far from 0 and scales far from 1."""
    x, y, _ = make_madelon(n_samples=rows, n_features=len(FEATURES), n_informative=3, n_classes=3,
                           class_sep=3.0, seed=seed)
    x = x * np.arange(1, len(FEATURES) + 1) * 10.0 + np.arange(len(FEATURES)) * 100.0
    frame = pd.DataFrame(x, columns=FEATURES)
    frame[TARGET] = [WORDS[int(k)] for k in y]
    return frame


cli = results_cli  # the results commands, in-process


# ---------------------------------------------------------------- without Ray
def identity_predictor(target: str | None = None) -> Predictor:
    """Logits = the scaled inputs: the prediction is the column with the largest scaled value."""
    model = torch.nn.Linear(3, 3)
    with torch.no_grad():
        model.weight.copy_(torch.eye(3))
        model.bias.zero_()
    prep = Preprocessing(("a", "b", "c"), ("x", "y", "z"), target=target, mean=(1.0, 2.0, 3.0), scale=(2.0, 2.0, 2.0))
    return Predictor(model.eval(), prep, "t0", Path("nowhere"))


def test_an_array_is_taken_in_training_order_and_scaled():
    predictor = identity_predictor()
    x = np.array([[1.0, 2.0, 9.0], [5.0, 2.0, 3.0], [1.0, 8.0, 3.0]])  # scaled: [0, 0, 3], [2, 0, 0], [0, 3, 0]

    assert predictor.predict(x).tolist() == ["z", "x", "y"]
    proba = predictor.predict_proba(x)
    assert list(proba.columns) == ["x", "y", "z"] and list(proba.index) == [0, 1, 2]
    expected = torch.softmax(torch.tensor([[0.0, 0, 3], [2, 0, 0], [0, 3, 0]], dtype=torch.float64), dim=1).numpy()
    np.testing.assert_allclose(proba.to_numpy(), expected, rtol=1e-12)
    table = predictor.table(x)
    assert list(table.columns) == ["prediction", "proba_x", "proba_y", "proba_z"]


def test_a_frame_is_matched_by_name_and_keeps_its_index():
    predictor = identity_predictor(target="label")
    frame = pd.DataFrame({"c": [9.0, 3.0], "label": ["z", "y"], "a": [1.0, 5.0], "b": [2.0, 2.0]}, index=[10, 20])

    labels = predictor.predict(frame)
    assert labels.tolist() == ["z", "x"] and list(labels.index) == [10, 20] and labels.name == "prediction"
    assert predictor.score(frame) == (0.5, 2)
    assert predictor.score(frame, ["z", None]) == (1.0, 1)  # a row without a label is left out


def test_accuracy_compares_labels_as_the_training_set_named_them():
    # An integer label column with a missing value reads back as floats: 1.0 is class "1".
    assert accuracy(["1", "2", "1", "2"], [1.0, np.nan, 2.0, 2]) == (2 / 3, 3)
    assert accuracy(["yes"], [None]) == (pytest.approx(float("nan"), nan_ok=True), 0)


@pytest.mark.parametrize(("x", "message"), [
    (np.zeros((2, 4)), r"an array of shape \(2, 4\) was given; expected \(n_rows, 3\), one column per feature "
                       r"in training order: 'a', 'b', 'c'"),
    (np.zeros(3), r"an array of shape \(3,\) was given"),
    (np.array([[1.0, np.nan, 2.0], [1.0, 2.0, np.inf]]), r"2 of 2 rows have missing \(NaN\) or infinite values, "
                                                         r"in columns 'b', 'c'"),
    ([["1", "x", "2"]], "cannot read the array as numbers"),
    (pd.DataFrame({"a": [1.0], "b": ["high"], "c": [2.0]}), r"non-numeric feature column\(s\) 'b'"),
    (pd.DataFrame({"a": [1.0], "c": [2.0], "bb": [2.0], "Unnamed: 0": [0]}),
     r"1 feature column\(s\) missing: 'b'; 2 column\(s\) the model was not trained on: 'bb', 'Unnamed: 0' "
     r"\(did you mean 'b'\?\) \(an index saved by to_csv: write it with index=False\); drop them"),
])
def test_bad_input_names_what_is_wrong(x, message):
    with pytest.raises(InputDataError, match=message):
        identity_predictor().predict(x)


# ---------------------------------------------------------------- one real experiment
@dataclass
class Run:
    path: Path
    csv: Path
    data: dict  # the spec's data section


@pytest.fixture(scope="module")
def run(ray_cluster: None, tmp_path_factory: pytest.TempPathFactory) -> Run:
    from search.engine.run import RunOptions, run_experiment
    from search.spec import load_spec

    root = tmp_path_factory.mktemp("predict_run")
    csv = root / "animals.csv"
    raw_frame().to_csv(csv, index=False)
    raw = yaml.safe_load(SPEC)
    raw["data"] = {"name": str(csv), "target": TARGET}
    raw["storage"] = str(root / "results")
    (root / "space.yaml").write_text(yaml.safe_dump(raw))
    outcome = run_experiment(load_spec(root / "space.yaml"), RunOptions(spec_path=root / "space.yaml"))
    return Run(outcome.experiment.local, csv, raw["data"])


@pytest.fixture(scope="module")
def new_rows() -> pd.DataFrame:
    """Rows the model never saw, from the same distribution, with their labels."""
    return raw_frame(rows=90, seed=7)


@pytest.mark.ray
def test_every_checkpoint_holds_the_preprocessing_of_the_training_split(run: Run):
    train = load_data({**run.data, "scale": False}).x_train.astype(np.float64)  # the raw rows of the train part
    checkpoints = sorted(run.path.rglob(PREPROCESSING_FILE))
    assert len(checkpoints) >= 2  # a checkpoint per epoch kept, for each of the 2 trials
    for file in checkpoints:
        assert sorted(p.name for p in file.parent.iterdir()) == ["checkpoint.pt", PREPROCESSING_FILE, SELECTION_FILE]
        saved = json.loads(file.read_text())
        assert set(saved) == {"format", "source", "target", "feature_names", "class_names", "standardization"}
        assert saved["format"] == 1 and saved["source"] == str(run.csv) and saved["target"] == TARGET
        assert saved["feature_names"] == FEATURES and saved["class_names"] == CLASSES
        np.testing.assert_allclose(saved["standardization"]["mean"], train.mean(axis=0), rtol=1e-6)
        np.testing.assert_allclose(saved["standardization"]["scale"], train.std(axis=0), rtol=1e-6)


@pytest.mark.ray
def test_predictions_are_the_models_argmax_on_data_scaled_with_the_train_statistics(run: Run, new_rows: pd.DataFrame):
    predictor = load_predictor(run.path)
    assert predictor.trial_id == best_trial(run.path).trial_id
    assert predictor.feature_names == tuple(FEATURES) and predictor.class_names == tuple(CLASSES)
    assert predictor.target == TARGET
    assert predictor.selected_features is not None and set(predictor.selected_features) <= set(FEATURES)

    train = load_data({**run.data, "scale": False}).x_train.astype(np.float64)
    scaled = (new_rows[FEATURES].to_numpy() - train.mean(axis=0)) / train.std(axis=0)
    with torch.no_grad():
        logits = load_model(run.path)(torch.tensor(scaled, dtype=torch.float32))
    expected = [CLASSES[k] for k in logits.argmax(dim=1).tolist()]

    assert predictor.predict(new_rows).tolist() == expected  # the target column in the frame is ignored
    proba = predictor.predict_proba(new_rows)
    assert list(proba.columns) == CLASSES
    np.testing.assert_allclose(proba.to_numpy(), torch.softmax(logits.double(), dim=1).numpy(), atol=1e-5)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-12)
    # The model learnt something: far better than the 1/3 of guessing (a wrong scaling or order would not).
    assert predictor.score(new_rows)[0] > 0.6


@pytest.mark.ray
def test_column_order_and_the_target_column_do_not_change_the_output(run: Run, new_rows: pd.DataFrame):
    predictor = load_predictor(run.path)
    reference = predictor.table(new_rows)
    shuffled = new_rows[list(np.random.default_rng(0).permutation(new_rows.columns))]
    assert list(shuffled.columns) != list(new_rows.columns)
    pd.testing.assert_frame_equal(predictor.table(shuffled), reference)
    pd.testing.assert_frame_equal(predictor.table(new_rows.drop(columns=TARGET)), reference)
    # An array in training order is the same rows.
    pd.testing.assert_frame_equal(predictor.table(new_rows[FEATURES].to_numpy()), reference)


@pytest.mark.ray
def test_extra_and_missing_columns_are_named(run: Run, new_rows: pd.DataFrame):
    predictor = load_predictor(run.path)
    with pytest.raises(InputDataError, match=r"2 column\(s\) the model was not trained on: 'row_id', 'note'; drop"):
        predictor.predict(new_rows.assign(row_id=1, note="x"))
    with pytest.raises(InputDataError, match=r"2 feature column\(s\) missing: 'mu', 'kappa'"):
        predictor.predict(new_rows.drop(columns=["kappa", "mu"]))
    with pytest.raises(InputDataError, match=r"expected \(n_rows, 8\)"):
        predictor.predict(new_rows[FEATURES[:7]].to_numpy())


@pytest.mark.ray
def test_cli_writes_predictions_in_row_order_and_prints_the_accuracy(run: Run, new_rows: pd.DataFrame,
                                                                    tmp_path: Path):
    data = tmp_path / "new.csv"
    new_rows.to_csv(data, index=False)
    predictor = load_predictor(run.path)
    expected = predictor.table(new_rows).reset_index(drop=True)
    accuracy = float((expected["prediction"] == new_rows[TARGET]).mean())

    code, out, err = cli("predict", str(run.path), str(data), "-o", str(tmp_path / "predictions.csv"))
    assert code == 0 and out == ""
    written = pd.read_csv(tmp_path / "predictions.csv")
    assert list(written.columns) == ["prediction", "proba_ant", "proba_bee", "proba_cat"]
    pd.testing.assert_frame_equal(written, expected, check_exact=False, rtol=1e-12)
    assert f"accuracy {accuracy:.4f} on 90 labelled rows (target column 'species')" in err
    assert f"best trial {predictor.trial_id}" in err and "wrote 90 predictions to" in err

    # Without -o: CSV on stdout; without the target column: no accuracy.
    new_rows.drop(columns=TARGET).to_parquet(tmp_path / "new.parquet", index=False)
    code, out, err = cli("predict", str(run.path), str(tmp_path / "new.parquet"))
    assert code == 0 and "accuracy" not in err
    pd.testing.assert_frame_equal(pd.read_csv(io.StringIO(out)), expected, check_exact=False, rtol=1e-12)


@pytest.mark.ray
def test_cli_scores_with_the_trial_asked_for(run: Run, new_rows: pd.DataFrame, tmp_path: Path):
    results = open_results(run.path)
    other = next(tid for tid in results.table["trial_id"] if tid != best_trial(results).trial_id)
    new_rows.to_csv(tmp_path / "new.csv", index=False)
    code, _, err = cli("predict", str(run.path), str(tmp_path / "new.csv"), "--trial", other,
                       "-o", str(tmp_path / "p.parquet"))
    assert code == 0 and f"by trial {other} " in err
    expected = load_predictor(run.path, other).table(new_rows).reset_index(drop=True)
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "p.parquet"), expected)

    code, _, err = cli("predict", str(run.path), str(tmp_path / "new.csv"), "--trial", "nope")
    assert code == 2 and "error: no trial 'nope'" in err


@pytest.mark.ray
def test_cli_bad_input_is_exit_2_with_a_message_naming_it(run: Run, new_rows: pd.DataFrame, tmp_path: Path):
    new_rows.drop(columns=["alpha"]).assign(extra=0).to_csv(tmp_path / "cols.csv", index=False)
    (tmp_path / "junk.parquet").write_bytes(b"not parquet")
    cases = {
        str(tmp_path / "cols.csv"): r"data file '.*cols.csv': input data for trial \w+'s model: 1 feature column\(s\) "
                                    r"missing: 'alpha'; 1 column\(s\) the model was not trained on: 'extra'",
        str(tmp_path / "junk.parquet"): r"data file '.*junk.parquet' could not be read as Parquet",
        str(tmp_path / "absent.csv"): r"data file '.*absent.csv' not found",
        str(tmp_path / "rows.txt"): r"unsupported ending '.txt'; give a .csv, .parquet, .pq file",
        "--format=parquet": r"parquet is binary: give a file with -o predictions.parquet",
    }
    for path, message in cases.items():
        argv = [str(tmp_path / "cols.csv"), path] if path.startswith("--") else [path]
        code, out, err = cli("predict", str(run.path), *argv)
        assert code == 2 and out == "", path
        assert err.startswith("error: ") and len(err.strip().splitlines()) == 1, err
        assert re.search(message, err), err


@pytest.mark.ray
def test_an_experiment_without_saved_preprocessing_is_exit_2(run: Run, new_rows: pd.DataFrame, tmp_path: Path):
    # What an experiment of a user trainable, or one run before preprocessing.json existed, looks like.
    old = Path(shutil.copytree(run.path, tmp_path / "old"))
    for file in old.rglob(PREPROCESSING_FILE):
        file.unlink()
    new_rows.to_csv(tmp_path / "new.csv", index=False)
    code, out, err = cli("predict", str(old), str(tmp_path / "new.csv"))
    assert code == 2 and out == ""
    assert f"has no {PREPROCESSING_FILE}" in err and "load_model()" in err and "Re-run the search" in err
    with pytest.raises(ResultsError, match=f"has no {PREPROCESSING_FILE}"):
        load_predictor(old)


@pytest.mark.ray
def test_the_predictor_on_the_raw_test_split_reproduces_the_trials_test_accuracy(run: Run):
    """The held-out split, raw, through the predictor = the trial's model on the split as training scaled it."""
    scaled, raw = load_data(run.data), load_data({**run.data, "scale": False})
    with torch.no_grad():
        logits = load_model(run.path)(torch.tensor(scaled.x_test, dtype=torch.float32))
    trial_accuracy = float((logits.argmax(dim=1).numpy() == scaled.y_test).mean())
    rows = pd.DataFrame(raw.x_test, columns=FEATURES)
    rows[TARGET] = [CLASSES[int(k)] for k in raw.y_test]
    accuracy_seen, labelled = load_predictor(run.path).score(rows)
    assert labelled == len(scaled.y_test) > 0
    assert accuracy_seen == pytest.approx(trial_accuracy, abs=1e-12)


@pytest.mark.ray
def test_the_default_model_is_the_refit_and_trial_reaches_the_trials_own(run: Run, new_rows: pd.DataFrame,
                                                                         tmp_path: Path):
    """The run refitted the picked trial on train + validation: every reader's default; --trial, the trial's own."""
    folder = Path(run.path)
    best = best_trial(folder)
    refit_dir = folder / "refit" / "checkpoint"
    assert json.loads((folder / "refit" / "refit.json").read_text())["trial_id"] == best.trial_id
    predictor, own = load_predictor(run.path), load_predictor(run.path, best.trial_id)
    assert predictor.refit and predictor.checkpoint == refit_dir and predictor.trial_id == best.trial_id
    assert not own.refit and own.checkpoint == best.checkpoint
    refit_weights, own_weights = load_model(run.path).state_dict(), load_model(run.path, best.trial_id).state_dict()
    assert not all(torch.equal(refit_weights[k], own_weights[k]) for k in refit_weights)
    heldout = json.loads((folder / "heldout.json").read_text())
    assert heldout["refit"]["trial_id"] == best.trial_id and heldout["refit"]["checkpoint"] == "refit/checkpoint"
    scaled = load_data(run.data)
    with torch.no_grad():
        logits = load_model(run.path)(torch.tensor(scaled.x_test, dtype=torch.float32))
    assert heldout["trials"][best.trial_id]["test_accuracy"] == pytest.approx(
        float((logits.argmax(dim=1).numpy() == scaled.y_test).mean()), abs=1e-12)  # the test scored the refit

    new_rows.to_csv(tmp_path / "new.csv", index=False)
    code, out, err = cli("predict", str(run.path), str(tmp_path / "new.csv"))
    assert code == 0 and f"({refit_dir})" in err
    pd.testing.assert_frame_equal(pd.read_csv(io.StringIO(out)), predictor.table(new_rows).reset_index(drop=True),
                                  check_exact=False, rtol=1e-12)
    code, out, err = cli("predict", str(run.path), str(tmp_path / "new.csv"), "--trial", best.trial_id)
    assert code == 0 and f"({best.checkpoint})" in err
    pd.testing.assert_frame_equal(pd.read_csv(io.StringIO(out)), own.table(new_rows).reset_index(drop=True),
                                  check_exact=False, rtol=1e-12)
