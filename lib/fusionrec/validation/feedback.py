"""Positive feedback and "liked" items: one definition for evaluation, batch and serving.

An interaction is *positive* when its rating is at least ``evaluate.positive_rating``
where it has one, otherwise when its implicit weight is at least
``evaluate.positive_weight`` (a view weighs 1, a purchase 8: ``ingest.weight_*``).
On implicit feedback every interaction is a sign of interest, except that a low explicit
rating says the opposite; so a reason never says "you liked" an item the user rated low.
The evaluation counts the same interactions as relevant
(:func:`fusionrec.validation.split.relevant`).

A user's *liked* items are the ``model.reason_max_liked`` latest positive interactions;
reasons name the one nearest to the recommended item. The batch top-K
(:mod:`fusionrec.model.recommend`) and the serving bundle (:mod:`fusionrec.registry.build`)
both take them from :func:`liked_items`.
"""

from __future__ import annotations

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

__all__ = ["is_positive", "latest_items", "liked_items"]


def latest_items(interactions: DataFrame, n: int) -> DataFrame:
    """``[user_id, item_id]``: each user's ``n`` latest interactions (by ``last_ts``, ties by item id)."""
    w = Window.partitionBy("user_id").orderBy(F.col("last_ts").desc(), F.col("item_id"))
    return (interactions.withColumn("_r", F.row_number().over(w)).where(F.col("_r") <= n)
            .select("user_id", "item_id"))


def is_positive(positive_rating: float, positive_weight: float) -> Column:
    """True for the positive interactions of an interactions table (``rating``, ``weight``)."""
    return (F.when(F.col("rating").isNotNull(), F.col("rating") >= F.lit(positive_rating))
            .otherwise(F.col("weight") >= F.lit(positive_weight)))


def liked_items(interactions: DataFrame, *, n: int, positive_rating: float, positive_weight: float) -> DataFrame:
    """``[user_id, item_id]``: each user's ``n`` latest positive interactions (by ``last_ts``, ties by item id)."""
    return latest_items(interactions.where(is_positive(positive_rating, positive_weight)), n)
