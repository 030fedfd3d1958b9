"""Tabular classification data: built-in sets, synthetic Madelon sets and user files.

:func:`load_data` turns a :class:`DataConfig` (or a mapping, or a name) into :class:`DataSplits`:
stratified, seeded train / val / test numpy arrays, standardized with train statistics only.
``DataSplits`` hands out tensors and loaders on demand, so all trials can share one copy, and
carries its :class:`Preprocessing` (column order, fitted scaling, class names), which a trained
model needs to score new raw data.
"""

from __future__ import annotations

import numbers
import os
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np
import torch
from torch.utils.data import DataLoader, Sampler, TensorDataset

from trainables.suggest import did_you_mean

if TYPE_CHECKING:
    import pandas as pd

# pandas and scikit-learn are imported inside the functions that use them: together they
# add seconds to `import trainables`, which every trial worker pays.

__all__ = ["BUILTIN_DATASETS", "BUILTIN_TARGET", "FILE_SUFFIXES", "PARTS", "PREPROCESSING_FORMAT", "DataConfig", "DataError",
           "DataSplits", "Preprocessing", "load_data", "make_guyon_madelon", "make_madelon", "read_frame"]

#: Built-in data set names and what they are. ``madelon`` and ``madelon_guyon`` are generated;
#: the others are bundled with scikit-learn (no network needed).
BUILTIN_DATASETS: dict[str, str] = {
    "breast_cancer": "Wisconsin breast cancer: 569 samples, 30 features, 2 classes (scikit-learn).",
    "digits": "8x8 handwritten digits: 1797 samples, 64 pixel features, 10 classes (scikit-learn).",
    "wine": "Wine cultivars: 178 samples, 13 features, 3 classes (scikit-learn).",
    "madelon": "Madelon-style synthetic set: a few informative features hidden among noise.",
    "madelon_guyon": "Guyon's NIPS 2003 Madelon recipe: 5 informative + 15 redundant features among 480 "
                     "noise probes, XOR-like (no single feature separates the classes).",
}
#: The label column of a built-in set's rows in a file (what ``python -m search predict`` ignores and scores against).
BUILTIN_TARGET = "target"
_SKLEARN_LOADERS = {"breast_cancer": "load_breast_cancer", "digits": "load_digits", "wine": "load_wine"}

#: File name endings read as data files (case-insensitive).
FILE_SUFFIXES = (".csv", ".parquet", ".pq")
#: The parts of a split, in order.
PARTS = ("train", "val", "test")
#: Version of the layout :meth:`Preprocessing.to_dict` writes (a checkpoint's ``preprocessing.json``).
PREPROCESSING_FORMAT = 1


class DataError(ValueError):
    """Bad data input; the message names the source, what is wrong and how to fix it."""



def _is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_real(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


_INTEGER_FIELDS = ("seed", "n_samples", "n_features", "n_informative", "n_classes", "n_redundant", "n_probes",
                   "n_clusters")
_NUMBER_FIELDS = ("val_fraction", "test_fraction", "class_sep", "flip_y")

#: The settings of each synthetic set and their defaults; a DataConfig field left at None takes
#: the default of its set, and a field set for a data set that has no such setting is an error.
_SYNTHETIC_SETTINGS: dict[str, dict[str, Any]] = {
    "madelon": {"n_samples": 1000, "n_features": 50, "n_informative": 5, "n_classes": 2, "class_sep": 1.0},
    "madelon_guyon": {"n_samples": 2000, "n_informative": 5, "n_redundant": 15, "n_probes": 480,
                      "n_clusters": 32, "class_sep": 2.0, "flip_y": 0.01},
}
_SYNTHETIC_FIELDS = tuple(dict.fromkeys(key for table in _SYNTHETIC_SETTINGS.values() for key in table))


def _type_problems(values: Mapping[str, Any], *, defaults_allowed: bool = False) -> list[str]:
    """A ``name=value: must be ...`` line per numeric setting of the wrong type (bools included).

    With ``defaults_allowed`` (a DataConfig), None is fine for a synthetic setting: its set's default.
    """
    problems = []
    for key, value in values.items():
        if value is None and defaults_allowed and key in _SYNTHETIC_FIELDS:
            continue
        if key in _INTEGER_FIELDS and not _is_int(value):
            problems.append(f"{key}={value!r}: must be an integer")
        elif key in _NUMBER_FIELDS and not _is_real(value):
            problems.append(f"{key}={value!r}: must be a number")
    return problems


@dataclass(frozen=True)
class DataConfig:
    """Which data to load and how to split it.

    Attributes:
        name: A name from :data:`BUILTIN_DATASETS`, or a path to a ``.csv`` / ``.parquet``
            / ``.pq`` file (relative paths are resolved from the working directory).
        target: The label column of a file; required for files, not allowed for built-ins.
        val_fraction: Fraction of the *whole* set used for validation, in (0, 1).
        test_fraction: Fraction of the *whole* set held out for testing, in [0, 1).
        seed: Seed of the split (and of the synthetic set).
        scale: Standardize features with statistics of the train part only.
        n_samples: Synthetic sets: number of samples (``madelon`` 1000, ``madelon_guyon`` 2000).
        n_features: ``madelon`` only: number of features, informative and noise (50).
        n_informative: Synthetic sets: how many features carry signal on their own (5); for
            ``madelon_guyon`` the dimensions of the hypercube the clusters sit on.
        n_classes: ``madelon`` only: number of classes (2; ``madelon_guyon`` has 2).
        class_sep: Synthetic sets: half the side of the hypercube the class clusters sit on,
            in units of the clusters' own spread (``madelon`` 1.0, ``madelon_guyon`` 2.0).
        n_redundant: ``madelon_guyon`` only: features that are random linear combinations of
            the informative ones (15).
        n_probes: ``madelon_guyon`` only: pure-noise features (480); the set has
            ``n_informative + n_redundant + n_probes`` columns.
        n_clusters: ``madelon_guyon`` only: Gaussian clusters, half per class, on distinct
            hypercube vertices (32, at most ``2 ** n_informative``).
        flip_y: ``madelon_guyon`` only: fraction of labels exchanged between the classes, as
            label noise (0.01).

        A synthetic setting left at None takes its set's default (in brackets above);
        :func:`make_madelon` and :func:`make_guyon_madelon` describe the sets.

    Raises:
        DataError: listing every invalid field, including a synthetic setting given for a data
            set without it.
    """

    name: str
    target: str | None = None
    val_fraction: float = 0.2
    test_fraction: float = 0.2
    seed: int = 0
    scale: bool = True
    n_samples: int | None = None
    n_features: int | None = None
    n_informative: int | None = None
    n_classes: int | None = None
    class_sep: float | None = None
    n_redundant: int | None = None
    n_probes: int | None = None
    n_clusters: int | None = None
    flip_y: float | None = None

    def __post_init__(self) -> None:
        problems = _config_problems(self)
        if problems:
            raise DataError("data config: " + "; ".join(problems))

    @classmethod
    def from_mapping(cls, mapping: Mapping[str, Any]) -> DataConfig:
        """Build a config from a mapping (e.g. parsed YAML), rejecting unknown keys.

        Raises:
            DataError: on unknown keys (with a suggestion), a missing ``name`` or bad values.
        """
        known = [f.name for f in fields(cls)]
        unknown = [str(key) for key in mapping if key not in known]
        if unknown:
            listed = ", ".join(f"{key!r}{did_you_mean(key, known)}" for key in unknown)
            raise DataError(f"data config: unknown key(s) {listed}; valid keys are {known}")
        if "name" not in mapping:
            raise DataError("data config: missing key 'name'; give a built-in data set "
                            f"({', '.join(BUILTIN_DATASETS)}) or a path to a .csv/.parquet file")
        return cls(**mapping)

    def synthetic_settings(self) -> dict[str, Any]:
        """The generator's settings of a synthetic set, defaults filled in; empty for other sets."""
        defaults = _SYNTHETIC_SETTINGS.get(self.name, {})
        return {key: default if getattr(self, key) is None else getattr(self, key)
                for key, default in defaults.items()}


def _config_problems(config: DataConfig) -> list[str]:
    """Every type and range problem of ``config``, as ``field=value: rule`` strings."""
    problems = _type_problems({f.name: getattr(config, f.name) for f in fields(config)}, defaults_allowed=True)
    if not isinstance(config.name, str) or not config.name:
        problems.append(f"name={config.name!r}: must be a non-empty string (a built-in name or a file path)")
    if config.target is not None and not isinstance(config.target, str):
        problems.append(f"target={config.target!r}: must be a column name (a string) or None")
    if not isinstance(config.scale, bool):
        problems.append(f"scale={config.scale!r}: must be true or false")
    if _is_int(config.seed) and config.seed < 0:
        problems.append(f"seed={config.seed}: must be >= 0 (numpy and scikit-learn reject negative seeds)")
    val, test = config.val_fraction, config.test_fraction
    if _is_real(val) and not 0 < val < 1:
        problems.append(f"val_fraction={val!r}: must be in (0, 1); a validation part is required")
    if _is_real(test) and not 0 <= test < 1:
        problems.append(f"test_fraction={test!r}: must be in [0, 1) (0 means no test part)")
    if _is_real(val) and _is_real(test) and val + test >= 1:
        problems.append(f"val_fraction + test_fraction = {val + test:g}: must be below 1 "
                        "to leave training data")
    return problems + _synthetic_problems(config, checked=not problems)


def _synthetic_problems(config: DataConfig, checked: bool) -> list[str]:
    """Synthetic settings given for a data set without them, and, if the types and the rest were
    ``checked`` fine, the generator's range checks, so that validating a spec catches them before a run."""
    own = _SYNTHETIC_SETTINGS.get(config.name) if isinstance(config.name, str) else None
    problems = []
    for key in _SYNTHETIC_FIELDS:
        value = getattr(config, key)
        if value is None or key in (own or {}):
            continue
        problems.append(f"{key}={value!r}: not a setting of {config.name!r}; its settings are {', '.join(own)}"
                        if own is not None else f"{key}={value!r}: only for the synthetic sets "
                        f"({', '.join(_SYNTHETIC_SETTINGS)}), not {config.name!r}; remove it")
    if own is None or not checked:
        return problems
    if config.name == "madelon":
        return problems + _madelon_range_problems(**config.synthetic_settings())
    return problems + _guyon_range_problems(**config.synthetic_settings(), seed=config.seed)


def make_madelon(n_samples: int = 1000, n_features: int = 50, n_informative: int = 5, n_classes: int = 2,
                 class_sep: float = 1.0, seed: int = 0) -> tuple[np.ndarray, np.ndarray, tuple[int, ...]]:
    """A Madelon-style set: classes separable in a few informative dimensions among noise.

    Class clusters sit on the vertices of a hypercube in the informative dimensions
    (scikit-learn's ``make_classification``, no redundant or repeated features); the
    remaining features are pure noise. Columns and rows are then permuted with a seeded
    RNG so the informative columns are not simply the first ones.

    Returns:
        ``(x, y, informative)``: features ``(n_samples, n_features)``, class indices, and the
        sorted column indices of the informative features.

    Raises:
        DataError: listing every invalid argument.
    """
    settings = {"n_samples": n_samples, "n_features": n_features, "n_informative": n_informative,
                "n_classes": n_classes, "class_sep": class_sep, "seed": seed}
    problems = _type_problems(settings)
    problems = problems or _madelon_range_problems(n_samples, n_features, n_informative, n_classes, class_sep)
    if problems:
        raise DataError("madelon: " + "; ".join(problems))
    from sklearn.datasets import make_classification

    # make_classification needs n_classes * clusters <= 2 ** n_informative hypercube vertices.
    clusters = 2 if n_classes * 2 <= 2**n_informative else 1
    x, y = make_classification(
        n_samples=n_samples, n_features=n_features, n_informative=n_informative,
        n_redundant=0, n_repeated=0, n_classes=n_classes, n_clusters_per_class=clusters,
        class_sep=class_sep, shuffle=False, random_state=seed,
    )
    rng = np.random.default_rng(seed)
    columns = rng.permutation(n_features)  # new column j holds old column columns[j]
    rows = rng.permutation(n_samples)  # unshuffled, rows come grouped by cluster
    informative = tuple(int(j) for j in np.flatnonzero(columns < n_informative))
    return x[rows][:, columns], y[rows], informative


def _madelon_range_problems(n_samples: int, n_features: int, n_informative: int, n_classes: int,
                            class_sep: float) -> list[str]:
    problems = []
    if n_samples < 1:
        problems.append(f"n_samples={n_samples}: must be at least 1")
    if n_classes < 2:
        problems.append(f"n_classes={n_classes}: must be at least 2")
    if not 1 <= n_informative <= n_features:
        problems.append(f"n_informative={n_informative}: must be between 1 and n_features={n_features}")
    elif n_classes > 2**n_informative:
        problems.append(f"n_classes={n_classes} needs n_informative >= {(n_classes - 1).bit_length()} "
                        f"(one hypercube vertex per class), got {n_informative}")
    if class_sep < 0:
        problems.append(f"class_sep={class_sep}: must be >= 0")
    return problems


def make_guyon_madelon(n_samples: int = 2000, n_informative: int = 5, n_redundant: int = 15, n_probes: int = 480,
                       n_clusters: int = 32, class_sep: float = 2.0, flip_y: float = 0.01,
                       seed: int = 0) -> tuple[np.ndarray, np.ndarray, tuple[int, ...]]:
    """Madelon as Guyon built it for the NIPS 2003 feature selection challenge: two classes, XOR-like.

    ``n_clusters`` Gaussian clusters (unit standard deviation) sit on distinct vertices of a
    hypercube with side ``2 * class_sep`` in the ``n_informative`` dimensions, half of them
    labelled 0 and half 1 at random. Of up to 4096 random labellings the one that splits each
    hypercube face most evenly between the classes is kept, so that neither an informative
    feature alone nor any linear combination of them separates the classes: only their
    interplay does. ``n_redundant`` features are random linear combinations of the
    informative ones; all these relevant features are then standardized, and ``n_probes``
    standard normal features with no signal are added. Classes are balanced (their sizes
    differ by at most one); ``flip_y`` exchanges that fraction of labels between the classes
    as label noise. Columns and rows are permuted with a seeded RNG.

    Defaults are Madelon's sizes (5 + 15 relevant features among 500) except ``n_samples``
    (Madelon has 4400). ``class_sep=2`` lets an RBF SVM on the relevant features reach
    about 90% test accuracy with 2000 samples, while on all features it stays near chance.

    Returns:
        ``(x, y, relevant)``: features ``(n_samples, n_informative + n_redundant + n_probes)``,
        class indices 0 / 1, and the sorted column indices of the relevant (informative and
        redundant) features.

    Raises:
        DataError: listing every invalid argument.
    """
    settings = {"n_samples": n_samples, "n_informative": n_informative, "n_redundant": n_redundant,
                "n_probes": n_probes, "n_clusters": n_clusters, "class_sep": class_sep, "flip_y": flip_y,
                "seed": seed}
    problems = _type_problems(settings) or _guyon_range_problems(**settings)
    if problems:
        raise DataError("madelon_guyon: " + "; ".join(problems))
    rng = np.random.default_rng(seed)
    vertices = rng.choice(2**n_informative, size=n_clusters, replace=False)
    signs = 2.0 * ((vertices[:, None] >> np.arange(n_informative)) & 1) - 1  # (n_clusters, n_informative)
    cluster_class = _balanced_cluster_classes(signs, rng)
    y = np.repeat([0, 1], [n_samples // 2, n_samples - n_samples // 2])
    cluster = np.empty(n_samples, dtype=np.int64)
    for label in (0, 1):  # each class's samples spread evenly over its clusters
        rows, own = np.flatnonzero(y == label), np.flatnonzero(cluster_class == label)
        cluster[rows] = own[np.arange(len(rows)) % len(own)]
    informative = class_sep * signs[cluster] + rng.standard_normal((n_samples, n_informative))
    redundant = informative @ rng.uniform(-1.0, 1.0, size=(n_informative, n_redundant))
    relevant = np.hstack([informative, redundant])
    # Standardizing the relevant columns gives the probes below the same marginal scale; it is
    # linear per column, so the redundant columns stay exact combinations of the informative ones.
    relevant = (relevant - relevant.mean(axis=0)) / relevant.std(axis=0)
    x = np.hstack([relevant, rng.standard_normal((n_samples, n_probes))])
    # Exchanging one label of each class at a time keeps the classes balanced; the draw does not
    # depend on flip_y, so the same seed gives the same features whatever the label noise.
    pairs = round(flip_y * n_samples / 2)
    flipped = np.concatenate([rng.permutation(np.flatnonzero(y == label))[:pairs] for label in (0, 1)])
    y[flipped] = 1 - y[flipped]
    width = x.shape[1]
    columns = rng.permutation(width)  # new column j holds old column columns[j]
    rows = rng.permutation(n_samples)  # unshuffled, rows come sorted by class
    relevant_columns = tuple(int(j) for j in np.flatnonzero(columns < n_informative + n_redundant))
    return x[rows][:, columns], y[rows], relevant_columns


def _balanced_cluster_classes(signs: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Class 0 / 1 of each cluster: half each, the random draw that best balances every hypercube face.

    A purely random labelling of 32 vertices often puts, say, 11 of the 16 vertices on one
    side of an axis in one class, and that feature alone then predicts the class at about
    65%; the set is meant to need several features together. Zero imbalance on every axis
    means equal class means on every informative feature (up to sampling noise), so a linear
    model sees no signal either.
    """
    n_clusters = len(signs)
    tries = max(64, min(4096, 2**22 // n_clusters))  # bounds the (tries, n_clusters) draw matrix
    halves = np.repeat([-1.0, 1.0], [n_clusters // 2, n_clusters - n_clusters // 2])
    draws = rng.permuted(np.tile(halves, (tries, 1)), axis=1)
    imbalance = np.abs(draws @ signs).max(axis=1)  # per draw, the worst axis
    return (draws[np.argmin(imbalance)] > 0).astype(np.int64)


def _guyon_range_problems(n_samples: int, n_informative: int, n_redundant: int, n_probes: int, n_clusters: int,
                          class_sep: float, flip_y: float, seed: int) -> list[str]:
    problems = []
    if not 1 <= n_informative <= 62:
        problems.append(f"n_informative={n_informative}: must be between 1 and 62 "
                        "(hypercube vertices are numbered by 64-bit integers)")
    if n_redundant < 0:
        problems.append(f"n_redundant={n_redundant}: must be >= 0")
    if n_probes < 0:
        problems.append(f"n_probes={n_probes}: must be >= 0")
    if n_clusters < 2 or n_clusters % 2:
        problems.append(f"n_clusters={n_clusters}: must be an even number >= 2 (half the clusters per class)")
    elif 1 <= n_informative <= 62 and n_clusters > 2**n_informative:
        problems.append(f"n_clusters={n_clusters}: must be at most 2 ** n_informative = {2**n_informative} "
                        "(one hypercube vertex per cluster); raise n_informative or lower n_clusters")
    clusters_valid = n_clusters >= 2 and n_clusters % 2 == 0
    if n_samples < (n_clusters if clusters_valid else 2):
        least = f"n_clusters={n_clusters} (a sample per cluster)" if clusters_valid else "2 (one per class)"
        problems.append(f"n_samples={n_samples}: must be at least {least}")
    if class_sep < 0:
        problems.append(f"class_sep={class_sep}: must be >= 0")
    if not 0 <= flip_y <= 0.5:
        problems.append(f"flip_y={flip_y}: must be in [0, 0.5] (0.5 already makes the labels pure noise)")
    if seed < 0:
        problems.append(f"seed={seed}: must be >= 0 (numpy rejects negative seeds)")
    return problems


@dataclass(frozen=True)
class Preprocessing:
    """What turns raw feature rows into a model's inputs, and its output units into labels.

    :func:`load_data` builds it from the data it splits; the built-in trainable saves it beside
    each checkpoint, so a trained model can score new raw data without the training set.

    Attributes:
        feature_names: The input columns, in the model's order.
        class_names: The label of each output unit, in order (labels as text, sorted).
        target: The label column of the source file; ``"target"`` for a built-in set
            (:data:`BUILTIN_TARGET`, scikit-learn's name for it), so a file of its rows can carry it.
        mean: Per-feature mean of the train part; inputs are ``(x - mean) / scale``.
        scale: Per-feature standard deviation of the train part (1 for a constant feature).
            ``mean`` and ``scale`` are both None when the features were not scaled.
        source: The data set name or file path the statistics were fitted on.

    Raises:
        DataError: the statistics do not fit the feature names, or a scale is not positive.
    """

    feature_names: tuple[str, ...]
    class_names: tuple[str, ...]
    target: str | None = None
    mean: tuple[float, ...] | None = None
    scale: tuple[float, ...] | None = None
    source: str = ""

    def __post_init__(self) -> None:
        width, problems = len(self.feature_names), []
        if (self.mean is None) != (self.scale is None):
            problems.append("give both mean and scale, or neither (unscaled features)")
        for name in ("mean", "scale"):
            values = getattr(self, name)
            if values is not None and len(values) != width:
                problems.append(f"{name} has {len(values)} values for {width} features")
        if self.scale is not None and not all(np.isfinite(v) and v > 0 for v in self.scale):
            problems.append("every scale must be a finite number > 0")
        if self.mean is not None and not all(np.isfinite(v) for v in self.mean):
            problems.append("every mean must be finite")
        if problems:
            raise DataError(f"preprocessing of {self.source or 'a data set'}: " + "; ".join(problems))

    @property
    def num_features(self) -> int:
        """Number of input columns."""
        return len(self.feature_names)

    def transform(self, x: np.ndarray) -> np.ndarray:
        """Raw features ``(n, num_features)``, in :attr:`feature_names` order, as the model's float32 inputs.

        The one code path for training data (:func:`load_data`) and new data alike, so both
        are scaled identically.

        Raises:
            DataError: ``x`` is not two-dimensional with one column per feature.
        """
        x = np.asarray(x, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != self.num_features:
            raise DataError(f"expected features of shape (n, {self.num_features}), got {x.shape}")
        if self.mean is not None and self.scale is not None:
            x = (x - np.asarray(self.mean)) / np.asarray(self.scale)
        return np.ascontiguousarray(x, dtype=np.float32)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (floats exact as JSON writes them); :meth:`from_dict` reads it back."""
        scaled = self.mean is not None and self.scale is not None
        scaling = {"mean": list(self.mean), "scale": list(self.scale)} if scaled else None
        return {"format": PREPROCESSING_FORMAT, "source": self.source, "target": self.target,
                "feature_names": list(self.feature_names), "class_names": list(self.class_names),
                "standardization": scaling}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Preprocessing:
        """Read what :meth:`to_dict` wrote.

        Raises:
            DataError: another format version, a missing key or values that do not fit.
        """
        if not isinstance(data, Mapping) or data.get("format") != PREPROCESSING_FORMAT:
            found = data.get("format") if isinstance(data, Mapping) else type(data).__name__
            raise DataError(f"not a preprocessing record of format {PREPROCESSING_FORMAT} (found {found!r})")
        missing = [k for k in ("feature_names", "class_names", "standardization") if k not in data]
        if missing:
            raise DataError(f"preprocessing record lacks {missing}")
        scaling = data["standardization"]
        try:
            mean, scale = (None, None) if scaling is None else (
                tuple(float(v) for v in scaling["mean"]), tuple(float(v) for v in scaling["scale"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise DataError(f"preprocessing record has a bad standardization ({type(exc).__name__}: {exc}); "
                            "expected {\"mean\": [...], \"scale\": [...]} or null") from exc
        return cls(tuple(str(n) for n in data["feature_names"]), tuple(str(n) for n in data["class_names"]),
                   target=data.get("target"), mean=mean, scale=scale, source=str(data.get("source", "")))


@dataclass(frozen=True, eq=False)
class DataSplits:
    """Train / val / test arrays of one data set, plus names.

    Attributes:
        x_train, x_val, x_test: Features, float32, shape ``(n, num_features)``.
        y_train, y_val, y_test: Class indices in ``0..num_classes-1``, int64, shape ``(n,)``.
        feature_names: One name per feature column.
        class_names: The label of each class index.
        name: The data set name or file path it came from.
        informative: Indices of the features known to carry signal (synthetic sets only:
            ``madelon``'s informative ones, ``madelon_guyon``'s informative and redundant ones).
        preprocessing: How raw rows became these arrays (set by :func:`load_data`); None for
            splits built by hand, whose preparation only their author knows.
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    feature_names: tuple[str, ...]
    class_names: tuple[str, ...]
    name: str
    informative: tuple[int, ...] | None = None
    preprocessing: Preprocessing | None = None

    def __post_init__(self) -> None:
        width, top = self.num_features, self.num_classes - 1
        problems = []
        prep = self.preprocessing
        if prep is not None and (prep.feature_names, prep.class_names) != (tuple(self.feature_names),
                                                                           tuple(self.class_names)):
            problems.append("preprocessing names other features or classes than feature_names / class_names")
        for part in PARTS:
            x, y = self._arrays(part)
            rows = np.shape(x)[0] if np.ndim(x) else 0
            if np.ndim(x) != 2 or np.shape(x)[1] != width:
                problems.append(f"x_{part} has shape {np.shape(x)}; expected (n, {width}) as feature_names")
            elif np.shape(y) != (rows,):
                problems.append(f"y_{part} has shape {np.shape(y)}; expected ({rows},) as x_{part}")
            elif rows and not 0 <= np.min(y) <= np.max(y) <= top:
                problems.append(f"y_{part} holds labels outside 0..{top} (one per class name)")
        if problems:
            raise DataError(f"DataSplits {self.name!r}: " + "; ".join(problems))

    @property
    def num_features(self) -> int:
        """Number of feature columns."""
        return len(self.feature_names)

    @property
    def num_classes(self) -> int:
        """Number of classes."""
        return len(self.class_names)

    def _arrays(self, part: str) -> tuple[np.ndarray, np.ndarray]:
        if part not in PARTS:
            raise DataError(f"unknown data part {part!r}{did_you_mean(str(part), PARTS)}; "
                            f"choose one of {PARTS}")
        return getattr(self, f"x_{part}"), getattr(self, f"y_{part}")

    def tensors(self, part: str) -> tuple[torch.Tensor, torch.Tensor]:
        """Features (float32) and labels (int64) of ``part`` ("train", "val" or "test").

        The tensors share memory with the arrays where the dtypes already match, except
        for read-only arrays (e.g. zero-copy from Ray's object store), which are copied:
        torch does not support tensors over read-only memory.
        """
        x, y = (np.require(a, requirements="W") for a in self._arrays(part))
        return torch.as_tensor(x, dtype=torch.float32), torch.as_tensor(y, dtype=torch.int64)

    def loader(self, part: str, batch_size: int, *, shuffle: bool | None = None, seed: int = 0,
               drop_last: bool = False, sampler: Sampler[int] | None = None) -> DataLoader:
        """A ``DataLoader`` over ``part`` yielding ``(features, labels)`` batches.

        Args:
            part: "train", "val" or "test".
            batch_size: Samples per batch (positive).
            shuffle: Reshuffle every epoch; by default only the train part is shuffled.
            seed: Seeds the loader's own ``torch.Generator``: the same seed gives the same
                sequence of epoch orders, independently of the global RNG.
            drop_last: Drop a last, smaller batch.
            sampler: E.g. a ``DistributedSampler``; it then decides the order, so
                ``shuffle`` must not be True.

        Raises:
            DataError: on an unknown part, a bad batch size, or ``shuffle=True`` with a sampler.
        """
        if not _is_int(batch_size) or batch_size < 1:
            raise DataError(f"loader: batch_size={batch_size!r} must be a positive integer")
        if sampler is not None and shuffle:
            raise DataError("loader: shuffle=True cannot be combined with a sampler; the sampler sets the "
                            "order (call sampler.set_epoch(epoch) to reshuffle a DistributedSampler)")
        dataset = TensorDataset(*self.tensors(part))
        if shuffle is None:
            shuffle = part == "train" and sampler is None
        generator = torch.Generator().manual_seed(seed)
        return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, sampler=sampler,
                          drop_last=drop_last, generator=generator)

    def summary(self) -> dict[str, Any]:
        """Name, part sizes, number of features and classes (for logs and reports)."""
        sizes = {f"{part}_size": len(self._arrays(part)[1]) for part in PARTS}
        return {"name": self.name, **sizes, "num_features": self.num_features,
                "num_classes": self.num_classes}


class _Raw(NamedTuple):
    """A whole data set before splitting."""

    x: np.ndarray
    y: np.ndarray
    feature_names: tuple[str, ...]
    class_names: tuple[str, ...]
    source: str
    informative: tuple[int, ...] | None = None


def load_data(config: DataConfig | Mapping[str, Any] | str | os.PathLike[str]) -> DataSplits:
    """Load, split and (optionally) standardize a data set.

    Args:
        config: A :class:`DataConfig`, a mapping of its fields, or a built-in name / file
            path (all other settings at their defaults).

    Returns:
        Stratified, seeded splits; ``val_fraction`` and ``test_fraction`` are fractions of
        the whole set (up to rounding).

    Raises:
        DataError: when the config, the file or its contents are unusable.
    """
    if isinstance(config, (str, os.PathLike)):
        config = DataConfig(name=os.fspath(config))
    elif isinstance(config, Mapping):
        config = DataConfig.from_mapping(config)
    elif not isinstance(config, DataConfig):
        raise DataError(f"load_data: expected a DataConfig, a mapping or a data set name, "
                        f"got {type(config).__name__}")
    raw = _load_raw(config)
    _check_classes(raw, parts=3 if config.test_fraction > 0 else 2)
    train, val, test = _split_indices(raw, config)
    mean, scale = _fit_standardization(raw.x[train]) if config.scale else (None, None)
    # Files name their label column; a built-in set's rows written to a file carry theirs as "target".
    preprocessing = Preprocessing(raw.feature_names, raw.class_names, target=config.target or BUILTIN_TARGET,
                                  mean=mean,
                                  scale=scale, source=config.name)
    features = [preprocessing.transform(raw.x[rows]) for rows in (train, val, test)]
    labels = [np.ascontiguousarray(raw.y[rows], dtype=np.int64) for rows in (train, val, test)]
    return DataSplits(
        x_train=features[0], y_train=labels[0], x_val=features[1], y_val=labels[1],
        x_test=features[2], y_test=labels[2], feature_names=raw.feature_names,
        class_names=raw.class_names, name=config.name, informative=raw.informative,
        preprocessing=preprocessing,
    )


def _load_raw(config: DataConfig) -> _Raw:
    if config.name in BUILTIN_DATASETS:
        if config.target is not None:
            raise DataError(f"data set {config.name!r}: `target` is only for files; built-in sets "
                            f"have their own labels, remove target={config.target!r}")
        return _load_builtin(config)
    path = Path(config.name).expanduser()
    if path.suffix.lower() not in FILE_SUFFIXES:
        if path.is_file():
            raise DataError(f"data file {str(path)!r}: unsupported extension {path.suffix!r}; "
                            f"save it as one of {', '.join(FILE_SUFFIXES)}")
        raise DataError(f"unknown data set {config.name!r}{did_you_mean(config.name, BUILTIN_DATASETS)}: "
                        f"not a built-in ({', '.join(BUILTIN_DATASETS)}) nor a path ending in "
                        f"{', '.join(FILE_SUFFIXES)}")
    if not path.is_file():
        raise DataError(f"data file {str(path)!r} not found (resolved to {path.resolve()}); check the path "
                        f"(relative paths start from the working directory, {Path.cwd()})")
    return _frame_to_raw(read_frame(path), config.target, source=f"data file {str(path)!r}")


def _load_builtin(config: DataConfig) -> _Raw:
    source = f"data set {config.name!r}"
    if config.name in _SYNTHETIC_SETTINGS:
        make = make_madelon if config.name == "madelon" else make_guyon_madelon
        settings = config.synthetic_settings()
        x, y, informative = make(**settings, seed=config.seed)
        width = len(str(x.shape[1] - 1))
        names = tuple(f"f{j:0{width}d}" for j in range(x.shape[1]))
        classes = tuple(str(c) for c in range(settings.get("n_classes", 2)))
        return _Raw(x, y, names, classes, source, informative)
    from sklearn import datasets

    bunch = getattr(datasets, _SKLEARN_LOADERS[config.name])()
    return _Raw(bunch.data, bunch.target, tuple(str(n) for n in bunch.feature_names),
                tuple(str(n) for n in bunch.target_names), source)


def read_frame(path: Path) -> pd.DataFrame:
    """A CSV (``.csv``) or else Parquet file as a DataFrame; DataError naming the file if it cannot be read."""
    import pandas as pd

    kind = "CSV" if path.suffix.lower() == ".csv" else "Parquet"
    try:
        return pd.read_csv(path) if kind == "CSV" else pd.read_parquet(path)
    except ImportError as exc:
        raise DataError(f"data file {str(path)!r}: reading {kind} needs an extra package ({exc}); "
                        "install pyarrow (`pip install pyarrow`) or convert the file to CSV") from exc
    except (OSError, ValueError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise DataError(f"data file {str(path)!r} could not be read as {kind} ({type(exc).__name__}: {exc}); "
                        f"check that it is a valid {kind} file with a header row") from exc


def _frame_to_raw(frame: pd.DataFrame, target: str | None, source: str) -> _Raw:
    import pandas as pd

    frame = frame.set_axis([str(c) for c in frame.columns], axis=1)
    columns = list(frame.columns)
    if target is None:
        raise DataError(f"{source}: no target column given; set `target` to one of {columns}")
    if target not in columns:
        raise DataError(f"{source}: target column {target!r} not found{did_you_mean(target, columns)}; "
                        f"the columns are {columns}")
    features = frame.drop(columns=[target])
    if features.shape[1] == 0 or len(frame) == 0:
        raise DataError(f"{source}: needs at least one row and one feature column besides "
                        f"target {target!r}; found {len(frame)} rows and columns {columns}")
    problems = []
    non_numeric = [c for c in features.columns if not pd.api.types.is_numeric_dtype(features[c])]
    if non_numeric:
        problems.append(f"non-numeric feature columns {non_numeric}: encode them as numbers "
                        "(e.g. pandas.get_dummies for categories) or drop them")
    missing = frame.isna()
    bad_rows = int(missing.any(axis=1).sum())
    if bad_rows:
        problems.append(f"{bad_rows} of {len(frame)} rows have missing values (NaN) in columns "
                        f"{[c for c in columns if missing[c].any()]}: drop or impute them")
    if not non_numeric and np.isinf(features.to_numpy(dtype=np.float64)).any():
        problems.append("some feature values are infinite: replace or drop them")
    if problems:
        raise DataError(f"{source}: " + "; ".join(problems))
    y, class_names = _encode_labels(frame[target])
    return _Raw(features.to_numpy(dtype=np.float64), y, tuple(features.columns), class_names, source)


def _encode_labels(labels: pd.Series) -> tuple[np.ndarray, tuple[str, ...]]:
    """Class indices ``0..K-1`` in the order of the sorted unique labels, and their names."""
    import pandas as pd

    try:
        codes, uniques = pd.factorize(labels, sort=True)
    except TypeError:  # mixed types (say ints and strings) do not sort; compare them as text
        codes, uniques = pd.factorize(labels.astype(str), sort=True)
    return codes.astype(np.int64), tuple(str(u) for u in uniques)


def _check_classes(raw: _Raw, parts: int) -> None:
    """Stratifying needs two classes, each with a sample for each of the ``parts``."""
    if len(raw.class_names) < 2:
        raise DataError(f"{raw.source}: found {len(raw.class_names)} class(es) {list(raw.class_names)}; "
                        "classification needs at least 2 distinct target values")
    counts = np.bincount(raw.y, minlength=len(raw.class_names))
    small = {raw.class_names[k]: int(n) for k, n in enumerate(counts) if n < parts}
    if small:
        raise DataError(f"{raw.source}: cannot stratify the split; class(es) {small} (name: count) have "
                        f"fewer than {parts} samples, one per part; add samples or merge rare classes")


def _split_indices(raw: _Raw, config: DataConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Row indices of train, val and test: test first, then val from the rest."""
    from sklearn.model_selection import train_test_split

    rows = np.arange(len(raw.y))
    try:
        if config.test_fraction > 0:
            rest, test = train_test_split(rows, test_size=config.test_fraction, stratify=raw.y,
                                          random_state=config.seed)
        else:
            rest, test = rows, rows[:0]
        # Rescale so val_fraction is a fraction of the whole set, not of what is left.
        val_of_rest = config.val_fraction / (1 - config.test_fraction)
        train, val = train_test_split(rest, test_size=val_of_rest, stratify=raw.y[rest],
                                      random_state=config.seed)
    except ValueError as exc:
        raise DataError(f"{raw.source}: cannot split {len(rows)} samples stratified into "
                        f"val_fraction={config.val_fraction} and test_fraction={config.test_fraction} "
                        f"({exc}); use larger fractions or more samples") from exc
    return train, val, test


def _fit_standardization(x_train: np.ndarray) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-feature mean and scale of the train part only, so nothing of val / test leaks into them."""
    from sklearn.preprocessing import StandardScaler

    scaler = StandardScaler().fit(x_train)  # its scale_ is 1 for a constant feature, never 0
    return tuple(float(v) for v in scaler.mean_), tuple(float(v) for v in scaler.scale_)
