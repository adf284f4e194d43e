"""The serving bundle built from real Delta tables, and its numpy scorer against a direct computation."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

from _registry_lake import P, item_topic
from conftest import table_path, lake_of
from fusionrec.errors import InputError, MissingInputError
from fusionrec.registry.build import assemble_bundle, build_bundle, read_bundle_tables, read_fusion_params
from fusionrec.model.ranker import NEUTRAL_SENTIMENT
from fusionrec.model.scoring import REASON_POPULAR
from fusionrec.registry.bundle import ModelBundle

pytest_plugins = ["_registry_lake"]


@pytest.fixture(scope="module")
def built(registry_lake, spark):
    lake_cfg, truth = registry_lake
    return build_bundle(lake_of(spark, lake_cfg), lake_cfg), truth


def _reference_scores(truth: dict, user: str, n: int) -> dict[str, float]:
    """The fused score of every candidate of ``user``, computed directly from the ground truth."""
    ids = truth["item_ids"]
    u = truth["user_ids"].index(user)
    seen = set(truth["seen"][user])
    unseen = [i for i, item in enumerate(ids) if item not in seen]
    als = truth["item_factors"] @ truth["user_factors"][u]
    cos = truth["item_vectors"] @ truth["profiles"][u]
    counts = {item: 0 for item in ids}
    for _, item, *_ in truth["interactions"]:
        counts[item] += 1
    recent = np.log1p([counts[item] for item in ids])  # every interaction is in the recent weeks
    # Session vector: the mean factor of the user's 5 latest interactions (ties by item id).
    mine = sorted((row for row in truth["interactions"] if row[0] == user), key=lambda row: (-row[5].timestamp(), row[1]))
    session = truth["item_factors"][[ids.index(row[1]) for row in mine[:5]]].mean(axis=0)
    ses = truth["item_factors"] @ session
    by_als, by_cos = sorted(unseen, key=lambda i: -als[i])[:n], sorted(unseen, key=lambda i: -cos[i])[:n]
    by_ses = sorted(unseen, key=lambda i: -ses[i])[:n]
    # Popularity pools (all-time = recent here): the n most popular items overall, ties by
    # catalogue order, then the user's seen items removed.
    popular = [i for i in sorted(range(len(ids)), key=lambda i: (-recent[i], i)) if recent[i] > 0][:n]
    candidates = set(by_als) | set(by_cos) | set(by_ses) | {i for i in popular if i in unseen}
    r = truth["ranker"]
    out = {}
    for i in candidates:
        sentiment = 0.4 + 0.05 * (i % 8) if i % 2 else NEUTRAL_SENTIMENT
        x = np.array([als[i], cos[i], np.log1p(counts[ids[i]]), sentiment, float(counts[ids[i]] == 0), recent[i],
                      1 / np.log2(2 + by_als.index(i)) if i in by_als else 0.0,
                      1 / np.log2(2 + by_cos.index(i)) if i in by_cos else 0.0,
                      ses[i], 1 / np.log2(2 + by_ses.index(i)) if i in by_ses else 0.0])
        z = float(np.sum(np.array(r["coef"]) * (x - r["mean"]) / r["std"]) + r["intercept"])
        out[ids[i]] = 1.0 / (1.0 + np.exp(-z))
    return out


def test_bundle_holds_the_lake_contents(built):
    result, truth = built
    bundle = result.bundle
    assert bundle.n_items == 32 and len(bundle.user_ids) == 24 and bundle.rank == 4 and bundle.dimension == 384
    i = bundle.item_index("i9")
    assert bundle.titles[i] == truth["titles"][9]
    np.testing.assert_allclose(bundle.item_vectors[i], truth["item_vectors"][9], atol=1e-6)
    # Sentiment from the table for odd items, neutral for items without reviews.
    assert bundle.item_sentiment[i] == pytest.approx(0.45)
    assert bundle.item_sentiment[bundle.item_index("i8")] == NEUTRAL_SENTIMENT
    u = bundle.user_index(P("u3"))
    seen = {bundle.item_ids[j] for j in bundle.known_user_query(u).exclude}
    liked = {bundle.item_ids[j] for j in bundle.known_user_query(u).liked}
    assert seen == set(truth["seen"]["u3"])
    # Liked = rating >= evaluate.positive_rating: the three items of the user's topic, not the fourth.
    assert liked == set(truth["seen"]["u3"][:3])
    assert {t.qualified: t.version for t in result.inputs}["gold.interactions"] == 0


def test_known_user_scores_match_the_direct_computation(built):
    result, truth = built
    bundle = result.bundle
    for user in ("u0", "u5", "u10"):
        expected = _reference_scores(truth, user, bundle.candidates_n)
        ranked = bundle.recommend(bundle.known_user_query(bundle.user_index(P(user))), 5)
        got = {bundle.item_ids[i]: s for i, s in zip(ranked.items, ranked.scores)}
        best = sorted(expected, key=lambda item: -expected[item])[:5]
        assert list(got) == best
        for item, score in got.items():
            assert score == pytest.approx(expected[item], rel=1e-5)
        assert not set(got) & set(truth["seen"][user])
        assert not ranked.fallback
        # The user's topic dominates, and the reason names one of the user's liked titles.
        assert all(item_topic(item) == item_topic(truth["seen"][user][0]) for item in list(got)[:3])
        liked_titles = {truth["titles"][truth["item_ids"].index(i)] for i in truth["seen"][user][:3]}
        assert any(title in reason for reason in ranked.reasons for title in liked_titles)


def test_new_user_from_liked_items_and_popularity_fallback(built):
    result, _ = built
    bundle = result.bundle
    liked = np.array([bundle.item_index("i16"), bundle.item_index("i17")])
    ranked = bundle.recommend(bundle.new_user_query(None, liked), 4)
    items = [bundle.item_ids[i] for i in ranked.items]
    assert "i16" not in items and "i17" not in items
    assert all(item_topic(item) == "football" for item in items)

    popular = bundle.popular(3, np.empty(0, dtype=np.int64))
    assert popular.fallback and popular.reasons == [REASON_POPULAR] * 3
    counts = np.expm1(bundle.log_popularity)
    assert counts[popular.items[0]] == counts.max()
    assert list(popular.scores) == sorted(popular.scores, reverse=True)
    # Spread over the categories (one topic each here): the top of the list is not one topic.
    assert len({item_topic(bundle.item_ids[i]) for i in popular.items}) == 3


def test_without_ranker_the_als_score_orders(built):
    result, truth = built
    bundle = result.bundle
    no_ranker = dataclasses.replace(bundle, ranker=None)
    u = no_ranker.user_index(P("u2"))
    ranked = no_ranker.recommend(no_ranker.known_user_query(u), 3)
    als = no_ranker.item_factors @ no_ranker.user_factors[u]
    np.testing.assert_allclose(ranked.scores, np.sort(als[ranked.items])[::-1], rtol=1e-6)


def test_save_load_roundtrip(built, tmp_path):
    bundle = built[0].bundle
    loaded = ModelBundle.load(bundle.save(tmp_path / "bundle"))
    for name in ("item_ids", "titles", "item_factors", "item_vectors", "seen_indices", "liked_indptr"):
        np.testing.assert_array_equal(getattr(loaded, name), getattr(bundle, name))
    query = loaded.known_user_query(loaded.user_index(P("u7")))
    np.testing.assert_allclose(loaded.recommend(query, 5).scores,
                               bundle.recommend(bundle.known_user_query(bundle.user_index(P("u7"))), 5).scores)
    with pytest.raises(FileNotFoundError, match="arrays.npz"):
        ModelBundle.load(tmp_path / "missing")


def test_bad_model_outputs_are_named(registry_lake, spark, tmp_path):
    lake_cfg, _ = registry_lake
    frames, _ = read_bundle_tables(lake_of(spark, lake_cfg))
    params = read_fusion_params(lake_of(spark, lake_cfg))
    with pytest.raises(ValueError, match="model.item_factors.factors: row 0 has 4 values, expected 5"):
        assemble_bundle(frames, dataclasses.replace(params, als=dataclasses.replace(params.als, rank=5)), lake_cfg)
    bad_ranker = dataclasses.replace(params.ranker, features=["als_score", "content_cosine"])
    with pytest.raises(ValueError, match="ranker.features"):
        assemble_bundle(frames, dataclasses.replace(params, ranker=bad_ranker), lake_cfg)
    empty = lake_cfg.replace(lake=lake_cfg.lake.__class__(root=str(tmp_path / "empty")))
    lake = lake_of(spark, empty)
    with pytest.raises(MissingInputError, match="fusion_params.json: not found; run 'fusionrec train'"):
        read_fusion_params(lake)
    lake.write_text("model/fusion_params.json", json.dumps({"rank": 4, "text_to_user_factor": []}))
    with pytest.raises(InputError, match="fusion_params.json: missing key.s. 'als', 'text_to_item_factor'"):
        read_fusion_params(lake)
    lake.write_text("model/fusion_params.json", params.to_json())
    with pytest.raises(MissingInputError, match="Delta table model.user_factors not found"):
        build_bundle(lake, empty)
