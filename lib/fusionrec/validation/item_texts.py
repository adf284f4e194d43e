"""Item documents cut at the test boundary: user-written tags of the test period left out.

An item's document (:func:`fusionrec.ingest.gold.item_documents`) lists its tags. Where tags
are written by users (MovieLens ``tags.csv``: each tag is also ingested as a review of the
item, with its author and time), a tag written in its author's test period would carry
test-period behaviour into the item's text vector. A document tag counts as *user-written*
when a review of that item has that text (trimmed, lower-cased, as the MovieLens adapter
builds the tag list); it stays in the document the evaluation uses only if at least one of
those reviews was written before its author's test start (an author without a test period
counts as before). A tag no review wrote (a catalogue's own keywords) is item metadata and
stays. This is the cut :func:`fusionrec.validation.split.filter_before` makes on reviews,
applied to the text the reviews were folded into.
"""

from __future__ import annotations

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

__all__ = ["cut_item_tags", "test_period_tags"]


def _tag(text: F.Column) -> F.Column:
    return F.lower(F.trim(F.regexp_replace(text, r"(?U)\s+", " ")))


def test_period_tags(items: DataFrame, reviews: DataFrame, boundaries: DataFrame) -> DataFrame:
    """``[item_id, tag]``: the document tags of ``items`` that only reviews written at or after
    their author's test start wrote.

    Parameters
    ----------
    items : DataFrame
        ``[item_id, tags ARRAY<STRING>]`` (``silver.items``, or the tags the evaluation uses).
    reviews : DataFrame
        ``[user_id, item_id, text, ts]``: every review, of every period (``gold.reviews``).
    boundaries : DataFrame
        ``[user_id, test_start]`` of the split.

    Examples
    --------
    >>> import datetime as dt
    >>> items = spark.createDataFrame([("m1", ["early", "late", "own"])], "item_id STRING, tags ARRAY<STRING>")
    >>> reviews = spark.createDataFrame(
    ...     [("u1", "m1", "Early", dt.datetime(2024, 1, 1)), ("u1", "m1", "late ", dt.datetime(2024, 3, 1))],
    ...     "user_id STRING, item_id STRING, text STRING, ts TIMESTAMP")
    >>> bounds = spark.createDataFrame([("u1", dt.datetime(2024, 2, 1))], "user_id STRING, test_start TIMESTAMP")
    >>> [r.tag for r in test_period_tags(items, reviews, bounds).collect()]
    ['late']
    """
    tags = items.select("item_id", F.explode("tags").alias("tag")).distinct()
    written = (reviews.select("user_id", "item_id", _tag(F.col("text")).alias("tag"), "ts")
               .join(boundaries.select("user_id", "test_start"), "user_id", "left")
               .groupBy("item_id", "tag")
               .agg(F.max((F.col("test_start").isNull() | (F.col("ts") < F.col("test_start"))).cast("int"))
                    .alias("_before")))
    return tags.join(written, ["item_id", "tag"]).where(F.col("_before") == 0).select("item_id", "tag")


def cut_item_tags(items: DataFrame, reviews: DataFrame, boundaries: DataFrame) -> DataFrame:
    """The rows of ``items`` that held a test-period tag (:func:`test_period_tags`), with those
    tags removed from ``tags`` (sorted, as the adapter sorts them); the other columns as they are.
    Only these items' documents differ from the lake's, so only they need new vectors."""
    late = test_period_tags(items, reviews, boundaries).groupBy("item_id").agg(F.collect_set("tag").alias("_late"))
    return (items.join(late, "item_id")
            .withColumn("tags", F.array_sort(F.array_except(F.col("tags"), F.col("_late"))))
            .drop("_late"))
