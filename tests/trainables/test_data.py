"""Tests for trainables.data: built-in sets, synthetic madelon, files, splits, sliced batches, errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.neighbors import KNeighborsClassifier
from torch.utils.data import DataLoader, TensorDataset

from trainables.data import (
    BUILTIN_DATASETS,
    PARTS,
    DataConfig,
    DataError,
    DataSplits,
    Preprocessing,
    load_data,
    make_guyon_madelon,
    make_madelon,
)

SIZES = {"breast_cancer": (569, 30, 2), "digits": (1797, 64, 10), "wine": (178, 13, 3)}
FIRST_FEATURE = {"breast_cancer": "mean radius", "digits": "pixel_0_0", "wine": "alcohol"}


def _parts(data: DataSplits) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    return {part: (getattr(data, f"x_{part}"), getattr(data, f"y_{part}")) for part in PARTS}


# --- built-in sets and splits -------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(SIZES))
def test_builtin_shapes_names_and_fractions(name: str) -> None:
    total, num_features, num_classes = SIZES[name]
    data = load_data(DataConfig(name=name, val_fraction=0.2, test_fraction=0.1))

    assert (data.num_features, data.num_classes) == (num_features, num_classes)
    assert len(data.feature_names) == num_features and data.feature_names[0] == FIRST_FEATURE[name]
    assert len(data.class_names) == num_classes
    sizes = {part: len(y) for part, (_, y) in _parts(data).items()}
    assert sum(sizes.values()) == total
    assert abs(sizes["val"] - 0.2 * total) <= 2  # fractions of the whole set, up to rounding
    assert abs(sizes["test"] - 0.1 * total) <= 2
    for x, y in _parts(data).values():
        assert x.dtype == np.float32 and y.dtype == np.int64
        assert x.flags["C_CONTIGUOUS"] and x.shape == (len(y), num_features)
        assert set(np.unique(y)) <= set(range(num_classes))
    assert data.summary() == {
        "name": name, "train_size": sizes["train"], "val_size": sizes["val"], "test_size": sizes["test"],
        "num_features": num_features, "num_classes": num_classes,
    }


def test_builtin_registry_lists_every_set_with_a_description() -> None:
    assert set(BUILTIN_DATASETS) == {"breast_cancer", "digits", "wine", "madelon", "madelon_guyon"}
    assert all(isinstance(text, str) and text for text in BUILTIN_DATASETS.values())


def test_string_shorthand_and_mapping_match_config() -> None:
    by_name = load_data("wine")
    by_mapping = load_data({"name": "wine"})
    assert by_name.name == "wine" and by_name.num_classes == 3
    np.testing.assert_array_equal(by_name.x_train, by_mapping.x_train)
    np.testing.assert_array_equal(by_name.y_val, by_mapping.y_val)


def test_splits_are_stratified() -> None:
    data = load_data("digits")
    overall = np.bincount(np.concatenate([data.y_train, data.y_val, data.y_test]), minlength=10)
    overall = overall / overall.sum()
    for part, (_, y) in _parts(data).items():
        share = np.bincount(y, minlength=10) / len(y)
        assert np.abs(share - overall).max() < 0.01, part


def test_splits_are_reproducible_per_seed_and_differ_across_seeds() -> None:
    first = load_data({"name": "breast_cancer", "seed": 3})
    again = load_data({"name": "breast_cancer", "seed": 3})
    other = load_data({"name": "breast_cancer", "seed": 4})
    for part in PARTS:
        np.testing.assert_array_equal(_parts(first)[part][0], _parts(again)[part][0])
        np.testing.assert_array_equal(_parts(first)[part][1], _parts(again)[part][1])
    assert not np.array_equal(first.x_train, other.x_train)
    assert first.x_val.shape == other.x_val.shape


def test_scaler_is_fitted_on_train_only() -> None:
    scaled = load_data({"name": "wine", "seed": 1})
    raw = load_data({"name": "wine", "seed": 1, "scale": False})

    np.testing.assert_allclose(scaled.x_train.mean(axis=0), 0.0, atol=1e-5)
    np.testing.assert_allclose(scaled.x_train.std(axis=0), 1.0, atol=1e-4)
    assert not np.allclose(scaled.x_val.mean(axis=0), 0.0, atol=1e-3)
    # val and test use the train statistics exactly
    mean, std = raw.x_train.astype(np.float64).mean(axis=0), raw.x_train.astype(np.float64).std(axis=0)
    np.testing.assert_allclose(scaled.x_val, (raw.x_val - mean) / std, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(scaled.x_test, (raw.x_test - mean) / std, rtol=1e-4, atol=1e-4)


def test_the_fitted_scaling_is_kept_and_reproduces_every_part() -> None:
    scaled = load_data({"name": "wine", "seed": 1})
    raw = load_data({"name": "wine", "seed": 1, "scale": False})
    prep = scaled.preprocessing

    # The statistics of the train part (population std, as StandardScaler), nothing else.
    np.testing.assert_allclose(prep.mean, raw.x_train.astype(np.float64).mean(axis=0), rtol=1e-6)
    np.testing.assert_allclose(prep.scale, raw.x_train.astype(np.float64).std(axis=0), rtol=1e-6)
    assert (prep.feature_names, prep.class_names) == (scaled.feature_names, scaled.class_names)
    assert (prep.target, prep.source) == ("target", "wine")  # a built-in set's rows in a file label "target"
    # Applying them to the raw rows gives the arrays the model trained on (raw here is float32
    # already, so compare with a float32 tolerance).
    np.testing.assert_allclose(prep.transform(raw.x_val), scaled.x_val, atol=1e-5)
    unscaled = raw.preprocessing
    assert unscaled.mean is None and unscaled.scale is None
    np.testing.assert_array_equal(unscaled.transform(raw.x_test), raw.x_test)


def test_preprocessing_round_trips_through_json_exactly(tmp_path: Path) -> None:
    import json

    path = tmp_path / "animals.csv"
    _frame().to_csv(path, index=False)
    prep = load_data({"name": str(path), "target": "label"}).preprocessing
    assert prep.target == "label" and prep.class_names == ("apple", "mango", "zebra")
    assert prep.feature_names == ("row_id", "height", "weight")
    again = Preprocessing.from_dict(json.loads(json.dumps(prep.to_dict())))
    assert again == prep  # floats exact: JSON writes repr


@pytest.mark.parametrize(("record", "message"), [
    ({"format": 99}, r"not a preprocessing record of format 1 \(found 99\)"),
    ({"format": 1, "feature_names": ["a"]}, r"lacks \['class_names', 'standardization'\]"),
    ({"format": 1, "feature_names": ["a"], "class_names": ["n", "p"], "standardization": {"mean": [0.0]}},
     "bad standardization"),
    ({"format": 1, "feature_names": ["a", "b"], "class_names": ["n", "p"],
      "standardization": {"mean": [0.0], "scale": [1.0, 0.0]}}, "mean has 1 values for 2 features.*finite number > 0"),
])
def test_a_bad_preprocessing_record_says_what_is_wrong(record, message) -> None:
    with pytest.raises(DataError, match=message):
        Preprocessing.from_dict(record)


def test_preprocessing_transform_checks_the_width() -> None:
    prep = Preprocessing(("a", "b"), ("n", "p"), mean=(1.0, 2.0), scale=(2.0, 4.0))
    np.testing.assert_array_equal(prep.transform(np.array([[3.0, 10.0]])), np.array([[1.0, 2.0]], np.float32))
    with pytest.raises(DataError, match=r"expected features of shape \(n, 2\), got \(1, 3\)"):
        prep.transform(np.zeros((1, 3)))


def test_zero_test_fraction_gives_empty_test_part() -> None:
    data = load_data({"name": "wine", "test_fraction": 0.0, "val_fraction": 0.25})
    assert data.x_test.shape == (0, 13) and data.x_test.dtype == np.float32
    assert data.y_test.shape == (0,) and data.y_test.dtype == np.int64
    assert len(data.y_train) + len(data.y_val) == 178
    assert list(data.loader("test", 8)) == []


# --- synthetic madelon --------------------------------------------------------------------


def test_madelon_informative_columns_carry_the_signal() -> None:
    data = load_data({"name": "madelon", "n_samples": 1000, "n_features": 50, "n_informative": 5, "seed": 2})
    assert data.feature_names[0] == "f00" and data.feature_names[-1] == "f49"
    assert data.num_features == 50 and data.class_names == ("0", "1")
    informative = list(data.informative or ())
    assert len(informative) == 5 and informative == sorted(informative)
    assert informative != [0, 1, 2, 3, 4]  # the columns were permuted
    noise = [j for j in range(50) if j not in informative][:5]

    def accuracy(columns: list[int]) -> float:
        model = KNeighborsClassifier(n_neighbors=15).fit(data.x_train[:, columns], data.y_train)
        return model.score(data.x_val[:, columns], data.y_val)

    assert accuracy(informative) > 0.85
    assert accuracy(noise) < 0.65


def test_make_madelon_is_seeded_and_names_are_padded() -> None:
    x1, y1, inf1 = make_madelon(200, 12, 3, 3, 1.0, seed=7)
    x2, y2, inf2 = make_madelon(200, 12, 3, 3, 1.0, seed=7)
    assert x1.shape == (200, 12) and set(np.unique(y1)) == {0, 1, 2} and len(inf1) == 3
    np.testing.assert_array_equal(x1, x2)
    assert inf1 == inf2
    names = load_data({"name": "madelon", "n_features": 120, "n_informative": 4}).feature_names
    assert names[0] == "f000" and names[-1] == "f119"


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"n_features": 4, "n_informative": 5}, "n_informative=5: must be between 1 and n_features=4"),
        ({"n_classes": 1}, "n_classes=1: must be at least 2"),
        ({"n_classes": 3, "n_informative": 1}, "needs n_informative >= 2"),
        ({"class_sep": -1.0}, "class_sep=-1.0"),
    ],
)
def test_madelon_rejects_bad_options(kwargs: dict, match: str) -> None:
    with pytest.raises(DataError, match=match):
        load_data({"name": "madelon", **kwargs})


# --- Guyon's madelon ----------------------------------------------------------------------


def test_guyon_madelon_loads_with_madelon_sizes_and_records_the_relevant_columns() -> None:
    data = load_data({"name": "madelon_guyon", "seed": 1})
    assert data.summary() == {"name": "madelon_guyon", "train_size": 1200, "val_size": 400, "test_size": 400,
                              "num_features": 500, "num_classes": 2}
    assert data.feature_names[0] == "f000" and data.feature_names[-1] == "f499" and data.class_names == ("0", "1")
    _, _, relevant = make_guyon_madelon(seed=1)
    assert data.informative == relevant and len(relevant) == 20 and list(relevant) == sorted(relevant)
    assert list(relevant) != list(range(20))  # the columns were permuted
    small = load_data({"name": "madelon_guyon", "n_samples": 300, "n_informative": 4, "n_redundant": 6,
                       "n_probes": 90, "n_clusters": 8, "class_sep": 3.0, "flip_y": 0.0})
    assert small.num_features == 100 and len(small.informative or ()) == 10
    assert sum(len(y) for _, y in _parts(small).values()) == 300


def test_guyon_madelon_relevant_columns_are_the_informative_ones_and_their_combinations() -> None:
    x, _, relevant = make_guyon_madelon(n_samples=400, seed=3)
    probes = [j for j in range(x.shape[1]) if j not in relevant]
    assert x.shape == (400, 500) and len(probes) == 480
    # 20 relevant columns span only the 5 informative dimensions: the 15 redundant ones are
    # exact linear combinations; any probe adds a dimension.
    assert np.linalg.matrix_rank(x[:, relevant]) == 5
    assert np.linalg.matrix_rank(x[:, [*relevant, probes[0]]]) == 6
    assert np.linalg.matrix_rank(x[:, probes[:50]]) == 50
    # Relevant columns are standardized; probes have the same marginal scale.
    np.testing.assert_allclose(x[:, relevant].mean(axis=0), 0.0, atol=1e-9)
    np.testing.assert_allclose(x[:, relevant].std(axis=0), 1.0, rtol=1e-9)
    assert np.abs(x[:, probes].std(axis=0) - 1.0).max() < 0.2


def test_guyon_madelon_is_seeded_balanced_and_flip_y_changes_only_labels() -> None:
    x1, y1, rel1 = make_guyon_madelon(n_samples=600, seed=5)
    x2, y2, rel2 = make_guyon_madelon(n_samples=600, seed=5)
    np.testing.assert_array_equal(x1, x2)
    np.testing.assert_array_equal(y1, y2)
    assert rel1 == rel2
    x3, _, rel3 = make_guyon_madelon(n_samples=600, seed=6)
    assert rel3 != rel1 and not np.array_equal(x3, x1)
    assert np.bincount(y1).tolist() == [300, 300]
    assert np.bincount(make_guyon_madelon(n_samples=101, seed=0)[1]).tolist() == [50, 51]
    # The same features whatever the label noise; flip_y=0.1 exchanges 30 labels of each class.
    clean_x, clean_y, _ = make_guyon_madelon(n_samples=600, flip_y=0.0, seed=5)
    noisy_x, noisy_y, _ = make_guyon_madelon(n_samples=600, flip_y=0.1, seed=5)
    np.testing.assert_array_equal(clean_x, noisy_x)
    assert int((clean_y != noisy_y).sum()) == 60 and np.bincount(noisy_y).tolist() == [300, 300]


@pytest.mark.parametrize("seed", [0, 1])
def test_guyon_madelon_needs_the_relevant_features_together(seed: int) -> None:
    from sklearn.svm import SVC
    from sklearn.tree import DecisionTreeClassifier

    data = load_data({"name": "madelon_guyon", "seed": seed})
    relevant = list(data.informative or ())

    def accuracy(model, columns: list[int]) -> float:
        model.fit(data.x_train[:, columns], data.y_train)
        return model.score(data.x_test[:, columns], data.y_test)

    # Measured over seeds 0-9: relevant 0.84-0.93, all 0.46-0.51, best stump 0.56-0.59.
    on_relevant, on_all = accuracy(SVC(), relevant), accuracy(SVC(), list(range(data.num_features)))
    assert on_relevant >= 0.8 and on_all <= on_relevant - 0.2, (on_relevant, on_all)
    best_stump = max(accuracy(DecisionTreeClassifier(max_depth=1), [j]) for j in range(data.num_features))
    assert best_stump < 0.65


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"n_clusters": 7}, r"n_clusters=7: must be an even number >= 2 \(half the clusters per class\)"),
        ({"n_clusters": 64}, r"n_clusters=64: must be at most 2 \*\* n_informative = 32"),
        ({"n_samples": 10}, r"n_samples=10: must be at least n_clusters=32 \(a sample per cluster\)"),
        ({"n_informative": 0}, r"n_informative=0: must be between 1 and 62"),
        ({"n_redundant": -1}, r"n_redundant=-1: must be >= 0"),
        ({"n_probes": -5}, r"n_probes=-5: must be >= 0"),
        ({"class_sep": -1.0}, r"class_sep=-1.0: must be >= 0"),
        ({"flip_y": 0.6}, r"flip_y=0.6: must be in \[0, 0.5\]"),
        ({"seed": -1}, r"seed=-1: must be >= 0"),
        ({"n_probes": 2.5}, r"n_probes=2.5: must be an integer"),
        ({"n_redundant": True}, r"n_redundant=True: must be an integer"),
        ({"flip_y": "1%"}, r"flip_y='1%': must be a number"),
    ],
)
def test_guyon_madelon_rejects_bad_arguments(kwargs: dict, match: str) -> None:
    with pytest.raises(DataError, match="madelon_guyon: " + match):
        make_guyon_madelon(**kwargs)
    with pytest.raises(DataError, match="data config: .*" + match):  # caught when the spec is validated
        DataConfig.from_mapping({"name": "madelon_guyon", **kwargs})


def test_guyon_madelon_reports_every_bad_argument_at_once() -> None:
    with pytest.raises(DataError) as info:
        make_guyon_madelon(n_samples=3, n_clusters=9, flip_y=1.0, n_probes=-1)
    message = str(info.value)
    assert "n_clusters=9" in message and "flip_y=1.0" in message and "n_probes=-1" in message
    assert "n_samples" not in message  # with n_clusters invalid, 3 samples are checked against 2 classes only


@pytest.mark.parametrize(
    ("mapping", "match"),
    [
        ({"name": "madelon_guyon", "n_features": 100},
         (r"n_features=100: not a setting of 'madelon_guyon'; its settings are n_samples, n_informative, "
          r"n_redundant, n_probes, n_clusters, class_sep, flip_y")),
        ({"name": "madelon", "n_probes": 10}, r"n_probes=10: not a setting of 'madelon'"),
        ({"name": "wine", "flip_y": 0.1},
         r"flip_y=0.1: only for the synthetic sets \(madelon, madelon_guyon\), not 'wine'; remove it"),
    ],
)
def test_synthetic_settings_are_rejected_for_sets_without_them(mapping: dict, match: str) -> None:
    with pytest.raises(DataError, match=match):
        DataConfig.from_mapping(mapping)


# --- files --------------------------------------------------------------------------------

LABELS = ("zebra", "apple", "mango")


def _frame(rows: int = 60) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame({
        "row_id": np.arange(rows),
        "height": rng.normal(size=rows),
        "weight": rng.normal(size=rows),
        "label": [LABELS[i % 3] for i in range(rows)],
    })


@pytest.mark.parametrize("suffix", [".csv", ".parquet", ".pq"])
def test_file_round_trip_with_string_labels(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"animals{suffix}"
    frame = _frame()
    frame.to_csv(path, index=False) if suffix == ".csv" else frame.to_parquet(path, index=False)

    data = load_data({"name": str(path), "target": "label", "scale": False})

    assert data.class_names == ("apple", "mango", "zebra")
    assert data.feature_names == ("row_id", "height", "weight")
    assert len(data.y_train) + len(data.y_val) + len(data.y_test) == 60
    for x, y in _parts(data).values():  # each row keeps its own label
        expected = [LABELS[int(row_id) % 3] for row_id in x[:, 0]]
        assert [data.class_names[k] for k in y] == expected


def test_missing_file_names_the_path(tmp_path: Path) -> None:
    path = tmp_path / "nowhere.csv"
    with pytest.raises(DataError, match="nowhere.csv.*not found"):
        load_data({"name": str(path), "target": "label"})


def test_unknown_name_suggests_builtin_and_extensions() -> None:
    with pytest.raises(DataError, match=r"unknown data set 'wines' \(did you mean 'wine'\?\).*\.csv"):
        load_data("wines")


def test_unsupported_extension(tmp_path: Path) -> None:
    path = tmp_path / "data.txt"
    path.write_text("a,b\n1,2\n")
    with pytest.raises(DataError, match=r"unsupported extension '\.txt'"):
        load_data({"name": str(path), "target": "b"})


@pytest.mark.parametrize(
    ("target", "match"),
    [
        (None, r"no target column given; set `target` to one of \['row_id', 'height', 'weight', 'label'\]"),
        ("lable", r"target column 'lable' not found \(did you mean 'label'\?\); the columns are \['row_id'"),
    ],
)
def test_missing_or_wrong_target_lists_columns(tmp_path: Path, target: str | None, match: str) -> None:
    path = tmp_path / "animals.csv"
    _frame().to_csv(path, index=False)
    with pytest.raises(DataError, match=match):
        load_data({"name": str(path), "target": target})


def test_non_numeric_and_nan_columns_are_reported_together(tmp_path: Path) -> None:
    frame = _frame()
    frame["colour"] = "red"
    frame.loc[[3, 7], "height"] = np.nan
    path = tmp_path / "bad.csv"
    frame.to_csv(path, index=False)
    with pytest.raises(DataError) as info:
        load_data({"name": str(path), "target": "label"})
    message = str(info.value)
    assert "bad.csv" in message
    assert "non-numeric feature columns ['colour']" in message and "encode" in message
    assert "2 of 60 rows have missing values (NaN) in columns ['height']" in message


def test_single_class_and_tiny_class_are_rejected(tmp_path: Path) -> None:
    frame = _frame()
    path = tmp_path / "one.csv"
    frame.assign(label="apple").to_csv(path, index=False)
    with pytest.raises(DataError, match="found 1 class"):
        load_data({"name": str(path), "target": "label"})
    frame.loc[0, "label"] = "rare"
    frame.loc[1, "label"] = "rare"
    frame.to_csv(path, index=False)
    with pytest.raises(DataError, match=r"class\(es\) \{'rare': 2\}.*fewer than 3"):
        load_data({"name": str(path), "target": "label"})


def test_target_is_rejected_for_builtins() -> None:
    with pytest.raises(DataError, match="remove target='y'"):
        load_data({"name": "wine", "target": "y"})


# --- config validation --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        ({"val_fraction": 0.0}, r"val_fraction=0.0: must be in \(0, 1\)"),
        ({"val_fraction": 1.0}, r"val_fraction=1.0"),
        ({"test_fraction": -0.1}, r"test_fraction=-0.1: must be in \[0, 1\)"),
        ({"val_fraction": 0.5, "test_fraction": 0.5}, r"val_fraction \+ test_fraction = 1: must be below 1"),
        ({"val_fraction": "0.2"}, r"val_fraction='0.2': must be a number"),
        ({"seed": 1.5}, r"seed=1.5: must be an integer"),
        ({"seed": -1}, r"seed=-1: must be >= 0"),
        ({"scale": "yes"}, r"scale='yes': must be true or false"),
    ],
)
def test_bad_config_values(overrides: dict, match: str) -> None:
    with pytest.raises(DataError, match=match):
        DataConfig.from_mapping({"name": "wine", **overrides})


def test_all_config_problems_are_reported_at_once() -> None:
    with pytest.raises(DataError) as info:
        DataConfig(name="wine", val_fraction=0.0, test_fraction=2.0, seed="x")  # type: ignore[arg-type]
    message = str(info.value)
    assert "val_fraction=0.0" in message and "test_fraction=2.0" in message and "seed='x'" in message


def test_from_mapping_unknown_key_suggests_the_right_one() -> None:
    with pytest.raises(DataError, match=r"unknown key\(s\) 'val_frac' \(did you mean 'val_fraction'\?\)"):
        DataConfig.from_mapping({"name": "wine", "val_frac": 0.1})
    with pytest.raises(DataError, match="missing key 'name'"):
        DataConfig.from_mapping({"seed": 1})


def test_load_data_rejects_other_types() -> None:
    with pytest.raises(DataError, match="got int"):
        load_data(5)  # type: ignore[arg-type]


# --- tensors and loaders ------------------------------------------------------------------


@pytest.fixture(scope="module")
def wine() -> DataSplits:
    return load_data("wine")


def test_tensors_dtypes_and_unknown_part(wine: DataSplits) -> None:
    x, y = wine.tensors("val")
    assert x.dtype == torch.float32 and y.dtype == torch.int64 and x.shape == (len(wine.y_val), 13)
    with pytest.raises(DataError, match=r"unknown data part 'valid' \(did you mean 'val'\?\)"):
        wine.tensors("valid")


def test_loader_batches_have_right_shapes_and_dtypes(wine: DataSplits) -> None:
    batches = list(wine.loader("train", 32))
    x, y = batches[0]
    assert x.shape == (32, 13) and x.dtype == torch.float32 and y.shape == (32,) and y.dtype == torch.int64
    assert sum(len(b[1]) for b in batches) == len(wine.y_train)
    assert all(len(b[1]) == 32 for b in wine.loader("train", 32, drop_last=True))


def test_train_loader_shuffles_reproducibly(wine: DataSplits) -> None:
    def order(seed: int) -> torch.Tensor:
        return torch.cat([y for _, y in wine.loader("train", 16, seed=seed)])

    def first_rows(seed: int) -> torch.Tensor:
        return next(iter(wine.loader("train", 16, seed=seed)))[0]

    torch.testing.assert_close(first_rows(0), first_rows(0))
    torch.testing.assert_close(order(0), order(0))
    assert not torch.equal(first_rows(0), first_rows(1))
    assert not torch.equal(first_rows(0), torch.from_numpy(wine.x_train[:16]))  # shuffled
    assert sorted(order(0).tolist()) == sorted(wine.y_train.tolist())  # every sample, once


def test_val_loader_keeps_order(wine: DataSplits) -> None:
    xs, ys = zip(*wine.loader("val", 10))
    np.testing.assert_array_equal(torch.cat(xs).numpy(), wine.x_val)
    np.testing.assert_array_equal(torch.cat(ys).numpy(), wine.y_val)


def test_loader_with_sampler(wine: DataSplits) -> None:
    from torch.utils.data.distributed import DistributedSampler

    sampler = DistributedSampler(range(len(wine.y_train)), num_replicas=2, rank=0, shuffle=False)
    seen = torch.cat([y for _, y in wine.loader("train", 8, sampler=sampler)])
    np.testing.assert_array_equal(seen.numpy(), wine.y_train[0::2])
    with pytest.raises(DataError, match="shuffle=True cannot be combined with a sampler"):
        wine.loader("train", 8, sampler=sampler, shuffle=True)


def test_loader_rejects_bad_batch_size(wine: DataSplits) -> None:
    with pytest.raises(DataError, match="batch_size=0 must be a positive integer"):
        wine.loader("train", 0)


def test_datasplits_checks_its_arrays() -> None:
    x, y = np.zeros((4, 2), np.float32), np.zeros(4, np.int64)
    with pytest.raises(DataError, match=r"x_val has shape \(4, 3\); expected \(n, 2\)"):
        DataSplits(x, y, np.zeros((4, 3), np.float32), y, x, y, ("a", "b"), ("n", "p"), "toy")
    with pytest.raises(DataError, match="y_test holds labels outside 0..1"):
        DataSplits(x, y, x, y, x, y + 5, ("a", "b"), ("n", "p"), "toy")
    with pytest.raises(DataError, match="preprocessing names other features or classes"):
        DataSplits(x, y, x, y, x, y, ("a", "b"), ("n", "p"), "toy", preprocessing=Preprocessing(("b", "a"), ("n", "p")))


# --- batches sliced from placed tensors (issue 25) -------------------------------------------


def _dataloader_order(generator: torch.Generator, n: int) -> torch.Tensor:
    """What a seeded DataLoader(shuffle=True) draws per pass: its base seed, the order, RandomSampler's remainder."""
    torch.empty((), dtype=torch.int64).random_(generator=generator)
    order = torch.randperm(n, generator=generator)
    torch.randperm(n, generator=generator)
    return order


def _rows(batches) -> list[list[int]]:
    """Each batch's labels: the toy set's label is its row number."""
    return [y.tolist() for _, y in batches]


@pytest.fixture()
def numbered() -> DataSplits:
    """70 train rows (not a multiple of 16) whose label is the row number and whose features repeat it."""
    n = 70
    x = np.repeat(np.arange(n, dtype=np.float32)[:, None], 2, axis=1)
    return DataSplits(x, np.arange(n), x[:9], np.arange(9), x[:0], np.arange(0), ("a", "b"),
                      tuple(str(k) for k in range(n)), "numbered")


def test_train_batches_are_slices_of_the_seeded_permutation(numbered: DataSplits) -> None:
    loader = numbered.loader("train", 16, seed=5)
    generator = torch.Generator().manual_seed(5)
    for epoch in (1, 2, 3):
        loader.sampler.set_epoch(epoch)  # as Trainer.fit does before each epoch
        expected = _dataloader_order(generator, 70)
        batches = list(loader)
        assert _rows(batches) == [expected[i:i + 16].tolist() for i in range(0, 70, 16)]
        for x, y in batches:  # features travel with their labels
            np.testing.assert_array_equal(x[:, 0].numpy(), y.numpy().astype(np.float32))


@pytest.mark.parametrize(("batch_size", "drop_last"), [(16, False), (16, True), (7, True), (70, False), (100, True)])
def test_batches_equal_a_seeded_dataloaders_epoch_for_epoch(numbered: DataSplits, batch_size: int,
                                                            drop_last: bool) -> None:
    old = DataLoader(TensorDataset(*numbered.tensors("train")), batch_size=batch_size, shuffle=True,
                     drop_last=drop_last, generator=torch.Generator().manual_seed(3))
    new = numbered.loader("train", batch_size, seed=3, drop_last=drop_last)
    assert isinstance(new, DataLoader) and len(new) == len(old)
    for epoch in (1, 2, 3, 4):
        new.sampler.set_epoch(epoch)
        assert _rows(new) == _rows(old), f"epoch {epoch}"
        # The trainer checkpoints the loader's generator: its state matches the DataLoader's too.
        assert torch.equal(new.generator.get_state(), old.generator.get_state())
    assert [len(y) for _, y in new] == [len(y) for _, y in old]  # the last, partial batch as before


def test_seed_and_epoch_alone_fix_the_order(numbered: DataSplits) -> None:
    straight = numbered.loader("train", 16, seed=1)
    orders = {}
    for epoch in (1, 2, 3, 4):
        straight.sampler.set_epoch(epoch)
        orders[epoch] = _rows(straight)
    resumed = numbered.loader("train", 16, seed=1)  # a fresh process resuming at epoch 3
    resumed.sampler.set_epoch(3)
    assert _rows(resumed) == orders[3]
    resumed.sampler.set_epoch(2)  # backwards too
    assert _rows(resumed) == orders[2]
    without = numbered.loader("train", 16, seed=1)  # no set_epoch: each pass continues, like a DataLoader
    assert [_rows(without) for _ in range(4)] == [orders[e] for e in (1, 2, 3, 4)]
    again = numbered.loader("train", 16, seed=1)
    again.sampler.set_epoch(2)
    again.generator.manual_seed(1234)  # a restored or disturbed generator: set_epoch still decides
    assert _rows(again) == orders[2]


def test_every_row_once_per_epoch_and_a_new_order_each_epoch(numbered: DataSplits) -> None:
    loader = numbered.loader("train", 16, seed=0)
    seen = []
    for epoch in (1, 2, 3):
        loader.sampler.set_epoch(epoch)
        rows = sum(_rows(loader), [])
        assert sorted(rows) == list(range(70))
        seen.append(rows)
    assert seen[0] != seen[1] != seen[2] != seen[0]
    other_seed = numbered.loader("train", 16, seed=1)
    other_seed.sampler.set_epoch(1)
    assert sum(_rows(other_seed), []) != seen[0]


def test_drop_last_drops_only_the_partial_batch(numbered: DataSplits) -> None:
    kept = numbered.loader("train", 16, seed=0)
    dropped = numbered.loader("train", 16, seed=0, drop_last=True)
    assert (len(kept), len(dropped)) == (5, 4)
    assert [len(y) for _, y in kept] == [16, 16, 16, 16, 6]
    kept.sampler.set_epoch(1)
    assert _rows(dropped) == _rows(kept)[:4]  # the same first epoch, its last 6 rows left out
    assert [len(y) for _, y in numbered.loader("val", 4, drop_last=True)] == [4, 4]


def test_no_per_sample_indexing(numbered: DataSplits, monkeypatch: pytest.MonkeyPatch) -> None:
    def per_sample(self, index):
        raise AssertionError("a batch was built sample by sample")

    monkeypatch.setattr(TensorDataset, "__getitem__", per_sample)
    assert sum(len(y) for _, y in numbered.loader("train", 16)) == 70
    assert sum(len(y) for _, y in numbered.loader("val", 4)) == 9


def test_tensors_are_placed_once_and_batches_are_views(numbered: DataSplits) -> None:
    val = numbered.loader("val", 4, device="cpu")
    placed_x, placed_y = val.dataset.tensors
    assert val.device == torch.device("cpu") and placed_x.device.type == "cpu"
    # On the CPU the part keeps sharing memory with the split's arrays: no copy at all.
    assert placed_x.untyped_storage().data_ptr() == numbered.x_val.__array_interface__["data"][0]
    for _ in range(2):  # every epoch slices the same placed tensors
        for x, y in val:
            assert x.untyped_storage().data_ptr() == placed_x.untyped_storage().data_ptr()
            assert y.untyped_storage().data_ptr() == placed_y.untyped_storage().data_ptr()
    train = numbered.loader("train", 16, device="cpu")
    storages = {x.untyped_storage().data_ptr() for x, _ in train}
    assert len(storages) == 1  # one gather per epoch, then slices of it


def test_set_epoch_counts_from_one(numbered: DataSplits) -> None:
    with pytest.raises(DataError, match=r"epoch=0 must be an integer >= 1 \(epochs count from 1"):
        numbered.loader("train", 16).sampler.set_epoch(0)


def test_an_empty_part_shuffled_yields_nothing(numbered: DataSplits) -> None:
    assert list(numbered.loader("test", 8, shuffle=True)) == []


@pytest.mark.parametrize(("world_size", "batch_size"), [(2, 16), (3, 8), (4, 32)])
def test_ddp_shards_are_the_distributed_samplers_rows(numbered: DataSplits, world_size: int,
                                                      batch_size: int) -> None:
    from torch.utils.data.distributed import DistributedSampler

    for epoch in (1, 2):
        covered = []
        for rank in range(world_size):
            sampler = DistributedSampler(range(70), num_replicas=world_size, rank=rank, shuffle=True, seed=4)
            loader = numbered.loader("train", batch_size, shuffle=False, sampler=sampler)
            loader.sampler.set_epoch(epoch)  # what the trainer calls
            reference = DistributedSampler(range(70), num_replicas=world_size, rank=rank, shuffle=True, seed=4)
            reference.set_epoch(epoch)
            rows = sum(_rows(loader), [])
            assert rows == list(reference)
            assert len(loader) == -(-len(reference) // batch_size)
            covered += rows
        assert set(covered) == set(range(70)) and len(covered) == -(-70 // world_size) * world_size


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("fits", [True, False])
def test_cuda_batches_match_the_cpu_ones(numbered: DataSplits, monkeypatch: pytest.MonkeyPatch, fits: bool) -> None:
    from trainables.data import batches

    monkeypatch.setattr(batches, "fits_on_device", lambda device, nbytes: fits)
    cuda = numbered.loader("train", 16, seed=2, device="cuda")
    cpu = numbered.loader("train", 16, seed=2)
    assert cuda.resident is fits
    placed = cuda.dataset.tensors[0]
    assert placed.device.type == ("cuda" if fits else "cpu") and (fits or placed.is_pinned())
    for epoch in (1, 2):
        cuda.sampler.set_epoch(epoch)
        cpu.sampler.set_epoch(epoch)
        got = list(cuda)
        assert all(x.device.type == "cuda" and y.device.type == "cuda" for x, y in got)
        assert [y.tolist() for _, y in got] == _rows(cpu)
    assert cuda.dataset.tensors[0] is placed  # placed once, not per epoch
    val = numbered.loader("val", 4, device="cuda")
    assert [y.cpu().tolist() for _, y in val] == _rows(numbered.loader("val", 4))
