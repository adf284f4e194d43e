"""MLflow run helpers: one run per job, nested under a parent run for a full pipeline.

Every run carries the resolved configuration as params, the git commit and the
versions of the lane (Python, Spark, Delta, Spark NLP, MLflow) as tags, the Delta
tables it read as dataset inputs pinned to their table versions, and the run report
and evaluation outputs as metrics and artifacts.
"""

from __future__ import annotations

import json
import math
import platform
import re
import subprocess
import tempfile
from contextlib import contextmanager
from importlib import metadata
from pathlib import Path
from typing import Any, Iterator

import mlflow
from mlflow.data.delta_dataset_source import DeltaDatasetSource
from mlflow.data.meta_dataset import MetaDataset

from fusionrec.config import Config
from fusionrec.registry.store import configure_mlflow
from fusionrec.runlog import RunReport

__all__ = ["LANE_PACKAGES", "PROJECT_DIR", "log_dataframe_parquet", "log_delta_inputs", "log_evaluation",
           "log_report", "metric_name", "tracked_run"]

PROJECT_DIR = Path(__file__).resolve().parents[3]
#: Distributions whose versions identify the lane a run was made with.
LANE_PACKAGES = ("pyspark", "delta-spark", "spark-nlp", "mlflow", "numpy", "pandas", "onnxruntime")
#: MLflow limits (param values, batch size) and the characters allowed in metric names.
_MAX_PARAM_LENGTH = 6000
_PARAMS_PER_BATCH = 100
_METRIC_NAME_UNSAFE = re.compile(r"[^\w.\- /]")


def git_commit(project_dir: Path = PROJECT_DIR) -> str | None:
    """The commit the code was run from (with ``-dirty`` for local changes); None outside git."""
    try:
        commit = subprocess.run(["git", "-C", str(project_dir), "rev-parse", "HEAD"], capture_output=True,
                                text=True, timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(project_dir), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return f"{commit}-dirty" if dirty else commit


def lane_versions() -> dict[str, str]:
    """``{"lane.<package>": version}`` for the lane packages and Python."""
    versions = {"lane.python": platform.python_version()}
    for package in LANE_PACKAGES:
        try:
            versions[f"lane.{package}"] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[f"lane.{package}"] = "absent"
    return versions


def run_tags(cfg: Config, command: str) -> dict[str, str]:
    tags = {"fusionrec.command": command, "fusionrec.mode": cfg.mode, **lane_versions()}
    commit = git_commit()
    if commit:
        tags["mlflow.source.git.commit"] = commit
        tags["git.commit"] = commit
    return tags


def config_params(cfg: Config) -> dict[str, str]:
    """The resolved configuration as MLflow params (``section.key`` -> string, length-capped)."""
    params = {}
    for key, value in cfg.flat().items():
        text = json.dumps(value) if isinstance(value, (list, dict)) else str(value)
        params[key] = text[:_MAX_PARAM_LENGTH]
    return params


def metric_name(*parts: str) -> str:
    """A metric name MLflow accepts: ``ndcg@10`` -> ``ndcg_at_10``, other symbols -> ``_``."""
    name = ".".join(p for p in parts if p)
    return _METRIC_NAME_UNSAFE.sub("_", name.replace("@", "_at_"))


@contextmanager
def tracked_run(cfg: Config, command: str, *, nested: bool = False,
                extra_tags: dict[str, str] | None = None) -> Iterator[mlflow.ActiveRun]:
    """Start a run for ``command`` (nested in the active run if ``nested``) with params and tags.

    The run ends FAILED if the body raises. ``configure_mlflow`` raises
    :class:`fusionrec.registry.store.StoreError` before anything is written when the store
    cannot be reached.
    """
    configure_mlflow(cfg.mlflow)
    tags = {**run_tags(cfg, command), **(extra_tags or {})}
    # Inside a pipeline's run, a job's run is always a child of it.
    nested = nested or mlflow.active_run() is not None
    with mlflow.start_run(run_name=command, nested=nested, tags=tags) as run:
        items = list(config_params(cfg).items())
        for start in range(0, len(items), _PARAMS_PER_BATCH):
            mlflow.log_params(dict(items[start:start + _PARAMS_PER_BATCH]))
        yield run


def log_delta_inputs(tables: list[Any], context: str) -> None:
    """Record Delta tables read by the run as dataset inputs, each pinned to its version.

    ``tables`` holds objects with ``layer``, ``name``, ``path`` and ``version`` (see
    :class:`fusionrec.registry.build.TableInput`). The dataset's digest is its path and
    version, so no Spark job is run to fingerprint the data.
    """
    for table in tables:
        source = DeltaDatasetSource(path=table.path, delta_table_version=int(table.version))
        dataset = MetaDataset(source=source, name=f"{table.layer}.{table.name}@v{table.version}",
                              digest=f"v{table.version}")
        # The version is also a tag: MLflow's Delta source omits a version 0 from its JSON.
        mlflow.log_input(dataset, context=context, tags={"delta_version": str(table.version)})
        mlflow.set_tag(f"delta.{table.layer}.{table.name}.version", str(table.version))


def log_report(report: RunReport, run_id: str | None = None, artifact_file: str = "run_report.json") -> None:
    """The run report as an artifact; numeric stage counts and elapsed times as metrics.

    ``run_id``: a run that has already ended (the active run when None).
    """
    metrics: dict[str, float] = {}
    for record in report.stages:
        metrics[metric_name("stage", record.name, "elapsed_s")] = float(record.elapsed_s)
        for key, value in record.counts.items():
            if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
                metrics[metric_name("stage", record.name, key)] = float(value)
    if run_id is None:
        if metrics:
            mlflow.log_metrics(metrics)
        mlflow.log_dict(report.to_dict(), artifact_file)
        return
    client = mlflow.MlflowClient()
    for key, value in metrics.items():
        client.log_metric(run_id, key, value)
    client.log_dict(run_id, report.to_dict(), artifact_file)


def evaluation_metrics(rows: list[dict[str, Any]]) -> dict[str, float]:
    """``eval.<model>[.<slice>].<metric>`` for every numeric cell of the evaluation table."""
    metrics = {}
    for row in rows:
        model = str(row.get("model", "model"))
        slice_name = str(row["slice"]) if row.get("slice") else ""
        for key, value in row.items():
            if key in ("model", "slice") or isinstance(value, bool) or not isinstance(value, (int, float)):
                continue
            if math.isfinite(value):
                metrics[metric_name("eval", model, slice_name, key)] = float(value)
    return metrics


def log_evaluation(rows: list[dict[str, Any]], chart: bytes | None = None) -> None:
    """The evaluation table as metrics and a JSON artifact, and its chart (PNG bytes) if there is one."""
    metrics = evaluation_metrics(rows)
    if metrics:
        mlflow.log_metrics(metrics)
    mlflow.log_dict({"evaluation": rows}, "evaluation/evaluation.json")
    if chart is not None:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "evaluation.png"
            path.write_bytes(chart)
            mlflow.log_artifact(str(path), artifact_path="evaluation")


def log_dataframe_parquet(frame: Any, artifact_path: str, file_name: str) -> None:
    """A pandas DataFrame as a Parquet artifact."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / file_name
        frame.to_parquet(path, index=False)
        mlflow.log_artifact(str(path), artifact_path=artifact_path)
