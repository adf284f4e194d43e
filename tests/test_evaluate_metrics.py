"""Ranking metrics against values worked out by hand."""

from __future__ import annotations

import math

import pytest

from fusionrec.validation.metrics import item_slice_recall, per_user_metrics, ranking_metrics

RECS = "user_id STRING, rank INT, item_id STRING"
REL = "user_id STRING, item_id STRING"


def test_metrics_match_hand_computation(spark):
    recs = spark.createDataFrame([("u1", 1, "a"), ("u1", 2, "x"), ("u1", 3, "b"), ("u1", 4, "c"),
                                  ("u3", 1, "z")], RECS)
    rel = spark.createDataFrame([("u1", "a"), ("u1", "b"), ("u2", "c")], REL)
    m = ranking_metrics(recs, rel, k=3, catalogue_size=10)
    # u1: hits at ranks 1 and 3 of 2 relevant; u2: no recommendations; u3 has nothing relevant.
    ndcg_u1 = (1 + 1 / math.log2(4)) / (1 + 1 / math.log2(3))
    ap_u1 = (1 / 1 + 2 / 3) / 2
    assert m["users"] == 2
    assert m["precision"] == pytest.approx((2 / 3 + 0) / 2)
    assert m["recall"] == pytest.approx((1 + 0) / 2)
    assert m["ndcg"] == pytest.approx(ndcg_u1 / 2)
    assert m["map"] == pytest.approx(ap_u1 / 2)
    assert m["hit_rate"] == pytest.approx(0.5)
    # items recommended at rank <= 3 to evaluated users: a, x, b (u3 is not evaluated)
    assert m["coverage"] == pytest.approx(3 / 10)


def test_cut_at_k_and_idcg_uses_min_of_relevant_and_k(spark):
    recs = spark.createDataFrame([("u1", 1, "x"), ("u1", 2, "a")], RECS)
    rel = spark.createDataFrame([("u1", "a"), ("u1", "b"), ("u1", "c")], REL)
    at1 = {r["user_id"]: r for r in per_user_metrics(recs, rel, 1).collect()}["u1"]
    assert at1["hits"] == 0 and at1["ndcg"] == 0.0
    at2 = {r["user_id"]: r for r in per_user_metrics(recs, rel, 2).collect()}["u1"]
    assert at2["ndcg"] == pytest.approx((1 / math.log2(3)) / (1 + 1 / math.log2(3)))
    assert at2["ap"] == pytest.approx((1 / 2) / 2)
    assert at2["recall"] == pytest.approx(1 / 3)


def test_item_slice_recall_counts_only_slice_items(spark):
    recs = spark.createDataFrame([("u1", 1, "cold1"), ("u1", 2, "warm"), ("u2", 1, "warm")], RECS)
    rel = spark.createDataFrame([("u1", "cold1"), ("u1", "warm"), ("u2", "cold2"), ("u3", "warm")], REL)
    cold = spark.createDataFrame([("cold1",), ("cold2",)], "item_id STRING")
    s = item_slice_recall(recs, rel, cold, k=2)
    assert s["users"] == 2  # u1 and u2 have a relevant cold item
    assert s["recall"] == pytest.approx((1.0 + 0.0) / 2)


def test_k_must_be_positive(spark):
    recs = spark.createDataFrame([], RECS)
    with pytest.raises(ValueError, match="k must be"):
        per_user_metrics(recs, spark.createDataFrame([], REL), 0)
