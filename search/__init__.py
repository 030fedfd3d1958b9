"""search: hyperparameter search for PyTorch models on Ray Tune, Ray Train and Optuna.

``python -m search validate|run space.yaml``. The spec is :mod:`search.spec`; the
run is :mod:`search.engine.run`; an experiment folder is read by :mod:`search.results`.
The README's "How the code is laid out" names every room. This package owns every
ray / optuna / pydantic import; :mod:`trainables` stays free of them.
"""

__all__ = ["__version__"]
__version__ = "0.1.0"

