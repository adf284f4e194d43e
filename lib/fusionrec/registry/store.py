"""Connect to the MLflow tracking and registry store named by the configuration.

The embedded default is SQLite in the working directory (MLflow 3 refuses a plain
file store for the model registry); a tracking server URI can be given in conf or
with ``MLFLOW_TRACKING_URI``.
"""

from __future__ import annotations

from pathlib import Path

import mlflow
from mlflow.tracking import MlflowClient

from fusionrec.config import MlflowConfig
from fusionrec.errors import UserError

__all__ = ["configure_mlflow", "StoreError"]


class StoreError(UserError, RuntimeError):
    """The MLflow store cannot be reached or used; the message names the URI."""


def _ensure_sqlite_parent(uri: str | None) -> None:
    if uri and uri.startswith("sqlite:///"):
        Path(uri[len("sqlite:///"):]).parent.mkdir(parents=True, exist_ok=True)


def configure_mlflow(cfg: MlflowConfig) -> MlflowClient:
    """Point MLflow at the configured store, make sure the experiment exists, return a client.

    :raises StoreError: the store cannot be reached (one line naming the URI and the cause).
    """
    _ensure_sqlite_parent(cfg.tracking_uri)
    _ensure_sqlite_parent(cfg.registry_uri)
    mlflow.set_tracking_uri(cfg.tracking_uri)
    mlflow.set_registry_uri(cfg.registry_uri or cfg.tracking_uri)
    client = MlflowClient(tracking_uri=cfg.tracking_uri, registry_uri=cfg.registry_uri or cfg.tracking_uri)
    try:
        experiment = client.get_experiment_by_name(cfg.experiment)
        if experiment is None:
            location = Path(cfg.artifact_location).as_uri() if cfg.artifact_location and "://" not in cfg.artifact_location else cfg.artifact_location
            client.create_experiment(cfg.experiment, artifact_location=location)
        mlflow.set_experiment(cfg.experiment)
    except Exception as exc:  # MLflow raises many types for an unreachable store
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise StoreError(f"mlflow store {cfg.tracking_uri}: {first_line}") from exc
    return client
