"""Register the fused model: one tracked run, one pyfunc model version, then the gate.

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
from pyspark.sql import SparkSession

from fusionrec.config import Config
from fusionrec.embed.model import model_files
from fusionrec.errors import InputError
from fusionrec.evaluate.results import EvaluationResults
from fusionrec.lake import table_path
from fusionrec.registry.build import TableInput, build_bundle, delta_version, read_document
from fusionrec.registry.promote import (
    CHALLENGER, TAG_METRIC_NAME, TAG_METRIC_VALUE, TAG_SPLIT, PromotionDecision, promote_version)
from fusionrec.registry.pyfunc import (
    BUNDLE_ARTIFACT, SIGNATURE, TEXT_MODEL_ARTIFACT, FusionRecommender, input_example)
from fusionrec.registry.store import configure_mlflow
from fusionrec.registry.tracking import (
    log_dataframe_parquet, log_delta_inputs, log_evaluation, log_report, metric_name, tracked_run)
from fusionrec.runlog import RunReport, stage

log = logging.getLogger(__name__)

EVALUATION_FILE = "evaluation.json"
#: Where the model stage may save the fitted ALSModel (``ALSModel.save``) for ``mlflow.spark``.
ALS_MODEL_DIR = "als_model"
#: Requirements of the served model (it needs neither Spark nor the rest of the project's stack).
SERVING_REQUIREMENTS = ["mlflow", "numpy", "pandas", "onnxruntime", "tokenizers"]


@dataclass(frozen=True)
class Evaluation:
    """The evaluation table of the model stage and the chart next to it."""

    rows: list[dict[str, Any]]
    chart: Path | None
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


def evaluation_file(cfg: Config) -> Path:
    if cfg.registry.evaluation_file:
        return Path(cfg.registry.evaluation_file)
    report_dir = cfg.evaluate.report_dir or str(Path(cfg.lake.root).parent / "reports")
    return Path(report_dir) / EVALUATION_FILE


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


def evaluation_from_results(results: EvaluationResults, source: str, chart: Path | None = None) -> Evaluation:
    """An :class:`Evaluation` from the evaluate stage's results."""
    return Evaluation(evaluation_rows(results), chart, source)


def read_evaluation(cfg: Config) -> Evaluation:
    """The results written by ``fusionrec evaluate`` (JSON, with its PNG chart next to it)."""
    path = evaluation_file(cfg)
    results = read_document(path, "evaluation results", "evaluate", EvaluationResults.from_json)
    chart = path.with_suffix(".png")
    return evaluation_from_results(results, str(path), chart if chart.is_file() else None)


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
    protocol = {"evaluate": {k: v for k, v in cfg.to_dict()["evaluate"].items() if k != "report_dir"},
                "gold.interactions": interactions_version}
    return hashlib.sha256(json.dumps(protocol, sort_keys=True).encode()).hexdigest()[:16]


def saved_als_model(cfg: Config) -> Any:
    """The fitted ``ALSModel`` if the model stage saved one at ``<lake.root>/model/als_model``, else None."""
    path = table_path(cfg, "model", ALS_MODEL_DIR)
    if not (Path(path) / "metadata").is_dir():
        return None
    from pyspark.ml.recommendation import ALSModel

    return ALSModel.load(path)


def register_model(spark: SparkSession, cfg: Config, report: RunReport, *, evaluation: Evaluation | None = None,
                   als_model: Any = None, promote: bool = True, force_promote: bool = False,
                   nested: bool = False) -> Registration:
    """Log and register the fused model from the lake's current outputs; run the gate unless told not to.

    :param evaluation: the evaluation table; read from :func:`evaluation_file` when None.
    :param als_model: the fitted ``pyspark.ml.recommendation.ALSModel``, logged with ``mlflow.spark``
        (default: :func:`saved_als_model`).
    :raises fusionrec.registry.store.StoreError: the MLflow store cannot be reached (nothing written).
    """
    client = configure_mlflow(cfg.mlflow)
    with stage("register.bundle", report) as rec:
        built = build_bundle(spark, cfg)
        als_model = als_model if als_model is not None else saved_als_model(cfg)
        evaluation = evaluation or read_evaluation(cfg)
        metric = promotion_metric(evaluation.rows, cfg, evaluation.source)
        recs_path = table_path(cfg, "gold", "recommendations")
        recs_input = TableInput("gold", "recommendations", recs_path, delta_version(spark, recs_path))
        recommendations = (spark.read.format("delta").option("versionAsOf", recs_input.version).load(recs_path)
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
            bundle_dir = built.bundle.save(Path(tmp) / "bundle")
            info = mlflow.pyfunc.log_model(
                name="recommender",
                python_model=FusionRecommender(max_k=cfg.registry.max_k,
                                               max_text_length=cfg.embed.max_sentence_length),
                artifacts={BUNDLE_ARTIFACT: str(bundle_dir),
                           TEXT_MODEL_ARTIFACT: str(model_files(cfg.embed).folder)},
                signature=SIGNATURE,
                input_example=input_example(built.bundle),
                pip_requirements=SERVING_REQUIREMENTS,
            )
        if als_model is not None:
            # Spark users load the ALS stage natively: mlflow.spark.load_model(<als.model_uri>).
            als_info = mlflow.spark.log_model(als_model, artifact_path="als")
            mlflow.set_tag("als.model_uri", als_info.model_uri)
        rec.counts["run_id"] = run.info.run_id

    with stage("register.version", report) as rec:
        version = mlflow.register_model(info.model_uri, name)
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
    result = Registration(name, str(version.version), run.info.run_id, info.model_uri, metric,
                          recs_input.version, decision)
    report.results["registry"] = result.to_dict()
    log_report(report, run.info.run_id)
    return result
