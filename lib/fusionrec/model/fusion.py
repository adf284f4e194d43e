"""The fused model: ALS factors completed by text maps, candidates, ranker features, scoring.

Pure DataFrame functions; reading/writing the lake is in :mod:`fusionrec.model.train`.

- Items: ALS factors where ALS saw the item; otherwise y_i = [v_i, 1] W_item (ridge map
  from item text vectors, fitted on warm items).
- Users: ALS factors for users with at least ``min_user_interactions`` training
  interactions; otherwise x_u = [p_u, 1] W_user from the profile vector (fitted on the
  warm users). Users with neither get the popularity fallback.
- Candidates: ALS top-N union content top-N (profile . item cosine), seen items excluded.
- Features: :data:`fusionrec.model.ranker.RANKER_FEATURES`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from fusionrec.config import ModelConfig
from fusionrec.model.als import AlsFactors, AlsParams, fit_als
from fusionrec.model.ranker import NEUTRAL_SENTIMENT, RankerParams
from fusionrec.model.text_maps import apply_text_map, fit_text_map
from fusionrec.model.topk import blocked_top_n, top_n
from fusionrec.features.vectors import dot
from fusionrec.model.vectors import normalised


@dataclass(frozen=True)
class FusedModel:
    """Everything needed to score (user, item) pairs."""

    #: [user_id, factors, source]
    user_factors: DataFrame
    #: [item_id, factors, source]
    item_factors: DataFrame
    #: [user_id, factors]: plain ALS factors of every user ALS saw
    als_user_factors: DataFrame
    #: [item_id, vector] (unit norm)
    item_vectors: DataFrame
    #: [user_id, vector] (unit norm)
    user_profiles: DataFrame
    #: [item_id, n_interactions, log_popularity]
    popularity: DataFrame
    #: [item_id, item_sentiment]
    sentiment: DataFrame
    item_map: np.ndarray
    user_map: np.ndarray | None
    als_params: AlsParams
    counts: dict


def popularity(interactions: DataFrame) -> DataFrame:
    """``[item_id, n_interactions, log_popularity]`` from training interactions."""
    return (interactions.groupBy("item_id").agg(F.count(F.lit(1)).alias("n_interactions"))
            .withColumn("log_popularity", F.log1p(F.col("n_interactions").cast("double"))))


def fit_fused(interactions: DataFrame, item_vectors: DataFrame, user_profiles: DataFrame,
              item_sentiment: DataFrame | None, mc: ModelConfig, params: AlsParams | None = None,
              als: AlsFactors | None = None) -> FusedModel:
    """Fit ALS on ``interactions`` (unless ``als`` is given, fitted on the same interactions)
    and complete it with the text maps (module docstring)."""
    spark = interactions.sparkSession
    item_vectors = normalised(item_vectors.select("item_id", "vector"), "vector").cache()
    user_profiles = normalised(user_profiles.select("user_id", "vector"), "vector").cache()
    als = als if als is not None else fit_als(interactions, mc, params)
    als_items = als.items.cache()
    als_users = als.users.cache()

    w_item, n_item_fit = fit_text_map(item_vectors, als_items, "item_id", mc.ridge_lambda)
    cold_items = item_vectors.join(als_items.select("item_id"), "item_id", "left_anti")
    item_factors = (als_items.withColumn("source", F.lit("als"))
                    .unionByName(apply_text_map(cold_items, w_item, "item_id").withColumn("source", F.lit("text_map"))))

    n_per_user = interactions.groupBy("user_id").agg(F.count(F.lit(1)).alias("n"))
    warm_users = n_per_user.where(F.col("n") >= mc.min_user_interactions).select("user_id")
    warm_factors = als_users.join(warm_users, "user_id")
    try:
        w_user, n_user_fit = fit_text_map(user_profiles, warm_factors, "user_id", mc.ridge_lambda)
    except ValueError:
        w_user, n_user_fit = None, 0
    user_factors = warm_factors.withColumn("source", F.lit("als"))
    if w_user is not None:
        cold_users = user_profiles.join(warm_users, "user_id", "left_anti")
        user_factors = user_factors.unionByName(
            apply_text_map(cold_users, w_user, "user_id").withColumn("source", F.lit("text_map")))

    sentiment = (item_sentiment.select("item_id", F.col("sentiment_mean").alias("item_sentiment"))
                 if item_sentiment is not None
                 else spark.createDataFrame([], "item_id STRING, item_sentiment DOUBLE"))
    item_factors = item_factors.cache()
    user_factors = user_factors.cache()
    counts = {"als_users": als_users.count(), "als_items": als_items.count(),
              "text_map_items": item_factors.where(F.col("source") == "text_map").count(),
              "text_map_users": user_factors.where(F.col("source") == "text_map").count(),
              "item_map_fit_rows": n_item_fit, "user_map_fit_rows": n_user_fit}
    return FusedModel(user_factors=user_factors, item_factors=item_factors, als_user_factors=als_users, item_vectors=item_vectors,
                      user_profiles=user_profiles, popularity=popularity(interactions).cache(),
                      sentiment=sentiment, item_map=w_item, user_map=w_user, als_params=als.params,
                      counts=counts)


def restrict(df: DataFrame, users: DataFrame | None) -> DataFrame:
    return df if users is None else df.join(users.select("user_id").distinct(), "user_id")


def als_top_n(model: FusedModel, n: int, seen: DataFrame, mc: ModelConfig,
              users: DataFrame | None = None, only_als: bool = False) -> DataFrame:
    """ALS candidates ``[user_id, item_id, score, rank]`` (x_u . y_i), seen items excluded.

    ``only_als``: plain ALS (the baseline): ALS factors only, no text-map users or items.
    """
    items, user_factors = model.item_factors, model.user_factors
    if only_als:
        items = items.where(F.col("source") == "als")
        user_factors = model.als_user_factors
    return blocked_top_n(restrict(user_factors, users), items, n, seen,
                         mc.user_blocks, mc.item_blocks)


def content_top_n(model: FusedModel, n: int, seen: DataFrame, mc: ModelConfig,
                  users: DataFrame | None = None) -> DataFrame:
    """Content candidates ``[user_id, item_id, score, rank]`` (profile . item cosine)."""
    return blocked_top_n(restrict(model.user_profiles, users), model.item_vectors, n, seen,
                         mc.user_blocks, mc.item_blocks, normalise=True, user_vec="vector", item_vec="vector")


def candidates(model: FusedModel, seen: DataFrame, mc: ModelConfig, users: DataFrame | None = None) -> DataFrame:
    """``[user_id, item_id]``: ALS top-N union content top-N."""
    n = mc.candidates_n
    return (als_top_n(model, n, seen, mc, users).select("user_id", "item_id")
            .unionByName(content_top_n(model, n, seen, mc, users).select("user_id", "item_id"))
            .distinct())


def with_features(pairs: DataFrame, model: FusedModel) -> DataFrame:
    """``pairs`` plus the ranker features (missing factors/vectors give 0, no reviews 0.5)."""
    df = (pairs
          .join(model.user_factors.select("user_id", F.col("factors").alias("_uf")), "user_id", "left")
          .join(model.item_factors.select("item_id", F.col("factors").alias("_if")), "item_id", "left")
          .join(model.user_profiles.select("user_id", F.col("vector").alias("_up")), "user_id", "left")
          .join(model.item_vectors.select("item_id", F.col("vector").alias("_iv")), "item_id", "left"))
    # Spark SQL dot products in the JVM: no round trip of four vector columns through Python.
    df = df.select("*", F.coalesce(dot(F.col("_uf"), F.col("_if")), F.lit(0.0)).alias("als_score"),
                   F.coalesce(dot(F.col("_up"), F.col("_iv")), F.lit(0.0)).alias("content_cosine"))
    return (df.drop("_uf", "_if", "_up", "_iv")
            .join(model.popularity.select("item_id", "log_popularity"), "item_id", "left")
            .join(model.sentiment, "item_id", "left")
            .fillna({"log_popularity": 0.0, "item_sentiment": NEUTRAL_SENTIMENT}))


def rank_candidates(featured: DataFrame, ranker: RankerParams, k: int) -> DataFrame:
    """Top-``k`` ``[user_id, item_id, score, rank, <features>, <contrib_*>]`` by ranker score."""
    contrib = ranker.contributions()
    scored = featured.withColumn("score", ranker.score())
    for name, column in contrib.items():
        scored = scored.withColumn(f"contrib_{name}", column)
    return top_n(scored, k)


def label(pairs: DataFrame, positives: DataFrame) -> DataFrame:
    """``pairs`` plus ``label`` = 1.0 where the pair is in ``positives`` ``[user_id, item_id]``."""
    pos = positives.select("user_id", "item_id").distinct().withColumn("label", F.lit(1.0))
    return pairs.join(pos, ["user_id", "item_id"], "left").fillna({"label": 0.0})
