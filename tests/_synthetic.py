"""Small synthetic lake inputs with latent structure, in the contract schemas (test helper)."""

from __future__ import annotations

import datetime as dt

import numpy as np
from pyspark.sql import DataFrame, SparkSession

INTERACTIONS_DDL = ("user_id STRING, item_id STRING, weight DOUBLE, n_events INT, "
                    "first_ts TIMESTAMP, last_ts TIMESTAMP, rating DOUBLE")


def synthetic(spark: SparkSession, n_users: int = 60, n_items: int = 48, n_topics: int = 4,
              per_user: int = 12, dim: int = 8, seed: int = 0) -> dict[str, DataFrame]:
    """Users prefer one topic; item vectors are topic centroids plus noise; interactions
    follow the preference, with ratings higher on the preferred topic."""
    rng = np.random.default_rng(seed)
    centroids = rng.normal(size=(n_topics, dim))
    item_topic = np.arange(n_items) % n_topics
    item_vec = centroids[item_topic] + 0.3 * rng.normal(size=(n_items, dim))
    start = dt.datetime(2024, 1, 1)
    rows = []
    for u in range(n_users):
        topic = u % n_topics
        prefs = np.where(item_topic == topic, 6.0, 1.0)
        items = rng.choice(n_items, size=per_user, replace=False, p=prefs / prefs.sum())
        for j, i in enumerate(items):
            ts = start + dt.timedelta(days=int(j * 3 + rng.integers(0, 2)), hours=u)
            rating = 4.5 if item_topic[i] == topic else 2.0
            rows.append((f"u{u}", f"i{i}", rating / 5.0, 1, ts, ts, rating))
    interactions = spark.createDataFrame(rows, INTERACTIONS_DDL)
    vectors = spark.createDataFrame(
        [(f"i{i}", [float(x) for x in item_vec[i]]) for i in range(n_items)],
        "item_id STRING, vector ARRAY<FLOAT>")
    docs = spark.createDataFrame(
        [(f"i{i}", f"Item {i}", f"topic {item_topic[i]} item {i}") for i in range(n_items)],
        "item_id STRING, title STRING, text STRING")
    return {"interactions": interactions, "item_vectors": vectors, "item_documents": docs}
