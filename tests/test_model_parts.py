"""The fused model's parts: ridge text maps, blocked top-N, the ranker, ALS factors."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
from pyspark.sql import functions as F

from fusionrec.errors import InputError
from fusionrec.model.als import fit_als
from fusionrec.model.fusion import fit_fused
from fusionrec.model.ranker import (RANKER_FEATURES, RankerParams, TreeSettings, choose_ranker, fit_pairwise_ranker,
                                    fit_ranker)
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
def test_blocked_top_n_with_a_pool_ranks_the_pool_on_its_own_in_the_same_pass(spark, item_blocks):
    rng = np.random.default_rng(3)
    u, v = rng.normal(size=(11, 4)), rng.normal(size=(19, 4))
    pool = {f"i{j}" for j in (1, 4, 9, 12, 16, 18)}
    users = _vec_df(spark, "u", u, "factors")
    items = _vec_df(spark, "i", v, "factors").withColumn("new", F.col("item_id").isin(*pool))
    seen = spark.createDataFrame([("u0", "i4"), ("u2", "i0")], "user_id STRING, item_id STRING")
    got = blocked_top_n(users, items, 4, seen, user_blocks=3, item_blocks=item_blocks, pool="new").collect()
    scores = u @ v.T
    scores[0, 4] = -np.inf
    scores[2, 0] = -np.inf
    in_pool = np.array([f"i{j}" in pool for j in range(19)])
    for ui in range(11):
        for pooled, allowed in ((False, np.ones(19, dtype=bool)), (True, in_pool)):
            mine = sorted((r for r in got if r.user_id == f"u{ui}" and r.in_pool == pooled), key=lambda r: r.rank)
            masked = np.where(allowed, scores[ui], -np.inf)
            expected = [f"i{j}" for j in np.argsort(-masked)[:4] if np.isfinite(masked[j])]
            assert [r.item_id for r in mine] == expected, (ui, pooled)
            assert [r.rank for r in mine] == list(range(1, len(expected) + 1))


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


def test_pairwise_ranker_learns_the_order_within_users_where_pointwise_is_misled(spark):
    """Each user's ALS scores carry a user-level offset, and users with high offsets have
    fewer positives: across users a high score means "negative", within a user it means
    "positive". The pairwise ranker sees only within-user differences; auto must keep it."""
    rng = np.random.default_rng(5)
    rows, counts = [], []
    for u in range(80):
        offset = rng.uniform(0, 10)
        signal = rng.normal(size=20)
        n_pos = 1 if offset > 5 else 5
        positive = set(np.argsort(-signal)[:n_pos].tolist())
        for i in range(20):
            rows.append((f"user{u}", f"item{i}", float(offset + signal[i]), float(rng.normal()), 1.0, 0.5, 0.0,
                         0.0, 0.0, 0.0, 0.0, 0.0, float(i in positive)))
        counts.append((f"user{u}", n_pos, 0))
    df = spark.createDataFrame(rows, ["user_id", "item_id", *RANKER_FEATURES, "label"])
    relevant = spark.createDataFrame(counts, "user_id STRING, n_relevant INT, n_cold_relevant INT")

    pairwise = fit_pairwise_ranker(df, 0.01, negatives=10, seed=1)
    assert pairwise.intercept == 0.0 and dict(zip(pairwise.features, pairwise.coef))["als_score"] > 0.5
    assert dict(zip(RANKER_FEATURES, fit_ranker(df, 0.01).coef))["als_score"] < 0

    chosen, choice = choose_ranker(df, relevant, kind="auto", k=5, reg_param=0.01, negatives=10, seed=1,
                                   trees=TreeSettings(trees=50, depth=3, learning_rate=0.1))
    ndcg = choice["holdout_ndcg@5"]
    # Both kinds that learn within users (pairwise, LambdaMART) see through the offset.
    assert ndcg["pairwise"] > ndcg["pointwise"] + 0.2 and ndcg["lambdamart"] > ndcg["pointwise"] + 0.2, choice
    assert choice["kind"] == max(ndcg, key=ndcg.get) != "pointwise", choice
    assert 20 <= choice["holdout_users"] <= 60
    only, fixed = choose_ranker(df, relevant, kind="pointwise", k=5, reg_param=0.01, negatives=10, seed=1)
    assert fixed == {"kind": "pointwise"} and only.intercept != 0.0


def test_lambdamart_learns_what_a_linear_score_cannot_and_scores_as_serving_does(spark):
    """The positive of a user is the best text match among cold candidates and the best ALS
    score among warm ones: which signal counts depends on ``cold_item``, which no linear score
    can express. auto must keep LambdaMART, and Spark's score must be serving's numpy score."""
    from fusionrec.model.scoring import Ranker

    rng = np.random.default_rng(11)
    rows, counts = [], []
    for u in range(120):
        cold = rng.uniform(size=20) < 0.3
        als, content = rng.normal(size=20), rng.normal(size=20)
        value = np.where(cold, 3 * content, als) + 0.1 * rng.normal(size=20)
        positive = set(np.argsort(-value)[:2].tolist())
        for i in range(20):
            rows.append((f"user{u}", f"item{i}", float(als[i]), float(content[i]), float(rng.uniform(0, 5)), 0.5,
                         float(cold[i]), 0.0, 0.0, 0.0, float(rng.normal()), 0.0, float(i in positive)))
        counts.append((f"user{u}", 2, int(sum(cold[i] for i in positive))))
    df = spark.createDataFrame(rows, ["user_id", "item_id", *RANKER_FEATURES, "label"])
    relevant = spark.createDataFrame(counts, "user_id STRING, n_relevant INT, n_cold_relevant INT")
    settings = TreeSettings(trees=80, depth=3, learning_rate=0.1)

    chosen, choice = choose_ranker(df, relevant, kind="auto", k=5, reg_param=0.01, negatives=10, seed=1,
                                   trees=settings)
    ndcg = choice["holdout_ndcg@5"]
    assert choice["kind"] == "lambdamart" and ndcg["lambdamart"] > max(ndcg["pointwise"], ndcg["pairwise"]) + 0.1, choice
    assert chosen.trees is not None and chosen.coef == [0.0] * len(RANKER_FEATURES)
    assert RankerParams.from_json(json.loads(json.dumps(chosen.to_json()))) == chosen

    scored = df.select(*RANKER_FEATURES, chosen.score().alias("p"),
                       *[c.alias(f"c_{n}") for n, c in chosen.contributions().items()]).toPandas()
    numpy_ranker = Ranker.from_json(chosen.to_json())
    x = scored[list(RANKER_FEATURES)].to_numpy()
    np.testing.assert_allclose(scored["p"].to_numpy(), numpy_ranker.score(x), rtol=0, atol=1e-9)
    np.testing.assert_allclose(scored[[f"c_{n}" for n in RANKER_FEATURES]].to_numpy(),
                               numpy_ranker.contributions(x), rtol=0, atol=1e-9)
    with pytest.raises(ValueError, match="ranker.trees"):
        RankerParams.from_json({**chosen.to_json(), "trees": {**chosen.trees, "threshold": []}})


def test_tuning_users_is_a_seeded_sample_of_the_asked_size(spark):
    from fusionrec.model.train import tuning_users

    users = spark.createDataFrame([(f"user{u}",) for u in range(30)], "user_id STRING")
    some = sorted(r.user_id for r in tuning_users(users, 10, seed=3).collect())
    assert len(some) == 10 and some == sorted(r.user_id for r in tuning_users(users, 10, seed=3).collect())
    assert some != sorted(r.user_id for r in tuning_users(users, 10, seed=4).collect())
    assert tuning_users(users, 30, seed=3).count() == 30


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


def test_search_visits_each_reg_param_and_keeps_the_best_validation_score():
    from fusionrec.model.als import AlsParams, search_als

    # A validation NDCG per reg_param / alpha (best at 1), as on Spark's ridge of equal shrinkage.
    validation = {0.1: 0.20, 1.0: 0.25, 10.0: 0.22}

    def score(p):
        return (validation.get(round(p.reg_param / p.alpha, 6), 0.0) + (0.01 if p.alpha == 4.0 else 0.0)
                + (0.005 if p.rank == 64 else 0.0))

    values = {"rank": [32, 64], "reg_param": [0.1, 1.0, 10.0], "alpha": [1.0, 4.0]}
    base = AlsParams(rank=32, reg_param=0.1, alpha=1.0)
    best, tried = search_als(base=base, method="coordinate", max_fits=5, values=values, score=score)
    # One pass: the penalties at the base, then alpha at the best penalty (reg_param moving with
    # it, reg_param / alpha kept), then rank at the best of both; the budget is spent before any
    # value past a list's edge is tried.
    assert [(p.reg_param, p.alpha, p.rank) for p, _ in tried] == [
        (0.1, 1.0, 32), (1.0, 1.0, 32), (10.0, 1.0, 32), (4.0, 4.0, 32), (4.0, 4.0, 64)]
    assert best == AlsParams(rank=64, reg_param=4.0, alpha=4.0)
    # Unbounded, passes repeat until one fits nothing new: each setting at most once, same winner.
    again, all_tried = search_als(base=base, method="coordinate", max_fits=64, values=values, score=score)
    assert again == best and len(all_tried) == len({p for p, _ in all_tried}) < 12
    # The budget holds, and a grid is every combination of the listed values, as listed.
    assert len(search_als(base=best, method="coordinate", max_fits=2, score=score,
                          values={"reg_param": [0.1, 1.0, 10.0]})[1]) == 2
    best_grid, grid = search_als(base=best, method="grid", max_fits=12, score=score, values=values)
    assert len(grid) == 12 and best_grid == AlsParams(rank=64, reg_param=1.0, alpha=1.0)


def test_search_goes_past_the_edge_of_a_list_while_validation_keeps_rising():
    import math

    from fusionrec.model.als import AlsParams, search_als

    # Validation NDCG peaks at reg_param 100, past the listed 0.1 .. 10.
    def score(p):
        return -abs(math.log10(p.reg_param) - 2.0)

    best, tried = search_als(base=AlsParams(rank=8, reg_param=1.0, alpha=1.0), method="coordinate", max_fits=8,
                             values={"reg_param": [0.1, 1.0, 10.0]}, score=score)
    assert best.reg_param == 100.0
    # 100 and then 1000 (which scored lower and stopped it) were tried, each once.
    assert [p.reg_param for p, _ in tried] == [0.1, 1.0, 10.0, 100.0, 1000.0]
    # The budget holds past the edge too; a grid is never extended.
    assert [p.reg_param for p, _ in search_als(base=best, method="coordinate", max_fits=4, score=score,
                                               values={"reg_param": [0.1, 1.0, 10.0]})[1]] == [0.1, 1.0, 10.0, 100.0]
    assert len(search_als(base=best, method="grid", max_fits=8, score=score,
                          values={"reg_param": [0.1, 1.0, 10.0]})[1]) == 3


def test_fit_pipeline_searches_reg_param_on_validation_and_records_it(cfg, spark):
    from fusionrec.model.params import FusionParams
    from fusionrec.model.train import fit_pipeline, fusion_params

    d = synthetic(spark, n_users=40, n_items=24, per_user=10, dim=8, seed=5)
    mc = dataclasses.replace(cfg.model, rank=4, max_iter=3, checkpoint_interval=2, candidates_n=8, k=5,
                             user_blocks=2, search_rank=[], search_alpha=[], search_reg_param=[0.01, 1.0, 100.0],
                             ranker_cold_item_fraction=0.25, cold_slot=True)
    small = cfg.replace(model=mc)
    fitted = fit_pipeline(d["interactions"], d["item_vectors"].withColumnRenamed("vector", "embedding"), None, None,
                          small)
    listed, tried = {0.01, 1.0, 100.0}, {t["reg_param"] for t in fitted.trials}
    # Every listed penalty, and past an edge that won only the list's outer step (x100) onwards.
    assert listed <= tried and tried - listed <= {1e-4, 1e-6, 1e4, 1e6}
    best = max(fitted.trials, key=lambda t: t["validation_ndcg@10"])
    assert fitted.params.reg_param == best["reg_param"] and fitted.model.als_params == fitted.params
    assert len({t["validation_ndcg@10"] for t in fitted.trials}) > 1  # the penalty changes the validation score
    doc = FusionParams.from_json(fusion_params(fitted, small).to_json())
    assert doc.als.reg_param == fitted.params.reg_param and doc.search == fitted.trials
    assert doc.cold_slot["curve"][0]["floor"] is None and doc.ranker.cold_floor == fitted.ranker.cold_floor
    # The items made cold in the fit period are among the ranker's rows as cold items, some of them
    # taken, scored through their text-mapped factors (an item without factors scores 0), their
    # popularity feature the one their text predicts (an item's own, not a constant).
    cold_rows = fitted.ranker_rows.join(fitted.made_cold, "item_id").collect()
    assert cold_rows and {r.cold_item for r in cold_rows} == {1.0} and any(r.label == 1.0 for r in cold_rows)
    assert all(r.als_score != 0.0 for r in cold_rows)
    predicted = {r.item_id: r.log_popularity for r in cold_rows}
    assert len(set(predicted.values())) == len(predicted) > 1, predicted


def test_cold_slot_curve_scores_each_floor_and_calibration_keeps_the_cheapest_gain(spark):
    from fusionrec.model.ranker import calibrate_cold_floor, cold_slot_curve

    ranker = RankerParams(list(RANKER_FEATURES), [0.0] * 10, [1.0] * 10,
                          [float(f == "als_score") for f in RANKER_FEATURES], 0.0)  # score = sigmoid(als_score)
    rows = spark.createDataFrame(
        [(u, i, float(als), float(cold), float(lab)) for u, i, als, cold, lab in [
            ("u1", "a", 3, 0, 1), ("u1", "b", 2, 0, 0), ("u1", "c", 1, 1, 1),  # the slot finds u1's cold positive
            ("u2", "a", 3, 0, 1), ("u2", "b", 2, 0, 1), ("u2", "d", 0.5, 1, 0)]],  # ... and costs u2 a hit
        "user_id STRING, item_id STRING, als_score DOUBLE, cold_item DOUBLE, label DOUBLE")
    for name in RANKER_FEATURES:
        if name not in rows.columns:
            rows = rows.withColumn(name, F.lit(0.0))
    counts = spark.createDataFrame([("u1", 2, 1), ("u2", 2, 0), ("u3", 1, 1)],  # u3: no candidate, scores 0
                                   "user_id STRING, n_relevant INT, n_cold_relevant INT")
    curve = cold_slot_curve(rows, ranker, 2, counts)
    ndcg_hit_miss = 1.0 / (1.0 + 1.0 / np.log2(3))
    assert curve[0] == {"floor": None, "ndcg": pytest.approx((ndcg_hit_miss + 1.0) / 3, abs=1e-5),
                        "cold_recall": 0.0, "slot_users": 0.0}
    high, low = curve[1], curve[-1]
    assert high["floor"] == pytest.approx(1 / (1 + np.exp(-1.0))) and low["floor"] == pytest.approx(1 / (1 + np.exp(-0.5)))
    assert high["ndcg"] == pytest.approx(2.0 / 3, abs=1e-5) and high["cold_recall"] == 0.5
    assert low["ndcg"] == pytest.approx((1.0 + ndcg_hit_miss) / 3, abs=1e-5) and low["slot_users"] == pytest.approx(2 / 3, abs=1e-5)
    assert calibrate_cold_floor(curve, 0.02) == high["floor"]  # equal recall: the higher floor, fewer slots


def test_the_lambdamart_workers_never_outnumber_the_task_slots(spark):
    from fusionrec.model.ranker import task_slots

    # XGBoost's workers are one barrier stage: more of them than slots can never be scheduled.
    # The session's default parallelism is the shuffle partitions (4), not its 2 cores.
    assert task_slots(spark.sparkContext) == 2 < spark.sparkContext.defaultParallelism
