"""Implicit-feedback ALS (Spark MLlib) on the gold interaction weights.

ALS with ``implicitPrefs`` minimises
sum_{u,i} c_ui (p_ui - x_u . y_i)^2 + lambda (sum ||x_u||^2 + sum ||y_i||^2),
with preference p_ui = 1 for observed pairs, 0 otherwise, and confidence
c_ui = 1 + alpha * w_ui from the interaction weight w_ui
(Hu, Koren & Volinsky, "Collaborative Filtering for Implicit Feedback Datasets", ICDM 2008).

Spark ALS needs integer ids: string ids are indexed with ``zipWithIndex`` (distributed)
and mapped back, so factor tables are keyed by the original ``user_id`` / ``item_id``.

The fitted ``ALSModel`` itself is kept too (:func:`save_als`): ``<lake.root>/model/als_model``
(``ALSModel.save``, any Hadoop URI) with its id indexes ``model.als_user_ids`` ``[user_id, u]``
and ``model.als_item_ids`` ``[item_id, i]``, so that a Spark user can load it natively (the
registry logs it with ``mlflow.spark``) and map its integer ids back.
"""

from __future__ import annotations

from dataclasses import dataclass

from pyspark.ml.recommendation import ALS, ALSModel
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from fusionrec.config import ModelConfig
from fusionrec.lake import ALS_MODEL, Lake

__all__ = ["AlsFactors", "AlsParams", "ALS_MODEL", "fit_als", "load_als_model", "save_als"]


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
    #: the fitted Spark model, on the integer ids of ``user_ids`` / ``item_ids``
    model: ALSModel | None = None
    #: [user_id, u INT]: the model's user ids
    user_ids: DataFrame | None = None
    #: [item_id, i INT]: the model's item ids
    item_ids: DataFrame | None = None


def _index_ids(df: DataFrame, col: str, index_col: str) -> DataFrame:
    """``[<col>, <index_col> INT]``: a dense 0-based integer index of the distinct values."""
    distinct = df.select(col).distinct()
    schema = f"{col} STRING, {index_col} INT"
    return distinct.rdd.map(lambda r: r[0]).zipWithIndex() \
        .map(lambda kv: (kv[0], int(kv[1]))).toDF(schema)


def fit_als(interactions: DataFrame, mc: ModelConfig, params: AlsParams | None = None) -> AlsFactors:
    """Fit implicit ALS on ``[user_id, item_id, weight]`` and return the factor tables."""
    params = params or AlsParams.from_config(mc)
    users = _index_ids(interactions, "user_id", "u").cache()
    items = _index_ids(interactions, "item_id", "i").cache()
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
    return AlsFactors(users=user_factors, items=item_factors, params=params, model=model, user_ids=users,
                      item_ids=items)


def save_als(lake: Lake, als: AlsFactors) -> None:
    """Save the fitted ``ALSModel`` at :data:`ALS_MODEL` and its id indexes as the Delta
    tables ``model.als_user_ids`` / ``model.als_item_ids`` (all overwritten)."""
    if als.model is None or als.user_ids is None or als.item_ids is None:
        raise ValueError("these ALS factors carry no fitted ALSModel (they were not fitted by fit_als)")
    als.model.write().overwrite().save(lake.uri(ALS_MODEL))
    lake.overwrite("model.als_user_ids", als.user_ids)
    lake.overwrite("model.als_item_ids", als.item_ids)


def load_als_model(lake: Lake) -> ALSModel | None:
    """The ``ALSModel`` :func:`save_als` saved, or None when there is none."""
    if lake.stamp(f"{ALS_MODEL}/metadata") is None:
        return None
    return ALSModel.load(lake.uri(ALS_MODEL))
