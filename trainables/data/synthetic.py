"""Synthetic Madelon sets: scikit-learn's hypercube recipe and Guyon's NIPS 2003 one, with their range checks.

Both are seeded, so the same settings give the same set in every trial process.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from trainables.data.checks import DataError, type_problems

__all__ = ["SYNTHETIC_FIELDS", "SYNTHETIC_SETTINGS", "guyon_range_problems", "madelon_range_problems",
           "make_guyon_madelon", "make_madelon"]

#: The settings of each synthetic set and their defaults; a DataConfig field left at None takes
#: the default of its set, and a field set for a data set that has no such setting is an error.
SYNTHETIC_SETTINGS: dict[str, dict[str, Any]] = {
    "madelon": {"n_samples": 1000, "n_features": 50, "n_informative": 5, "n_classes": 2, "class_sep": 1.0},
    "madelon_guyon": {"n_samples": 2000, "n_informative": 5, "n_redundant": 15, "n_probes": 480,
                      "n_clusters": 32, "class_sep": 2.0, "flip_y": 0.01},
}
SYNTHETIC_FIELDS = tuple(dict.fromkeys(key for table in SYNTHETIC_SETTINGS.values() for key in table))


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
    problems = type_problems(settings)
    problems = problems or madelon_range_problems(n_samples, n_features, n_informative, n_classes, class_sep)
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


def madelon_range_problems(n_samples: int, n_features: int, n_informative: int, n_classes: int,
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
    problems = type_problems(settings) or guyon_range_problems(**settings)
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


def guyon_range_problems(n_samples: int, n_informative: int, n_redundant: int, n_probes: int, n_clusters: int,
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
