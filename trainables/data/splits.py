"""Splitting a data set: stratified train / val / test rows, train-only standardization, and the result.

:class:`DataSplits` holds the numpy arrays of every part and hands out tensors and batch
loaders on demand (:mod:`trainables.data.batches`), so all trials can share one copy; its
:class:`Preprocessing` (column order, fitted scaling, class names) is what a trained model
needs to score new raw data.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from trainables.data.checks import DataError
from trainables.suggest import did_you_mean

if TYPE_CHECKING:
    import torch
    from torch.utils.data import DataLoader, Sampler

    from trainables.data.config import DataConfig

__all__ = ["PARTS", "PREPROCESSING_FORMAT", "DataSplits", "Preprocessing", "RawSet", "check_classes",
           "fit_standardization", "split_indices"]

#: The parts of a split, in order.
PARTS = ("train", "val", "test")
#: Version of the layout :meth:`Preprocessing.to_dict` writes (a checkpoint's ``preprocessing.json``).
PREPROCESSING_FORMAT = 1


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
        import torch  # here, not at the top: loading data in a run's driver need not import torch

        x, y = (np.require(a, requirements="W") for a in self._arrays(part))
        return torch.as_tensor(x, dtype=torch.float32), torch.as_tensor(y, dtype=torch.int64)

    def loader(self, part: str, batch_size: int, *, shuffle: bool | None = None, seed: int = 0,
               drop_last: bool = False, sampler: Sampler[int] | None = None,
               device: str | torch.device | None = None) -> DataLoader:
        """``[features, labels]`` batches of ``part``, sliced from its tensors.

        A :class:`~trainables.data.batches.TensorBatches`: a shuffled part's batches are the
        ones ``DataLoader(TensorDataset(...), shuffle=True, generator=torch.Generator().manual_seed(seed))``
        yields, epoch for epoch, without its per-sample indexing and collation; the loader is a
        ``DataLoader`` all the same.

        Args:
            part: "train", "val" or "test".
            batch_size: Samples per batch (positive).
            shuffle: Reshuffle every epoch; by default only the train part is shuffled.
            seed: Seeds the loader's own ``torch.Generator``: seed and epoch fix the order
                (``loader.sampler.set_epoch(epoch)``, from 1, as the trainer calls it),
                independently of the global RNG, so a resumed run sees the same batches.
            drop_last: Drop a last, smaller batch.
            sampler: E.g. a ``DistributedSampler``; it then decides the order, so
                ``shuffle`` must not be True.
            device: Place the part there once (a GPU: the whole part when it fits, else
                pinned memory and non-blocking copies per batch); None keeps it on the CPU,
                sharing memory with the arrays.

        Raises:
            DataError: on an unknown part, a bad batch size, or ``shuffle=True`` with a sampler.
        """
        from trainables.data.batches import check_loader_args, tensor_loader

        check_loader_args(batch_size, shuffle, sampler)
        x, y = self.tensors(part)
        if shuffle is None:
            shuffle = part == "train" and sampler is None
        return tensor_loader(x, y, batch_size, shuffle=shuffle, seed=seed, drop_last=drop_last, sampler=sampler,
                             device=device)

    def merged_train(self) -> DataSplits:
        """These splits with the validation rows joined to the train rows, and no validation part.

        For a final fit once the settings are chosen (scikit-learn's ``refit``): the test part is
        kept as is, and so is :attr:`preprocessing` (its scaling was fitted on the train rows
        alone; the arrays here are already scaled by it).
        """
        empty = np.empty((0, self.num_features), dtype=np.asarray(self.x_val).dtype)
        return DataSplits(np.concatenate([self.x_train, self.x_val]), np.concatenate([self.y_train, self.y_val]),
                          empty, np.asarray(self.y_val)[:0], self.x_test, self.y_test, self.feature_names,
                          self.class_names, self.name, self.informative, self.preprocessing)

    def summary(self) -> dict[str, Any]:
        """Name, part sizes, number of features and classes (for logs and reports)."""
        sizes = {f"{part}_size": len(self._arrays(part)[1]) for part in PARTS}
        return {"name": self.name, **sizes, "num_features": self.num_features,
                "num_classes": self.num_classes}


class RawSet(NamedTuple):
    """A whole data set before splitting."""

    x: np.ndarray
    y: np.ndarray
    feature_names: tuple[str, ...]
    class_names: tuple[str, ...]
    source: str
    informative: tuple[int, ...] | None = None


def check_classes(raw: RawSet, parts: int) -> None:
    """Stratifying needs two classes, each with a sample for each of the ``parts``."""
    if len(raw.class_names) < 2:
        raise DataError(f"{raw.source}: found {len(raw.class_names)} class(es) {list(raw.class_names)}; "
                        "classification needs at least 2 distinct target values")
    counts = np.bincount(raw.y, minlength=len(raw.class_names))
    small = {raw.class_names[k]: int(n) for k, n in enumerate(counts) if n < parts}
    if small:
        raise DataError(f"{raw.source}: cannot stratify the split; class(es) {small} (name: count) have "
                        f"fewer than {parts} samples, one per part; add samples or merge rare classes")


def split_indices(raw: RawSet, config: DataConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
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


def fit_standardization(x_train: np.ndarray) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-feature mean and scale of the train part only, so nothing of val / test leaks into them."""
    from sklearn.preprocessing import StandardScaler

    scaler = StandardScaler().fit(x_train)  # its scale_ is 1 for a constant feature, never 0
    return tuple(float(v) for v in scaler.mean_), tuple(float(v) for v in scaler.scale_)
