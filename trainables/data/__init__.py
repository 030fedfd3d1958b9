"""Tabular classification data: built-in sets, synthetic Madelon sets and user files.

:func:`load_data` turns a :class:`DataConfig` (or a mapping, or a name) into :class:`DataSplits`:
stratified, seeded train / val / test numpy arrays, standardized with train statistics only.
``DataSplits`` hands out tensors and loaders on demand, so all trials can share one copy, and
carries its :class:`Preprocessing` (column order, fitted scaling, class names), which a trained
model needs to score new raw data.

One module per concern:

- :mod:`~trainables.data.checks`: :class:`DataError` and the type checks shared by the rest;
- :mod:`~trainables.data.config`: :class:`DataConfig`, the built-in sets, every problem at once;
- :mod:`~trainables.data.synthetic`: :func:`make_madelon`, :func:`make_guyon_madelon`, their range checks;
- :mod:`~trainables.data.files`: reading a CSV / Parquet file into feature and label arrays;
- :mod:`~trainables.data.splits`: :class:`Preprocessing`, :class:`DataSplits`, split rows, standardization;
- :mod:`~trainables.data.batches`: batches sliced from tensors placed once (``DataSplits.loader``);
- :mod:`~trainables.data.load`: :func:`load_data`, which ties them together.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from trainables.data.checks import DataError
from trainables.data.config import BUILTIN_DATASETS, BUILTIN_TARGET, DataConfig
from trainables.data.files import FILE_SUFFIXES, read_frame
from trainables.data.load import load_data
from trainables.data.splits import PARTS, PREPROCESSING_FORMAT, DataSplits, Preprocessing
from trainables.data.synthetic import make_guyon_madelon, make_madelon

__all__ = ["BUILTIN_DATASETS", "BUILTIN_TARGET", "FILE_SUFFIXES", "PARTS", "PREPROCESSING_FORMAT", "DataConfig",
           "DataError", "DataSplits", "EpochShuffle", "Preprocessing", "TensorBatches", "load_data",
           "make_guyon_madelon", "make_madelon", "read_frame"]

if TYPE_CHECKING:
    from trainables.data.batches import EpochShuffle, TensorBatches


def __getattr__(name: str) -> Any:
    """``EpochShuffle`` and ``TensorBatches`` on first use (PEP 562): they subclass torch's classes, and
    loading data (a run's driver does, before Ray starts) need not import torch."""
    if name in ("EpochShuffle", "TensorBatches"):
        from trainables.data import batches

        return getattr(batches, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
