"""The numpy scorer shared by batch and serving, without Spark: top-N cuts on tied scores,
the popularity fallback, the ranker features by name, and the parameters file."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest

from fusionrec.errors import InputError
from fusionrec.model.als import AlsParams
from fusionrec.model.params import FusionParams
from fusionrec.model.ranker import RANKER_FEATURES, RankerParams
from fusionrec.model.scoring import (
    REASON_CONTENT, REASON_CONTENT_TEXT, REASON_NEW, REASON_POPULAR, REASON_SENTIMENT, TEXT_MATCH_FLOOR, Catalogue, Ranker, Scored, nearest_liked,
    popular_fallback, popular_order, reasons, score_user, stack_rows, top_columns)


def _catalogue(n: int = 12, seed: int = 0, **overrides) -> Catalogue:
    rng = np.random.default_rng(seed)
    log_popularity = np.log1p(rng.integers(0, 5, size=n)).astype(np.float64)
    fields = dict(factors=rng.normal(size=(n, 3)), vectors=rng.normal(size=(n, 4)),
                  has_factors=np.ones(n, dtype=bool), has_vector=np.ones(n, dtype=bool),
                  log_popularity=log_popularity, item_sentiment=rng.uniform(size=n),
                  recent_popularity=rng.uniform(size=n), popular_order=popular_order(log_popularity, np.full(n, "")))
    fields.update(overrides)
    return Catalogue(**fields)


def test_top_columns_keeps_the_lower_index_among_ties_at_the_cut():
    scores = np.array([[1.0, 3.0, 2.0, 2.0, 2.0, 0.5],
                       [2.0, 2.0, 2.0, 2.0, 2.0, 2.0],
                       [5.0, 4.0, 3.0, 2.0, 1.0, 0.0],
                       [-np.inf, 1.0, -np.inf, 1.0, 1.0, -np.inf]])
    keep = top_columns(scores, 3)
    assert keep.sum(axis=1).tolist() == [3, 3, 3, 3]
    assert np.flatnonzero(keep[0]).tolist() == [1, 2, 3]  # 3.0, then the first two of the tied 2.0s
    assert np.flatnonzero(keep[1]).tolist() == [0, 1, 2]
    assert np.flatnonzero(keep[2]).tolist() == [0, 1, 2]
    assert np.flatnonzero(keep[3]).tolist() == [1, 3, 4]
    # Whatever order the ties come in, the same items are kept: shuffle the columns and
    # map back, the kept set is the set of the lowest original indices among the tied.
    rng = np.random.default_rng(1)
    tied = np.round(rng.uniform(size=(50, 40)) * 4) / 4  # five distinct values: many ties
    keep = top_columns(tied, 7)
    for row, kept in zip(tied, keep):
        expected = np.lexsort((np.arange(row.size), -row))[:7]
        assert set(np.flatnonzero(kept)) == set(expected)
    assert top_columns(tied[:, :5], 7).all()  # fewer columns than places: all kept


def test_score_user_breaks_ties_by_catalogue_index_everywhere():
    n = 30
    # Every item has the same ALS score, the same cosine and the same popularity: every
    # pool and the final top-k are decided by ties alone, and must take the lowest indices.
    catalogue = _catalogue(n, factors=np.ones((n, 3)), vectors=np.ones((n, 4)) / 2.0,
                           log_popularity=np.full(n, np.log(3.0)), recent_popularity=np.full(n, np.log(2.0)),
                           item_sentiment=np.full(n, 0.5), popular_order=np.arange(n))
    allowed = np.ones(n, dtype=bool)
    allowed[[0, 2]] = False
    als = catalogue.factors @ np.ones(3)
    cosine = catalogue.vectors @ np.full(4, 0.5)
    scored = score_user(catalogue, als, None, cosine, allowed, catalogue.popular_pools(5), 5, 4, None)
    assert scored.items.tolist() == [1, 3, 4, 5]


def test_new_items_reach_the_candidates_through_their_own_pool():
    n = 30
    # Items 25-29 have no interaction (log popularity 0) and the lowest ALS scores: the ALS
    # pool never holds them, the new-item pool holds the best n of them.
    new = np.arange(n) >= 25
    catalogue = _catalogue(n, log_popularity=np.where(new, 0.0, np.log(4.0)), recent_popularity=np.where(new, 0.0, 1.0),
                           popular_order=np.arange(25))
    als = np.linspace(1.0, 0.0, n)
    allowed = np.ones(n, dtype=bool)
    allowed[26] = False  # seen: never proposed
    scored = score_user(catalogue, als, None, None, allowed, catalogue.popular_pools(3), 3, n, None)
    assert set(scored.items.tolist()) == set(range(3)) | {25, 27, 28}
    assert {25, 27, 28} <= set(score_user(catalogue, als, None, None, allowed, (np.empty(0, int),) * 2, 3, n,
                                          None).items.tolist())
    # A user without factors has no x_u . y_i to rank new items by: no new-item pool.
    assert set(score_user(catalogue, None, None, als, allowed, catalogue.popular_pools(3), 3, n,
                          None).items.tolist()) == {0, 1, 2}


def test_a_new_items_popularity_feature_is_its_texts_prediction_and_its_reason_new():
    n = 6
    log_popularity = np.array([np.log(5.0), np.log(3.0), 0.0, 0.0, np.log(2.0), 0.0])
    predicted = np.array([9.0, 9.0, 0.9, 0.2, 9.0, 0.0])  # only read where there is no interaction
    catalogue = _catalogue(n, log_popularity=log_popularity, text_log_popularity=predicted,
                           popular_order=popular_order(log_popularity, np.full(n, "")))
    items = np.arange(n)
    assert catalogue.popularity_feature(items).tolist() == pytest.approx([np.log(5.0), np.log(3.0), 0.9, 0.2,
                                                                        np.log(2.0), 0.0])
    assert _catalogue(n, log_popularity=log_popularity).popularity_feature(items).tolist() == log_popularity.tolist()
    # The popularity lists and the fallback never read the prediction.
    assert sorted(catalogue.popular_pools(3)[0].tolist()) == [0, 1, 4]
    # Only popularity counts: the new item 2 (predicted 0.9) outranks item 4 (observed log 2 = 0.69).
    f = {name: i for i, name in enumerate(RANKER_FEATURES)}
    coef = np.zeros(len(RANKER_FEATURES))
    coef[f["log_popularity"]] = 1.0
    ranker = Ranker(RANKER_FEATURES, np.zeros_like(coef), np.ones_like(coef), coef, 0.0)
    allowed = np.ones(n, dtype=bool)
    scored = score_user(catalogue, np.zeros(n), None, None, allowed, catalogue.popular_pools(n), n, 4, ranker)
    assert scored.items.tolist() == [0, 1, 2, 4]
    # Its reason is "new arrival", never "popular now": it has no record of being popular.
    assert reasons(catalogue, np.array([f"t{i}" for i in range(n)], dtype=object), scored,
                   np.empty(0, dtype=np.int64)) == [REASON_POPULAR, REASON_POPULAR, REASON_NEW, REASON_POPULAR]


def test_popular_order_interleaves_categories_with_ties_by_index():
    log_popularity = np.log1p(np.array([9, 9, 4, 7, 0, 3, 7, 1], dtype=float))
    categories = np.array(["a", "b", "a", "b", "a", "c", "a", ""], dtype=object)
    order = popular_order(log_popularity, categories).tolist()
    # Firsts of each category by popularity (0: a, 1: b tie at 9 -> lower index; 5: c; 7: none),
    # then the seconds (3 and 6 tie at 7 -> lower index), then the thirds; 4 has no interaction.
    assert order == [0, 1, 5, 7, 3, 6, 2]
    catalogue = _catalogue(8, log_popularity=log_popularity, popular_order=np.asarray(order))
    allowed = np.ones(8, dtype=bool)
    allowed[[1, 7]] = False
    fallback = popular_fallback(catalogue, allowed, 4)
    assert fallback.items.tolist() == [0, 5, 3, 6]
    assert fallback.scores.tolist() == [1.0, 1 / 2, 1 / 3, 1 / 4]


def test_ranker_features_are_taken_by_name():
    n = 20
    catalogue = _catalogue(n, seed=3)
    rng = np.random.default_rng(4)
    als, session, cosine = rng.normal(size=n), rng.normal(size=n), rng.uniform(-1, 1, size=n)
    allowed = np.ones(n, dtype=bool)
    pools = catalogue.popular_pools(n)
    expected = {"als_score": als, "session_score": session, "content_cosine": cosine,
                "log_popularity": catalogue.log_popularity, "item_sentiment": catalogue.item_sentiment,
                "recent_popularity": catalogue.recent_popularity,
                "cold_item": (catalogue.log_popularity == 0).astype(float)}
    for name, values in expected.items():
        # A ranker that reads one feature only: its contribution is that feature's value.
        coef = np.array([1.0 if f == name else 0.0 for f in RANKER_FEATURES])
        ranker = Ranker(RANKER_FEATURES, np.zeros(len(RANKER_FEATURES)), np.ones(len(RANKER_FEATURES)), coef, 0.0)
        scored = score_user(catalogue, als, session, cosine, allowed, pools, n, n, ranker)
        column = RANKER_FEATURES.index(name)
        np.testing.assert_allclose(scored.contributions[:, column], values[scored.items], err_msg=name)


def test_nearest_liked_ties_do_not_depend_on_the_order_of_liked():
    space = np.array([[1.0, 0.0], [0.0, 1.0], [0.0, 2.0], [1.0, 1.0]])
    assert nearest_liked(space, 3, np.array([2, 1, 0])) == 0  # all three at cosine 0.707: lowest index
    assert nearest_liked(space, 1, np.array([2, 1])) == 1
    assert nearest_liked(space, 1, np.array([], dtype=np.int64)) is None


def test_stack_rows_marks_missing_rows_and_names_a_bad_one():
    matrix, present = stack_rows([[1, 2], None, [], np.array([3.0, 4.0])], 2, "factors")
    assert present.tolist() == [True, False, False, True]
    assert matrix.tolist() == [[1, 2], [0, 0], [0, 0], [3, 4]] and matrix.dtype == np.float32
    with pytest.raises(ValueError, match="factors: row 1 has 3 values, expected 2"):
        stack_rows([[1, 2], [1, 2, 3]], 2, "factors")


def test_fusion_params_round_trip_and_refuse_a_bad_document():
    ranker = RankerParams(list(RANKER_FEATURES), [0.1] * 10, [1.0] * 10, [0.5] * 10, -1.0)
    params = FusionParams(
        als=AlsParams(rank=2, reg_param=0.1, alpha=4.0), max_iter=5, checkpoint_interval=2, seed=1,
        text_to_item_factor=np.arange(6.0).reshape(3, 2), text_to_user_factor=None, ranker=ranker,
        train_cutoff=dt.datetime(2024, 3, 1, 12), candidates_n=50, k=10, min_user_interactions=3, recent_weeks=4,
        now_week=2800, search=[{"rank": 2, "validation_ndcg@10": 0.1}],
        degraded=("user text map not fitted",))
    again = FusionParams.from_json(params.to_json())
    assert again.to_json() == params.to_json()
    assert again.rank == 2 and again.ranker == ranker and again.text_to_user_factor is None
    assert again.train_cutoff == dt.datetime(2024, 3, 1, 12) and again.degraded == ("user text map not fitted",)
    np.testing.assert_array_equal(again.text_to_item_factor, params.text_to_item_factor)
    with pytest.raises(InputError, match="not valid JSON"):
        FusionParams.from_json("{")
    with pytest.raises(InputError, match="missing key.s. 'now_week'"):
        FusionParams.from_json(params.to_json().replace('"now_week"', '"week"'))
    with pytest.raises(InputError, match="malformed fusion parameters"):
        FusionParams.from_json(params.to_json().replace('"max_iter": 5', '"max_iter": "many"'))


def test_the_cold_slot_gives_the_last_place_to_the_best_cold_item_above_the_floor():
    n = 12
    # Items 0-2 are cold (no interaction); the ranker reads popularity only, so they come last.
    popularity = np.log1p(np.array([0, 0, 0, 5, 6, 7, 8, 9, 10, 11, 12, 13], dtype=float))
    catalogue = _catalogue(n, log_popularity=popularity)
    cosine = np.array([0.1, 0.9, 0.5, *[0.0] * 9])
    coef = np.array([1.0 if f == "log_popularity" else 0.1 if f == "content_cosine" else 0.0
                     for f in RANKER_FEATURES])
    ranker = Ranker(RANKER_FEATURES, np.zeros(len(RANKER_FEATURES)), np.ones(len(RANKER_FEATURES)), coef, 0.0)
    allowed = np.ones(n, dtype=bool)

    def top(floor, k=4):
        r = Ranker(ranker.features, ranker.mean, ranker.std, ranker.coef, ranker.intercept, floor)
        return score_user(catalogue, None, None, cosine, allowed, catalogue.popular_pools(n), n, k, r).items.tolist()

    assert top(None) == [11, 10, 9, 8]
    best_cold = 1 / (1 + np.exp(-0.09))  # item 1: the best cold text match
    assert top(0.0) == top(best_cold) == [11, 10, 9, 1]
    assert top(best_cold + 1e-9) == [11, 10, 9, 8]  # no cold item reaches the floor
    assert top(0.0, k=1) == [11]  # a list of one is never given away
    assert Ranker.from_json(Ranker(*[getattr(ranker, f) for f in ("features", "mean", "std", "coef", "intercept")],
                                   0.3).to_json()).cold_floor == 0.3


def test_a_text_match_is_claimed_only_above_the_similarity_floor():
    catalogue = _catalogue(4)
    titles = np.array(["A", "B", "C", "D"])
    contributions = np.zeros((2, len(RANKER_FEATURES)))
    contributions[:, RANKER_FEATURES.index("content_cosine")] = 2.0  # content drives both items
    contributions[:, RANKER_FEATURES.index("item_sentiment")] = 1.0  # then sentiment
    scored = Scored(items=np.array([0, 1]), scores=np.array([0.9, 0.8]), contributions=contributions)
    cosine = np.array([TEXT_MATCH_FLOOR + 0.3, TEXT_MATCH_FLOOR - 0.1, 0.0, 0.0])
    none_liked = np.array([], dtype=np.int64)
    assert reasons(catalogue, titles, scored, none_liked, cosine) == [REASON_CONTENT_TEXT, REASON_SENTIMENT]
    # A liked item names the reason whatever the profile's cosine.
    assert reasons(catalogue, titles, scored, np.array([2]), cosine) == [REASON_CONTENT.format(title="C")] * 2
    # No profile: nothing can match a description.
    assert reasons(catalogue, titles, scored, none_liked, None) == [REASON_SENTIMENT] * 2
