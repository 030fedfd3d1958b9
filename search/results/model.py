"""The trained model: the picked trial's refit (else its best checkpoint), or a trial's own (torch imported on use)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from search.experiment import ExperimentLike
from search.results.folder import ResultsError
from search.results.table import open_results, model_checkpoint

__all__ = ["load_model"]


def load_model(experiment: ExperimentLike, trial_id: str | None = None, *,
               model: Any = None, map_location: str = "cpu") -> Any:
    """The trained model, in eval mode: by default the picked trial's, a trial's own with ``trial_id``.

    Default: the model the run refitted on train + validation with the picked trial's
    configuration (``refit/checkpoint``, see :func:`~search.results.table.model_checkpoint`), or,
    without a refit, the picked trial's best checkpoint. ``trial_id``: that trial's own best
    checkpoint, as the search trained it. A built-in feature-selection model is rebuilt from the checkpoint's config; for any
    other model, pass ``model`` (an instance of the same architecture) to load into.

    Raises:
        ResultsError: no such trial, its checkpoint is missing, or the model cannot be built.
    """
    from trainables.checkpoint import CheckpointError, check_compatible, read_checkpoint

    results = open_results(experiment)
    _, path, _ = model_checkpoint(results, trial_id)
    try:
        data = read_checkpoint(path, map_location=map_location)
        model = model if model is not None else _build_model(data, path)
        check_compatible(model, data["model"], path)
    except CheckpointError as exc:
        raise ResultsError(str(exc)) from exc
    model.load_state_dict(data["model"])
    return model.eval()


def _build_model(data: dict[str, Any], path: Path) -> Any:
    from trainables.feature_selection import FeatureSelectionModel

    kind = data.get("model_class")
    if kind != FeatureSelectionModel.__qualname__:
        raise ResultsError(f"checkpoint {path} holds a {kind}; build one and pass it as load_model(..., model=...)")
    state, config = data["model"], data.get("config") or {}
    weights = [v for k, v in state.items() if k.startswith("classifier.") and k.endswith(".weight")]
    return FeatureSelectionModel(int(state["gates.mu"].shape[0]), int(weights[-1].shape[0]),
                                 tuple(config.get("hidden_sizes", (64,))), float(config.get("dropout", 0.0)),
                                 float(config.get("gate_sigma", 0.5)))
