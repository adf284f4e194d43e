"""User profile vectors: what a user has shown interest in, recent interest counting more.

For user u with interactions (u, j, w_uj, t_uj) on items with vectors v_j, and own
reviews k with vectors r_k written at t_k:

    decay(t) = 2 ** (-(as_of - t) / half_life)                 (in days, t <= as_of)
    p_u = normalise( sum_j w_uj decay(t_uj) v_j  +  lambda sum_k decay(t_k) r_k )

with lambda = ``review_weight``; t_uj is the interaction's last event time. This is the
recency-weighted centroid of a content-based recommender (Lops, de Gemmis & Semeraro,
"Content-based Recommender Systems", Recommender Systems Handbook, 2011) with an
exponential time decay (Ding & Li, "Time weight collaborative filtering", CIKM 2005).
Because p_u and v_j are unit vectors, p_u . v_j is a cosine similarity.

Interactions and reviews after ``as_of`` are left out: a profile "as of" a date only
knows what happened until then. Weights must be non-negative.
"""

from __future__ import annotations

from datetime import datetime

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from fusionrec.config import ConfigError
from fusionrec.features.vectors import l2_normalise, weighted_sum

__all__ = ["user_profiles"]

_SECONDS_PER_DAY = 86400.0


def recency_decay(ts: Column, as_of: Column, half_life_days: float) -> Column:
    """2 ** (-age / half_life) with age = as_of - ts in days (>= 0)."""
    age_days = (F.unix_timestamp(as_of) - F.unix_timestamp(ts)) / _SECONDS_PER_DAY
    return F.pow(F.lit(2.0), -F.greatest(age_days, F.lit(0.0)) / F.lit(half_life_days))


def _with_as_of(interactions: DataFrame, reviews: DataFrame, as_of: datetime | None) -> tuple[DataFrame, DataFrame]:
    """Attach an ``as_of`` column: the given time, or the latest event in the data."""
    if as_of is not None:
        stamp = F.lit(as_of).cast("timestamp")
        return (
            interactions.withColumn("as_of", stamp).where(F.col("last_ts") <= F.col("as_of")),
            reviews.withColumn("as_of", stamp).where(F.col("ts") <= F.col("as_of")),
        )
    latest = (
        interactions.select(F.col("last_ts").alias("t"))
        .unionByName(reviews.select(F.col("ts").alias("t")))
        .agg(F.max("t").alias("as_of"))
    )
    return interactions.crossJoin(F.broadcast(latest)), reviews.crossJoin(F.broadcast(latest))


def user_profiles(
    interactions: DataFrame,
    item_vectors: DataFrame,
    reviews: DataFrame,
    review_embeddings: DataFrame,
    as_of: datetime | None,
    half_life_days: float,
    review_weight: float,
) -> DataFrame:
    """``[user_id, vector ARRAY<FLOAT>, n_items, n_reviews]`` for every user with a usable vector.

    :param interactions: ``[user_id, item_id, weight, last_ts, ...]`` (e.g. the training split).
    :param item_vectors: ``[item_id, vector]`` from :func:`fusionrec.features.item_vectors`.
    :param reviews: ``[review_id, user_id, ts, ...]``: the user's own reviews that count.
    :param review_embeddings: ``[review_id, embedding]``.
    :param as_of: profile time; ``None`` = the latest interaction or review in the inputs.
    :returns: ``n_items``/``n_reviews`` count the interactions and reviews that had a vector.
    """
    if half_life_days <= 0:
        raise ConfigError(f"features.profile_half_life_days: must be positive, got {half_life_days}")
    if review_weight < 0:
        raise ConfigError(f"features.profile_review_weight: must be >= 0, got {review_weight}")
    timed_interactions, timed_reviews = _with_as_of(
        interactions.select("user_id", "item_id", "weight", "last_ts"),
        reviews.select("review_id", "user_id", "ts"),
        as_of,
    )
    from_items = timed_interactions.join(item_vectors.select("item_id", "vector"), "item_id").select(
        "user_id",
        "vector",
        (F.col("weight") * recency_decay(F.col("last_ts"), F.col("as_of"), half_life_days)).alias("w"),
        F.lit(1).alias("is_item"),
    )
    from_reviews = timed_reviews.join(
        review_embeddings.select("review_id", F.col("embedding").alias("vector")), "review_id"
    ).select(
        "user_id",
        "vector",
        (F.lit(review_weight) * recency_decay(F.col("ts"), F.col("as_of"), half_life_days)).alias("w"),
        F.lit(0).alias("is_item"),
    )
    profiles = (
        from_items.unionByName(from_reviews)
        .groupBy("user_id")
        .agg(
            weighted_sum(F.col("vector"), F.col("w")).alias("total"),
            F.sum("is_item").cast("long").alias("n_items"),
            F.sum(1 - F.col("is_item")).cast("long").alias("n_reviews"),
        )
        .select("user_id", l2_normalise(F.col("total")).alias("vector"), "n_items", "n_reviews")
    )
    return profiles.where(F.col("vector").isNotNull())
