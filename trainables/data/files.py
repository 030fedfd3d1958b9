"""User data files: reading a CSV or Parquet file, and turning its frame into feature and label arrays."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from trainables.data.checks import DataError
from trainables.data.splits import RawSet
from trainables.suggest import did_you_mean

if TYPE_CHECKING:
    import pandas as pd

# pandas is imported inside the functions that use it: it adds most of a second to
# `import trainables`, which every trial worker pays.

__all__ = ["FILE_SUFFIXES", "frame_to_raw", "read_frame"]

#: File name endings read as data files (case-insensitive).
FILE_SUFFIXES = (".csv", ".parquet", ".pq")


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


def frame_to_raw(frame: pd.DataFrame, target: str | None, source: str) -> RawSet:
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
    return RawSet(features.to_numpy(dtype=np.float64), y, tuple(features.columns), class_names, source)


def _encode_labels(labels: pd.Series) -> tuple[np.ndarray, tuple[str, ...]]:
    """Class indices ``0..K-1`` in the order of the sorted unique labels, and their names."""
    import pandas as pd

    try:
        codes, uniques = pd.factorize(labels, sort=True)
    except TypeError:  # mixed types (say ints and strings) do not sort; compare them as text
        codes, uniques = pd.factorize(labels.astype(str), sort=True)
    return codes.astype(np.int64), tuple(str(u) for u in uniques)
