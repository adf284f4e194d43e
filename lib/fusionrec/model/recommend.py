"""Top-K recommendations for every user, with the reason each item is there.

Score: the ranker over the candidates of :func:`fusionrec.model.fusion.candidates`.
Users with neither factors nor a profile get the popularity fallback: the most popular
unseen items, interleaved across categories (each category's best item first) so the
list is not one genre.

Reason: the ranker contribution coef_k (x_k - mean_k) / std_k that is largest for the
recommended item decides the kind of reason:

- ``content_cosine`` / ``content_rank_gain`` -> "similar to <title> you liked": the liked
  item whose text vector is nearest (cosine) to the recommended one;
- ``als_score`` / ``als_rank_gain`` -> "popular with people who liked <title>": the liked
  item whose ALS factor is most aligned with the recommended item's factor;
- ``item_sentiment`` -> "well reviewed"; ``cold_item`` -> "new arrival";
  ``log_popularity``, ``recent_popularity`` and the fallback -> "popular now".

"Liked" = the user's ``reason_max_liked`` most recent training interactions.
"""

from __future__ import annotations

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from fusionrec.config import ModelConfig
from fusionrec.model.fusion import FusedModel, candidates, rank_candidates, with_features
from fusionrec.model.ranker import RANKER_FEATURES, RankerParams
from fusionrec.model.topk import blocked_top_n, top_n
from fusionrec.features.vectors import dot, normalised


def liked_items(interactions: DataFrame, max_liked: int) -> DataFrame:
    """``[user_id, liked_id]``: each user's most recent ``max_liked`` interactions."""
    w = Window.partitionBy("user_id").orderBy(F.col("last_ts").desc(), F.col("item_id"))
    return (interactions.withColumn("_r", F.row_number().over(w)).where(F.col("_r") <= max_liked)
            .select("user_id", F.col("item_id").alias("liked_id")))


def _nearest_liked(recs: DataFrame, liked: DataFrame, vectors: DataFrame, key: str, vec: str,
                   out: str) -> DataFrame:
    """``[user_id, item_id, <out>]``: the liked item whose vector has the highest cosine with
    each recommended item's.

    The catalogue's vectors are broadcast (the serving bundle holds them in memory too) and
    the cosine is computed in the JVM, so the (recommended, liked) pairs - K x liked per
    user - never carry vectors through a shuffle.
    """
    unit = F.broadcast(normalised(vectors.select(F.col(key).alias("_id"), F.col(vec).alias("_v")), "_v"))
    pairs = (recs.select("user_id", "item_id").join(liked, "user_id")
             .join(unit.select(F.col("_id").alias("item_id"), F.col("_v").alias("_a")), "item_id")
             .join(unit.select(F.col("_id").alias("liked_id"), F.col("_v").alias("_b")), "liked_id"))
    return pairs.groupBy("user_id", "item_id").agg(F.max_by("liked_id", dot(F.col("_a"), F.col("_b"))).alias(out))


def explain(ranked: DataFrame, model: FusedModel, interactions: DataFrame, titles: DataFrame,
            mc: ModelConfig) -> DataFrame:
    """``ranked`` (with ``contrib_*`` columns) plus a readable ``reason``."""
    strongest = F.greatest(*[F.col(f"contrib_{name}") for name in RANKER_FEATURES])
    content_led = (F.col("contrib_content_cosine") == strongest) | (F.col("contrib_content_rank_gain") == strongest)
    als_led = (F.col("contrib_als_score") == strongest) | (F.col("contrib_als_rank_gain") == strongest)
    liked = liked_items(interactions, mc.reason_max_liked)
    # The nearest liked item is only looked for where that signal names the reason.
    by_text = _nearest_liked(ranked.where(content_led), liked, model.item_vectors, "item_id", "vector", "_text_liked")
    by_als = _nearest_liked(ranked.where(als_led), liked, model.item_factors, "item_id", "factors", "_als_liked")
    t = titles.select(F.col("item_id").alias("_tid"), F.coalesce("title", "item_id").alias("_title"))
    df = (ranked.join(by_text, ["user_id", "item_id"], "left").join(by_als, ["user_id", "item_id"], "left")
          .join(t.withColumnRenamed("_title", "_text_title"), F.col("_text_liked") == F.col("_tid"), "left").drop("_tid")
          .join(t.withColumnRenamed("_title", "_als_title"), F.col("_als_liked") == F.col("_tid"), "left").drop("_tid"))
    reason = (F.when(content_led & F.col("_text_title").isNotNull(),
                     F.concat(F.lit("similar to "), F.col("_text_title"), F.lit(" you liked")))
              .when(als_led & F.col("_als_title").isNotNull(),
                    F.concat(F.lit("popular with people who liked "), F.col("_als_title")))
              .when(F.col("contrib_item_sentiment") == strongest, F.lit("well reviewed"))
              .when(F.col("contrib_cold_item") == strongest, F.lit("new arrival"))
              .otherwise(F.lit("popular now")))
    return df.withColumn("reason", reason)


def popularity_fallback(model: FusedModel, users: DataFrame, seen: DataFrame, categories: DataFrame | None,
                        mc: ModelConfig) -> DataFrame:
    """Popular unseen items for users the model knows nothing about, diversified over the
    first category of each item: score = -(rank of the item within its category), ties by
    popularity, so the top of the list takes one item from each category in turn."""
    pop = model.popularity
    if categories is not None:
        pop = pop.join(categories.select("item_id", F.col("categories")[0].alias("_cat")), "item_id", "left")
        w = Window.partitionBy(F.coalesce("_cat", F.lit(""))).orderBy(F.col("n_interactions").desc(), "item_id")
        pop = pop.withColumn("_within", F.row_number().over(w))
        score = -F.col("_within").cast("float") + F.col("log_popularity").cast("float") / 1e3
    else:
        score = F.col("log_popularity").cast("float")
    items = pop.select("item_id", F.array(score).alias("factors"))
    ones = users.select("user_id").withColumn("factors", F.array(F.lit(1.0).cast("float")))
    return blocked_top_n(ones, items, mc.k, seen, mc.user_blocks, mc.item_blocks)


def recommend_all(model: FusedModel, ranker: RankerParams, interactions: DataFrame, titles: DataFrame,
                  categories: DataFrame | None, mc: ModelConfig) -> DataFrame:
    """``[user_id, rank, item_id, score, reason]`` for every user with interactions or a
    profile: K ranked unseen items each."""
    seen = interactions.select("user_id", "item_id")
    known = model.user_factors.select("user_id").union(model.user_profiles.select("user_id")).distinct()
    everyone = known.union(interactions.select("user_id")).distinct()
    featured = with_features(candidates(model, seen, mc, known), model)
    ranked = explain(rank_candidates(featured, ranker, mc.k), model, interactions, titles, mc)
    ranked = ranked.select("user_id", "item_id", "score", "reason")
    unknown = everyone.join(ranked.select("user_id").distinct(), "user_id", "left_anti")
    # Negative rank as score keeps the fallback's own order in the final ranking.
    fallback = popularity_fallback(model, unknown, seen, categories, mc).select(
        "user_id", "item_id", (-F.col("rank").cast("double")).alias("score"), F.lit("popular now").alias("reason"))
    out = top_n(ranked.unionByName(fallback), mc.k)
    return out.select("user_id", F.col("rank").cast("int").alias("rank"), "item_id",
                      F.col("score").cast("double").alias("score"), "reason")
