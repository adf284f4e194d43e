"""Gold tables derived from silver: pure ``DataFrame -> DataFrame`` functions."""

from __future__ import annotations

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

__all__ = ["interactions", "item_documents", "reviews"]


def interactions(events: DataFrame) -> DataFrame:
    """One row per (user, item): implicit-feedback confidence for ALS.

    ``weight`` = sum of the event weights (Hu, Koren & Volinsky 2008 use such a count-like
    confidence), ``n_events``, ``first_ts`` / ``last_ts``, and ``rating`` = the latest
    rating of the pair (ties: the higher rating), null when never rated.
    """
    latest_rating = F.max(F.when(F.col("rating").isNotNull(), F.struct("ts", "rating")))
    return events.groupBy("user_id", "item_id").agg(
        F.sum("weight").alias("weight"),
        F.count(F.lit(1)).cast("int").alias("n_events"),
        F.min("ts").alias("first_ts"),
        F.max("ts").alias("last_ts"),
        latest_rating.getField("rating").alias("rating"),
    )


def _section(label: str, values: Column) -> Column:
    return F.when(F.size(values) > 0, F.concat(F.lit(f"{label}: "), F.array_join(values, ", "), F.lit(".")))


def _sentence(c: Column) -> Column:
    """``c`` ending with sentence punctuation, so the assembled parts read as sentences."""
    return F.when(c.rlike(r"[.!?]$"), c).otherwise(F.concat(c, F.lit(".")))


def item_documents(items: DataFrame) -> DataFrame:
    """One text per item: ``<title>. <description>. Categories: a, b. Tags: x, y. Brand: b.``

    Empty parts are left out; silver texts are already cleaned, so the document is too.
    """
    text = F.concat_ws(
        " ",
        _sentence(F.col("title")),
        _sentence(F.col("description")),
        _section("Categories", F.coalesce(F.col("categories"), F.array().cast("array<string>"))),
        _section("Tags", F.coalesce(F.col("tags"), F.array().cast("array<string>"))),
        F.when(F.col("brand").isNotNull(), F.concat(F.lit("Brand: "), _sentence(F.col("brand")))),
    )
    return items.select(
        "item_id", "title", text.alias("text"), "categories", "brand", "price", "updated_ts",
    ).where(F.length("text") > 0)


def reviews(silver_reviews: DataFrame, silver_items: DataFrame) -> DataFrame:
    """Gold reviews: cleaned text, pseudonymised user, and ``item_known`` (the item has a
    record in ``silver.items``; reviews of unknown items are kept, flagged)."""
    known = silver_items.select("item_id", F.lit(True).alias("_known")).distinct()
    return silver_reviews.join(known, "item_id", "left").select(
        "review_id", "user_id", "item_id", "rating", "text", "ts",
        F.coalesce(F.col("_known"), F.lit(False)).alias("item_known"),
    )
