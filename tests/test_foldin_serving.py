"""The stream's fold-in (Spark, grouped per user) and serving's (numpy, per request) agree."""

from __future__ import annotations

import dataclasses
import datetime as dt

import numpy as np
import pandas as pd
import pytest
from pyspark.sql import functions as F

from _registry_lake import P
from conftest import lake_of
from fusionrec.features.profiles import user_profiles
from fusionrec.registry.build import build_bundle
from fusionrec.stream.rescore import fold_in, rescore

pytest_plugins = ["_registry_lake"]

#: Events since training: a known user (one of them on an item seen in training) and a new one.
#: Keyed by the pseudonyms the lake holds (the stream's tables hold no raw ids either).
EVENTS = {P("u3"): [("i5", 2.0), ("i20", 1.0), ("i3", 4.0), ("i21", 8.0)], "newcomer": [("i16", 1.0), ("i17", 2.0)]}


def test_stream_and_serving_fold_in_give_the_same_factors_and_top_k(registry_lake, spark):
    lake_cfg, _ = registry_lake
    lake = lake_of(spark, lake_cfg)
    bundle = build_bundle(lake, lake_cfg).bundle
    training = lake.read("gold.interactions")
    cutoff = dt.datetime.fromtimestamp(bundle.meta["train_cutoff_epoch"], dt.timezone.utc).replace(tzinfo=None)
    rows = [(user, item, w, cutoff + dt.timedelta(seconds=1 + j), None) for user, events in EVENTS.items()
            for j, (item, w) in enumerate(events)]
    new = spark.createDataFrame(rows, "user_id STRING, item_id STRING, weight DOUBLE, ts TIMESTAMP, rating DOUBLE")
    # What gold.interactions holds after the stream's MERGE: weights summed, last time kept
    # (the new events carry no rating).
    merged = (training.select("user_id", "item_id", "weight", F.col("last_ts").alias("ts"), "rating").unionByName(new)
              .groupBy("user_id", "item_id").agg(F.sum("weight").alias("weight"), F.max("ts").alias("last_ts"),
                                                 F.max("rating").alias("rating"))
              .join(new.select("user_id").distinct(), "user_id"))
    folded = fold_in(bundle, merged, lake.read("model.item_factors"))
    stream_state = folded.toPandas().set_index("user_id")
    stream_top = rescore(bundle, folded, merged, 5).toPandas()

    for user, events in EVENTS.items():
        u = bundle.user_index(user)
        assert (u is None) == (user == "newcomer")
        items = np.array([bundle.item_index(i) for i, _ in events])
        query = bundle.folded_query(u, items, np.array([w for _, w in events]))
        np.testing.assert_allclose(stream_state.loc[user, "factors"], query.factors, atol=1e-6)
        np.testing.assert_allclose(stream_state.loc[user, "session"], query.session, atol=1e-6)
        served = bundle.recommend(query, 5)
        streamed = stream_top[stream_top["user_id"] == user].sort_values("rank")
        assert streamed["item_id"].tolist() == bundle.item_ids[served.items].tolist()
        np.testing.assert_allclose(streamed["score"].to_numpy(), served.scores, rtol=1e-6)
        assert streamed["reason"].tolist() == served.reasons
        assert not {i for i, _ in events} & set(streamed["item_id"])

    # The known user's factors moved from the trained ones towards the new events.
    trained = bundle.user_factors[bundle.user_index(P("u3"))]
    assert not np.allclose(stream_state.loc[P("u3"), "factors"], trained, atol=1e-3)


def test_a_known_users_profile_moves_to_the_batch_profile_of_all_their_interactions(registry_lake, spark):
    """For a user without reviews, the profile serving (and the stream) moves after events since
    training equals what :func:`fusionrec.features.profiles.user_profiles` gives for all of the
    user's interactions."""
    lake_cfg, truth = registry_lake
    lake = lake_of(spark, lake_cfg)
    bundle = build_bundle(lake, lake_cfg).bundle
    user, u = P("u3"), bundle.user_index(P("u3"))
    lo, hi = bundle.seen_indptr[u], bundle.seen_indptr[u + 1]
    trained = [(bundle.item_ids[i], float(w), float(t)) for i, w, t in
               zip(bundle.seen_indices[lo:hi], bundle.seen_weights[lo:hi], bundle.seen_last_ts[lo:hi])]
    football = truth["item_ids"][16:20]
    cutoff = bundle.meta["train_cutoff_epoch"]
    since = [(item, 2.0, cutoff + 1 + j) for j, item in enumerate(football)]

    def batch_profile(rows: list[tuple[str, float, float]]) -> np.ndarray:
        interactions = (spark.createDataFrame([(user, *row) for row in rows], "user_id STRING, item_id STRING, weight DOUBLE, t DOUBLE")
                        .select("user_id", "item_id", "weight", F.timestamp_seconds("t").alias("last_ts")))
        reviews = spark.createDataFrame([], "review_id STRING, user_id STRING, ts TIMESTAMP")
        review_vectors = spark.createDataFrame([], "review_id STRING, embedding ARRAY<FLOAT>")
        profile = user_profiles(interactions, lake.read("features.item_vectors"), reviews, review_vectors, as_of=None,
                                half_life_days=bundle.meta["profile_half_life_days"], review_weight=1.0)
        return np.asarray(profile.first()["vector"], dtype=np.float64)

    # The stored profile is the batch profile of the training interactions.
    profiles = bundle.user_profiles.copy()
    profiles[u] = batch_profile(trained)
    bundle = dataclasses.replace(bundle, user_profiles=profiles)
    query = bundle.folded_query(u, np.array([bundle.item_index(i) for i in football]), np.full(len(football), 2.0))
    np.testing.assert_allclose(query.profile, batch_profile(trained + since), atol=1e-5)
    # ... and it moved towards the new topic.
    centre = bundle.item_vectors[[bundle.item_index(i) for i in football]].mean(axis=0)
    assert query.profile @ centre > bundle.user_profiles[u] @ centre + 0.05
