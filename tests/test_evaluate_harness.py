"""The evaluation harness end to end on synthetic data, and the leakage test.

Leakage canary: every user's last interaction is with an item nobody else touches and
whose text vector carries a marker dimension (1.0) that no other item has. Those
interactions always fall in the test period, so anything fitted honestly on training
data has exactly 0 in the marker dimension of every profile, and no ALS factor for those
items. A harness that lets test data into profiles, ALS, tuning or the ranker fails here
— demonstrated by a deliberately leaky variant that the same checks catch.

Item texts: each canary item's document lists a tag its user wrote in the test period
(and one written earlier, and one the catalogue gave it); the cut documents must lose
exactly the test-period tag and be re-embedded without it, and the uncut documents are the
leaky variant the check catches.
"""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest
from pyspark.sql import functions as F

from fusionrec.evaluate.harness import (FALLBACK, ItemTexts, check_no_leakage, cut_item_texts, fit_on_training,
                                        make_split, score_models)
from fusionrec.evaluate.peers import EASE_LAMBDAS, KNN_NEIGHBOURS, fallback_top_k, with_fallback
from fusionrec.model.ranker import RANKER_FEATURES
from fusionrec.model.side_features import side_features
from fusionrec.registry.register import evaluation_rows
from fusionrec.registry.tracking import evaluation_metrics
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


MARKER_TAG = "marker tag"


def _item_texts(spark, split):
    """Silver-like items (the canary items' tags) and the reviews that wrote the tags: the
    marker tag by the item's user at its test-period interaction, "early tag" long before."""
    canary = split.test.where(F.col("item_id").startswith("t_"))
    items = canary.select(
        "item_id", F.col("item_id").alias("title"), F.lit(None).cast("string").alias("description"),
        F.array(F.lit("thriller")).alias("categories"),
        F.array(F.lit("early tag"), F.lit(MARKER_TAG), F.lit("own keyword")).alias("tags"),
        F.lit(None).cast("string").alias("brand"), F.lit(None).cast("double").alias("price"),
        F.lit(None).cast("timestamp").alias("updated_ts"))
    reviews = canary.select("user_id", "item_id", F.lit(" Marker  Tag").alias("text"),
                            F.col("first_ts").alias("ts")).unionByName(
        canary.select("user_id", "item_id", F.lit("early tag").alias("text"),
                      F.lit(dt.datetime(2000, 1, 1)).alias("ts")))
    return items, reviews


def _marker_embedder(documents):
    """A stand-in sentence model: the marker dimension is 1 where the text holds the marker tag."""
    marker = F.when(F.lower("text").contains(MARKER_TAG), 1.0).otherwise(0.0).cast("float")
    return documents.select("item_id", F.array(*[F.lit(0.1).cast("float")] * DIM, marker).alias("embedding"))


@pytest.fixture(scope="module")
def fitted_view(cfg, spark):
    # What reaches training is checked here, not which setting wins: two search fits and one
    # ranker kind (the choice among kinds is test_model_parts.py's).
    small = cfg.replace(model=dataclasses.replace(cfg.model, rank=6, max_iter=5, candidates_n=15, user_blocks=2,
                                                  search_max_fits=2, ranker="pointwise"),
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
    # bug 5: item documents listing a tag written only in the test period (the lake's uncut texts)
    items, tag_reviews = _item_texts(spark, split)
    uncut = items.select("item_id", "tags")
    assert check_no_leakage(split, fitted, document_tags=uncut, all_reviews=tag_reviews)["item_texts"] == 48
    with pytest.raises(RuntimeError, match="item_texts"):
        score_models(dataclasses.replace(inputs, reviews=tag_reviews), split, fitted, cfg, document_tags=uncut,
                     peers=[])


def test_item_texts_are_cut_at_the_test_boundary(fitted_view, spark):
    cfg, inputs, split, fitted = fitted_view
    items, tag_reviews = _item_texts(spark, split)
    with_reviews = dataclasses.replace(inputs, reviews=tag_reviews)
    cut, used, n_cut = cut_item_texts(with_reviews, ItemTexts(items, _marker_embedder), split.boundaries)
    assert n_cut == 48
    tags = {r.item_id: r.tags for r in used.collect()}
    assert len(tags) == 48 and all(list(t) == ["early tag", "own keyword"] for t in tags.values())
    assert check_no_leakage(split, fitted, document_tags=used, all_reviews=tag_reviews)["item_texts"] == 0
    # the canary items were re-embedded from documents without the marker tag; the others are untouched
    vectors = {r.item_id: list(r.embedding) for r in cut.item_embeddings.collect()}
    before = {r.item_id: list(r.embedding) for r in inputs.item_embeddings.collect()}
    assert vectors.keys() == before.keys()
    assert all(vectors[i][DIM] == 0.0 for i in vectors if i.startswith("t_"))
    assert all(before[i][DIM] == 1.0 for i in before if i.startswith("t_"))
    assert all(vectors[i] == before[i] for i in vectors if not i.startswith("t_"))
    # nothing to cut without reviews: the documents are used as they are
    same, _, n = cut_item_texts(inputs, ItemTexts(items, _marker_embedder), split.boundaries)
    assert n == 0 and same is inputs


def test_users_without_training_rows_get_the_popularity_fallback(fitted_view, spark):
    cfg, inputs, split, fitted = fitted_view
    users = spark.createDataFrame([("u0",), ("newcomer",)], "user_id STRING")
    top = spark.createDataFrame([("u0", "i1", 1.0, 1)], "user_id STRING, item_id STRING, score DOUBLE, rank INT")
    fallback = fallback_top_k(popularity=fitted.model.popularity, categories=None, users=users, k=3)
    rows = with_fallback(top, fallback=fallback, train=split.train).orderBy("user_id", "rank").collect()
    assert [(r.user_id, r.item_id) for r in rows if r.user_id == "u0"] == [("u0", "i1")]
    newcomer = [r.item_id for r in rows if r.user_id == "newcomer"]
    by_count = fitted.model.popularity.orderBy(F.desc("n_interactions"), "item_id").limit(3).collect()
    assert newcomer == [r.item_id for r in by_count]  # one category: plain popularity, ties by id


def test_every_model_is_scored_on_the_same_split(fitted_view):
    cfg, inputs, split, fitted = fitted_view
    results = score_models(inputs, split, fitted, cfg)
    table = {r["model"]: r for r in results.table}
    peers = {"ease", "item_knn"}
    assert set(table) == {"popularity", "als", "content", "hybrid", *peers,
                          *(name + FALLBACK for name in ("als", *peers))}
    # peers tuned on the validation period inside training, from their grids
    assert results.peers["ease"]["chosen"] in EASE_LAMBDAS and len(results.peers["ease"]["trials"]) == len(EASE_LAMBDAS)
    assert results.peers["item_knn"]["chosen"] in KNN_NEIGHBOURS
    assert table["ease"]["ndcg"] > 0.1 and table["item_knn"]["ndcg"] > 0.1  # collaborative signal found
    for row in results.table:
        assert row["ndcg_se"] > 0.0 and row["hit_rate_se"] > 0.0
        assert 0.0 <= row["popularity_percentile"] <= 1.0 and row["novelty"] > 0.0
        assert row["diversity"] > 0.0 and row["catalog_coverage"] > 0.0
    # the best peer beside the hybrid, with the paired bootstrap interval of the difference
    [comparison] = results.comparison
    assert comparison["best_peer"] != "hybrid"
    best = table[comparison["best_peer"]]
    assert best["ndcg"] == max(r["ndcg"] for name, r in table.items() if name != "hybrid")
    ndcg = comparison["ndcg"]
    assert ndcg["low"] <= ndcg["diff"] <= ndcg["high"] and ndcg["resamples"] == 1000
    assert ndcg["diff"] == pytest.approx(table["hybrid"]["ndcg"] - best["ndcg"])
    assert table["hybrid"]["ndcg_diff_low"] == ndcg["low"] and table["hybrid"]["best_peer_ndcg"] == best["ndcg"]
    assert results.leakage_checks["train"] == 0
    # what registration logs to MLflow: every numeric cell, the new ones included
    logged = evaluation_metrics(evaluation_rows(results))
    assert {"eval.hybrid.diversity_at_10", "eval.ease_fallback.novelty_at_10", "eval.hybrid.ndcg_se_at_10",
            "eval.hybrid.ndcg_diff_low_at_10", "eval.item_knn.popularity_percentile_at_10"} <= set(logged)
    users = {r["users"] for r in results.table}
    assert len(users) == 1 and users.pop() > 0  # the same evaluated users for every model
    for row in results.table:
        assert 0.0 <= row["ndcg"] <= 1.0 and 0.0 <= row["coverage"] <= 1.0
    cold = {r["model"]: r for r in results.cold_items}
    assert cold["als"]["recall"] == 0.0  # ALS cannot place items it never saw
    assert cold["ease"]["recall"] == 0.0 and cold["item_knn"]["recall"] == 0.0  # nor can EASE and item-kNN
    assert cold["hybrid"]["recall"] > 0.0 and cold["content"]["recall"] > 0.0
    # the synthetic users follow their topic, so text and CF both beat chance
    assert table["content"]["ndcg"] > 0.1 and table["hybrid"]["ndcg"] > 0.1
    assert results.ranker["features"] == list(RANKER_FEATURES)
    assert {"session_score", "session_rank_gain", "cold_item"} <= set(RANKER_FEATURES)
