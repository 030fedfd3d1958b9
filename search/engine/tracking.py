"""MLflow, through Ray's own integration (``MLflowLoggerCallback``): one MLflow run per trial.

Ray's callback logs each trial's config as parameters and every reported result as
metrics (step: the training iteration, i.e. the epoch). Added here: a default store inside
the experiment folder (``mlflow.db``, SQLite, with artifacts under ``mlartifacts/``: MLflow 3
refuses its old file store), created with that artifact location before Ray's callback
looks the experiment up (else artifacts would land in the current folder's ``mlruns/``),
and the trial's best checkpoint as the ``best_checkpoint`` artifact instead of Ray's
option of uploading the whole trial folder.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ray.air.integrations.mlflow import MLflowLoggerCallback

from search.spec.models import MLflowSpec

__all__ = ["MLflowTracking", "MLFLOW_DB", "MLFLOW_ARTIFACTS"]

#: The default store, in the experiment folder.
MLFLOW_DB = "mlflow.db"
MLFLOW_ARTIFACTS = "mlartifacts"


class MLflowTracking(MLflowLoggerCallback):
    """Ray's MLflow logger with the experiment folder as the default store and the best checkpoint logged."""

    def __init__(self, options: MLflowSpec, folder: Path, name: str) -> None:
        self._default_store = options.tracking_uri is None
        self._artifact_location = (folder / MLFLOW_ARTIFACTS).as_uri()
        self.log_checkpoint = options.log_checkpoint
        super().__init__(options.tracking_uri or f"sqlite:///{folder / MLFLOW_DB}",
                         experiment_name=options.experiment_name or name, tags=dict(options.tags), save_artifact=False)
        self._folder = folder

    def setup(self, *args: Any, **kwargs: Any) -> None:
        if self._default_store:
            from mlflow.tracking import MlflowClient

            self._folder.mkdir(parents=True, exist_ok=True)
            client = MlflowClient(self.tracking_uri)
            if client.get_experiment_by_name(self.experiment_name) is None:
                client.create_experiment(self.experiment_name, artifact_location=self._artifact_location)
        super().setup(*args, **kwargs)

    def log_trial_end(self, trial: Any, failed: bool = False) -> None:
        if self.log_checkpoint and trial in self._trial_runs:
            self._log_best_checkpoint(trial)
        super().log_trial_end(trial, failed)

    def _log_best_checkpoint(self, trial: Any) -> None:
        from mlflow.tracking import MlflowClient

        manager = trial.run_metadata.checkpoint_manager
        best = manager.best_checkpoint_result if manager is not None else None
        if best is None:
            return
        with best.checkpoint.as_directory() as folder:  # a remote checkpoint is downloaded for the upload
            MlflowClient(self.tracking_uri).log_artifacts(self._trial_runs[trial], folder, artifact_path="best_checkpoint")
