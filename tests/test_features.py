"""Side features: exact vector maths on small inputs, sentiment on separable data, and the
MovieLens check that profiles point towards what users watch next."""

from __future__ import annotations

import csv
import math
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from pyspark.sql import functions as F
from pyspark.sql.window import Window

from conftest import shared_dataset, lake_of
from fusionrec.config import ConfigError
from fusionrec.features import item_sentiment, item_vectors, score_sentiment, train_sentiment, user_profiles
from fusionrec.features.sentiment import SentimentSettings, TooFewLabels
from fusionrec.features.vectors import dot
from fusionrec.lake import SCHEMAS

T0 = datetime(2024, 1, 1)


def unit(*xs: float) -> list[float]:
    v = np.array(xs, dtype=np.float64)
    return (v / np.linalg.norm(v)).tolist()


def as_dict(df, key: str, value: str = "vector") -> dict:
    return {r[key]: np.array(r[value], dtype=np.float64) if value == "vector" else r[value] for r in df.collect()}


def frames(spark, item_emb, review_emb, reviews):
    return (
        spark.createDataFrame(item_emb, "item_id STRING, embedding ARRAY<FLOAT>"),
        spark.createDataFrame(review_emb, "review_id STRING, embedding ARRAY<FLOAT>"),
        spark.createDataFrame(reviews, SCHEMAS["gold.reviews"]),
    )


def review(review_id: str, user: str, item: str, rating: float | None, days: int = 0) -> tuple:
    return (review_id, user, item, rating, "text", T0 + timedelta(days=days), True)


def test_item_vector_mixes_document_and_normalised_mean_review(spark):
    items, review_emb, reviews = frames(
        spark,
        [("a", [1.0, 0.0, 0.0]), ("b", [0.0, 0.0, 1.0])],
        [("r1", [0.0, 1.0, 0.0]), ("r2", unit(0, 1, 1)), ("r3", [1.0, 0.0, 0.0]), ("r-later", [0.0, 0.0, 1.0])],
        [review("r1", "u", "a", 5.0), review("r2", "u", "a", 4.0), review("r3", "u", "c", 2.0)],
    )
    got = as_dict(item_vectors(items, review_emb, reviews, doc_weight=0.25, review_weight=0.75), "item_id")
    mean_review = np.array(unit(0, 1 + 1 / math.sqrt(2), 1 / math.sqrt(2)))  # normalised mean of r1, r2
    expected_a = 0.25 * np.array([1.0, 0, 0]) + 0.75 * mean_review
    np.testing.assert_allclose(got["a"], expected_a / np.linalg.norm(expected_a), atol=1e-6)
    np.testing.assert_allclose(got["b"], [0, 0, 1], atol=1e-7)  # document only
    np.testing.assert_allclose(got["c"], [1, 0, 0], atol=1e-7)  # reviews only (item without a document)
    assert set(got) == {"a", "b", "c"}  # r-later is not in `reviews`, so it counts nowhere
    with pytest.raises(ConfigError, match="item_doc_weight"):
        item_vectors(items, review_emb, reviews, doc_weight=0.0, review_weight=0.0)


def test_user_profile_is_decayed_weighted_sum_of_items_and_own_reviews(spark):
    item_vecs = spark.createDataFrame(
        [("a", [1.0, 0.0, 0.0]), ("b", [0.0, 1.0, 0.0]), ("c", unit(1, 1, 1))], "item_id STRING, vector ARRAY<FLOAT>")
    interactions = spark.createDataFrame([
        ("u", "a", 2.0, 1, T0, T0, None),                                # 10 days before as_of
        ("u", "b", 4.0, 2, T0, T0 + timedelta(days=5), None),            # 5 days before as_of
        ("u", "c", 9.0, 1, T0, T0 + timedelta(days=30), None),           # after as_of: not yet known
        ("v", "x", 1.0, 1, T0, T0, None),                                # item without a vector
    ], SCHEMAS["gold.interactions"])
    _, review_emb, reviews = frames(
        spark, [], [("r1", [0.0, 0.0, 1.0]), ("r-late", [1.0, 0.0, 0.0])],
        [review("r1", "u", "a", 5.0, days=10), review("r-late", "u", "a", 5.0, days=20)])
    as_of = T0 + timedelta(days=10)
    got = {r.user_id: r for r in user_profiles(interactions, item_vecs, reviews, review_emb, as_of=as_of,
                                                 half_life_days=5.0, review_weight=3.0).collect()}
    expected = np.array([2.0 * 0.25, 4.0 * 0.5, 3.0 * 1.0])  # decays 2^-(10/5), 2^-(5/5), 2^0
    np.testing.assert_allclose(got["u"].vector, expected / np.linalg.norm(expected), atol=1e-6)
    assert (got["u"].n_items, got["u"].n_reviews) == (2, 1)
    assert "v" not in got  # no vector at all: no profile
    with pytest.raises(ConfigError, match="profile_half_life_days"):
        user_profiles(interactions, item_vecs, reviews, review_emb, as_of, half_life_days=0.0, review_weight=1.0)


def test_user_profile_as_of_defaults_to_latest_event(spark):
    item_vecs = spark.createDataFrame([("a", [1.0, 0.0]), ("b", [0.0, 1.0])], "item_id STRING, vector ARRAY<FLOAT>")
    interactions = spark.createDataFrame([
        ("u", "a", 1.0, 1, T0, T0, None),
        ("u", "b", 1.0, 1, T0, T0 + timedelta(days=20), None),
    ], "user_id STRING, item_id STRING, weight DOUBLE, n_events INT, first_ts TIMESTAMP, last_ts TIMESTAMP, rating DOUBLE")
    _, review_emb, reviews = frames(spark, [], [], [])
    (row,) = user_profiles(interactions, item_vecs, reviews, review_emb, None, half_life_days=20.0, review_weight=1.0).collect()
    np.testing.assert_allclose(row.vector, unit(0.5, 1.0), atol=1e-6)


def _separable_reviews(spark, n: int = 80, seed: int = 3):
    """Positive reviews lean towards e0, negative ones towards e1, with noise: learnable, not trivial."""
    rng = np.random.default_rng(seed)
    emb, rows = [], []
    for i in range(n):
        rating = [5.0, 4.0, 1.0, 2.0, 3.0][i % 5]
        direction = np.zeros(8)
        direction[0 if rating >= 4 else 1 if rating <= 2 else 2] = 1.0
        v = direction + rng.normal(0, 0.6, 8)
        emb.append((f"r{i}", (v / np.linalg.norm(v)).tolist()))
        rows.append(review(f"r{i}", f"u{i % 7}", f"item{i % 4}", rating))
    return frames(spark, [], emb, rows)[1:]


def test_sentiment_classifier_learns_rating_direction_and_aggregates_per_item(spark):
    review_emb, reviews = _separable_reviews(spark)
    model, metrics = train_sentiment(review_emb, reviews, seed=11)
    assert metrics["n_train"] + metrics["n_test"] == 64  # 3-star reviews are unlabelled
    assert metrics["n_test"] > 0 and metrics["auc"] > 0.85
    # The split is a function of the seed and the ids only.
    assert train_sentiment(review_emb, reviews, seed=11)[1] == metrics

    scores = score_sentiment(model, review_emb, reviews)
    by_review = as_dict(scores, "review_id", "score")
    assert len(by_review) == 80  # every review is scored, neutral ones too
    ratings = {r.review_id: r.rating for r in reviews.collect()}
    pos = np.mean([s for r, s in by_review.items() if ratings[r] >= 4])
    neg = np.mean([s for r, s in by_review.items() if ratings[r] <= 2])
    assert pos > 0.7 > 0.3 > neg

    per_item = {r.item_id: r for r in item_sentiment(scores).collect()}
    assert sum(r.sentiment_count for r in per_item.values()) == 80
    expected = {}
    for rid, s in by_review.items():
        expected.setdefault(f"item{int(rid[1:]) % 4}", []).append(s)
    for item, values in expected.items():
        assert per_item[item].sentiment_mean == pytest.approx(np.mean(values))


def test_sentiment_needs_both_classes(spark):
    review_emb, reviews = _separable_reviews(spark, n=40)
    only_positive = reviews.where("rating >= 4")
    with pytest.raises(TooFewLabels, match="0 negative"):
        train_sentiment(review_emb, only_positive, seed=1, settings=SentimentSettings(min_per_class=3))


def _movielens_sample(root: Path, n_users: int, min_ratings: int, max_ratings: int):
    """Ratings of the first ``n_users`` users (by id) with a moderate history, and their movies' texts."""
    with (root / "ratings.csv").open(newline="") as fh:
        ratings = [(r["userId"], r["movieId"], float(r["rating"]), int(r["timestamp"])) for r in csv.DictReader(fh)]
    per_user: dict[str, int] = {}
    for user, *_ in ratings:
        per_user[user] = per_user.get(user, 0) + 1
    users = sorted((u for u, n in per_user.items() if min_ratings <= n <= max_ratings), key=int)[:n_users]
    kept = [r for r in ratings if r[0] in set(users)]
    movies = {r[1] for r in kept}
    tags: dict[str, set[str]] = {}
    with (root / "tags.csv").open(newline="") as fh:
        for r in csv.DictReader(fh):
            if r["movieId"] in movies:
                tags.setdefault(r["movieId"], set()).add(r["tag"].strip().lower())
    docs = []
    with (root / "movies.csv").open(newline="") as fh:
        for r in csv.DictReader(fh):
            if r["movieId"] in movies:
                genres = [g for g in r["genres"].split("|") if g != "(no genres listed)"]
                text = f"{r['title']}. Genres: {', '.join(genres)}." + (
                    f" Tags: {', '.join(sorted(tags[r['movieId']]))}." if r["movieId"] in tags else "")
                docs.append((r["movieId"], r["title"], text, genres, None, None, None))
    return kept, docs


def test_movielens_profiles_point_towards_the_next_items(spark, lake_cfg):
    """Chronological split per user: the profile built from the first 80% of a user's ratings is
    closer (cosine) to the movies the user rates next than to random movies of the catalogue."""
    from fusionrec.embed.stage import run_embed
    from conftest import table_path

    ratings, docs = _movielens_sample(shared_dataset("movielens-small"), n_users=12, min_ratings=25, max_ratings=60)
    spark.createDataFrame(docs, SCHEMAS["gold.item_documents"]).write.format("delta").save(
        table_path(lake_cfg, "gold", "item_documents"))
    counts = run_embed(lake_of(spark, lake_cfg), lake_cfg.embed)["item_embeddings"]
    assert counts["embedded"] + counts["quarantined"] == len(docs) and counts["quarantined"] == 0

    events = spark.createDataFrame(ratings, "user_id STRING, item_id STRING, rating DOUBLE, t LONG").select(
        "user_id", "item_id", "rating", F.timestamp_seconds("t").alias("ts"))
    ranked = events.withColumn("pos", F.percent_rank().over(
        Window.partitionBy("user_id").orderBy("ts", "item_id")))
    train = ranked.where("pos < 0.8").select(
        "user_id", "item_id", F.col("rating").alias("weight"), F.lit(1).alias("n_events"),
        F.col("ts").alias("first_ts"), F.col("ts").alias("last_ts"), "rating")
    test = ranked.where("pos >= 0.8").select("user_id", "item_id")

    item_emb = spark.read.format("delta").load(table_path(lake_cfg, "embeddings", "item_embeddings"))
    no_review_emb = spark.createDataFrame([], "review_id STRING, embedding ARRAY<FLOAT>")
    no_reviews = spark.createDataFrame([], SCHEMAS["gold.reviews"])
    vectors = item_vectors(item_emb, no_review_emb, no_reviews, doc_weight=1.0, review_weight=0.0).cache()
    profiles = user_profiles(train, vectors, no_reviews, no_review_emb, as_of=None, half_life_days=365.0,
                             review_weight=1.0)

    seen = events.select("user_id", "item_id")
    randoms = (profiles.select("user_id").crossJoin(vectors.select("item_id"))
               .join(seen, ["user_id", "item_id"], "left_anti")
               .withColumn("r", F.rand(seed=5)).where("r < 0.3").select("user_id", "item_id"))

    def mean_cosine(pairs):
        return (pairs.join(profiles.select("user_id", F.col("vector").alias("p")), "user_id")
                .join(vectors.select("item_id", F.col("vector").alias("v")), "item_id")
                .groupBy("user_id").agg(F.avg(dot(F.col("p"), F.col("v"))).alias("c")))

    per_user = mean_cosine(test).withColumnRenamed("c", "next").join(
        mean_cosine(randoms).withColumnRenamed("c", "random"), "user_id").collect()
    assert len(per_user) == 12
    next_mean = float(np.mean([r.next for r in per_user]))
    random_mean = float(np.mean([r.random for r in per_user]))
    print(f"mean cosine profile->next items {next_mean:.4f}, ->random items {random_mean:.4f}")
    assert next_mean > random_mean
    assert sum(r.next > r.random for r in per_user) > len(per_user) / 2


def test_embed_command_writes_embeddings_and_every_feature_table(spark, lake_cfg, tmp_path, capsys):
    """``fusionrec embed`` end to end: gold tables in, embeddings + features.* out, counts in the report."""
    import json

    from fusionrec.cli import main
    from conftest import table_path

    def save(rows, name):
        spark.createDataFrame(rows, SCHEMAS[f"gold.{name}"]).write.format("delta").save(table_path(lake_cfg, "gold", name))

    save([("m1", "Garden", "A magazine about gardening, plants and flowers.", None, None, None, None),
          ("m2", "Chess", "A magazine about chess tournaments and openings.", None, None, None, None)], "item_documents")
    good = ["Love it, wonderful photos and great articles.", "Excellent magazine, I read every issue.",
            "Great value and very inspiring.", "Fantastic, my favourite subscription."]
    bad = ["Terrible, full of ads and nothing to read.", "Awful quality, I cancelled my subscription.",
           "Waste of money, very disappointing.", "Boring and badly written, never again."]
    reviews = [(f"g{i}", f"u{i % 3}", f"m{1 + i % 2}", 5.0, t, T0 + timedelta(days=i), True) for i, t in enumerate(good * 2)]
    reviews += [(f"b{i}", f"u{i % 3}", f"m{1 + i % 2}", 1.0, t, T0 + timedelta(days=i), True) for i, t in enumerate(bad * 2)]
    save(reviews, "reviews")
    save([(f"u{i}", f"m{1 + i % 2}", 2.0, 1, T0, T0 + timedelta(days=i), None) for i in range(3)], "interactions")

    report = tmp_path / "embed.json"
    args = ["embed", "--report", str(report), "--set", "features.sentiment_min_per_class=2"]
    for key, value in lake_cfg.flat().items():
        if key.split(".")[0] in ("spark", "lake") and value is not None and not isinstance(value, dict):
            args += ["--set", f"{key}={value}"]
    assert main(args) == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    assert "review_embeddings: 16 records: 16 embedded (8 distinct texts through the model)" in out
    results = json.loads(report.read_text())["results"]
    assert results["embeddings"]["item_embeddings"]["embedded"] == 2
    features = results["features"]
    assert (features["item_vectors"], features["user_profiles"], features["review_sentiment"]) == (2, 3, 16)
    assert features["item_sentiment"] == 2 and features["sentiment"]["status"] == "ok"
    scores = {r.review_id: r.score for r in spark.read.format("delta").load(
        table_path(lake_cfg, "features", "review_sentiment")).collect()}
    assert np.mean([s for k, s in scores.items() if k.startswith("g")]) > np.mean(
        [s for k, s in scores.items() if k.startswith("b")])
