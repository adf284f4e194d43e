"""Production path: the feature tables from the full gold and embeddings tables.

Writes ``features.item_vectors``, ``features.user_profiles``, ``features.review_sentiment``
and ``features.item_sentiment`` (each a full overwrite: one Delta commit, history kept).
Evaluation must not use these tables -- it calls the pure functions on its training
split instead.
"""

from __future__ import annotations

import logging
from typing import Any

from delta.tables import DeltaTable
from pyspark import StorageLevel
from pyspark.sql import DataFrame, SparkSession

from fusionrec.config import Config, FeaturesConfig
from fusionrec.errors import MissingInputError
from fusionrec.features.item_vectors import item_vectors
from fusionrec.features.profiles import user_profiles
from fusionrec.features.sentiment import (
    SentimentSettings,
    TooFewLabels,
    item_sentiment,
    score_sentiment,
    train_sentiment,
)
from fusionrec.lake import SCHEMAS, table_path
from fusionrec.runlog import RunReport, stage

log = logging.getLogger(__name__)


def sentiment_settings(cfg: FeaturesConfig) -> SentimentSettings:
    return SentimentSettings(
        positive_min_rating=cfg.sentiment_positive_min_rating,
        negative_max_rating=cfg.sentiment_negative_max_rating,
        test_fraction=cfg.sentiment_test_fraction,
        reg_param=cfg.sentiment_reg_param,
        max_iter=cfg.sentiment_max_iter,
        min_per_class=cfg.sentiment_min_per_class,
    )


def _read(spark: SparkSession, cfg: Config, layer: str, name: str, required: bool) -> DataFrame:
    """A lake table; an absent optional one is an empty frame with its contract schema."""
    path = table_path(cfg, layer, name)
    if DeltaTable.isDeltaTable(spark, path):
        return spark.read.format("delta").load(path)
    if required:
        raise MissingInputError(f"{path}: {layer}.{name} does not exist; run the stage that writes it first")
    log.warning("%s.%s not found at %s: treated as empty", layer, name, path)
    return spark.createDataFrame([], SCHEMAS[f"{layer}.{name}"])


def _write(df: DataFrame, cfg: Config, name: str) -> int:
    path = table_path(cfg, "features", name)
    df.write.format("delta").mode("overwrite").option("overwriteSchema", "true").save(path)
    return df.sparkSession.read.format("delta").load(path).count()


def build_features(spark: SparkSession, cfg: Config, report: RunReport | None = None) -> dict[str, Any]:
    """Write the feature tables from everything in gold/embeddings; returns row counts and sentiment metrics."""
    fc = cfg.features
    interactions = _read(spark, cfg, "gold", "interactions", required=True)
    reviews = _read(spark, cfg, "gold", "reviews", required=False)
    item_embeddings = _read(spark, cfg, "embeddings", "item_embeddings", required=True)
    review_embeddings = _read(spark, cfg, "embeddings", "review_embeddings", required=False)
    results: dict[str, Any] = {}

    with stage("features.item_vectors", report) as rec:
        vectors = item_vectors(item_embeddings, review_embeddings, reviews, fc.item_doc_weight, fc.item_review_weight)
        vectors = vectors.persist(StorageLevel.MEMORY_AND_DISK)
        rec.counts["rows"] = results["item_vectors"] = _write(vectors, cfg, "item_vectors")

    with stage("features.user_profiles", report) as rec:
        profiles = user_profiles(
            interactions, vectors, reviews, review_embeddings,
            as_of=None, half_life_days=fc.profile_half_life_days, review_weight=fc.profile_review_weight,
        )
        rec.counts["rows"] = results["user_profiles"] = _write(profiles, cfg, "user_profiles")
    vectors.unpersist()

    with stage("features.sentiment", report) as rec:
        try:
            model, metrics = train_sentiment(review_embeddings, reviews, fc.sentiment_seed, sentiment_settings(fc))
        except TooFewLabels as exc:
            # No reviews (e.g. MovieLens) or one class only: no classifier, said out loud.
            log.warning("sentiment classifier not trained: %s", exc)
            metrics = {"status": "skipped", "reason": str(exc)}
            scores = spark.createDataFrame([], "review_id STRING, item_id STRING, score DOUBLE")
        else:
            metrics = {"status": "ok", **metrics}
            scores = score_sentiment(model, review_embeddings, reviews).persist(StorageLevel.MEMORY_AND_DISK)
        results["sentiment"] = metrics
        rec.counts.update({k: v for k, v in metrics.items() if k != "reason"})
        rec.counts["review_rows"] = results["review_sentiment"] = _write(scores, cfg, "review_sentiment")
        rec.counts["item_rows"] = results["item_sentiment"] = _write(item_sentiment(scores), cfg, "item_sentiment")
        scores.unpersist()
    return results
