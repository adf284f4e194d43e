"""Blocked top-N scoring of every user against every item, in Spark.

Users are hashed into ``user_blocks`` blocks and items into ``item_blocks`` blocks; each
block is collected into one row (ids + a list of vectors), the B x C block pairs are
cross joined (B*C rows, not users*items) and spread one pair per partition, and each pair
is scored with one matrix product in a pandas function: S = U V^T (BLAS), seen items
masked, top-N per user by a partial sort with ties broken by item id before the cut
(:func:`fusionrec.model.scoring.top_columns`). A final window keeps the top N per user
over the C item blocks, ordered by (score desc, item id): the same order, so that which of
several equal-scored items is kept never depends on the partition order. No factor matrix
ever reaches the driver and no users x items DataFrame is materialised (the same block
strategy as ALS ``recommendForAll``).
"""

from __future__ import annotations

from typing import Iterator

import numpy as np
import pandas as pd
from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from fusionrec.model.scoring import top_columns, unit_rows

__all__ = ["SCORES_SCHEMA", "blocked_top_n", "top_n"]

SCORES_SCHEMA = "user_id STRING, item_id STRING, score DOUBLE"


def _block_rows(df: DataFrame, id_col: str, vec_col: str, n_blocks: int, prefix: str,
                extra: str | None = None, flag: str | None = None) -> DataFrame:
    aggs = [F.collect_list(id_col).alias(f"{prefix}_ids"), F.collect_list(vec_col).alias(f"{prefix}_vecs")]
    if extra:
        aggs.append(F.collect_list(F.coalesce(F.col(extra), F.array().cast("array<string>"))).alias(f"{prefix}_seen"))
    if flag:
        aggs.append(F.collect_list(F.coalesce(F.col(flag), F.lit(False))).alias(f"{prefix}_pool"))
    return (df.withColumn(f"{prefix}_block", F.pmod(F.xxhash64(id_col), F.lit(n_blocks)))
            .groupBy(f"{prefix}_block").agg(*aggs))


def _score_blocks(n: int, normalise: bool, pooled: bool = False, chunk_users: int = 1024) -> "callable":
    """The pandas function scoring one (user block, item block) pair per input row, in
    chunks of ``chunk_users`` users so a score matrix stays ~chunk x items floats.

    ``pooled``: each user's top ``n`` among the items flagged ``i_pool`` too, from the same
    score matrix (rows with ``in_pool`` true); the top ``n`` of all items have it false."""
    def top_rows(scores: np.ndarray, top: int, users: np.ndarray, item_ids: np.ndarray) -> dict:
        idx = np.nonzero(top_columns(scores, top))[1].reshape(-1, top)
        best = np.take_along_axis(scores, idx, axis=1)
        keep = np.isfinite(best)
        user_ids = np.repeat(users, top).reshape(-1, top)
        return {"user_id": user_ids[keep], "item_id": item_ids[idx][keep], "score": best[keep].astype(np.float64)}

    def score(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        for batch in batches:
            for row in batch.itertuples(index=False):
                # Columns in item id order: ties at the cut keep the lower item id.
                order = np.argsort(np.asarray(row.i_ids, dtype=object).astype(str), kind="stable")
                items = np.stack([row.i_vecs[j] for j in order]).astype(np.float32)
                items = unit_rows(items) if normalise else items
                item_ids = np.asarray(row.i_ids, dtype=object)[order]
                pool = np.asarray(row.i_pool, dtype=bool)[order] if pooled else None
                position = {item: j for j, item in enumerate(item_ids)}
                top = min(n, len(item_ids))
                all_users = np.asarray(row.u_ids, dtype=object)
                for lo in range(0, len(all_users), chunk_users):
                    users = np.stack(row.u_vecs[lo:lo + chunk_users]).astype(np.float32)
                    scores = (unit_rows(users) if normalise else users) @ items.T
                    for u, seen in enumerate(row.u_seen[lo:lo + chunk_users]):
                        cols = [position[s] for s in seen if s in position]
                        if cols:
                            scores[u, cols] = -np.inf
                    np.nan_to_num(scores, copy=False, nan=-np.inf)  # top_columns needs comparable scores
                    chunk = all_users[lo:lo + chunk_users]
                    out = pd.DataFrame(top_rows(scores, top, chunk, item_ids))
                    if pooled:
                        out["in_pool"] = False
                        if pool.any():
                            in_pool = pd.DataFrame(top_rows(np.where(pool, scores, -np.inf), top, chunk, item_ids))
                            out = pd.concat([out, in_pool.assign(in_pool=True)], ignore_index=True)
                    yield out
    return score


def blocked_top_n(users: DataFrame, items: DataFrame, n: int, seen: DataFrame | None = None,
                  user_blocks: int = 8, item_blocks: int = 1, normalise: bool = False,
                  user_vec: str = "factors", item_vec: str = "factors", pool: str | None = None) -> DataFrame:
    """``[user_id, item_id, score, rank]``: the ``n`` best items per user by dot product
    (cosine when ``normalise``), excluding ``seen`` ``[user_id, item_id]`` pairs.

    :param users: ``[user_id, <user_vec> ARRAY<FLOAT>]``
    :param items: ``[item_id, <item_vec> ARRAY<FLOAT>]`` of the same dimension
    :param pool: a boolean column of ``items``: also each user's ``n`` best among the items
        where it is true, from the same scores (one pass, not two), as rows with column
        ``in_pool`` true (ranked among themselves); the ``n`` best of all have it false.
    """
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    u = users.select("user_id", F.col(user_vec).alias("vec"))
    if seen is not None:
        seen_lists = seen.groupBy("user_id").agg(F.collect_set("item_id").alias("seen"))
        u = u.join(seen_lists, "user_id", "left")
    else:
        u = u.withColumn("seen", F.lit(None).cast("array<string>"))
    ub = _block_rows(u, "user_id", "vec", user_blocks, "u", extra="seen")
    ib = _block_rows(items.select("item_id", F.col(item_vec).alias("vec"), *([pool] if pool else [])),
                     "item_id", "vec", item_blocks, "i", flag=pool)
    pairs = ub.crossJoin(ib).repartition(user_blocks * item_blocks)
    if pool is None:
        return top_n(pairs.mapInPandas(_score_blocks(n, normalise), SCORES_SCHEMA), n)
    scored = pairs.mapInPandas(_score_blocks(n, normalise, pooled=True), f"{SCORES_SCHEMA}, in_pool BOOLEAN")
    return top_n(scored, n, by=("user_id", "in_pool"))


def top_n(scores: DataFrame, n: int, score_col: str = "score", by: tuple[str, ...] = ("user_id",)) -> DataFrame:
    """Keep the ``n`` highest-scoring rows per user (per group of the ``by`` columns), with
    ``rank`` 1..n (ties by item_id)."""
    w = Window.partitionBy(*by).orderBy(F.col(score_col).desc(), F.col("item_id"))
    return scores.withColumn("rank", F.row_number().over(w)).where(F.col("rank") <= n)
