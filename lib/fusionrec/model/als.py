"""Implicit-feedback ALS (Spark MLlib) on the gold interaction weights.

ALS with ``implicitPrefs`` minimises
sum_{u,i} c_ui (p_ui - x_u . y_i)^2 + lambda (sum ||x_u||^2 + sum ||y_i||^2),
with preference p_ui = 1 for observed pairs, 0 otherwise, and confidence
c_ui = 1 + alpha * w_ui from the interaction weight w_ui
(Hu, Koren & Volinsky, "Collaborative Filtering for Implicit Feedback Datasets", ICDM 2008).

Spark ALS needs integer ids: string ids are indexed with ``zipWithIndex`` (distributed)
and mapped back, so factor tables are keyed by the original ``user_id`` / ``item_id``.
"""

from __future__ import annotations

from dataclasses import dataclass

from pyspark.ml.recommendation import ALS, ALSModel
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from fusionrec.config import ModelConfig


@dataclass(frozen=True)
class AlsParams:
    """The ALS hyper-parameters that the validation search varies."""

    rank: int
    reg_param: float
    alpha: float

    @classmethod
    def from_config(cls, mc: ModelConfig) -> "AlsParams":
        return cls(rank=mc.rank, reg_param=mc.reg_param, alpha=mc.alpha)


@dataclass(frozen=True)
class AlsFactors:
    """``users``: [user_id, factors ARRAY<FLOAT>]; ``items``: [item_id, factors ARRAY<FLOAT>]."""

    users: DataFrame
    items: DataFrame
    params: AlsParams


def index_ids(df: DataFrame, col: str, index_col: str) -> DataFrame:
    """``[<col>, <index_col> INT]``: a dense 0-based integer index of the distinct values."""
    distinct = df.select(col).distinct()
    schema = f"{col} STRING, {index_col} INT"
    return distinct.rdd.map(lambda r: r[0]).zipWithIndex() \
        .map(lambda kv: (kv[0], int(kv[1]))).toDF(schema)


def fit_als(interactions: DataFrame, mc: ModelConfig, params: AlsParams | None = None) -> AlsFactors:
    """Fit implicit ALS on ``[user_id, item_id, weight]`` and return the factor tables."""
    params = params or AlsParams.from_config(mc)
    users = index_ids(interactions, "user_id", "u").cache()
    items = index_ids(interactions, "item_id", "i").cache()
    data = (interactions.select("user_id", "item_id", F.col("weight").cast("float").alias("w"))
            .join(users, "user_id").join(items, "item_id").select("u", "i", "w"))
    blocks = int(interactions.sparkSession.conf.get("spark.sql.shuffle.partitions"))
    als = ALS(rank=params.rank, numUserBlocks=blocks, numItemBlocks=blocks, regParam=params.reg_param, alpha=params.alpha, maxIter=mc.max_iter,
              implicitPrefs=True, userCol="u", itemCol="i", ratingCol="w", nonnegative=False,
              checkpointInterval=mc.checkpoint_interval, coldStartStrategy="drop", seed=mc.seed,
              intermediateStorageLevel="MEMORY_AND_DISK", finalStorageLevel="MEMORY_AND_DISK")
    model: ALSModel = als.fit(data)
    user_factors = model.userFactors.join(users, F.col("id") == F.col("u")) \
        .select("user_id", F.col("features").alias("factors"))
    item_factors = model.itemFactors.join(items, F.col("id") == F.col("i")) \
        .select("item_id", F.col("features").alias("factors"))
    return AlsFactors(users=user_factors, items=item_factors, params=params)
