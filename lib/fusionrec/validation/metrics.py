"""Top-K ranking metrics computed in Spark, one row per user, averaged over users.

For a user u with relevant set R_u (|R_u| > 0) and ranked list L_u cut at K
(hit_j = 1 if the item at rank j is in R_u):

- precision@K = sum_j hit_j / K
- recall@K    = sum_j hit_j / |R_u|
- NDCG@K      = sum_j hit_j / log2(j + 1)  /  sum_{j=1..min(|R_u|,K)} 1 / log2(j + 1)
  (binary-relevance NDCG, Järvelin & Kekäläinen 2002)
- AP@K        = sum_j hit_j * precision@j / min(|R_u|, K)   (MAP@K = mean AP@K)
- hit rate@K  = 1 if sum_j hit_j > 0
- coverage@K  = |distinct items recommended to the evaluated users| / catalogue size

Every user with at least one relevant item counts, including users the model returned
nothing for (their metrics are 0), so that a model cannot gain by abstaining.
"""

from __future__ import annotations

import pandas as pd
from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

__all__ = ["METRICS", "item_slice_recall", "per_user_metrics", "ranking_metrics", "summarise"]

#: The names :func:`ranking_metrics` returns (besides ``users``), in report order.
METRICS = ("precision", "recall", "ndcg", "map", "hit_rate", "coverage")


def per_user_metrics(recommendations: DataFrame, relevant: DataFrame, k: int) -> DataFrame:
    """``[user_id, n_relevant, hits, precision, recall, ndcg, ap, hit]`` for every user of
    ``relevant`` (``[user_id, item_id]``); ``recommendations`` is ``[user_id, rank, item_id]``
    with rank starting at 1."""
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    rel = relevant.select("user_id", "item_id").distinct()
    n_rel = rel.groupBy("user_id").agg(F.count(F.lit(1)).alias("n_relevant"))
    top = recommendations.where(F.col("rank") <= k).select("user_id", "item_id", "rank")
    hits = top.join(rel, ["user_id", "item_id"])
    # precision at each hit's rank = (hits at or above it) / rank
    hits = hits.withColumn(
        "_cum", F.row_number().over(Window.partitionBy("user_id").orderBy("rank")))
    per_hit = hits.groupBy("user_id").agg(
        F.count(F.lit(1)).alias("hits"),
        F.sum(1.0 / F.log2(F.col("rank") + 1.0)).alias("dcg"),
        F.sum(F.col("_cum") / F.col("rank")).alias("sum_prec"),
    )
    cut = F.least(F.col("n_relevant"), F.lit(k))
    idcg = F.aggregate(F.sequence(F.lit(1), cut.cast("int")), F.lit(0.0),
                       lambda acc, j: acc + 1.0 / F.log2(j + 1.0))
    out = n_rel.join(per_hit, "user_id", "left").fillna(0, ["hits", "dcg", "sum_prec"])
    return out.select(
        "user_id", "n_relevant", "hits",
        (F.col("hits") / F.lit(float(k))).alias("precision"),
        (F.col("hits") / F.col("n_relevant")).alias("recall"),
        (F.col("dcg") / idcg).alias("ndcg"),
        (F.col("sum_prec") / cut).alias("ap"),
        (F.col("hits") > 0).cast("double").alias("hit"),
    )


def ranking_metrics(recommendations: DataFrame, relevant: DataFrame, k: int,
                    catalogue_size: int) -> dict[str, float]:
    """The metrics of the module docstring at ``k``.

    Parameters
    ----------
    recommendations : DataFrame
        ``[user_id, rank, item_id]``, rank 1 first; rows beyond rank ``k`` are ignored.
    relevant : DataFrame
        ``[user_id, item_id]``: the relevant items; its users are the users evaluated.
    k : int
        The cut-off.
    catalogue_size : int
        The number of recommendable items (the denominator of ``coverage``).

    Returns
    -------
    dict
        ``precision``, ``recall``, ``ndcg``, ``map``, ``hit_rate``, ``coverage`` (floats,
        averaged over the evaluated users) and ``users`` (their number).

    Examples
    --------
    >>> recs = spark.createDataFrame([("u1", 1, "a"), ("u1", 2, "b"), ("u2", 1, "c")],
    ...                              "user_id STRING, rank INT, item_id STRING")
    >>> relevant = spark.createDataFrame([("u1", "b"), ("u2", "d")], "user_id STRING, item_id STRING")
    >>> metrics = ranking_metrics(recs, relevant, 2, 4)
    >>> {name: round(value, 4) for name, value in metrics.items()}
    {'precision': 0.25, 'recall': 0.5, 'ndcg': 0.3155, 'map': 0.25, 'hit_rate': 0.5, 'coverage': 0.75, 'users': 2}
    """
    # Two jobs read the top k: computed once (a model's top k is often a costly lazy plan).
    top = recommendations.where(F.col("rank") <= k).select("user_id", "rank", "item_id").cache()
    try:
        per_user = per_user_metrics(top, relevant, k).toPandas()
        users = relevant.select("user_id").distinct()
        n_covered = top.join(users, "user_id").select("item_id").distinct().count()
    finally:
        top.unpersist()
    return summarise(per_user, n_covered, catalogue_size)


def summarise(per_user: pd.DataFrame, n_covered: int, catalogue_size: int) -> dict[str, float]:
    """:func:`ranking_metrics` from the rows of :func:`per_user_metrics` (collected, one per
    evaluated user) and the number of distinct items in those users' top k.

    >>> rows = pd.DataFrame({"precision": [0.5, 0.0], "recall": [1.0, 0.0], "ndcg": [0.6309, 0.0],
    ...                      "ap": [0.5, 0.0], "hit": [1.0, 0.0]})
    >>> summarise(rows, 3, 4)["ndcg"], summarise(rows, 3, 4)["coverage"]
    (0.31545, 0.75)
    """
    n = len(per_user)
    means = {name: float(per_user[column].mean()) if n else 0.0
             for name, column in (("precision", "precision"), ("recall", "recall"), ("ndcg", "ndcg"),
                                  ("map", "ap"), ("hit_rate", "hit"))}
    return {**means, "coverage": n_covered / catalogue_size if catalogue_size else 0.0, "users": n}


def item_slice_recall(recommendations: DataFrame, relevant: DataFrame, items: DataFrame, k: int) -> dict[str, float]:
    """Recall@K restricted to ``items`` (e.g. the cold items): over users with at least one
    relevant item in the slice, hits on slice items / relevant slice items, averaged."""
    rel = relevant.join(items.select("item_id").distinct(), "item_id")
    per_user = per_user_metrics(recommendations.join(items.select("item_id").distinct(), "item_id"), rel, k)
    row = per_user.agg(F.count(F.lit(1)).alias("users"), F.avg("recall").alias("recall"),
                       F.avg("hit").alias("hit_rate")).first()
    return {"recall": float(row["recall"] or 0.0), "hit_rate": float(row["hit_rate"] or 0.0),
            "users": int(row["users"])}
