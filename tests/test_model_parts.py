"""The fused model's parts: ridge text maps, blocked top-N, the ranker, ALS factors."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from pyspark.sql import functions as F

from fusionrec.errors import InputError
from fusionrec.model.als import fit_als
from fusionrec.model.fusion import fit_fused
from fusionrec.model.ranker import RANKER_FEATURES, RankerParams, fit_ranker
from fusionrec.model.text_maps import apply_text_map, fit_text_map, solve_ridge, sufficient_statistics
from fusionrec.model.side_features import side_features
from fusionrec.model.topk import blocked_top_n
from _synthetic import synthetic


def _vec_df(spark, key, mat, col):
    return spark.createDataFrame([(f"{key}{i}", [float(x) for x in row]) for i, row in enumerate(mat)],
                                 f"{'item_id' if key == 'i' else 'user_id'} STRING, {col} ARRAY<FLOAT>")


def test_ridge_map_recovers_a_linear_map_from_distributed_statistics(spark):
    rng = np.random.default_rng(1)
    x = rng.normal(size=(200, 6))
    w_true = rng.normal(size=(6, 3))
    bias = np.array([0.5, -1.0, 2.0])
    y = x @ w_true + bias
    vectors = _vec_df(spark, "i", x, "vector").repartition(4)
    factors = _vec_df(spark, "i", y, "factors")
    w, n = fit_text_map(vectors, factors, "item_id", ridge_lambda=1e-6)
    assert n == 200
    np.testing.assert_allclose(w[:-1], w_true, atol=1e-3)
    np.testing.assert_allclose(w[-1], bias, atol=1e-3)
    # the statistics summed over partitions equal the single-machine ones
    pairs = vectors.withColumnRenamed("vector", "x").join(factors.withColumnRenamed("factors", "y"), "item_id")
    xtx, xty, _ = sufficient_statistics(pairs, "x", "y")
    xa = np.hstack([x, np.ones((200, 1))])
    np.testing.assert_allclose(xtx, xa.T @ xa, rtol=1e-4)
    # applying the map reproduces y
    mapped = {r.item_id: r.factors for r in apply_text_map(vectors, w, "item_id").collect()}
    np.testing.assert_allclose(np.asarray(mapped["i7"]), y[7], atol=1e-2)


def test_user_map_degrades_only_without_rows_to_fit_and_says_so(cfg, spark):
    d = synthetic(spark, n_users=30, n_items=20, per_user=8, dim=8)
    feats = side_features(d["interactions"], d["item_vectors"].withColumnRenamed("vector", "embedding"), None, None,
                          None, cfg.features)
    mc = dataclasses.replace(cfg.model, rank=4, max_iter=3, checkpoint_interval=2, min_user_interactions=1000)
    als = fit_als(d["interactions"], mc)
    # No user is warm: there is nothing to fit the profile -> factor map on.
    model = fit_fused(d["interactions"], feats.item_vectors, feats.user_profiles, None, mc, als=als)
    assert model.user_map is None and model.counts["user_map_fit_rows"] == 0
    assert len(model.degraded) == 1 and model.degraded[0].startswith("user text map not fitted")
    # A singular system (a text dimension that is 0 for everyone, no ridge penalty) is not
    # a degraded fit: numpy's LinAlgError reaches the caller.
    flat = feats.user_profiles.withColumn(
        "vector", F.concat(F.array(F.lit(0.0).cast("float")), F.slice("vector", 2, 7)))
    singular = dataclasses.replace(mc, min_user_interactions=1, ridge_lambda=0.0)
    with pytest.raises(np.linalg.LinAlgError):
        fit_fused(d["interactions"], feats.item_vectors, flat, None, singular, als=als)


def test_ridge_penalty_shrinks_weights_but_not_the_bias():
    xtx = np.array([[4.0, 2.0], [2.0, 2.0]])  # one feature + bias column
    xty = np.array([[6.0], [4.0]])
    w_small, w_big = solve_ridge(xtx, xty, 0.0), solve_ridge(xtx, xty, 100.0)
    assert abs(w_big[0, 0]) < abs(w_small[0, 0])
    assert w_big[1, 0] == pytest.approx(4.0 / 2.0, rel=0.1)  # the mean of y when the slope is ~0


@pytest.mark.parametrize("item_blocks", [1, 3])
def test_blocked_top_n_equals_brute_force_and_excludes_seen(spark, item_blocks):
    rng = np.random.default_rng(2)
    u, v = rng.normal(size=(13, 4)), rng.normal(size=(17, 4))
    users, items = _vec_df(spark, "u", u, "factors"), _vec_df(spark, "i", v, "factors")
    seen = spark.createDataFrame([("u0", "i3"), ("u0", "i5"), ("u4", "i0")], "user_id STRING, item_id STRING")
    got = blocked_top_n(users, items, 5, seen, user_blocks=3, item_blocks=item_blocks).collect()
    scores = u @ v.T
    scores[0, [3, 5]] = -np.inf
    scores[4, 0] = -np.inf
    for ui in range(13):
        mine = sorted((r for r in got if r.user_id == f"u{ui}"), key=lambda r: r.rank)
        expected = [f"i{j}" for j in np.argsort(-scores[ui])[:5]]
        assert [r.item_id for r in mine] == expected
        assert [r.rank for r in mine] == [1, 2, 3, 4, 5]
        assert mine[0].score == pytest.approx(scores[ui].max(), rel=1e-5)


@pytest.mark.parametrize("item_blocks", [1, 3])
def test_blocked_top_n_breaks_ties_by_item_id_before_the_cut(spark, item_blocks):
    # Scores 2 (i0..i5), 1 (i6..i11), 0 (i12..i16), items listed in reverse id order: the cut
    # at 8 falls inside the tied 1s and must keep the lowest item ids (as strings) among them.
    value = {f"i{i}": 2.0 if i < 6 else 1.0 if i < 12 else 0.0 for i in range(17)}
    items = spark.createDataFrame([(item, [value[item]]) for item in sorted(value, reverse=True)],
                                  "item_id STRING, factors ARRAY<FLOAT>").repartition(1)
    users = spark.createDataFrame([(f"u{u}", [1.0]) for u in range(5)], "user_id STRING, factors ARRAY<FLOAT>")
    seen = spark.createDataFrame([("u1", "i10")], "user_id STRING, item_id STRING")
    got = blocked_top_n(users, items, 8, seen, user_blocks=2, item_blocks=item_blocks).collect()
    for u in range(5):
        mine = [r.item_id for r in sorted((r for r in got if r.user_id == f"u{u}"), key=lambda r: r.rank)]
        unseen = [item for item in value if not (u == 1 and item == "i10")]
        assert mine == sorted(unseen, key=lambda item: (-value[item], item))[:8], u


def test_ranker_learns_the_informative_feature_and_round_trips_json(spark):
    rng = np.random.default_rng(3)
    rows = []
    for _ in range(400):
        als, content = rng.normal(), rng.normal()
        label = float(content + 0.2 * rng.normal() > 0.5)
        rows.append((float(als), float(content), float(rng.uniform(0, 5)), 0.5, float(rng.uniform() < 0.1),
                     float(rng.uniform(0, 2)), float(rng.uniform(0, 1)), float(rng.uniform(0, 1)),
                     float(rng.normal()), float(rng.uniform(0, 1)), label))
    df = spark.createDataFrame(rows, [*RANKER_FEATURES, "label"])
    ranker = fit_ranker(df, reg_param=0.01)
    coef = dict(zip(ranker.features, ranker.coef))
    assert coef["content_cosine"] > 1.0 and abs(coef["als_score"]) < 0.5 * coef["content_cosine"]
    assert ranker.std[3] == 1.0  # a constant feature is not divided by zero
    again = RankerParams.from_json(ranker.to_json())
    assert again == ranker
    scored = df.withColumn("p", ranker.score()).agg(F.corr("p", "label")).first()[0]
    assert scored > 0.5
    with pytest.raises(ValueError, match="contract"):
        RankerParams.from_json({**ranker.to_json(), "features": list("abcdefghij")})


def test_ranker_refuses_single_class_labels(spark):
    df = spark.createDataFrame([(1.0, 0.0, 1.0, 0.5, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0)] * 3,
                               [*RANKER_FEATURES, "label"])
    with pytest.raises(InputError, match="positive and negative"):
        fit_ranker(df, 0.01)


def test_als_gives_every_user_and_item_a_factor_of_rank_size(cfg, spark):
    d = synthetic(spark, n_users=30, n_items=20, per_user=8)
    mc = dataclasses.replace(cfg.model, rank=4, max_iter=4, checkpoint_interval=2)
    als = fit_als(d["interactions"], mc)
    users = als.users.collect()
    assert len(users) == 30 and {len(r.factors) for r in users} == {4}
    assert als.items.count() == d["interactions"].select("item_id").distinct().count()


def test_label_marks_positives_and_keeps_only_users_with_one(spark):
    from fusionrec.model.fusion import label

    pairs = spark.createDataFrame([("u1", "a"), ("u1", "b"), ("u2", "a"), ("u2", "c"), ("u3", "b")],
                                  "user_id STRING, item_id STRING")
    positives = spark.createDataFrame([("u1", "b"), ("u2", "c"), ("u2", "c"), ("u9", "a")],
                                      "user_id STRING, item_id STRING")
    got = {(r.user_id, r.item_id): r.label for r in label(pairs, positives).collect()}
    # u3 had no positive among its candidates; u9's positive was no candidate.
    assert got == {("u1", "a"): 0.0, ("u1", "b"): 1.0, ("u2", "a"): 0.0, ("u2", "c"): 1.0}
