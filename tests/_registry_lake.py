"""A small lake holding everything the model stage hands to the registry (test helper).

Four topics with eight titled items each; item vectors are real MiniLM embeddings of the
titles (onnxruntime), so a new user's sentence lands near the right topic. Users prefer
one topic; their ALS-like factors and the items' factors are topic one-hots plus noise;
the text-to-user-factor map is a ridge fit from profiles to factors. Written as real
Delta tables at version 0, plus ``fusion_params.json`` and ``evaluation.json``.

With a ``key``, the tables hold the users' pseudonyms under it (as ingest writes them) and
consumers ask the registered model by the raw ids ``u0``..``u23`` with the key in
``$FUSIONREC_PSEUDONYM_KEY`` (:data:`KEY_ENV`, the ``key_env`` fixture); the returned ground
truth always speaks raw ids.
"""

from __future__ import annotations

import datetime as dt
import io
from pathlib import Path

import numpy as np
from pyspark.sql import SparkSession

from fusionrec.config import Config
from fusionrec.embed.model import model_files
from fusionrec.embed.reference import OnnxReferenceEmbedder
from _privacy import reference_pseudonym
from conftest import table_path, lake_of
from fusionrec.evaluate.chart import EVALUATION_NAME, evaluation_report
from fusionrec.evaluate.results import EvaluationResults
from fusionrec.model.als import AlsParams
from fusionrec.model.params import FusionParams
from fusionrec.model.ranker import RANKER_FEATURES, RankerParams
from fusionrec.model.train import FUSION_PARAMS

TOPICS = {
    "space": ["Voyage to the Outer Planets", "Rocket Engineers", "The Astronaut's Diary", "Stars and Galaxies",
              "Life on the Space Station", "Mission to Mars", "The Moon Landing", "Comets and Asteroids"],
    "cooking": ["Italian Pasta Recipes", "Baking Bread at Home", "The Spice Kitchen", "Vegetarian Cooking",
                "Chocolate Desserts", "Soups and Stews", "Grilling Meat Outdoors", "French Pastry Secrets"],
    "football": ["The World Cup Final", "Goalkeeper Training", "Football Tactics Explained",
                 "Legends of the Premier League", "Youth Soccer Coaching", "The Penalty Shootout",
                 "Stadiums of Europe", "Football Transfer Market"],
    "gardening": ["Growing Roses", "Vegetable Garden Basics", "Houseplants for Beginners", "Pruning Fruit Trees",
                  "Composting at Home", "Herb Garden Guide", "Lawn Care Through the Year", "Orchids Indoors"],
}
TOPIC_NAMES = list(TOPICS)
#: The serving key of the registry tests' lake, and the variable serving reads it from.
KEY_ENV, TEST_KEY = "FUSIONREC_PSEUDONYM_KEY", "fusionrec-registry-test-key"


def P(user_id: str) -> str:
    """The pseudonym of a raw test user id under :data:`TEST_KEY`."""
    return reference_pseudonym(user_id, TEST_KEY.encode("utf-8"))
N_USERS = 24
RANK = 4


def item_topic(item_id: str) -> str:
    return TOPIC_NAMES[int(item_id[1:]) // 8]


def user_topic(user_id: str) -> str:
    return TOPIC_NAMES[int(user_id[1:]) % len(TOPIC_NAMES)]


def write_lake(spark: SparkSession, cfg: Config, seed: int = 0, hybrid_ndcg: float = 0.30,
               with_ranker: bool = True, key: bytes | None = None) -> dict:
    """Write the lake under ``cfg.lake.root``; returns the numpy ground truth used (raw ids).

    ``key``: store each user id as its pseudonym under this key (raw ids when None)."""
    stored = (lambda user: reference_pseudonym(user, key)) if key is not None else (lambda user: user)
    rng = np.random.default_rng(seed)
    titles = [t for topic in TOPIC_NAMES for t in TOPICS[topic]]
    item_ids = [f"i{i}" for i in range(len(titles))]
    topic_of_item = np.repeat(np.arange(len(TOPIC_NAMES)), 8)
    encoder = OnnxReferenceEmbedder(model_files(cfg.embed), threads=1)
    item_vectors = encoder.embed(titles)

    item_factors = np.eye(RANK)[topic_of_item] + 0.1 * rng.normal(size=(len(item_ids), RANK))
    user_ids = [f"u{u}" for u in range(N_USERS)]
    topic_of_user = np.arange(N_USERS) % len(TOPIC_NAMES)
    user_factors = np.eye(RANK)[topic_of_user] + 0.1 * rng.normal(size=(N_USERS, RANK))

    start = dt.datetime(2024, 1, 1)
    interactions, seen = [], {}
    for u, user in enumerate(user_ids):
        own = np.flatnonzero(topic_of_item == topic_of_user[u])
        other = np.flatnonzero(topic_of_item != topic_of_user[u])
        chosen = list(rng.choice(own, size=3, replace=False)) + [int(rng.choice(other))]
        seen[user] = [item_ids[i] for i in chosen]
        for j, i in enumerate(chosen):
            ts = start + dt.timedelta(days=j, hours=u)
            rating = 5.0 if topic_of_item[i] == topic_of_user[u] else 1.0
            interactions.append((user, item_ids[i], rating / 5.0, 1, ts, ts, rating))
    profiles = np.zeros((N_USERS, item_vectors.shape[1]), dtype=np.float32)
    for u, user in enumerate(user_ids):
        liked = [item_ids.index(i) for i in seen[user][:3]]
        mean = item_vectors[liked].mean(axis=0)
        profiles[u] = mean / np.linalg.norm(mean)

    # Ridge map [profile, 1] -> user factors (lambda 0.1), the shape the model stage writes.
    x = np.hstack([profiles, np.ones((N_USERS, 1))])
    text_to_user = np.linalg.solve(x.T @ x + 0.1 * np.eye(x.shape[1]), x.T @ user_factors)

    def write(layer: str, name: str, rows: list, ddl: str) -> None:
        spark.createDataFrame(rows, ddl).write.format("delta").mode("overwrite").save(table_path(cfg, layer, name))

    f = lambda a: [float(v) for v in a]  # noqa: E731 - Spark wants Python floats
    write("model", "user_factors", [(stored(u), f(user_factors[i])) for i, u in enumerate(user_ids)],
          "user_id STRING, factors ARRAY<FLOAT>")
    write("model", "item_factors", [(it, f(item_factors[i]), "als") for i, it in enumerate(item_ids)],
          "item_id STRING, factors ARRAY<FLOAT>, source STRING")
    write("features", "item_vectors", [(it, f(item_vectors[i])) for i, it in enumerate(item_ids)],
          "item_id STRING, vector ARRAY<FLOAT>")
    write("features", "user_profiles", [(stored(u), f(profiles[i]), 3, 0) for i, u in enumerate(user_ids)],
          "user_id STRING, vector ARRAY<FLOAT>, n_items INT, n_reviews INT")
    # Half the items have review sentiment; the rest get the neutral 0.5 in serving.
    write("features", "item_sentiment", [(it, 0.4 + 0.05 * (i % 8), 3) for i, it in enumerate(item_ids) if i % 2],
          "item_id STRING, sentiment_mean DOUBLE, sentiment_count INT")
    write("gold", "item_documents",
          [(it, titles[i], f"{titles[i]}. A book about {TOPIC_NAMES[topic_of_item[i]]}.", [TOPIC_NAMES[topic_of_item[i]]])
           for i, it in enumerate(item_ids)],
          "item_id STRING, title STRING, text STRING, categories ARRAY<STRING>")
    write("gold", "interactions", [(stored(row[0]), *row[1:]) for row in interactions],
          "user_id STRING, item_id STRING, weight DOUBLE, n_events INT, first_ts TIMESTAMP, last_ts TIMESTAMP, "
          "rating DOUBLE")
    scores = user_factors @ item_factors.T
    recs = []
    for u, user in enumerate(user_ids):
        order = [i for i in np.argsort(-scores[u]) if item_ids[i] not in seen[user]][:3]
        recs += [(stored(user), r + 1, item_ids[i], float(scores[u, i]), "popular now") for r, i in enumerate(order)]
    write("gold", "recommendations", recs, "user_id STRING, rank INT, item_id STRING, score DOUBLE, reason STRING")

    ranker = {"features": list(RANKER_FEATURES), "mean": [0.3, 0.3, 1.0, 0.5, 0.1, 1.0, 0.3, 0.3, 0.3, 0.3],
              "std": [0.4, 0.2, 0.5, 0.1, 0.3, 0.5, 0.2, 0.2, 0.4, 0.2],
              "coef": [1.5, 1.0, 0.2, 0.1, 0.1, 0.1, 0.3, 0.2, 0.8, 0.2],
              "intercept": -1.0}
    # Recommendations are made in the week of the last interaction; it and the 3 weeks before
    # hold every interaction, so recent popularity = popularity here.
    latest = max(row[5] for row in interactions).replace(tzinfo=dt.timezone.utc)
    now_week = int(latest.timestamp()) // (7 * 24 * 3600)
    params = FusionParams(
        als=AlsParams(rank=RANK, reg_param=0.1, alpha=10.0), max_iter=10, checkpoint_interval=5, seed=42,
        text_to_item_factor=np.zeros((item_vectors.shape[1] + 1, RANK)), text_to_user_factor=text_to_user,
        ranker=RankerParams.from_json(ranker) if with_ranker else None, train_cutoff=dt.datetime(2024, 1, 5),
        candidates_n=10, k=5, min_user_interactions=3, recent_weeks=4, now_week=now_week)
    lake_of(spark, cfg).write_text(FUSION_PARAMS, params.to_json())
    write_evaluation(spark, cfg, hybrid_ndcg)
    return {"item_ids": item_ids, "titles": titles, "item_factors": item_factors, "item_vectors": item_vectors,
            "user_ids": user_ids, "user_factors": user_factors, "profiles": profiles, "seen": seen,
            "ranker": ranker, "interactions": interactions}


def evaluation_results(hybrid_ndcg: float) -> EvaluationResults:
    """Results of the evaluate stage, with a given hybrid NDCG@10."""
    table = [{"model": m, "k": 10, "precision": 0.05, "recall": r, "ndcg": n, "map": 0.04, "hit_rate": 0.3,
              "coverage": 0.2} for m, n, r in (("popularity", 0.08, 0.1), ("als", 0.2, 0.25), ("hybrid", hybrid_ndcg, 0.3))]
    cold = [{"model": "als", "k": 10, "recall": 0.0}, {"model": "hybrid", "k": 10, "recall": 0.2}]
    return EvaluationResults(table=table, cold_items=cold)


def write_evaluation(spark, cfg: Config, hybrid_ndcg: float) -> None:
    """The evaluation JSON and a chart, where ``fusionrec evaluate`` writes them."""
    lake = lake_of(spark, cfg)
    name = evaluation_report(EVALUATION_NAME)
    lake.write_text(f"{name}.json", evaluation_results(hybrid_ndcg).to_json())
    # A real (tiny) PNG, so that the chart is logged as the evaluate stage's would be.
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(2, 2))
    ax.bar(["hybrid"], [hybrid_ndcg])
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    lake.write_bytes(f"{name}.png", buffer.getvalue())


# -- fixtures shared by the registry tests (loaded with ``pytest_plugins``) -------------------

import dataclasses  # noqa: E402

import pytest  # noqa: E402


@pytest.fixture(scope="session")
def registry_lake(cfg: Config, spark: SparkSession, tmp_path_factory: pytest.TempPathFactory) -> tuple[Config, dict]:
    """A session-wide lake and MLflow store with the model stage's outputs written once."""
    work = tmp_path_factory.mktemp("registry")
    # Its own local key file, which nothing creates: the session's shared one may exist (any
    # ingest without a key in the environment makes it), and the serving tests need to know
    # whether a recorded key file is there.
    lake_cfg = cfg.replace(
        lake=dataclasses.replace(cfg.lake, root=str(work / "lake")),
        ingest=dataclasses.replace(cfg.ingest, pseudonym_key_file=str(work / "keys" / "registry.key")),
        mlflow=dataclasses.replace(cfg.mlflow, tracking_uri=f"sqlite:///{work / 'mlflow.db'}",
                                   artifact_location=str(work / "mlartifacts"), model_name="fusionrec-test"),
    )
    return lake_cfg, write_lake(spark, lake_cfg, key=TEST_KEY.encode("utf-8"))


@pytest.fixture
def key_env(monkeypatch: pytest.MonkeyPatch) -> str:
    """The registry lake's key in ``$FUSIONREC_PSEUDONYM_KEY`` for one test (children inherit it)."""
    monkeypatch.setenv(KEY_ENV, TEST_KEY)
    return TEST_KEY


@pytest.fixture(scope="session")
def registered(registry_lake: tuple[Config, dict], spark: SparkSession):
    """The lake's model registered once (version 1, promoted to champion: there was none)."""
    from fusionrec.registry.register import register_model
    from fusionrec.runlog import RunReport

    lake_cfg, _ = registry_lake
    return register_model(lake_of(spark, lake_cfg), lake_cfg, RunReport("register"))
