"""The harness's peers and statistics against values worked out by hand (numpy only, no Spark)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from fusionrec.evaluate.peers import MAX_EASE_ITEMS, CatalogueTooLarge, ease_weights, knn_weights, rank_rows
from fusionrec.evaluate.significance import paired_bootstrap, standard_error
from fusionrec.validation.beyond_accuracy import (beyond_accuracy, catalog_coverage, intra_list_diversity, novelty,
                                                  popularity_percentile)

X = np.array([[1.0, 1.0, 0.0], [0.0, 1.0, 1.0]])


def test_ease_matches_the_closed_form_worked_by_hand():
    # G + I = [[2,1,0],[1,3,1],[0,1,2]], det 8, P = adj / 8 = [[5,-2,1],[-2,4,-2],[1,-2,5]] / 8;
    # B_ij = -P_ij / P_jj off the diagonal, 0 on it.
    b = ease_weights(X.T @ X, lam=1.0)
    expected = np.array([[0.0, 0.5, -0.2], [0.4, 0.0, 0.4], [-0.2, 0.5, 0.0]])
    assert np.allclose(b, expected)
    assert np.allclose(X[0] @ b, [0.4, 0.5, 0.2])  # user 0's scores; items 0 and 1 are seen
    # a larger lambda shrinks every weight towards 0
    assert np.abs(ease_weights(X.T @ X, lam=100.0)).max() < np.abs(b).max()


def test_ease_refuses_a_catalogue_above_its_stated_size():
    too_big = np.broadcast_to(0.0, (MAX_EASE_ITEMS + 1, MAX_EASE_ITEMS + 1))  # a view: no memory
    with pytest.raises(CatalogueTooLarge, match=f"up to {MAX_EASE_ITEMS} items"):
        ease_weights(too_big, lam=10.0)
    with pytest.raises(CatalogueTooLarge):
        knn_weights(too_big, k=5)
    with pytest.raises(ValueError, match="lambda must be > 0"):
        ease_weights(X.T @ X, lam=0.0)


def test_item_knn_keeps_the_k_most_similar_items_per_item():
    x = np.array([[1, 1, 0, 0], [1, 1, 1, 0], [0, 0, 1, 1], [1, 0, 0, 1]], dtype=float)
    g = x.T @ x
    full = knn_weights(g, k=3)
    norms = np.sqrt(np.diag(g))
    assert full[0, 1] == pytest.approx(2 / (norms[0] * norms[1]))  # items 0 and 1 share users 0 and 1
    assert np.allclose(np.diag(full), 0.0)
    one = knn_weights(g, k=1)
    assert ((one > 0).sum(axis=0) <= 1).all()  # each item keeps one neighbour
    assert one[1, 0] == pytest.approx(full[1, 0]) and one[3, 0] == 0.0  # item 0's nearest is item 1
    # user 3 (items 0 and 3): s_uj = S_0j + S_3j, over the neighbours each item j kept
    assert np.allclose(x[3] @ full, full[0] + full[3])
    assert np.allclose(x[3] @ one, one[0] + one[3]) and (x[3] @ one)[2] == 0.0  # item 2 kept item 1 only


def test_rank_rows_excludes_seen_and_breaks_ties_by_index():
    scores = np.array([[0.5, 0.9, 0.5, 0.5], [1.0, 1.0, 1.0, 1.0]])
    allowed = np.array([[True, False, True, True], [True, True, False, True]])
    ranked = rank_rows(scores, allowed, 2)
    assert ranked[0].tolist() == [0, 2] and ranked[1].tolist() == [0, 1]
    assert rank_rows(scores, allowed, 10)[0].tolist() == [0, 2, 3]  # fewer allowed than k


def test_standard_error_and_bootstrap_of_a_known_difference():
    assert standard_error(np.array([1.0, 3.0])) == pytest.approx(1.0)  # s = sqrt(2), n = 2
    assert standard_error(np.array([0.3])) == 0.0
    rng = np.random.default_rng(3)
    base = rng.uniform(0, 1, 400)
    exact = paired_bootstrap(base + 0.1, base, resamples=300, seed=5)
    assert exact["diff"] == pytest.approx(0.1) and exact["low"] == pytest.approx(0.1)
    noisy = base + 0.05 + rng.normal(0, 0.1, 400)
    r = paired_bootstrap(noisy, base, resamples=1000, seed=5)
    assert r["low"] < 0.05 < r["high"] and r["low"] > 0.0  # covers the true difference, excludes 0
    assert r == paired_bootstrap(noisy, base, resamples=1000, seed=5)  # seeded: reproducible
    # its width is about 2 x 1.96 standard errors of the paired differences
    se = standard_error(noisy - base)
    assert r["high"] - r["low"] == pytest.approx(2 * 1.96 * se, rel=0.15)
    null = paired_bootstrap(base, base[::-1], resamples=1000, seed=5)
    assert null["low"] < 0.0 < null["high"]
    with pytest.raises(ValueError, match="same users"):
        paired_bootstrap(base, base[:10])


RECS = pd.DataFrame({"user_id": ["u", "u", "u", "v", "v", "w"], "rank": [1, 2, 3, 1, 2, 1],
                     "item_id": ["a", "b", "c", "a", "d", "b"]})
COUNTS = {"a": 6, "b": 1, "c": 1, "e": 0}  # d: cold (no training interaction)


def test_intra_list_diversity_on_a_toy_list():
    vectors = {"a": np.array([1.0, 0.0]), "b": np.array([2.0, 0.0]), "c": np.array([0.0, 3.0])}
    # u: pairs (a,b) 1, (a,c) 0, (b,c) 0 -> 1 - 1/3; v: d has no vector -> similarity 0 -> 1; w: one item, no pair
    assert intra_list_diversity(RECS, vectors, 3) == pytest.approx(((1 - 1 / 3) + 1.0) / 2)
    assert intra_list_diversity(RECS, vectors, 2) == pytest.approx((0.0 + 1.0) / 2)  # u: a, b only


def test_novelty_coverage_and_popularity_bias_on_a_toy_list():
    n = 8  # training interactions
    self_info = {"a": -math.log2(6 / n), "b": -math.log2(1 / n), "c": -math.log2(1 / n), "d": -math.log2(1 / n)}
    assert novelty(RECS, COUNTS, 3) == pytest.approx(np.mean([self_info[i] for i in RECS["item_id"]]))
    assert novelty(RECS, COUNTS, 1) == pytest.approx(np.mean([self_info["a"], self_info["a"], self_info["b"]]))
    # items with a training interaction: a, b, c; recommended at k=3: a, b, c, d
    assert catalog_coverage(RECS, COUNTS, 3) == pytest.approx(4 / 3)
    assert catalog_coverage(RECS, COUNTS, 1) == pytest.approx(2 / 3)
    # percentiles among [1, 1, 6]: a = (2 + .5) / 3, b = c = (0 + 1) / 3, d (cold) = 0
    pa, pb = 2.5 / 3, 1 / 3
    assert popularity_percentile(RECS, COUNTS, 3) == pytest.approx(np.mean([(pa + pb + pb) / 3, pa / 2, pb]))
    everything = beyond_accuracy(RECS, train_counts=COUNTS, vectors={}, k=3)
    assert set(everything) == {"diversity", "novelty", "catalog_coverage", "popularity_percentile"}
    assert everything["diversity"] == pytest.approx(1.0)  # no vectors: every pair counts as dissimilar
    empty = RECS.iloc[:0]
    assert novelty(empty, COUNTS, 3) == 0.0 and popularity_percentile(empty, COUNTS, 3) == 0.0
