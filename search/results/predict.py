"""A trial's trained model applied to new raw data: the saved preprocessing, then the network.

The built-in trainable saves, beside each checkpoint, how raw rows became the model's inputs
(``preprocessing.json``: column order, the scaling fitted on the train part, class names,
the target column). :func:`load_predictor` reads it with the model; :class:`Predictor`
matches a frame's columns by name, scales them and turns the output units into labels::

    from search.results import load_predictor

    predictor = load_predictor("results/quickstart")      # the best trial
    labels = predictor.predict(frame)                     # a Series of class names
    proba = predictor.predict_proba(frame)                # one column per class name

torch is imported when a model is loaded, never at import time.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from search.experiment import ExperimentLike
from search.results.folder import ResultsError
from search.results.model import load_model
from search.results.table import ExperimentResults, model_checkpoint, open_results
from search.spec.errors import did_you_mean
from trainables.files import PREPROCESSING_FILE, SELECTION_FILE

if TYPE_CHECKING:
    from trainables.data import Preprocessing

__all__ = ["InputDataError", "Predictor", "load_predictor", "read_table", "accuracy", "PREDICTION_COLUMN",
           "PROBA_PREFIX", "TABLE_SUFFIXES"]

#: Column of the predicted label in :meth:`Predictor.table` (and ``python -m search predict``).
PREDICTION_COLUMN = "prediction"
#: Prefix of the per-class probability columns there: ``proba_<class name>``.
PROBA_PREFIX = "proba_"
#: Rows per forward pass: bounds the memory of scoring a large file.
_BATCH_ROWS = 65_536
#: File endings :func:`read_table` reads.
TABLE_SUFFIXES = {".csv": "CSV", ".parquet": "Parquet", ".pq": "Parquet"}


class InputDataError(ResultsError):
    """Data given to a :class:`Predictor` does not fit the model's inputs; the message names the columns."""


def _listed(names: list[str], limit: int = 10) -> str:
    more = f" (+{len(names) - limit} more)" if len(names) > limit else ""
    return ", ".join(repr(n) for n in names[:limit]) + more


@dataclass(frozen=True, eq=False)
class Predictor:
    """A trained model and the preprocessing it was trained with.

    Attributes:
        model: The network in eval mode (``torch.nn.Module``); it maps scaled inputs to logits.
        preprocessing: Feature order, fitted scaling, class names, target column
            (:class:`trainables.data.Preprocessing`).
        trial_id: The trial the model comes from.
        checkpoint: Its checkpoint folder.
        selected_features: The features whose gates are open (from ``selection.json``), or
            None when the checkpoint has no selection. Closed gates zero their feature, but
            every feature column must still be given.
        refit: The model is the picked trial's configuration refitted on train + validation
            (``refit/checkpoint``), not the trial's own checkpoint.
    """

    model: Any
    preprocessing: Preprocessing
    trial_id: str
    checkpoint: Path
    selected_features: tuple[str, ...] | None = None
    refit: bool = False

    @property
    def feature_names(self) -> tuple[str, ...]:
        """The input columns, in training order (the order a numpy array must have)."""
        return self.preprocessing.feature_names

    @property
    def class_names(self) -> tuple[str, ...]:
        """The labels, in the order of the model's output units."""
        return self.preprocessing.class_names

    @property
    def target(self) -> str | None:
        """The label column (ignored in input frames, scored against when present): the training
        file's, ``"target"`` for a built-in set; None in checkpoints saved before built-ins had one."""
        return self.preprocessing.target

    def inputs(self, x: pd.DataFrame | np.ndarray) -> np.ndarray:
        """The model's float32 inputs for raw rows ``x``: columns in training order, scaled.

        Args:
            x: A DataFrame with one column per feature, matched by name in any order (the
                target column, if present, is ignored), or an array of shape
                ``(n, len(feature_names))`` in training order.

        Raises:
            InputDataError: missing, extra, non-numeric or non-finite columns, or an array
                of the wrong shape; the message names them.
        """
        raw = self._frame_values(x) if isinstance(x, pd.DataFrame) else self._array_values(x)
        return self.preprocessing.transform(raw)

    def predict_proba(self, x: pd.DataFrame | np.ndarray) -> pd.DataFrame:
        """Class probabilities (softmax of the logits): one column per class name, ``x``'s index."""
        return self._scores(x)[1]

    def predict(self, x: pd.DataFrame | np.ndarray) -> pd.Series:
        """The predicted label of each row (the class of the largest logit), named ``prediction``, ``x``'s index."""
        return self._scores(x)[0]

    def table(self, x: pd.DataFrame | np.ndarray) -> pd.DataFrame:
        """``prediction``, then ``proba_<class>`` per class, in ``x``'s row order (the ``predict`` command's output)."""
        labels, proba = self._scores(x)
        return pd.concat([labels, proba.add_prefix(PROBA_PREFIX)], axis=1)

    def score(self, x: pd.DataFrame | np.ndarray, y: Any = None) -> tuple[float, int]:
        """Accuracy against labels ``y`` (default: the frame's target column), and how many rows had a label.

        Rows without a label (NaN) are left out; the accuracy is NaN when none has one.

        Raises:
            InputDataError: no ``y`` and no target column in ``x``, or ``y`` of another length.
        """
        if y is None:
            if not (isinstance(x, pd.DataFrame) and self.target is not None and self.target in x.columns):
                with_target = f", or a frame with the target column {self.target!r}" if self.target else ""
                raise InputDataError(f"no labels to score against: pass y{with_target}")
            y = x[self.target]
        if len(y) != len(x):
            raise InputDataError(f"{len(y)} labels for {len(x)} rows")
        return accuracy(self.predict(x), y)

    # ------------------------------------------------------------------ internals
    def _scores(self, x: pd.DataFrame | np.ndarray) -> tuple[pd.Series, pd.DataFrame]:
        import torch

        inputs = self.inputs(x)
        index = x.index if isinstance(x, pd.DataFrame) else pd.RangeIndex(len(inputs))
        device = next(iter(self.model.parameters()), torch.empty(0)).device
        with torch.no_grad():
            batches = [self.model(torch.from_numpy(inputs[start:start + _BATCH_ROWS]).to(device)).cpu()
                       for start in range(0, len(inputs), _BATCH_ROWS)]
        logits = torch.cat(batches) if batches else torch.empty(0, len(self.class_names))
        if logits.ndim != 2 or logits.shape[1] != len(self.class_names):
            raise ResultsError(f"the model of trial {self.trial_id} gives outputs of shape {tuple(logits.shape)} for "
                               f"{len(self.class_names)} classes in {self.checkpoint / PREPROCESSING_FILE}")
        proba = torch.softmax(logits.double(), dim=1).numpy()
        best = logits.argmax(dim=1).numpy()
        names = np.array(self.class_names, dtype=object)
        return (pd.Series(names[best], index=index, name=PREDICTION_COLUMN),  # pandas' own text dtype
                pd.DataFrame(proba, index=index, columns=list(self.class_names)))

    def _frame_values(self, frame: pd.DataFrame) -> np.ndarray:
        columns = [str(c) for c in frame.columns]  # as training named them
        frame = frame.set_axis(columns, axis=1)
        doubled = sorted(c for c, n in Counter(columns).items() if n > 1)
        wanted = set(self.feature_names)
        extra = [c for c in columns if c not in wanted and c != self.target]
        missing = [f for f in self.feature_names if f not in columns]
        problems = []
        if doubled:
            problems.append(f"columns named twice: {_listed(doubled)}")
        if missing:
            problems.append(f"{len(missing)} feature column(s) missing: {_listed(missing)}")
        if extra:
            hints = "".join(did_you_mean(c, missing) for c in extra[:3]) if missing else ""
            index = " (an index saved by to_csv: write it with index=False)" if any(
                c.startswith("Unnamed: ") for c in extra) else ""
            problems.append(f"{len(extra)} column(s) the model was not trained on: {_listed(extra)}{hints}{index}; "
                            "drop them")
        if problems:
            raise InputDataError(self._problem("; ".join(problems)))
        features = frame[list(self.feature_names)]
        # The rule training applied to its file (trainables.data): numbers, bools included.
        non_numeric = [c for c in features.columns if not pd.api.types.is_numeric_dtype(features[c])]
        if non_numeric:
            raise InputDataError(self._problem(f"non-numeric feature column(s) {_listed(non_numeric)}: "
                                               "encode them as numbers, as in the training data"))
        return self._finite(features.to_numpy(dtype=np.float64))

    def _array_values(self, x: Any) -> np.ndarray:
        try:
            values = np.asarray(x, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise InputDataError(self._problem(f"cannot read the array as numbers ({exc})")) from exc
        if values.ndim != 2 or values.shape[1] != len(self.feature_names):
            raise InputDataError(self._problem(
                f"an array of shape {values.shape} was given; expected (n_rows, {len(self.feature_names)}), "
                f"one column per feature in training order: {_listed(list(self.feature_names), 5)} "
                "(or pass a DataFrame with named columns)"))
        return self._finite(values)

    def _finite(self, values: np.ndarray) -> np.ndarray:
        bad = ~np.isfinite(values)
        if bad.any():
            columns = [self.feature_names[j] for j in np.flatnonzero(bad.any(axis=0))]
            raise InputDataError(self._problem(f"{int(bad.any(axis=1).sum())} of {len(values)} rows have missing "
                                               f"(NaN) or infinite values, in columns {_listed(columns)}: drop or "
                                               "impute them"))
        return values

    def _problem(self, what: str) -> str:
        return f"input data for trial {self.trial_id}'s model: {what}"


def accuracy(predicted: Any, labels: Any) -> tuple[float, int]:
    """The fraction of rows whose predicted class name equals the label, and how many rows had a label.

    Labels are compared as the training set named its classes (as text); rows without one
    (NaN) are left out, and the accuracy is NaN when none has one.
    """
    labels = pd.Series(np.asarray(labels, dtype=object))
    known = labels.notna().to_numpy()
    if not known.any():
        return float("nan"), 0
    wanted = np.array([_label_text(v) for v in labels[known]], dtype=object)
    return float(np.mean(np.asarray(predicted, dtype=object)[known] == wanted)), int(known.sum())


def _label_text(value: Any) -> str:
    """A label as the training set named it: ``str`` of the value, ``1.0`` read back as ``1`` when that is the name.

    pandas reads an integer column holding a missing value as floats; training saw integers.
    """
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return str(int(value))
    return str(value.item() if isinstance(value, np.generic) else value)


def read_table(path: Path) -> pd.DataFrame:
    """A CSV or Parquet file of rows to score.

    Raises:
        ResultsError: the file is missing, has another ending, or cannot be read (names it).
    """
    path = Path(path).expanduser()
    kind = TABLE_SUFFIXES.get(path.suffix.lower())
    if kind is None:
        raise ResultsError(f"data file {str(path)!r}: unsupported ending {path.suffix or '(none)'!r}; "
                           f"give a {', '.join(TABLE_SUFFIXES)} file")
    if not path.is_file():
        raise ResultsError(f"data file {str(path)!r} not found (resolved to {path.resolve()})")
    from trainables.data import DataError, read_frame

    try:
        return read_frame(path)
    except DataError as exc:
        raise ResultsError(str(exc)) from exc


def load_predictor(experiment: ExperimentLike, trial_id: str | None = None, *,
                   model: Any = None, map_location: str = "cpu") -> Predictor:
    """A trained model with its saved preprocessing: by default the picked trial's, a trial's own with ``trial_id``.

    Args:
        experiment: An experiment folder, a name under ``./results/``, or opened results.
        trial_id: A trial, whose own best checkpoint is used; default the picked trial, through
            the model the run refitted on train + validation when there is one
            (:attr:`Predictor.refit`), else its best checkpoint.
        model: For a model other than the built-in one, an instance to load the weights
            into (as :func:`~search.results.model.load_model`).
        map_location: Where the weights go (``"cpu"``, ``"cuda"``).

    Raises:
        ResultsError: no such trial, its checkpoint is missing, or it has no readable
            ``preprocessing.json`` (a user trainable, or an experiment run before it was saved).
    """
    results = open_results(experiment)
    trial_id, checkpoint, refit = model_checkpoint(results, trial_id)
    preprocessing = _read_preprocessing(checkpoint, trial_id)
    network = load_model(results, None if refit else trial_id, model=model, map_location=map_location)
    gates = getattr(getattr(network, "gates", None), "mu", None)
    if gates is not None and int(gates.shape[0]) != len(preprocessing.feature_names):
        raise ResultsError(f"trial {trial_id}: the model takes {int(gates.shape[0])} features, but "
                           f"{checkpoint / PREPROCESSING_FILE} lists {len(preprocessing.feature_names)}")
    return Predictor(network, preprocessing, trial_id, checkpoint, _read_selected(checkpoint), refit)


def _read_preprocessing(checkpoint: Path, trial_id: str) -> Preprocessing:
    from trainables.data import DataError, Preprocessing

    file = checkpoint / PREPROCESSING_FILE
    if not file.is_file():
        raise ResultsError(
            f"trial {trial_id}'s checkpoint {checkpoint} has no {PREPROCESSING_FILE} (the feature order, scaling and "
            "class names the model was trained with): its trainable does not save it (a user trainable, or an "
            "experiment run before the built-in one did). Re-run the search with the built-in feature_selection "
            "trainable, or load the network with load_model() and prepare its inputs yourself")
    try:
        return Preprocessing.from_dict(json.loads(file.read_text()))
    except (OSError, json.JSONDecodeError, DataError) as exc:
        raise ResultsError(f"trial {trial_id}: {file} is damaged ({exc}); re-run the trial, or restore the file "
                           "from a copy of the experiment") from exc


def _read_selected(checkpoint: Path) -> tuple[str, ...] | None:
    try:
        return tuple(json.loads((checkpoint / SELECTION_FILE).read_text())["selected"])
    except (OSError, json.JSONDecodeError, KeyError, TypeError):
        return None  # no gates, or an unreadable selection: predicting does not need it
