"""The evaluation split, shared by every model so that all are scored on the same data.

Per-user chronological split: a user's interactions are ordered by ``first_ts``; the
last ``floor(n * test_fraction)`` of them are the test period. The
test period starts at that user's ``test_start`` timestamp and contains *every*
interaction at or after it (ties on the timestamp go to test), so that for every user
``max(train.first_ts) < test_start`` holds strictly — this is what the leakage test checks.

A gold interaction aggregates all events of a (user, item) pair (weight, ``last_ts``,
latest rating), so a pair first seen before ``test_start`` may carry events from the test
period. Training rows are therefore re-aggregated from the events strictly before the
user's ``test_start`` (:func:`cut_interactions`) with the same aggregation as the gold
table; the test period holds the pairs first seen at or after it. Without an events table
the gold rows are taken as they are, and the leakage check of the harness refuses any
training row whose ``last_ts`` reaches into the test period.

Cold-item protocol: a seeded pseudo-random share of items loses all of its training
interactions (and training reviews); their test interactions stay, so the models must
recommend them from text alone.
"""

from __future__ import annotations

from dataclasses import dataclass

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from fusionrec.ingest.gold import interactions as aggregate_interactions
from fusionrec.validation.feedback import is_positive

__all__ = ["choose_cold_items", "chronological_split", "cut_interactions", "filter_before", "relevant",
           "Split", "split_by_boundaries", "user_boundaries"]


@dataclass(frozen=True)
class Split:
    """Train/test interactions, the per-user test start, and the cold items."""

    train: DataFrame
    test: DataFrame
    #: [user_id, test_start]: users who have a test period.
    boundaries: DataFrame
    #: [item_id]: items whose training interactions were removed.
    cold_items: DataFrame
    #: the events behind ``train`` (before each user's test start, cold items removed);
    #: None when the split was made from gold interactions alone.
    train_events: DataFrame | None = None


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


def cut_interactions(interactions: DataFrame, boundaries: DataFrame,
                     events: DataFrame | None = None) -> tuple[DataFrame, DataFrame, DataFrame | None]:
    """``(before, after, events_before)`` at each user's ``test_start``.

    ``after``: the gold rows of pairs first seen at or after the boundary. ``before``: with
    ``events`` (``[user_id, item_id, rating, ts, weight]``), the pairs re-aggregated from the
    events strictly before the boundary, so no weight, ``last_ts`` or rating from later
    leaks into them; without, the gold rows first seen before it.
    """
    before, after = split_by_boundaries(interactions, boundaries)
    if events is None:
        return before, after, None
    events_before = filter_before(events.select("user_id", "item_id", "rating", "ts", "weight"), boundaries, "ts")
    return aggregate_interactions(events_before), after, events_before


def _hash_fraction(col: Column, fraction: float, seed: int) -> Column:
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
    return items.where(_hash_fraction(F.col("item_id"), fraction, seed))


def chronological_split(interactions: DataFrame, test_fraction: float, cold_item_fraction: float,
                        seed: int, eligible_items: DataFrame | None = None,
                        events: DataFrame | None = None) -> Split:
    """The evaluation split of the module docstring.

    Parameters
    ----------
    interactions : DataFrame
        ``gold.interactions``: ``[user_id, item_id, weight, n_events, first_ts, last_ts, rating]``.
    test_fraction : float
        The share of each user's interactions (latest by ``first_ts``) in the test period, in (0, 1).
    cold_item_fraction : float
        The seeded share of items stripped of their training interactions (0: none).
    seed : int
        Seed of the cold-item draw.
    eligible_items : DataFrame, optional
        ``[item_id]``: the items that may be made cold (those with a text vector).
    events : DataFrame, optional
        ``silver.events`` ``[user_id, item_id, rating, ts, weight]``: training rows are then
        re-aggregated from the events before each user's test start (:func:`cut_interactions`).

    Returns
    -------
    Split
        ``train`` and ``test`` (the columns of ``interactions``), ``boundaries``
        ``[user_id, test_start]``, ``cold_items`` ``[item_id]`` and, with ``events``,
        ``train_events``.

    Examples
    --------
    >>> import datetime as dt
    >>> days = [dt.datetime(2024, 1, d) for d in (1, 2, 3, 4)]
    >>> interactions = spark.createDataFrame(
    ...     [("u1", f"i{d.day}", 1.0, 1, d, d, None) for d in days],
    ...     "user_id STRING, item_id STRING, weight DOUBLE, n_events INT, first_ts TIMESTAMP, "
    ...     "last_ts TIMESTAMP, rating DOUBLE")
    >>> split = chronological_split(interactions, 0.5, 0.0, 7)
    >>> sorted(r.item_id for r in split.train.collect()), sorted(r.item_id for r in split.test.collect())
    (['i1', 'i2'], ['i3', 'i4'])
    >>> split.boundaries.first().test_start
    datetime.datetime(2024, 1, 3, 0, 0)
    >>> split.cold_items.count()
    0
    """
    boundaries = user_boundaries(interactions, test_fraction)
    train, test, train_events = cut_interactions(interactions, boundaries, events)
    if cold_item_fraction > 0:
        cold = choose_cold_items(interactions, cold_item_fraction, seed, eligible_items)
    else:
        cold = interactions.sparkSession.createDataFrame([], "item_id STRING")
    train = train.join(cold, "item_id", "left_anti")
    if train_events is not None:
        train_events = train_events.join(cold, "item_id", "left_anti")
    return Split(train=train, test=test, boundaries=boundaries, cold_items=cold, train_events=train_events)


def filter_before(events: DataFrame, boundaries: DataFrame, ts_col: str) -> DataFrame:
    """Rows of ``events`` (keyed by ``user_id``) strictly before their user's ``test_start``.

    Used for reviews and any other timestamped user input, so that nothing a user did in
    the test period reaches features or profiles.
    """
    before, _ = split_by_boundaries(events, boundaries, ts_col)
    return before


def relevant(interactions: DataFrame, positive_rating: float, positive_weight: float) -> DataFrame:
    """``[user_id, item_id]`` of positive interactions: ``rating >= positive_rating`` when a
    rating exists, otherwise ``weight >= positive_weight`` (:func:`fusionrec.validation.feedback.is_positive`)."""
    return interactions.where(is_positive(positive_rating, positive_weight)).select("user_id", "item_id").distinct()
