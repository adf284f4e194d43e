"""Production path: the feature tables from the full gold and embeddings tables.

Writes ``features.item_vectors``, ``features.user_profiles``, ``features.review_sentiment``
and ``features.item_sentiment`` (each a full overwrite: one Delta commit, history kept).
Evaluation must not use these tables -- it calls the pure functions on its training
split instead.
"""

from __future__ import annotations

import logging
from typing import Any

from pyspark import StorageLevel
from pyspark.sql import DataFrame

from fusionrec.config import FeaturesConfig
from fusionrec.features.item_vectors import item_vectors
from fusionrec.features.profiles import user_profiles
from fusionrec.features.sentiment import (
    SentimentSettings,
    TooFewLabels,
    item_sentiment,
    score_sentiment,
    train_sentiment,
)
from fusionrec.lake import SCHEMAS, Lake
from fusionrec.runlog import RunReport, stage

__all__ = ["build_features", "sentiment_settings"]

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


def _read(lake: Lake, table: str, required: bool) -> DataFrame:
    """A lake table; an absent optional one is an empty frame with its contract schema."""
    if required:
        return lake.read(table)
    found = lake.read_optional(table)
    if found is None:
        log.warning("%s not found at %s: treated as empty", table, lake.path(table))
        return lake.spark.createDataFrame([], SCHEMAS[table])
    return found


def _write(lake: Lake, df: DataFrame, name: str) -> int:
    """Overwrite ``features.<name>`` with ``df``; the rows written, from the commit's metrics
    (no read-back)."""
    table = f"features.{name}"
    before = lake.version(table)
    lake.overwrite(table, df)
    return lake.rows_written(table, since=before)


def build_features(lake: Lake, fc: FeaturesConfig, report: RunReport | None = None) -> dict[str, Any]:
    """Write the feature tables from everything in gold and embeddings.

    Parameters
    ----------
    lake : Lake
        The lake read and written.
    fc : FeaturesConfig
        The ``features`` section.
    report : RunReport, optional
        Receives a record per table.

    Returns
    -------
    dict
        Row counts per table and the sentiment model's held-out metrics. Reads
        ``gold.interactions``, ``embeddings.item_embeddings`` and, when present, ``gold.reviews``
        and ``embeddings.review_embeddings``; overwrites ``features.item_vectors``
        ``[item_id, vector]``, ``features.user_profiles`` ``[user_id, vector, n_items, n_reviews]``,
        ``features.review_sentiment`` ``[review_id, item_id, score]`` and
        ``features.item_sentiment`` ``[item_id, sentiment_mean, sentiment_count]``.
    """
    spark = lake.spark
    interactions = _read(lake, "gold.interactions", required=True)
    reviews = _read(lake, "gold.reviews", required=False)
    item_embeddings = _read(lake, "embeddings.item_embeddings", required=True)
    review_embeddings = _read(lake, "embeddings.review_embeddings", required=False)
    results: dict[str, Any] = {}

    with stage("features.item_vectors", report) as rec:
        vectors = item_vectors(item_embeddings, review_embeddings, reviews, fc.item_doc_weight, fc.item_review_weight)
        vectors = vectors.persist(StorageLevel.MEMORY_AND_DISK)
        rec.counts["rows"] = results["item_vectors"] = _write(lake, vectors, "item_vectors")

    with stage("features.user_profiles", report) as rec:
        profiles = user_profiles(
            interactions, vectors, reviews, review_embeddings,
            as_of=None, half_life_days=fc.profile_half_life_days, review_weight=fc.profile_review_weight,
        )
        rec.counts["rows"] = results["user_profiles"] = _write(lake, profiles, "user_profiles")
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
        rec.counts["review_rows"] = results["review_sentiment"] = _write(lake, scores, "review_sentiment")
        rec.counts["item_rows"] = results["item_sentiment"] = _write(lake, item_sentiment(scores), "item_sentiment")
        scores.unpersist()
    return results
