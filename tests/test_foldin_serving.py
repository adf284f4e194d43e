"""The stream's fold-in (Spark, grouped per user) and serving's (numpy, per request) agree."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest
from pyspark.sql import functions as F

from _registry_lake import P
from conftest import lake_of
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
