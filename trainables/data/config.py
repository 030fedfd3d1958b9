"""Which data to load and how to split it: :class:`DataConfig`, checked once, every problem at once."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from trainables.data.checks import DataError, is_int, is_real, type_problems
from trainables.data.synthetic import (
    SYNTHETIC_FIELDS,
    SYNTHETIC_SETTINGS,
    guyon_range_problems,
    madelon_range_problems,
)
from trainables.suggest import did_you_mean

__all__ = ["BUILTIN_DATASETS", "BUILTIN_TARGET", "SKLEARN_LOADERS", "DataConfig"]

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
#: The scikit-learn function that returns each bundled set.
SKLEARN_LOADERS = {"breast_cancer": "load_breast_cancer", "digits": "load_digits", "wine": "load_wine"}


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
        defaults = SYNTHETIC_SETTINGS.get(self.name, {})
        return {key: default if getattr(self, key) is None else getattr(self, key)
                for key, default in defaults.items()}


def _config_problems(config: DataConfig) -> list[str]:
    """Every type and range problem of ``config``, as ``field=value: rule`` strings."""
    problems = type_problems({f.name: getattr(config, f.name) for f in fields(config)}, none_allowed=SYNTHETIC_FIELDS)
    if not isinstance(config.name, str) or not config.name:
        problems.append(f"name={config.name!r}: must be a non-empty string (a built-in name or a file path)")
    if config.target is not None and not isinstance(config.target, str):
        problems.append(f"target={config.target!r}: must be a column name (a string) or None")
    if not isinstance(config.scale, bool):
        problems.append(f"scale={config.scale!r}: must be true or false")
    if is_int(config.seed) and config.seed < 0:
        problems.append(f"seed={config.seed}: must be >= 0 (numpy and scikit-learn reject negative seeds)")
    val, test = config.val_fraction, config.test_fraction
    if is_real(val) and not 0 < val < 1:
        problems.append(f"val_fraction={val!r}: must be in (0, 1); a validation part is required")
    if is_real(test) and not 0 <= test < 1:
        problems.append(f"test_fraction={test!r}: must be in [0, 1) (0 means no test part)")
    if is_real(val) and is_real(test) and val + test >= 1:
        problems.append(f"val_fraction + test_fraction = {val + test:g}: must be below 1 "
                        "to leave training data")
    return problems + _synthetic_problems(config, checked=not problems)


def _synthetic_problems(config: DataConfig, checked: bool) -> list[str]:
    """Synthetic settings given for a data set without them, and, if the types and the rest were
    ``checked`` fine, the generator's range checks, so that validating a spec catches them before a run."""
    own = SYNTHETIC_SETTINGS.get(config.name) if isinstance(config.name, str) else None
    problems = []
    for key in SYNTHETIC_FIELDS:
        value = getattr(config, key)
        if value is None or key in (own or {}):
            continue
        problems.append(f"{key}={value!r}: not a setting of {config.name!r}; its settings are {', '.join(own)}"
                        if own is not None else f"{key}={value!r}: only for the synthetic sets "
                        f"({', '.join(SYNTHETIC_SETTINGS)}), not {config.name!r}; remove it")
    if own is None or not checked:
        return problems
    if config.name == "madelon":
        return problems + madelon_range_problems(**config.synthetic_settings())
    return problems + guyon_range_problems(**config.synthetic_settings(), seed=config.seed)
