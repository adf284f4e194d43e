"""Embedding-derived side features for the fused model, computed from the data it is given.

A thin adapter over the pure functions of :mod:`fusionrec.features`: the model (and the
evaluation harness, on the training split only) passes exactly the interactions and
reviews it may see, so profile vectors, item review mixes and the sentiment classifier
never contain anything from a held-out period.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from pyspark.sql import DataFrame

from fusionrec.config import FeaturesConfig
from fusionrec.features import item_sentiment, item_vectors, score_sentiment, train_sentiment, user_profiles
from fusionrec.features.build import sentiment_settings
from fusionrec.features.sentiment import TooFewLabels
from fusionrec.lake import SCHEMAS

__all__ = ["side_features", "SideFeatures"]


@dataclass(frozen=True)
class SideFeatures:
    #: [item_id, vector ARRAY<FLOAT>] (unit length)
    item_vectors: DataFrame
    #: [user_id, vector ARRAY<FLOAT>, n_items, n_reviews]
    user_profiles: DataFrame
    #: [item_id, sentiment_mean, sentiment_count], or None without enough rated reviews
    item_sentiment: DataFrame | None


def side_features(interactions: DataFrame, item_embeddings: DataFrame, reviews: DataFrame | None,
                  review_embeddings: DataFrame | None, as_of: datetime | None, fc: FeaturesConfig) -> SideFeatures:
    """Item vectors, user profiles and item sentiment from the given data only."""
    spark = interactions.sparkSession
    if reviews is None or review_embeddings is None:
        reviews = spark.createDataFrame([], SCHEMAS["gold.reviews"])
        review_embeddings = spark.createDataFrame([], SCHEMAS["embeddings.review_embeddings"])
    vectors = item_vectors(item_embeddings, review_embeddings, reviews, fc.item_doc_weight, fc.item_review_weight)
    profiles = user_profiles(interactions, vectors, reviews, review_embeddings, as_of,
                             fc.profile_half_life_days, fc.profile_review_weight)
    try:
        classifier, _ = train_sentiment(review_embeddings, reviews, fc.sentiment_seed, sentiment_settings(fc),
                                        measure=False)
        sentiment = item_sentiment(score_sentiment(classifier, review_embeddings, reviews))
    except TooFewLabels:
        sentiment = None  # e.g. MovieLens tags carry no rating: every item gets the neutral value
    return SideFeatures(vectors, profiles, sentiment)
