"""The evaluation split, shared by every model so that all are scored on the same data.

Per-user chronological split: a user's interactions are ordered by ``first_ts``; the
last ``floor(n * test_fraction)`` of them are the test period. The
test period starts at that user's ``test_start`` timestamp and contains *every*
interaction at or after it (ties on the timestamp go to test), so that for every user
``max(train.first_ts) < test_start`` holds strictly — this is what the leakage test checks.

Cold-item protocol: a seeded pseudo-random share of items loses all of its training
interactions (and training reviews); their test interactions stay, so the models must
recommend them from text alone.
"""

from __future__ import annotations

from dataclasses import dataclass

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F


@dataclass(frozen=True)
class Split:
    """Train/test interactions, the per-user test start, and the cold items."""

    train: DataFrame
    test: DataFrame
    #: [user_id, test_start]: users who have a test period.
    boundaries: DataFrame
    #: [item_id]: items whose training interactions were removed.
    cold_items: DataFrame


def user_boundaries(interactions: DataFrame, fraction: float, ts_col: str = "first_ts") -> DataFrame:
    """``[user_id, test_start]``: the timestamp where each user's last ``fraction`` begins.

    Users with ``floor(n * fraction) == 0`` (too few interactions) have no test period
    and are absent from the result.
    """
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"split fraction must be in (0, 1), got {fraction}")
    by_time = Window.partitionBy("user_id").orderBy(F.col(ts_col), F.col("item_id"))
    ranked = (interactions
              .withColumn("_pos", F.row_number().over(by_time))
              .withColumn("_n", F.count(F.lit(1)).over(Window.partitionBy("user_id")))
              .withColumn("_n_test", F.floor(F.col("_n") * F.lit(fraction))))
    return (ranked
            .where((F.col("_n_test") > 0) & (F.col("_pos") == F.col("_n") - F.col("_n_test") + 1))
            .select("user_id", F.col(ts_col).alias("test_start")))


def split_by_boundaries(interactions: DataFrame, boundaries: DataFrame,
                        ts_col: str = "first_ts") -> tuple[DataFrame, DataFrame]:
    """``(before, after)``: rows strictly before the user's ``test_start``, and the rest."""
    joined = interactions.join(boundaries, "user_id", "left")
    is_test = F.col("test_start").isNotNull() & (F.col(ts_col) >= F.col("test_start"))
    before = joined.where(~is_test).drop("test_start")
    after = joined.where(is_test).drop("test_start")
    return before, after


def hash_fraction(col: Column, fraction: float, seed: int) -> Column:
    """A deterministic, seeded Bernoulli(fraction) draw per value of ``col``.

    Hashing (not ``rand``) so that the draw does not depend on partitioning.
    """
    buckets = 1_000_000
    return F.pmod(F.xxhash64(col, F.lit(seed)), F.lit(buckets)) < F.lit(int(round(fraction * buckets)))


def choose_cold_items(interactions: DataFrame, fraction: float, seed: int,
                      eligible: DataFrame | None = None) -> DataFrame:
    """``[item_id]``: a seeded ``fraction`` of the interacted items (restricted to ``eligible``,
    e.g. the items that have a text vector, since only those can be recommended cold)."""
    items = interactions.select("item_id").distinct()
    if eligible is not None:
        items = items.join(eligible.select("item_id").distinct(), "item_id")
    return items.where(hash_fraction(F.col("item_id"), fraction, seed))


def chronological_split(interactions: DataFrame, test_fraction: float, cold_item_fraction: float,
                        seed: int, eligible_items: DataFrame | None = None) -> Split:
    """The evaluation split (see module docstring)."""
    boundaries = user_boundaries(interactions, test_fraction)
    train, test = split_by_boundaries(interactions, boundaries)
    if cold_item_fraction > 0:
        cold = choose_cold_items(interactions, cold_item_fraction, seed, eligible_items)
    else:
        cold = interactions.sparkSession.createDataFrame([], "item_id STRING")
    train = train.join(cold, "item_id", "left_anti")
    return Split(train=train, test=test, boundaries=boundaries, cold_items=cold)


def filter_before(events: DataFrame, boundaries: DataFrame, ts_col: str) -> DataFrame:
    """Rows of ``events`` (keyed by ``user_id``) strictly before their user's ``test_start``.

    Used for reviews and any other timestamped user input, so that nothing a user did in
    the test period reaches features or profiles.
    """
    before, _ = split_by_boundaries(events, boundaries, ts_col)
    return before


def relevant(interactions: DataFrame, positive_rating: float, positive_weight: float) -> DataFrame:
    """``[user_id, item_id]`` of positive interactions: ``rating >= positive_rating`` when a
    rating exists, otherwise ``weight >= positive_weight`` (implicit feedback)."""
    positive = F.when(F.col("rating").isNotNull(), F.col("rating") >= positive_rating) \
        .otherwise(F.col("weight") >= positive_weight)
    return interactions.where(positive).select("user_id", "item_id").distinct()
