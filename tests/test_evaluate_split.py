"""The chronological split and the cold-item draw."""

from __future__ import annotations

import datetime as dt

from pyspark.sql import functions as F

from fusionrec.validation.split import chronological_split, filter_before, relevant, user_boundaries
from fusionrec.ingest.gold import interactions as aggregate_interactions
from _synthetic import INTERACTIONS_DDL, synthetic

T0 = dt.datetime(2024, 1, 1)


def _rows(user, days, rating=4.0):
    return [(user, f"i{d}", 1.0, 1, T0 + dt.timedelta(days=d), T0 + dt.timedelta(days=d), rating) for d in days]


def test_last_fraction_by_time_is_test_and_ties_go_to_test(spark):
    rows = _rows("a", range(10)) + _rows("b", [0, 1, 2, 3, 3]) + _rows("c", [0, 1])
    df = spark.createDataFrame(rows, INTERACTIONS_DDL)
    sp = chronological_split(df, 0.2, 0.0, 1)
    test = {(r.user_id, r.item_id) for r in sp.test.collect()}
    # a: 10 rows -> last 2; b: 5 rows -> 1, but its timestamp ties with i3... both days 3 go to test
    assert test == {("a", "i8"), ("a", "i9"), ("b", "i3")}
    b_rows = [r for r in sp.test.collect() if r.user_id == "b"]
    assert len(b_rows) == 2  # the two tied rows share item id i3 on day 3
    # c: floor(2 * 0.2) = 0 -> no test period, everything is training
    assert sp.boundaries.where("user_id = 'c'").count() == 0
    assert sp.train.where("user_id = 'c'").count() == 2
    # strictly before the test start for every user
    bad = sp.train.join(sp.boundaries, "user_id").where(F.col("first_ts") >= F.col("test_start")).count()
    assert bad == 0


def test_cold_items_lose_training_interactions_only(spark):
    d = synthetic(spark, n_users=40, n_items=60)
    sp = chronological_split(d["interactions"], 0.2, 0.2, seed=3)
    cold = {r.item_id for r in sp.cold_items.collect()}
    assert 3 <= len(cold) <= 25
    assert sp.train.where(F.col("item_id").isin(list(cold))).count() == 0
    assert sp.test.where(F.col("item_id").isin(list(cold))).count() > 0
    again = chronological_split(d["interactions"], 0.2, 0.2, seed=3)
    assert {r.item_id for r in again.cold_items.collect()} == cold
    other = chronological_split(d["interactions"], 0.2, 0.2, seed=4)
    assert {r.item_id for r in other.cold_items.collect()} != cold


def test_filter_before_cuts_reviews_at_the_authors_test_start(spark):
    bounds = spark.createDataFrame([("a", T0 + dt.timedelta(days=5))], "user_id STRING, test_start TIMESTAMP")
    reviews = spark.createDataFrame(
        [("a", T0 + dt.timedelta(days=d)) for d in (1, 5, 9)] + [("z", T0 + dt.timedelta(days=30))],
        "user_id STRING, ts TIMESTAMP")
    kept = sorted((r.user_id, r.ts.day) for r in filter_before(reviews, bounds, "ts").collect())
    assert kept == [("a", 2), ("z", 31)]  # users without a test period keep everything


def test_relevance_uses_rating_else_weight(spark):
    df = spark.createDataFrame(
        [("u", "good", 1.0, 1, T0, T0, 4.0), ("u", "bad", 9.0, 1, T0, T0, 2.0),
         ("u", "clicked", 2.0, 1, T0, T0, None), ("u", "glance", 0.5, 1, T0, T0, None)], INTERACTIONS_DDL)
    assert {r.item_id for r in relevant(df, 3.5, 1.0).collect()} == {"good", "clicked"}


def test_boundaries_reject_bad_fraction(spark):
    import pytest

    with pytest.raises(ValueError, match="fraction"):
        user_boundaries(spark.createDataFrame([], INTERACTIONS_DDL), 1.5)


def test_training_pairs_are_cut_at_the_test_start_from_their_events(spark):
    """A pair first seen in training but re-touched in the test period (a later rating, a
    tag) must enter training with only its earlier events: weight, last_ts and rating."""
    def day(d: int) -> dt.datetime:
        return T0 + dt.timedelta(days=d)

    def late(sp) -> int:
        return sp.train.join(sp.boundaries, "user_id").where(F.col("last_ts") >= F.col("test_start")).count()

    events = spark.createDataFrame(
        [("u", f"i{d}", 4.0, day(d), 3.0) for d in range(10)]
        + [("u", "i0", 1.0, day(20), 5.0)],   # i0 rated again (badly) long after the test start
        "user_id STRING, item_id STRING, rating DOUBLE, ts TIMESTAMP, weight DOUBLE")
    gold = aggregate_interactions(events)
    leaky = chronological_split(gold, 0.2, 0.0, 1)
    assert late(leaky) == 1  # the gold row of i0 carries the day-20 event

    exact = chronological_split(gold, 0.2, 0.0, 1, events=events)
    assert late(exact) == 0
    i0 = exact.train.where("item_id = 'i0'").first()
    assert (i0.weight, i0.n_events, i0.last_ts, i0.rating) == (3.0, 1, day(0), 4.0)
    assert {r.item_id for r in exact.test.collect()} == {"i8", "i9"}
    assert {(r.user_id, r.item_id) for r in exact.train.collect()} == {(r.user_id, r.item_id) for r in leaky.train.collect()}
    assert exact.train_events.where(F.col("ts") >= day(8)).count() == 0
