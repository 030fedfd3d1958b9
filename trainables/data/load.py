"""The one entry point: :func:`load_data` turns a config, a mapping or a name into :class:`DataSplits`."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from trainables.data.checks import DataError
from trainables.data.config import BUILTIN_DATASETS, BUILTIN_TARGET, SKLEARN_LOADERS, DataConfig
from trainables.data.files import FILE_SUFFIXES, frame_to_raw, read_frame
from trainables.data.splits import (
    DataSplits,
    Preprocessing,
    RawSet,
    check_classes,
    fit_standardization,
    split_indices,
)
from trainables.data.synthetic import SYNTHETIC_SETTINGS, make_guyon_madelon, make_madelon
from trainables.suggest import did_you_mean

# scikit-learn is imported inside the functions that use it: with pandas it adds seconds to
# `import trainables`, which every trial worker pays.

__all__ = ["load_data"]


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
    check_classes(raw, parts=3 if config.test_fraction > 0 else 2)
    train, val, test = split_indices(raw, config)
    mean, scale = fit_standardization(raw.x[train]) if config.scale else (None, None)
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


def _load_raw(config: DataConfig) -> RawSet:
    if config.name in BUILTIN_DATASETS:
        if config.target is not None:
            raise DataError(f"data set {config.name!r}: `target` is only for files; built-in sets "
                            f"have their own labels, remove target={config.target!r}")
        return _load_builtin(config)
    path = Path(config.name).expanduser()
    if path.suffix.lower() not in FILE_SUFFIXES:
        if path.is_file():
            raise DataError(f"data file {str(path)!r}: unsupported extension {path.suffix!r}; tables are read "
                            f"from {', '.join(FILE_SUFFIXES)}; for anything else (.npy, .pt, images) load it with "
                            "a function of your own (under search: data: {loader: 'module:function', ...})")
        raise DataError(f"unknown data set {config.name!r}{did_you_mean(config.name, BUILTIN_DATASETS)}: "
                        f"not a built-in ({', '.join(BUILTIN_DATASETS)}) nor a path ending in "
                        f"{', '.join(FILE_SUFFIXES)}")
    if not path.is_file():
        raise DataError(f"data file {str(path)!r} not found (resolved to {path.resolve()}); check the path "
                        f"(relative paths start from the working directory, {Path.cwd()})")
    return frame_to_raw(read_frame(path), config.target, source=f"data file {str(path)!r}")


def _load_builtin(config: DataConfig) -> RawSet:
    source = f"data set {config.name!r}"
    if config.name in SYNTHETIC_SETTINGS:
        make = make_madelon if config.name == "madelon" else make_guyon_madelon
        settings = config.synthetic_settings()
        x, y, informative = make(**settings, seed=config.seed)
        width = len(str(x.shape[1] - 1))
        names = tuple(f"f{j:0{width}d}" for j in range(x.shape[1]))
        classes = tuple(str(c) for c in range(settings.get("n_classes", 2)))
        return RawSet(x, y, names, classes, source, informative)
    from sklearn import datasets

    bunch = getattr(datasets, SKLEARN_LOADERS[config.name])()
    return RawSet(bunch.data, bunch.target, tuple(str(n) for n in bunch.feature_names),
                  tuple(str(n) for n in bunch.target_names), source)
