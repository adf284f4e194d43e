"""Register the fused model: one tracked run, one pyfunc model version, then the gate.

The model is saved from code with its serving code and pinned requirements, among the
run's artifacts (:func:`fusionrec.registry.packaging.log_serving_model`); the version's
source is its ``runs:/`` URI, which MLflow loads into a new temporary folder, so loading
writes nothing into the artifact store.

Order matters for consistency. Registration only reads the lake (the Delta outputs were
committed by the stages before it), and the MLflow store is checked before any work,
so an unreachable store fails fast with one line and leaves nothing behind. A model
version is created last; if tagging or aliasing it fails, the version is deleted again,
so the registry never holds a half-registered version.
"""

from __future__ import annotations

import hashlib
import json
import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlflow
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import ALREADY_EXISTS, RESOURCE_ALREADY_EXISTS, ErrorCode

import pyspark

from fusionrec.config import Config
from fusionrec.embed.model import model_files
from fusionrec.errors import InputError
from fusionrec.evaluate.chart import EVALUATION_NAME, evaluation_report
from fusionrec.evaluate.results import EvaluationResults
from fusionrec.lake import Lake, LakeMissingError
from fusionrec.model.als import load_als_model
from fusionrec.registry.build import TableInput, build_bundle
from fusionrec.registry.promote import (
    CHALLENGER, TAG_METRIC_NAME, TAG_METRIC_VALUE, TAG_SPLIT, PromotionDecision, promote_version)
from fusionrec.registry.packaging import log_serving_model
from fusionrec.registry.pyfunc import input_example
from fusionrec.registry.store import configure_mlflow
from fusionrec.registry.tracking import (
    log_dataframe_parquet, log_delta_inputs, log_evaluation, log_report, metric_name, tracked_run)
from fusionrec.runlog import RunReport, stage

__all__ = ["MODEL_NAME_IN_RUN", "Evaluation", "evaluation_from_results", "evaluation_rows", "promotion_metric",
           "read_evaluation", "register_model", "Registration"]

log = logging.getLogger(__name__)

#: The fused model's folder in its run: the version's source is ``runs:/<run id>/<this>``.
MODEL_NAME_IN_RUN = "recommender"


@dataclass(frozen=True)
class Evaluation:
    """The evaluation table of the model stage and the chart next to it."""

    rows: list[dict[str, Any]]
    #: The chart as PNG bytes.
    chart: bytes | None
    source: str


@dataclass(frozen=True)
class Registration:
    model_name: str
    version: str
    run_id: str
    model_uri: str
    metric: float
    recommendations_version: int
    decision: PromotionDecision | None

    def to_dict(self) -> dict[str, Any]:
        out = {k: v for k, v in self.__dict__.items() if k != "decision"}
        out["decision"] = self.decision.to_dict() if self.decision else None
        return out


def evaluation_rows(results: EvaluationResults) -> list[dict[str, Any]]:
    """Flatten the evaluate stage's results into ``{model, [slice], "<metric>@<k>": value}`` rows:
    one per model from ``results.table``, one per model with ``slice`` = ``cold_items``."""
    rows: dict[tuple[str, str], dict[str, Any]] = {}
    for slice_name, entries in (("", results.table), ("cold_items", results.cold_items)):
        for entry in entries:
            row = rows.setdefault((entry["model"], slice_name),
                                  {"model": entry["model"], **({"slice": slice_name} if slice_name else {})})
            for metric, value in entry.items():
                if metric not in ("model", "k") and isinstance(value, (int, float)) and not isinstance(value, bool):
                    row[f"{metric}@{entry['k']}"] = value
    return list(rows.values())


def evaluation_from_results(results: EvaluationResults, source: str, chart: bytes | None = None) -> Evaluation:
    """An :class:`Evaluation` from the evaluate stage's results (and its chart's PNG bytes)."""
    return Evaluation(evaluation_rows(results), chart, source)


def read_evaluation(lake: Lake) -> Evaluation:
    """The results written by ``fusionrec evaluate`` (JSON, with its PNG chart next to it)."""
    name = evaluation_report(EVALUATION_NAME)
    results = lake.read_document(f"{name}.json", written_by="evaluate", parse=EvaluationResults.from_json)
    return evaluation_from_results(results, lake.uri(f"{name}.json"), lake.read_bytes(f"{name}.png"))


def promotion_metric(rows: list[dict[str, Any]], cfg: Config, source: str) -> float:
    """The gate's number: column ``registry.promotion_metric`` of row ``registry.promotion_model``."""
    rc = cfg.registry
    for row in rows:
        if row.get("model") == rc.promotion_model and not row.get("slice") and rc.promotion_metric in row:
            value = row[rc.promotion_metric]
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                return float(value)
            raise InputError(f"{source}: {rc.promotion_model}.{rc.promotion_metric} is not a number: {value!r}")
    raise InputError(f"{source}: no row with model={rc.promotion_model!r} and a {rc.promotion_metric!r} value")


def split_fingerprint(cfg: Config, interactions_version: int) -> str:
    """Identity of the evaluation split: the protocol settings and the interactions version it cut."""
    protocol = {"evaluate": cfg.to_dict()["evaluate"],
                "gold.interactions": interactions_version}
    return hashlib.sha256(json.dumps(protocol, sort_keys=True).encode()).hexdigest()[:16]


def register_model(lake: Lake, cfg: Config, report: RunReport, *, evaluation: Evaluation | None = None,
                   als_model: Any = None, promote: bool = True, force_promote: bool = False,
                   nested: bool = False) -> Registration:
    """Log and register the fused model from the lake's current outputs; run the gate unless told not to.

    Parameters
    ----------
    lake, cfg, report
        The lake read, the configuration (``registry.*``, ``mlflow.*``, ``model.*``, ``embed.*``)
        and the run report (receives ``results["registry"]``).
    evaluation : Evaluation, optional
        The evaluation table; read from the lake (:func:`read_evaluation`) when None.
    als_model : ALSModel, optional
        The fitted ``pyspark.ml.recommendation.ALSModel``, logged with ``mlflow.spark``
        (default: the one the train stage saved, :func:`fusionrec.model.als.load_als_model`).
    promote, force_promote : bool
        Run the champion/challenger gate; make the version champion whatever it says.
    nested : bool
        Log as a nested run (under the pipeline's parent run).

    Returns
    -------
    Registration
        The model version and its run, the gate's metric and decision, and the version of
        ``gold.recommendations`` ``[user_id, rank, item_id, score, reason]`` logged with it.
        Reads the model tables (``model.*``, ``features.*``, ``gold.*``) and
        ``model/fusion_params.json`` the bundle is built from.

    Raises
    ------
    fusionrec.registry.store.StoreError
        The MLflow store cannot be reached (nothing written).
    """
    client = configure_mlflow(cfg.mlflow)
    with stage("register.bundle", report) as rec:
        built = build_bundle(lake, cfg)
        als_model = als_model if als_model is not None else load_als_model(lake)
        evaluation = evaluation or read_evaluation(lake)
        metric = promotion_metric(evaluation.rows, cfg, evaluation.source)
        recs_version = lake.version("gold.recommendations")
        if recs_version is None:
            raise LakeMissingError(f"{lake.path('gold.recommendations')}: Delta table gold.recommendations "
                                   "not found; run 'fusionrec recommend' first")
        recs_input = TableInput("gold", "recommendations", lake.path("gold.recommendations"), recs_version)
        recommendations = (lake.read("gold.recommendations", recs_version)
                           .orderBy("user_id", "rank").toPandas())
        interactions_version = next(t.version for t in built.inputs if t.qualified == "gold.interactions")
        split = split_fingerprint(cfg, interactions_version)
        rec.counts.update(items=built.bundle.n_items, users=len(built.bundle.user_ids),
                          recommendations=len(recommendations), metric=metric)

    name = cfg.mlflow.model_name
    with stage("register.log", report) as rec, tracked_run(cfg, "register", nested=nested) as run:
        log_delta_inputs(built.inputs, context="model")
        log_delta_inputs([recs_input], context="output")
        mlflow.log_dict(built.params.to_dict(), "model/fusion_params.json")
        log_evaluation(evaluation.rows, evaluation.chart)
        mlflow.log_metric(metric_name("registry", cfg.registry.promotion_model, cfg.registry.promotion_metric),
                          metric)
        mlflow.set_tags({"eval.split": split, "recommendations.delta_version": str(recs_input.version)})
        log_dataframe_parquet(recommendations, "recommendations", f"recommendations_v{recs_input.version}.parquet")
        with tempfile.TemporaryDirectory() as tmp:
            model_uri = log_serving_model(name=MODEL_NAME_IN_RUN, bundle_dir=built.bundle.save(Path(tmp) / "bundle"),
                                     text_model_dir=model_files(cfg.embed).folder, max_k=cfg.registry.max_k,
                                     max_text_length=cfg.embed.max_sentence_length,
                                     input_example=input_example(built.bundle))
        if als_model is not None:
            # Spark users load the ALS stage natively: mlflow.spark.load_model(<als.model_uri>) is a
            # PipelineModel whose one stage is the ALSModel (integer ids: model.als_user_ids/als_item_ids).
            # Pinned requirements: inferring them would reload the model in a second Spark JVM.
            als_info = mlflow.spark.log_model(als_model, artifact_path="als",
                                              pip_requirements=[f"pyspark=={pyspark.__version__}"])
            mlflow.set_tag("als.model_uri", als_info.model_uri)
        rec.counts["run_id"] = run.info.run_id

    with stage("register.version", report) as rec:
        # Not mlflow.register_model: it would replace the runs:/ source by the artifact folder's path,
        # which MLflow loads in place.
        try:
            client.create_registered_model(name)
        except MlflowException as exc:
            if exc.error_code not in (ErrorCode.Name(RESOURCE_ALREADY_EXISTS), ErrorCode.Name(ALREADY_EXISTS)):
                raise
        version = client.create_model_version(name, model_uri, run_id=run.info.run_id)
        try:
            tags = {TAG_METRIC_NAME: f"{cfg.registry.promotion_model}.{cfg.registry.promotion_metric}",
                    TAG_METRIC_VALUE: repr(metric), TAG_SPLIT: split,
                    "recommendations.delta_version": str(recs_input.version),
                    "recommendations.artifact": f"runs:/{run.info.run_id}/recommendations"}
            for key, value in tags.items():
                client.set_model_version_tag(name, version.version, key, value)
            client.set_registered_model_alias(name, CHALLENGER, version.version)
        except Exception:
            client.delete_model_version(name, version.version)
            raise
        rec.counts["version"] = int(version.version)

    decision = None
    if promote or force_promote:
        with stage("register.promote", report) as rec:
            decision = promote_version(client, cfg.registry, name, version.version, force=force_promote)
            rec.counts["promoted"] = decision.promoted
    result = Registration(name, str(version.version), run.info.run_id, model_uri, metric,
                          recs_input.version, decision)
    report.results["registry"] = result.to_dict()
    log_report(report, run.info.run_id)
    return result
