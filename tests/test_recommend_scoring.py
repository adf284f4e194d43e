"""The batch top-K (numpy, one user block per Spark task) against the Spark ranker path the
ranker is fitted and evaluated with: same candidates, features, scores and order."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from pyspark.sql import functions as F

from _synthetic import synthetic
from fusionrec.model.fusion import candidates, fit_fused, rank_candidates, with_features
from fusionrec.model.ranker import RANKER_FEATURES, RankerParams
from fusionrec.model.recommend import recommend_all, score_all
from fusionrec.model.side_features import side_features
from fusionrec.model.text_maps import fit_text_map, solve_ridge

COLD = [f"i{i}" for i in range(4)]


@pytest.fixture(scope="module")
def fitted(spark, cfg):
    d = synthetic(spark, n_users=36, n_items=40, per_user=10, dim=8, seed=11)
    # Four items lose their interactions: they are scored through the text map (cold_item = 1).
    interactions = d["interactions"].where(~F.col("item_id").isin(COLD)).cache()
    embeddings = d["item_vectors"].withColumnRenamed("vector", "embedding")
    feats = side_features(interactions, embeddings, None, None, None, cfg.features)
    sentiment = spark.createDataFrame([(f"i{i}", 0.2 + 0.02 * i) for i in range(0, 40, 3)],
                                      "item_id STRING, sentiment_mean DOUBLE")
    mc = dataclasses.replace(cfg.model, rank=4, max_iter=4, checkpoint_interval=2, candidates_n=6, k=5,
                             user_blocks=3, min_user_interactions=3)
    model = fit_fused(interactions, feats.item_vectors, feats.user_profiles, sentiment, mc)
    ranker = RankerParams(list(RANKER_FEATURES), mean=[0.1, 0.2, 1.0, 0.5, 0.1, 0.5, 0.2, 0.2, 0.1, 0.2],
                          std=[1.0, 0.5, 1.0, 0.2, 0.3, 1.0, 0.3, 0.3, 1.0, 0.3],
                          coef=[0.8, 1.1, 0.3, 0.4, 0.6, 0.2, 0.5, 0.7, 0.9, 0.4], intercept=-1.0)
    return model, ranker, interactions, d["item_documents"], mc, cfg.evaluate


def _tree_ranker() -> RankerParams:
    """Boosted stumps as a LambdaMART ranker stores them: a text match counts for cold items
    only (a split below a split), the session score and popularity everywhere."""
    f = {name: n for n, name in enumerate(RANKER_FEATURES)}
    trees = {"n_features": len(RANKER_FEATURES), "base_margin": 0.3,
             "feature": [[f["cold_item"], f["content_cosine"], -1, -1, -1], [f["session_score"], -1, -1],
                         [f["log_popularity"], -1, -1]],
             "threshold": [[0.5, 0.2, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0], [1.5, 0.0, 0.0]],
             "left": [[2, 3, -1, -1, -1], [1, -1, -1], [1, -1, -1]],
             "right": [[1, 4, -1, -1, -1], [2, -1, -1], [2, -1, -1]],
             "default_left": [[True, True, False, False, False], [True, False, False], [True, False, False]],
             "value": [[0.0, 0.4, -0.1, -0.5, 1.2], [0.0, -0.6, 0.7], [0.0, -0.2, 0.3]]}
    zeros = [0.0] * len(RANKER_FEATURES)
    return RankerParams(list(RANKER_FEATURES), zeros, [1.0] * len(RANKER_FEATURES), zeros, 0.0, trees=trees)


def test_new_items_carry_the_log_popularity_their_text_predicts(fitted, cfg):
    model, _, interactions, _, mc, _ = fitted
    items = {r.item_id: r for r in model.item_factors.collect()}
    assert all(items[i].source == "text_map" and items[i].text_log_popularity is not None for i in COLD)
    assert all(r.text_log_popularity is None for r in items.values() if r.source == "als")
    # The popularity column rides on the factor map's ridge system: the factor map is the one
    # fitted on the factors alone.
    als_items = model.item_factors.where(F.col("source") == "als")
    alone, _ = fit_text_map(model.item_vectors, als_items, "item_id", mc.ridge_lambda)
    assert np.allclose(alone, model.item_map, atol=1e-8)
    # ... and the popularity map is the ridge fit of log(1 + n) on the same vectors.
    counts = {r.item_id: np.log1p(r.n) for r in interactions.groupBy("item_id").count()
              .withColumnRenamed("count", "n").collect()}
    vectors = {r.item_id: np.asarray(r.vector, dtype=np.float64) for r in model.item_vectors.collect()}
    warm = sorted(counts)
    x = np.hstack([np.stack([vectors[i] for i in warm]), np.ones((len(warm), 1))])
    w = solve_ridge(x.T @ x, x.T @ np.asarray([counts[i] for i in warm]), mc.ridge_lambda)
    for i in COLD:
        assert items[i].text_log_popularity == pytest.approx(float(np.append(vectors[i], 1.0) @ w), rel=1e-4, abs=1e-5)
    # A new item's ranker feature is that prediction; warm items keep their own count.
    users = interactions.select("user_id").distinct()
    featured = with_features(candidates(model, interactions.select("user_id", "item_id"), mc, users), model).collect()
    for r in featured:
        if r.item_id in COLD:
            assert r.cold_item == 1.0 and r.log_popularity == pytest.approx(items[r.item_id].text_log_popularity)
        else:
            assert r.cold_item == 0.0 and r.log_popularity == pytest.approx(counts[r.item_id])


def test_every_user_with_factors_is_offered_the_best_new_items(fitted):
    model, _, interactions, _, mc, _ = fitted
    users = interactions.select("user_id").distinct()
    seen = interactions.select("user_id", "item_id")
    offered: dict[str, set[str]] = {}
    for r in candidates(model, seen, mc, users).collect():
        offered.setdefault(r.user_id, set()).add(r.item_id)
    with_factors = {r.user_id for r in model.user_factors.select("user_id").collect()}
    assert with_factors and set(offered) >= with_factors
    for user in with_factors:  # four new items, candidates_n = 6: every one is offered
        assert set(COLD) <= offered[user], user


@pytest.mark.parametrize("kind", ["logistic", "trees"])
def test_batch_top_k_equals_the_spark_ranker_path(fitted, kind):
    model, ranker, interactions, docs, mc, ec = fitted
    ranker = ranker if kind == "logistic" else _tree_ranker()
    users = interactions.select("user_id").distinct()
    seen = interactions.select("user_id", "item_id")
    spark_path = rank_candidates(with_features(candidates(model, seen, mc, users), model), ranker, mc.k).collect()
    batch = score_all(model, ranker, users, interactions, docs.select("item_id", "title"), mc, ec=ec).collect()

    def by_user(rows):
        out: dict[str, list] = {}
        for r in sorted(rows, key=lambda r: (r.user_id, r.rank)):
            out.setdefault(r.user_id, []).append(r)
        return out

    expected, got = by_user(spark_path), by_user(batch)
    assert set(got) == set(expected) and len(got) == 36
    for user, rows in expected.items():
        assert [r.item_id for r in got[user]] == [r.item_id for r in rows], user
        assert [r.rank for r in got[user]] == list(range(1, mc.k + 1))
        for g, e in zip(got[user], rows):
            assert g.score == pytest.approx(e.score, rel=1e-4)
    seen_pairs = {(r.user_id, r.item_id) for r in seen.collect()}
    assert not {(r.user_id, r.item_id) for r in batch} & seen_pairs
    # The cold items are recommended to someone, and every row has a reason.
    assert {r.item_id for r in batch} & set(COLD)
    assert all(r.reason for r in batch)


def test_reasons_name_a_liked_item_and_recommend_all_covers_every_user(fitted, spark):
    model, ranker, interactions, docs, mc, ec = fitted
    recs = recommend_all(model, ranker, interactions, docs.select("item_id", "title"), None, mc, ec=ec).collect()
    assert {r.user_id for r in recs} == {r.user_id for r in interactions.select("user_id").distinct().collect()}
    titles = {r.item_id: r.title for r in docs.collect()}
    # Liked = positive feedback (rating >= evaluate.positive_rating): never an item rated low.
    liked_titles: dict[str, set] = {}
    for r in interactions.collect():
        if r.rating >= ec.positive_rating:
            liked_titles.setdefault(r.user_id, set()).add(titles[r.item_id])
    named = [r for r in recs if r.reason.startswith(("similar to", "popular with people who liked"))]
    assert named
    for r in named:
        title = r.reason.removeprefix("similar to ").removesuffix(" you liked") \
            .removeprefix("popular with people who liked ")
        assert title in liked_titles[r.user_id], r


def test_the_recommend_report_counts_every_kind_of_reason(spark):
    from fusionrec.commands.recommend import reason_kind
    from fusionrec.model import scoring
    from fusionrec.model.scoring import REASON_KINDS

    reasons = [scoring.REASON_CONTENT.format(title="Alien"), scoring.REASON_CONTENT_TEXT,
               scoring.REASON_ALS.format(title="Heat"), scoring.REASON_ALS_TEXT, scoring.REASON_SENTIMENT,
               scoring.REASON_NEW, scoring.REASON_POPULAR, "something else"]
    got = [r[0] for r in spark.createDataFrame([(r,) for r in reasons], "reason STRING")
           .select(reason_kind(F.col("reason"))).collect()]
    assert got == [*REASON_KINDS, ""]
    assert len(set(REASON_KINDS)) == 7 and "new arrival" in REASON_KINDS and "matches your description" in REASON_KINDS


def test_the_cold_slot_brings_the_text_matched_cold_item_into_every_top_k_in_both_paths(fitted):
    model, _, interactions, docs, mc, ec = fitted
    users = interactions.select("user_id").distinct()
    seen = interactions.select("user_id", "item_id")
    # A ranker that likes text matches and popularity and holds cold items against themselves.
    coef = {"content_cosine": 2.0, "log_popularity": 1.0, "cold_item": -4.0, "als_score": 0.5}
    base = RankerParams(list(RANKER_FEATURES), [0.0] * 10, [1.0] * 10, [coef.get(f, 0.0) for f in RANKER_FEATURES], 0.0)
    featured = with_features(candidates(model, seen, mc, users), model).cache()

    def both(ranker):
        spark_path = rank_candidates(featured, ranker, mc.k).collect()
        batch = score_all(model, ranker, users, interactions, docs.select("item_id", "title"), mc, ec=ec).collect()
        key = lambda rows: sorted((r.user_id, r.rank, r.item_id) for r in rows)  # noqa: E731
        assert key(batch) == key(spark_path)
        return {(r.user_id, r.rank): r.item_id for r in batch}

    assert not set(both(base).values()) & set(COLD)  # without the slot no cold item makes a top k
    assert both(dataclasses.replace(base, cold_floor=1.0)) == both(base)  # no cold item reaches this floor
    slotted = both(dataclasses.replace(base, cold_floor=0.0))
    # Every user's last place is the cold item of the user's topic (item i % 4 of topic u % 4).
    topic = {u: int(u[1:]) % 4 for u, _ in slotted}
    assert {u: slotted[(u, mc.k)] for u in topic} == {u: f"i{t}" for u, t in topic.items()}
    assert all(slotted[(u, r)] == item for (u, r), item in both(base).items() if r < mc.k)
