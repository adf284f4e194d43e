"""Top-K recommendations for every user, with the reason each item is there.

Scoring is :func:`fusionrec.model.scoring.score_user` (candidates, ranker features, ranker
score, top k, reason), the code the MLflow serving bundle runs for one request, run here
for every user in Spark: users are hashed into ``model.user_blocks`` blocks, each block
collected into one row (ids, factors, session vectors, profiles, seen and liked items), the catalogue into
one row (ids, titles, categories, factors, unit vectors, popularity, sentiment, recent popularity)
that is broadcast to every block, and each block is scored in one pandas task with two
matrix products per chunk of users (S_als = X Y^T, S_session = R Y^T, S_content = P V^T,
BLAS) followed by
the per-user candidate and ranking steps. No factor matrix reaches the driver, and no
(user, candidate) pair is shuffled: only the K recommendations per user leave a task.

Users with neither factors nor a profile get the popularity fallback
(:func:`fusionrec.model.scoring.popular_fallback`, as in serving). "Liked" (named in
reasons) is :func:`fusionrec.validation.feedback.liked_items`, as in serving.
"""

from __future__ import annotations

from typing import Callable, Iterator

import numpy as np
import pandas as pd
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from fusionrec.config import EvaluateConfig, ModelConfig
from fusionrec.validation.feedback import liked_items
from fusionrec.model.fusion import FusedModel, recent_popularity, recommendation_weeks
from fusionrec.model.ranker import NEUTRAL_SENTIMENT, RankerParams
from fusionrec.model.scoring import (
    REASON_POPULAR, Catalogue, Ranker, popular_fallback, popular_order, reasons, score_user, stack_rows, unit_rows)

__all__ = ["RECOMMENDATIONS_SCHEMA", "recommend_all", "score_all"]

RECOMMENDATIONS_SCHEMA = "user_id STRING, rank INT, item_id STRING, score DOUBLE, reason STRING"


def _catalogue_row(model: FusedModel, titles: DataFrame, categories: DataFrame | None) -> DataFrame:
    """One row: the catalogue's columns as parallel lists (missing factors/vectors: empty;
    category: the item's first, "" without one)."""
    if model.times is not None:
        raise ValueError("recommend_all scores every user in the model's own week; model.times must be None")
    recent = recent_popularity(model.item_weeks, recommendation_weeks(model), model.recent_weeks).drop("week")
    items = (model.item_factors.select("item_id", "factors", "text_log_popularity")
             .join(model.item_vectors.select("item_id", "vector"), "item_id", "full")
             .join(model.popularity.select("item_id", "log_popularity"), "item_id", "left")
             .join(model.sentiment, "item_id", "left")
             .join(recent, "item_id", "left")
             .join(titles.select("item_id", "title"), "item_id", "left"))
    if categories is not None:
        items = items.join(categories.select("item_id", F.col("categories")[0].alias("category")), "item_id", "left")
    else:
        items = items.withColumn("category", F.lit(None).cast("string"))
    empty = F.array().cast("array<float>")
    return items.agg(
        F.collect_list("item_id").alias("i_ids"),
        F.collect_list(F.coalesce("title", "item_id")).alias("i_titles"),
        F.collect_list(F.coalesce("category", F.lit(""))).alias("i_categories"),
        F.collect_list(F.coalesce("factors", empty)).alias("i_factors"),
        F.collect_list(F.coalesce("vector", empty)).alias("i_vectors"),
        F.collect_list(F.coalesce("log_popularity", F.lit(0.0))).alias("i_log_popularity"),
        F.collect_list(F.coalesce("text_log_popularity", F.lit(0.0))).alias("i_text_log_popularity"),
        F.collect_list(F.coalesce("item_sentiment", F.lit(NEUTRAL_SENTIMENT))).alias("i_sentiment"),
        F.collect_list(F.coalesce("recent_popularity", F.lit(0.0))).alias("i_recent"))


def _user_blocks(model: FusedModel, users: DataFrame, interactions: DataFrame, mc: ModelConfig,
                 ec: EvaluateConfig) -> DataFrame:
    """One row per block of users: ids, factors, profiles, seen and liked items as parallel lists."""
    seen = interactions.groupBy("user_id").agg(F.collect_list("item_id").alias("seen"))
    liked = (liked_items(interactions, n=mc.reason_max_liked, positive_rating=ec.positive_rating,
                         positive_weight=ec.positive_weight)
             .groupBy("user_id").agg(F.collect_list("item_id").alias("liked")))
    rows = (users.select("user_id").distinct()
            .join(model.user_factors.select("user_id", "factors"), "user_id", "left")
            .join(model.sessions.select("user_id", F.col("factors").alias("session")), "user_id", "left")
            .join(model.user_profiles.select("user_id", F.col("vector").alias("profile")), "user_id", "left")
            .join(seen, "user_id", "left").join(liked, "user_id", "left"))
    empty_f, empty_s = F.array().cast("array<float>"), F.array().cast("array<string>")
    return (rows.withColumn("block", F.pmod(F.xxhash64("user_id"), F.lit(mc.user_blocks)))
            .groupBy("block").agg(
                F.collect_list("user_id").alias("u_ids"),
                F.collect_list(F.coalesce("factors", empty_f)).alias("u_factors"),
                F.collect_list(F.coalesce("session", empty_f)).alias("u_sessions"),
                F.collect_list(F.coalesce("profile", empty_f)).alias("u_profiles"),
                F.collect_list(F.coalesce("seen", empty_s)).alias("u_seen"),
                F.collect_list(F.coalesce("liked", empty_s)).alias("u_liked")))


def _width(rows: list) -> int:
    return next((len(r) for r in rows if len(r) > 0), 0)


def _score_blocks(ranker: Ranker | None, n: int, k: int, chunk_users: int = 1024
                  ) -> Callable[[Iterator[pd.DataFrame]], Iterator[pd.DataFrame]]:
    def score(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        for batch in batches:
            for row in batch.itertuples(index=False):
                order = np.argsort(np.asarray(row.i_ids, dtype=object).astype(str), kind="stable")
                item_ids = np.asarray(row.i_ids, dtype=object)[order]
                titles = np.asarray(row.i_titles, dtype=object)[order]
                factors, has_factors = stack_rows([row.i_factors[j] for j in order], _width(row.i_factors))
                vectors, has_vector = stack_rows([row.i_vectors[j] for j in order], _width(row.i_vectors))
                log_popularity = np.asarray(row.i_log_popularity, dtype=np.float64)[order]
                catalogue = Catalogue(
                    factors=factors, vectors=unit_rows(vectors), has_factors=has_factors, has_vector=has_vector,
                    log_popularity=log_popularity,
                    item_sentiment=np.asarray(row.i_sentiment, dtype=np.float64)[order],
                    recent_popularity=np.asarray(row.i_recent, dtype=np.float64)[order],
                    popular_order=popular_order(log_popularity, np.asarray(row.i_categories, dtype=object)[order]),
                    text_log_popularity=np.asarray(row.i_text_log_popularity, dtype=np.float64)[order])
                pools = catalogue.popular_pools(n)
                position = {item: j for j, item in enumerate(item_ids.tolist())}
                for lo in range(0, len(row.u_ids), chunk_users):
                    hi = lo + chunk_users
                    user_factors, has_uf = stack_rows(row.u_factors[lo:hi], factors.shape[1])
                    sessions, has_session = stack_rows(row.u_sessions[lo:hi], factors.shape[1])
                    profiles, has_profile = stack_rows(row.u_profiles[lo:hi], vectors.shape[1])
                    als = user_factors @ factors.T  # (chunk, items)
                    session = sessions @ factors.T
                    cosine = unit_rows(profiles) @ catalogue.vectors.T
                    out: dict[str, list] = {"user_id": [], "rank": [], "item_id": [], "score": [], "reason": []}
                    for u, user in enumerate(row.u_ids[lo:hi]):
                        allowed = np.ones(catalogue.n_items, dtype=bool)
                        allowed[[position[i] for i in row.u_seen[lo + u] if i in position]] = False
                        liked = np.array([position[i] for i in row.u_liked[lo + u] if i in position], dtype=np.int64)
                        if has_uf[u] or has_profile[u]:
                            scored = score_user(catalogue, als[u] if has_uf[u] else None,
                                                session[u] if has_session[u] else None,
                                                cosine[u] if has_profile[u] else None, allowed, pools, n, k, ranker)
                            why = reasons(catalogue, titles, scored, liked, cosine[u] if has_profile[u] else None)
                        else:
                            scored = popular_fallback(catalogue, allowed, k)
                            why = [REASON_POPULAR] * scored.items.size
                        m = scored.items.size
                        out["user_id"] += [user] * m
                        out["rank"] += list(range(1, m + 1))
                        out["item_id"] += item_ids[scored.items].tolist()
                        out["score"] += scored.scores.tolist()
                        out["reason"] += why
                    yield pd.DataFrame(out)
    return score


def score_all(model: FusedModel, ranker: RankerParams | None, users: DataFrame, interactions: DataFrame,
              titles: DataFrame, mc: ModelConfig, *, ec: EvaluateConfig,
              categories: DataFrame | None = None) -> DataFrame:
    """``[user_id, rank, item_id, score, reason]``: the ranker's top ``mc.k`` of every user of
    ``users`` (the ALS score orders without a ranker), seen items (``interactions``)
    excluded; the popularity fallback for the users with neither factors nor a profile.

    :param titles: ``[item_id, title]``
    :param ec: what counts as positive feedback (liked items named in reasons)
    :param categories: ``[item_id, categories ARRAY<STRING>]`` spreading the fallback over categories
    """
    catalogue = F.broadcast(_catalogue_row(model, titles, categories))
    blocks = _user_blocks(model, users, interactions, mc, ec).crossJoin(catalogue).repartition(mc.user_blocks)
    fn = _score_blocks(Ranker.from_json(ranker.to_json()) if ranker is not None else None, mc.candidates_n, mc.k)
    return blocks.mapInPandas(fn, RECOMMENDATIONS_SCHEMA)


def recommend_all(model: FusedModel, ranker: RankerParams | None, interactions: DataFrame, titles: DataFrame,
                  categories: DataFrame | None, mc: ModelConfig, *, ec: EvaluateConfig) -> DataFrame:
    """``[user_id, rank, item_id, score, reason]`` for every user with interactions or a
    profile: K ranked unseen items each (fewer where fewer unseen candidates exist).

    Parameters
    ----------
    model : FusedModel
        From :func:`fusionrec.model.fusion.fit_fused` (or :func:`fusionrec.model.train.load_model`).
    ranker : RankerParams
        The fitted ranker (its features are :data:`fusionrec.model.ranker.RANKER_FEATURES`).
    interactions : DataFrame
        ``[user_id, item_id, weight, rating, last_ts]``: the training interactions (seen items
        are excluded, the latest positive ones name the reason).
    titles : DataFrame
        ``[item_id, title]`` (titles may be null).
    categories : DataFrame or None
        ``[item_id, categories ARRAY<STRING>]``: spreads the popularity fallback over categories.
    mc : ModelConfig
        ``k``, ``candidates_n``, the scoring blocks and ``reason_max_liked``.
    ec : EvaluateConfig
        The positive-feedback thresholds: which interactions are "liked" and may name a reason.

    Returns
    -------
    DataFrame
        ``[user_id, rank INT, item_id, score DOUBLE, reason STRING]`` (``gold.recommendations``);
        users the model cannot score get the popularity fallback (reason "popular now").

    Examples
    --------
    Three users who took two of four items each, a fifth item nobody took yet (text only),
    and a ranker that orders by the ALS score alone:

    >>> from fusionrec.config import EvaluateConfig, ModelConfig
    >>> from fusionrec.model.als import AlsParams
    >>> from fusionrec.model.fusion import fit_fused
    >>> from fusionrec.model.ranker import RANKER_FEATURES, RankerParams
    >>> taken = {"ann": ["a", "b"], "bob": ["b", "c"], "cy": ["c", "d"]}
    >>> interactions = spark.createDataFrame(
    ...     [(user, item) for user, items in taken.items() for item in items], "user_id STRING, item_id STRING",
    ... ).selectExpr("*", "1D AS weight", "CAST(NULL AS DOUBLE) AS rating", "TIMESTAMP'2024-01-01' AS first_ts",
    ...             "TIMESTAMP'2024-01-01' AS last_ts")
    >>> unit = {"a": [1.0, 0.0], "b": [0.8, 0.6], "c": [0.6, 0.8], "d": [0.0, 1.0], "e": [0.7, 0.7]}
    >>> items = spark.createDataFrame(list(unit.items()), "item_id STRING, vector ARRAY<FLOAT>")
    >>> users = spark.createDataFrame([("ann", unit["a"]), ("bob", unit["b"]), ("cy", unit["d"])],
    ...                               "user_id STRING, vector ARRAY<FLOAT>")
    >>> mc = ModelConfig(max_iter=2, min_user_interactions=1, k=2)
    >>> model = fit_fused(interactions, items, users, None, mc, AlsParams(rank=2, reg_param=0.1, alpha=1.0))
    >>> zeros, ones = [0.0] * len(RANKER_FEATURES), [1.0] * len(RANKER_FEATURES)
    >>> als_only = RankerParams(list(RANKER_FEATURES), zeros, ones, [float(f == "als_score") for f in RANKER_FEATURES],
    ...                         0.0)
    >>> titles = items.selectExpr("item_id", "upper(item_id) AS title")
    >>> recs = recommend_all(model, als_only, interactions, titles, None, mc, ec=EvaluateConfig())
    >>> sorted(recs.columns)
    ['item_id', 'rank', 'reason', 'score', 'user_id']
    >>> sorted((r.user_id, r.n) for r in recs.groupBy("user_id").agg(F.count("*").alias("n")).collect())
    [('ann', 2), ('bob', 2), ('cy', 2)]
    >>> recs.join(interactions, ["user_id", "item_id"]).count()  # nothing already seen
    0
    """
    users = (interactions.select("user_id").union(model.user_factors.select("user_id"))
             .union(model.user_profiles.select("user_id")).distinct())
    return score_all(model, ranker, users, interactions, titles, mc, ec=ec, categories=categories)
