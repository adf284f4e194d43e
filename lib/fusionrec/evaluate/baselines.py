"""Top-K lists of every compared model, from one fitted :class:`FusedModel` and one split.

- popularity: the most-interacted training items the user has not seen;
- als: plain ALS, x_u . y_i over ALS users and ALS items (cold items structurally absent);
- content: profile . item cosine;
- hybrid: the ranker over ALS, content and popular top-N candidates, with text-map factors for
  cold items.
"""

from __future__ import annotations

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from fusionrec.config import ModelConfig
from fusionrec.model.fusion import FusedModel, als_top_n, candidates, content_top_n, rank_candidates, with_features
from fusionrec.model.ranker import RankerParams
from fusionrec.model.topk import blocked_top_n

__all__ = ["model_top_k"]


def popularity_top_k(model: FusedModel, users: DataFrame, seen: DataFrame, k: int, mc: ModelConfig) -> DataFrame:
    """Popularity as a 1-d factor model (user = [1], item = [n_i]) so the blocked scorer
    excludes each user's seen items exactly."""
    items = model.popularity.select("item_id", F.array(F.col("n_interactions").cast("float")).alias("factors"))
    ones = users.select("user_id").distinct().withColumn("factors", F.array(F.lit(1.0).cast("float")))
    return blocked_top_n(ones, items, k, seen, mc.user_blocks, mc.item_blocks)


def model_top_k(name: str, model: FusedModel, users: DataFrame, seen: DataFrame, k: int, mc: ModelConfig,
                ranker: RankerParams | None = None) -> DataFrame:
    """``[user_id, item_id, score, rank]`` of model ``name`` for ``users``."""
    if name == "popularity":
        return popularity_top_k(model, users, seen, k, mc)
    if name == "als":
        return als_top_n(model, k, seen, mc, users, only_als=True)
    if name == "content":
        return content_top_n(model, k, seen, mc, users)
    if name == "hybrid":
        if ranker is None:
            raise ValueError("hybrid needs a fitted ranker")
        featured = with_features(candidates(model, seen, mc, users), model)
        return rank_candidates(featured, ranker, k).select("user_id", "item_id", "score", "rank")
    raise ValueError(f"unknown model {name!r} (popularity, als, content, hybrid)")
