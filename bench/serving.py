"""Latency of the registered recommender for single-user requests (p50 / p99), no Spark.

    .venv/bin/python bench/serving.py                         # MovieLens-shaped model, built here
    .venv/bin/python bench/serving.py --model-uri models:/fusionrec@champion   # a registered model

Without ``--model-uri`` the bench builds a model with the exact shape of the MovieLens
(ml-latest-small) model: the real catalogue (9,742 titles), the real users and their
seen/liked items from ratings.csv, rank 32 factors and 384-d unit item/profile vectors
(random values: latency depends on the shapes, not on the values), a ranker and a
text-to-user map. It is logged as a pyfunc in a temporary MLflow store and loaded back
like a consumer would.

Measured side by side in one process, one request at a time after a warm-up:

- ``pyfunc``: ``model.predict(DataFrame)`` (MLflow schema enforcement + validation + scoring);
- ``bundle``: the numpy scorer alone (``ModelBundle.recommend``), to show the overhead.

for a known user, a new user given a sentence (ONNX MiniLM embedding included), a new
user given two liked items, and an unknown user (popularity fallback). Target: p99 < 50 ms.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd

from fusionrec.config import load_config
from fusionrec.embed.model import model_files
from fusionrec.ingest.privacy import pseudonym, serving_key
from fusionrec.model.ranker import RANKER_FEATURES
from fusionrec.model.scoring import Ranker
from fusionrec.model.foldin import gram
from fusionrec.registry.bundle import ModelBundle, csr_from_lists
from fusionrec.registry.packaging import log_serving_model
from fusionrec.registry.pyfunc import input_example

PROJECT = Path(__file__).resolve().parents[1]
MOVIELENS = PROJECT.parent / "shared" / "datasets" / "movielens-small"
SENTENCES = ["a funny animated movie for children", "a dark psychological thriller with a twist",
             "space battles and aliens", "a romantic comedy set in New York", "a war drama based on a true story"]


#: The built bundle holds pseudonyms under this key; requests send the raw MovieLens ids.
BENCH_KEY_ENV, BENCH_KEY = "FUSIONREC_BENCH_PSEUDONYM_KEY", "fusionrec-bench-key"


def movielens_shaped_bundle(rank: int = 32, dim: int = 384, seed: int = 0) -> tuple[ModelBundle, list[str]]:
    rng = np.random.default_rng(seed)
    movies = pd.read_csv(MOVIELENS / "movies.csv")
    ratings = pd.read_csv(MOVIELENS / "ratings.csv")
    item_ids = movies["movieId"].astype(str).to_numpy()
    index = {item: i for i, item in enumerate(item_ids.tolist())}
    ratings["item"] = ratings["movieId"].astype(str).map(index)
    ratings = ratings.sort_values("timestamp", ascending=False)
    users = sorted(ratings["userId"].unique())
    grouped = ratings.groupby("userId")
    seen = [grouped.get_group(u)["item"].tolist() for u in users]
    liked = [grouped.get_group(u).query("rating >= 3.5")["item"].head(20).tolist() for u in users]
    counts = np.bincount(ratings["item"].to_numpy(), minlength=len(item_ids))

    def unit(n: int) -> np.ndarray:
        x = rng.normal(size=(n, dim)).astype(np.float32)
        return x / np.linalg.norm(x, axis=1, keepdims=True)

    seen_indptr, seen_indices = csr_from_lists(seen)
    liked_indptr, liked_indices = csr_from_lists(liked)
    seen_ts = np.concatenate([grouped.get_group(u)["timestamp"].to_numpy(np.float64) for u in users])
    item_factors = rng.normal(scale=0.3, size=(len(item_ids), rank)).astype(np.float32)
    return ModelBundle(
        item_ids=item_ids, titles=movies["title"].astype(str).to_numpy(),
        item_categories=movies["genres"].astype(str).str.split("|").str[0].to_numpy(),
        item_factors=item_factors,
        item_vectors=unit(len(item_ids)), log_popularity=np.log1p(counts).astype(np.float32),
        item_sentiment=np.full(len(item_ids), 0.5, dtype=np.float32),
        recent_popularity=np.log1p(counts * rng.uniform(0, 0.2, size=len(item_ids))).astype(np.float32),
        user_ids=np.array([pseudonym(str(u), key=BENCH_KEY.encode()) for u in users]),
        user_factors=rng.normal(scale=0.3, size=(len(users), rank)).astype(np.float32),
        user_sessions=rng.normal(scale=0.3, size=(len(users), rank)).astype(np.float32),
        user_profiles=unit(len(users)),
        seen_indptr=seen_indptr, seen_indices=seen_indices, liked_indptr=liked_indptr, liked_indices=liked_indices,
        text_to_user_factor=rng.normal(scale=0.05, size=(dim + 1, rank)).astype(np.float32),
        ranker=Ranker.from_json({"features": list(RANKER_FEATURES), "mean": [0.1, 0.2, 2.0, 0.5, 0.1, 1.0, 0.2, 0.2, 0.1, 0.2],
                                 "std": [0.3, 0.1, 1.0, 0.1, 0.3, 0.8, 0.2, 0.2, 0.3, 0.2],
                                 "coef": [1.2, 0.8, 0.4, 0.1, 0.2, 0.5, 0.6, 0.3, 0.7, 0.4],
                                 "intercept": -2.0}),
        candidates_n=100, default_k=10,
        meta={"als": {"alpha": 1.0, "reg_param": 0.1}, "session_items": 5, "train_cutoff_epoch": float(seen_ts.max()),
              "pseudonym_key_env": BENCH_KEY_ENV},
        seen_weights=np.ones(seen_indices.size), seen_last_ts=seen_ts, gram=gram(item_factors),
    ), [str(u) for u in users]


def log_and_load(bundle: ModelBundle, work: Path) -> mlflow.pyfunc.PyFuncModel:
    cfg = load_config(PROJECT / "conf" / "local.yaml", env={}, base_dir=PROJECT)
    mlflow.set_tracking_uri(f"sqlite:///{work / 'mlflow.db'}")
    experiment = mlflow.create_experiment("bench", artifact_location=(work / "artifacts").as_uri())
    with mlflow.start_run(experiment_id=experiment):
        uri = log_serving_model(name="recommender", bundle_dir=bundle.save(work / "bundle"),
                                text_model_dir=model_files(cfg.embed).folder, max_k=cfg.registry.max_k,
                                max_text_length=cfg.embed.max_sentence_length, input_example=input_example(bundle))
    return mlflow.pyfunc.load_model(uri)


def percentiles(samples: list[float]) -> tuple[float, float]:
    ms = np.asarray(samples) * 1000
    return float(np.percentile(ms, 50)), float(np.percentile(ms, 99))


def measure(fn, requests: list, warmup: int = 20) -> tuple[float, float]:
    for r in requests[:warmup]:
        fn(r)
    samples = []
    for r in requests:
        start = time.perf_counter()
        fn(r)
        samples.append(time.perf_counter() - start)
    return percentiles(samples)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-uri", default=None, help="a registered model; default: build a MovieLens-shaped one")
    parser.add_argument("--requests", type=int, default=500, help="requests per kind")
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--users", nargs="+", default=None,
                        help="with --model-uri: raw user ids for the known-user requests (the key in the environment)")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        if args.model_uri:
            model = mlflow.pyfunc.load_model(args.model_uri)
            raw_ids = args.users
        else:
            built, raw_ids = movielens_shaped_bundle()
            os.environ.setdefault(BENCH_KEY_ENV, BENCH_KEY)
            model = log_and_load(built, Path(tmp))
        load_s = time.perf_counter() - start
        python_model = model.unwrap_python_model()
        bundle = python_model.bundle
        print(f"model: {bundle.n_items} items, {len(bundle.user_ids)} users, rank {bundle.rank}, "
              f"dim {bundle.dimension}, ranker={'yes' if bundle.ranker else 'no'}; logged+loaded in {load_s:.1f} s")

        rng = np.random.default_rng(1)
        n, k = args.requests, args.k
        # Requests carry raw ids (pseudonymised per request); the bundle calls use the pseudonyms.
        if not raw_ids:
            parser.error("--model-uri needs --users: raw user ids of the model's lake")
        key = serving_key(env_name=bundle.meta.get("pseudonym_key_env", "FUSIONREC_PSEUDONYM_KEY"),
                          local_key_file=bundle.meta.get("pseudonym_key_file"))
        raws = [raw_ids[i] for i in rng.integers(len(raw_ids), size=n)]
        users = [pseudonym(u, key=key) for u in raws]
        pairs = [list(rng.choice(bundle.item_ids, size=2, replace=False)) for _ in range(n)]
        kinds = {
            "known user": [pd.DataFrame({"user_id": [u], "k": [k]}) for u in raws],
            "sentence": [pd.DataFrame({"text": [SENTENCES[i % len(SENTENCES)]], "k": [k]}) for i in range(n)],
            "two liked items": [pd.DataFrame({"liked_items": [p], "k": [k]}) for p in pairs],
            "unknown user": [pd.DataFrame({"user_id": [f"new-{i}"], "k": [k]}) for i in range(n)],
        }
        bundle_calls = {
            "known user": [lambda u=u: bundle.recommend(bundle.known_user_query(bundle.user_index(u)), k) for u in users],
            "two liked items": [lambda p=p: bundle.recommend(
                bundle.new_user_query(None, np.array([bundle.item_index(i) for i in p])), k) for p in pairs],
            "unknown user": [lambda: bundle.popular(k, np.empty(0, dtype=np.int64)) for _ in range(n)],
        }
        print(f"{'request':<16} {'pyfunc p50':>11} {'pyfunc p99':>11} {'bundle p50':>11} {'bundle p99':>11} "
              f"{'p99 ratio':>10}  target p99 < 50 ms")
        worst = 0.0
        for kind, frames in kinds.items():
            p50, p99 = measure(model.predict, frames)
            worst = max(worst, p99)
            if kind in bundle_calls:
                b50, b99 = measure(lambda call: call(), bundle_calls[kind])
                extra = f"{b50:>9.2f}ms {b99:>9.2f}ms {p99 / b99:>9.1f}x"
            else:
                extra = f"{'-':>11} {'-':>11} {'-':>10}"
            print(f"{kind:<16} {p50:>9.2f}ms {p99:>9.2f}ms {extra}  {'ok' if p99 < 50 else 'MISSED'}")
        print(f"worst pyfunc p99: {worst:.2f} ms ({'meets' if worst < 50 else 'misses'} the 50 ms target)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
