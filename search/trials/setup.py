"""What every trial gets besides its config, and the check on what its trainable reports."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from search.spec.errors import did_you_mean
from search.trials.resources import TrialPlan

__all__ = ["TrialSetup", "MetricNotReportedError", "checked_report", "plain_metrics"]


@dataclass(frozen=True)
class TrialSetup:
    """What every trial needs besides its config; shipped once through the object store."""

    trainable_ref: str
    search_paths: tuple[str, ...]
    data_ref: Any  # ray.ObjectRef of the pre-loaded DataSplits, or None
    plan: TrialPlan
    experiment_path: str
    checkpoint_num_to_keep: int | None
    checkpoint_score: str
    checkpoint_mode: str
    required_metrics: tuple[str, ...] = ()  # what the searcher and scheduler read from every report

    @property
    def builtin(self) -> bool:
        """The trainable is one of search's own (its checkpoints are ``trainables`` checkpoints we may check)."""
        from search.spec.registry import TRAINABLES

        return self.trainable_ref in TRAINABLES.values()

    def load_data(self) -> Any:
        if self.data_ref is None:
            return None
        import ray

        return ray.get(self.data_ref)


class MetricNotReportedError(KeyError):
    """The trainable's reports lack a metric the spec's search needs."""

    def __str__(self) -> str:
        return str(self.args[0])


def checked_report(report: Any, required: tuple[str, ...], trainable: str) -> Any:
    """Wrap ``report`` to check the first report has every required metric.

    Without this, Tune fails the whole experiment with its own traceback when a
    trainable (one that does not declare ``metrics``) never reports the spec's metric.
    """
    checked = False

    def wrapper(metrics: Mapping[str, Any], checkpoint_dir: str | Path | None = None) -> None:
        nonlocal checked
        metrics = plain_metrics(metrics)
        if not checked:
            missing = [m for m in required if m not in metrics]
            if missing:
                hints = "".join(did_you_mean(m, metrics) for m in missing)
                raise MetricNotReportedError(
                    f"trainable {trainable} reported {sorted(metrics)} but the spec needs {missing}{hints}: "
                    "fix the spec's metric (or checkpoint.score), or report it (ASHA also needs 'epoch')")
            checked = True
        report(metrics, checkpoint_dir)

    return wrapper


def plain_metrics(metrics: Mapping[str, Any]) -> dict[str, Any]:
    """The metrics with every real number as a Python ``int`` or ``float``.

    ``loss.cpu().numpy()`` is an ``np.float32`` and ``loss.detach()`` a 0-d tensor: the searcher, the
    scheduler and the progress lines read plain numbers (they dropped these, so Optuna was told the
    last epoch's value and cut trials reached it with no values). Anything else is left as it is.
    """
    import numbers

    out: dict[str, Any] = {}
    for key, value in metrics.items():
        if isinstance(value, bool) or value is None or isinstance(value, (str, int, float)):
            out[key] = value
        elif isinstance(value, numbers.Integral):
            out[key] = int(value)
        elif isinstance(value, numbers.Real):
            out[key] = float(value)
        elif hasattr(value, "item") and getattr(value, "ndim", None) == 0 or (
                hasattr(value, "numel") and callable(value.numel) and value.numel() == 1):
            item = value.item()  # numpy 0-d arrays and scalars, torch 0-d and one-element tensors
            out[key] = item if isinstance(item, (bool, int, float)) else value
        else:
            out[key] = value
    return out
