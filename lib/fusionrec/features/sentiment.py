"""Review sentiment from review vectors, weakly supervised by star ratings.

Labels come from the ratings (distant supervision, Go, Bhayani & Huang, "Twitter
sentiment classification using distant supervision", 2009): rating >= positive_min is
positive, rating <= negative_max is negative, ratings in between are left out of
training. A logistic regression on the 384-d review vectors learns
P(positive | text); classes are weighted inversely to their frequency (each class
carries half the total weight), so a score of 0.5 means "no lean either way" even
though most ratings are positive.

The held-out split is by a seeded hash of the review id, so it does not depend on how
the data happen to be partitioned. The reported AUC is measured on that split only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pyspark.ml.classification import LogisticRegression, LogisticRegressionModel
from pyspark.ml.evaluation import BinaryClassificationEvaluator
from pyspark.ml.functions import array_to_vector, vector_to_array
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from fusionrec.config import ConfigError

__all__ = ["item_sentiment", "score_sentiment", "SentimentSettings", "TooFewLabels", "train_sentiment"]


class TooFewLabels(ValueError):
    """Not enough positive or negative reviews to fit a classifier."""


@dataclass(frozen=True)
class SentimentSettings:
    """How the classifier is labelled, split and fitted (``features.sentiment_*``)."""

    positive_min_rating: float = 4.0
    negative_max_rating: float = 2.0
    test_fraction: float = 0.2
    reg_param: float = 0.01
    max_iter: int = 100
    min_per_class: int = 5


def _labelled_reviews(review_embeddings: DataFrame, reviews: DataFrame, settings: SentimentSettings) -> DataFrame:
    """``[review_id, features VECTOR, label DOUBLE]`` for reviews with a clearly positive or negative rating."""
    label = (
        F.when(F.col("rating") >= settings.positive_min_rating, F.lit(1.0))
        .when(F.col("rating") <= settings.negative_max_rating, F.lit(0.0))
    )
    return (
        reviews.select("review_id", label.alias("label"))
        .where(F.col("label").isNotNull())
        .join(review_embeddings.select("review_id", "embedding"), "review_id")
        .select("review_id", array_to_vector("embedding").alias("features"), "label")
    )


def _held_out(review_id: str, seed: int, fraction: float) -> Column:
    """True for the seeded-hash ``fraction`` of ids that form the test split."""
    bucket = F.pmod(F.xxhash64(F.lit(seed), F.col(review_id)), F.lit(10_000))
    return bucket < F.lit(int(round(fraction * 10_000)))


def train_sentiment(
    review_embeddings: DataFrame,
    reviews: DataFrame,
    seed: int,
    settings: SentimentSettings = SentimentSettings(),
    *,
    measure: bool = True,
) -> tuple[LogisticRegressionModel, dict[str, Any]]:
    """Fit the sentiment classifier on the training part and measure it on the held-out part.

    :param measure: compute the held-out AUC (False: ``auc`` is None, one Spark job less,
        for callers that only use the model).
    :returns: ``(model, {"auc", "n_train", "n_test", "n_train_positive", "n_train_negative"})``;
        ``auc`` is None when the held-out part lacks one of the classes.
    :raises TooFewLabels: fewer than ``min_per_class`` training reviews of a class.
    """
    if not 0.0 <= settings.test_fraction < 1.0:
        raise ConfigError(f"features.sentiment_test_fraction: must be in [0, 1), got {settings.test_fraction}")
    data = _labelled_reviews(review_embeddings, reviews, settings).withColumn(
        "is_test", _held_out("review_id", seed, settings.test_fraction)
    ).cache()
    try:
        counts = {
            (bool(r["is_test"]), float(r["label"])): int(r["count"])
            for r in data.groupBy("is_test", "label").count().collect()
        }
        n_pos, n_neg = counts.get((False, 1.0), 0), counts.get((False, 0.0), 0)
        if min(n_pos, n_neg) < settings.min_per_class:
            raise TooFewLabels(
                f"reviews.rating: too few labelled training reviews for sentiment ({n_pos} positive "
                f">= {settings.positive_min_rating}, {n_neg} negative <= {settings.negative_max_rating}; "
                f"need {settings.min_per_class} of each)"
            )
        n_train = n_pos + n_neg
        # Each class carries half of the total weight.
        weight = F.when(F.col("label") == 1.0, F.lit(n_train / (2.0 * n_pos))).otherwise(F.lit(n_train / (2.0 * n_neg)))
        train = data.where(~F.col("is_test")).withColumn("weight", weight)
        model = LogisticRegression(
            featuresCol="features", labelCol="label", weightCol="weight",
            regParam=settings.reg_param, maxIter=settings.max_iter,
        ).fit(train)
        test = data.where(F.col("is_test"))
        n_test_pos, n_test_neg = counts.get((True, 1.0), 0), counts.get((True, 0.0), 0)
        auc = None
        if measure and n_test_pos and n_test_neg:
            auc = BinaryClassificationEvaluator(
                rawPredictionCol="rawPrediction", labelCol="label", metricName="areaUnderROC"
            ).evaluate(model.transform(test))
        metrics = {
            "auc": auc,
            "n_train": n_train,
            "n_test": n_test_pos + n_test_neg,
            "n_train_positive": n_pos,
            "n_train_negative": n_neg,
        }
        return model, metrics
    finally:
        data.unpersist()


def score_sentiment(model: LogisticRegressionModel, review_embeddings: DataFrame, reviews: DataFrame) -> DataFrame:
    """``[review_id, item_id, score DOUBLE]``: P(positive) of every review that has a vector."""
    scored = model.transform(
        reviews.select("review_id", "item_id")
        .join(review_embeddings.select("review_id", "embedding"), "review_id")
        .select("review_id", "item_id", array_to_vector("embedding").alias(model.getFeaturesCol()))
    )
    return scored.select("review_id", "item_id", vector_to_array(model.getProbabilityCol()).getItem(1).alias("score"))


def item_sentiment(review_scores: DataFrame) -> DataFrame:
    """``[item_id, sentiment_mean DOUBLE, sentiment_count LONG]`` from per-review scores."""
    return review_scores.groupBy("item_id").agg(
        F.avg("score").alias("sentiment_mean"), F.count("score").cast("long").alias("sentiment_count")
    )
