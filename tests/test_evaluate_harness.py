"""The evaluation harness end to end on synthetic data, and the leakage test.

Leakage canary: every user's last interaction is with an item nobody else touches and
whose text vector carries a marker dimension (1.0) that no other item has. Those
interactions always fall in the test period, so anything fitted honestly on training
data has exactly 0 in the marker dimension of every profile, and no ALS factor for those
items. A harness that lets test data into profiles, ALS, tuning or the ranker fails here
— demonstrated by a deliberately leaky variant that the same checks catch.
"""

from __future__ import annotations

import dataclasses

import pytest
from pyspark.sql import functions as F

from fusionrec.evaluate.harness import check_no_leakage, fit_on_training, make_split, score_models
from fusionrec.model.ranker import RANKER_FEATURES
from fusionrec.model.side_features import side_features
from fusionrec.model.train import TrainingTables
from _synthetic import synthetic

DIM = 8  # synthetic text dimension; the marker is dimension DIM


def _canary_inputs(spark):
    d = synthetic(spark, n_users=48, n_items=40, per_user=12, dim=DIM, seed=5)
    last = d["interactions"].groupBy("user_id").agg(F.max("first_ts").alias("ts"))
    canary = last.select("user_id", F.concat(F.lit("t_"), "user_id").alias("item_id"), F.lit(1.0).alias("weight"),
                         F.lit(1).alias("n_events"), (F.col("ts") + F.expr("INTERVAL 1 DAY")).alias("first_ts"),
                         (F.col("ts") + F.expr("INTERVAL 1 DAY")).alias("last_ts"), F.lit(5.0).alias("rating"))
    interactions = d["interactions"].unionByName(canary)
    marker = F.concat(F.col("vector"), F.array(F.lit(0.0).cast("float")))
    item_emb = d["item_vectors"].select("item_id", marker.alias("embedding")).unionByName(
        canary.select("item_id", F.array(*[F.lit(0.1).cast("float")] * DIM, F.lit(1.0).cast("float")).alias("embedding")))
    return TrainingTables(interactions=interactions, item_embeddings=item_emb)


def _marker_max(profiles):
    return profiles.agg(F.max(F.abs(F.col("vector")[DIM]))).first()[0]


@pytest.fixture(scope="module")
def fitted_view(cfg, spark):
    small = cfg.replace(model=dataclasses.replace(cfg.model, rank=6, max_iter=5, candidates_n=15, user_blocks=2),
                        evaluate=dataclasses.replace(cfg.evaluate, cold_item_fraction=0.15))
    inputs = _canary_inputs(spark)
    split = make_split(inputs, small)
    return small, inputs, split, fit_on_training(inputs, split, small)


def test_nothing_from_the_test_period_reaches_training(fitted_view):
    cfg, inputs, split, fitted = fitted_view
    # the canary interactions are all in the test period
    assert split.test.where(F.col("item_id").startswith("t_")).count() == 48
    assert check_no_leakage(split, fitted) == {"train": 0, "fit": 0, "validation": 0, "test_pairs_in_train": 0}
    assert _marker_max(fitted.features.user_profiles) == 0.0
    assert _marker_max(fitted.fit_features.user_profiles) == 0.0
    als_items = fitted.model.item_factors.where(F.col("source") == "als")
    assert als_items.where(F.col("item_id").startswith("t_")).count() == 0
    assert fitted.model.als_user_factors.count() > 0


def test_a_leaky_variant_is_caught(fitted_view, spark):
    cfg, inputs, split, fitted = fitted_view
    # bug 1: profiles built from all interactions instead of the training split
    leaky = side_features(inputs.interactions, inputs.item_embeddings, None, None, None, cfg.features)
    assert _marker_max(leaky.user_profiles) > 0.0
    # bug 2: tuning/ranker fitted on a period that overlaps the test period
    leaky_fit = dataclasses.replace(fitted, fit_interactions=inputs.interactions)
    assert check_no_leakage(split, leaky_fit)["fit"] > 0
    with pytest.raises(RuntimeError, match="test-period data reached training"):
        score_models(inputs, split, leaky_fit, cfg)
    # bug 3: reviews written in the test period
    reviews = split.test.select("user_id", "item_id", F.col("first_ts").alias("ts"))
    assert check_no_leakage(split, fitted, reviews)["reviews"] > 0
    # bug 4: a training pair aggregated with an event of the test period (later last_ts)
    stretched = split.train.join(split.boundaries, "user_id").withColumn(
        "last_ts", F.greatest("last_ts", "test_start")).drop("test_start")
    assert check_no_leakage(dataclasses.replace(split, train=stretched), fitted)["train"] > 0


def test_every_model_is_scored_on_the_same_split(fitted_view):
    cfg, inputs, split, fitted = fitted_view
    results = score_models(inputs, split, fitted, cfg)
    table = {r["model"]: r for r in results.table}
    assert set(table) == {"popularity", "als", "content", "hybrid"}
    users = {r["users"] for r in results.table}
    assert len(users) == 1 and users.pop() > 0  # the same evaluated users for every model
    for row in results.table:
        assert 0.0 <= row["ndcg"] <= 1.0 and 0.0 <= row["coverage"] <= 1.0
    cold = {r["model"]: r for r in results.cold_items}
    assert cold["als"]["recall"] == 0.0  # ALS cannot place items it never saw
    assert cold["hybrid"]["recall"] > 0.0 and cold["content"]["recall"] > 0.0
    # the synthetic users follow their topic, so text and CF both beat chance
    assert table["content"]["ndcg"] > 0.1 and table["hybrid"]["ndcg"] > 0.1
    assert results.ranker["features"] == list(RANKER_FEATURES)
    assert {"session_score", "session_rank_gain", "cold_item"} <= set(RANKER_FEATURES)
