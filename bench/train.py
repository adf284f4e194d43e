"""Scale figures of the model stage: ALS fit, the fusion stage, and top-K for all users.

Usage: .venv/bin/python bench/train.py [--interactions 1000000 5000000] [--users 100000]
       [--items 20000] [--dim 384] [--master local[2]]

Data: seeded, with latent structure — users prefer 2 of 20 topics, items belong to a topic,
each item's text vector is its topic centroid plus noise (unit length, ``--dim`` wide), and
interaction counts per user are long-tailed. Interactions are drawn directly with numpy
into gold.interactions / embeddings.item_embeddings Delta tables of a bench lake, so the
figures are those of the model stage alone (ingestion and text embedding have their own
benches). Default configuration (conf/local.yaml) except the master.

Stages timed (wall clock) with the peak RSS of the driver JVM and of this Python
process during each stage (``/proc/<pid>/status`` VmHWM, reset per stage through
``/proc/<pid>/clear_refs``):

- ``als``: implicit ALS fit, factors materialised;
- ``fusion``: item vectors + user profiles, ridge text maps, candidates and the ranker
  fitted on a validation period (each user's last 10% of interactions);
- ``topk``: candidates + features + ranker + reasons for every user, written to
  gold.recommendations.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

PROJECT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT / "lib"))

from fusionrec.config import load_config  # noqa: E402
from fusionrec.lake import Lake  # noqa: E402


def generate(n_interactions: int, n_users: int, n_items: int, dim: int, seed: int, out: Path) -> None:
    """Write interactions and item vectors as parquet chunks (bounded memory)."""
    rng = np.random.default_rng(seed)
    n_topics = 20
    centroids = rng.normal(size=(n_topics, dim)).astype(np.float32)
    item_topic = rng.integers(0, n_topics, n_items)
    vecs = centroids[item_topic] + 0.8 * rng.normal(size=(n_items, dim)).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    (out / "items").mkdir(parents=True, exist_ok=True)
    pd.DataFrame({"item_id": [f"i{i}" for i in range(n_items)], "embedding": list(vecs)}) \
        .to_parquet(out / "items" / "part-0.parquet")
    item_pop = 1.0 / rng.permutation(np.arange(1, n_items + 1)) ** 0.8  # power-law popularity
    by_topic = [np.flatnonzero(item_topic == t) for t in range(n_topics)]
    topic_p = [item_pop[ix] / item_pop[ix].sum() for ix in by_topic]
    # long-tailed activity: log-normal counts scaled to the target (a little over, for duplicates)
    counts = rng.lognormal(0.0, 1.0, n_users)
    counts = np.clip(np.round(counts / counts.sum() * n_interactions * 1.07), 1, n_items // 4).astype(np.int64)
    (out / "interactions").mkdir(parents=True, exist_ok=True)
    start = np.datetime64("2023-01-01T00:00:00")
    chunk_users = 20_000
    for part, lo in enumerate(range(0, n_users, chunk_users)):
        users = np.arange(lo, min(lo + chunk_users, n_users))
        c = counts[users]
        row_user = np.repeat(users, c)
        prefs = rng.integers(0, n_topics, size=(len(users), 2))
        own = prefs[np.repeat(np.arange(len(users)), c), rng.integers(0, 2, len(row_user))]
        topic = np.where(rng.random(len(row_user)) < 0.8, own, rng.integers(0, n_topics, len(row_user)))
        item = np.empty(len(row_user), dtype=np.int64)
        for t in range(n_topics):  # one vectorised draw per topic
            rows = np.flatnonzero(topic == t)
            item[rows] = rng.choice(by_topic[t], size=len(rows), p=topic_p[t])
        df = pd.DataFrame({"u": row_user, "i": item}).drop_duplicates()
        n = len(df)
        ts = start + rng.integers(0, 365 * 86400, n).astype("timedelta64[s]")
        pd.DataFrame({
            "user_id": "u" + df["u"].astype(str).to_numpy(), "item_id": "i" + df["i"].astype(str).to_numpy(),
            "weight": rng.choice([1.0, 2.0, 4.0, 8.0], n, p=[0.6, 0.25, 0.1, 0.05]),
            "n_events": np.int32(1), "first_ts": ts, "last_ts": ts, "rating": np.nan,
        }).to_parquet(out / "interactions" / f"part-{part}.parquet")


def reset_peak(pid: int) -> None:
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
    except OSError:
        pass


def peak_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--interactions", type=int, nargs="+", default=[1_000_000])
    ap.add_argument("--users", type=int, default=100_000)
    ap.add_argument("--items", type=int, default=20_000)
    ap.add_argument("--dim", type=int, default=384)
    ap.add_argument("--master", default="local[2]")
    ap.add_argument("--work", default=str(PROJECT / "work" / "bench" / "train"))
    ap.add_argument("--seed", type=int, default=11)
    args = ap.parse_args()

    from pyspark.sql import functions as F

    from fusionrec.model.als import fit_als
    from fusionrec.model.fusion import candidates, fit_fused, label, with_features
    from fusionrec.model.ranker import fit_ranker
    from fusionrec.model.recommend import recommend_all
    from fusionrec.validation.split import split_by_boundaries, user_boundaries
    from fusionrec.model.side_features import side_features
    from fusionrec.session import build_spark

    work = Path(args.work)
    results = []
    spark = None
    for n in args.interactions:
        run_dir = work / f"n{n}"
        shutil.rmtree(run_dir, ignore_errors=True)
        t = time.perf_counter()
        generate(n, args.users, args.items, args.dim, args.seed, run_dir / "raw")
        gen_s = time.perf_counter() - t
        cfg = load_config(PROJECT / "conf" / "local.yaml", [
            f"spark.master={args.master}", f"lake.root={run_dir / 'lake'}",
            f"spark.checkpoint_dir={run_dir / 'checkpoints'}"], base_dir=PROJECT)
        spark = spark or build_spark(cfg)
        spark.sparkContext.setCheckpointDir(str(run_dir / "checkpoints"))
        jvm_pid = int(spark.sparkContext._jvm.ProcessHandle.current().pid())
        inter = spark.read.parquet(str(run_dir / "raw" / "interactions")).select(
            "user_id", "item_id", "weight", F.col("n_events").cast("int"), F.col("first_ts").cast("timestamp"),
            F.col("last_ts").cast("timestamp"), F.col("rating").cast("double"))
        lake = Lake(spark, cfg.lake)
        lake.overwrite("gold.interactions", inter)
        lake.overwrite("embeddings.item_embeddings", spark.read.parquet(str(run_dir / "raw" / "items")).select(
            "item_id", F.col("embedding").cast("array<float>")))
        interactions = lake.read("gold.interactions")
        item_emb = lake.read("embeddings.item_embeddings")
        n_rows = interactions.count()
        row = {"interactions": n_rows, "users": interactions.select("user_id").distinct().count(),
               "items": args.items, "generate_s": round(gen_s, 1)}
        mc = cfg.model

        def timed(name, fn):
            reset_peak(jvm_pid)
            reset_peak(os.getpid())
            t0 = time.perf_counter()
            out = fn()
            row[f"{name}_s"] = round(time.perf_counter() - t0, 1)
            row[f"{name}_jvm_peak_mb"] = round(peak_mb(jvm_pid))
            row[f"{name}_py_peak_mb"] = round(peak_mb(os.getpid()))
            print(f"[{n_rows}] {name}: {row[f'{name}_s']} s, driver JVM peak {row[f'{name}_jvm_peak_mb']} MB, "
                  f"python peak {row[f'{name}_py_peak_mb']} MB", flush=True)
            return out

        def als_stage():
            als = fit_als(interactions, mc)
            users, items = als.users.cache(), als.items.cache()
            users.count(), items.count()
            return dataclasses.replace(als, users=users, items=items)

        als = timed("als", als_stage)

        def fusion_stage():
            feats = side_features(interactions, item_emb, None, None, None, cfg.features)
            model = fit_fused(interactions, feats.item_vectors, feats.user_profiles, feats.item_sentiment, mc, als=als)
            # ranker on a validation period: each user's last 10% of interactions, a 5% user sample
            bounds = user_boundaries(interactions, 0.1)
            before, validation = split_by_boundaries(interactions, bounds)
            sample = validation.select("user_id").distinct().sample(fraction=0.05, seed=1)
            # Candidates exclude what each user saw before the validation period, so that the
            # validation items can be candidates (labels); the factors are the full fit's.
            pairs = with_features(candidates(model, before.select("user_id", "item_id"), mc, sample), model)
            ranker = fit_ranker(label(pairs, validation), mc.ranker_reg)
            return model, ranker

        model, ranker = timed("fusion", fusion_stage)

        def topk_stage():
            titles = item_emb.select("item_id", F.col("item_id").alias("title"))
            recs = recommend_all(model, ranker, interactions, titles, None, mc, ec=cfg.evaluate)
            lake.overwrite("gold.recommendations", recs)
            return lake.read("gold.recommendations").count()

        row["recommendations"] = timed("topk", topk_stage)
        results.append(row)
        spark.catalog.clearCache()
        print(json.dumps(row), flush=True)

    print("\nsummary (local mode: the driver JVM runs the executors too)")
    for r in results:
        print(json.dumps(r))
    if len(results) >= 2:
        a, b = results[0], results[-1]
        scale = b["interactions"] / a["interactions"]
        for stage in ("als", "fusion", "topk"):
            print(f"{stage}: {a[f'{stage}_s']} s -> {b[f'{stage}_s']} s for {scale:.1f}x interactions "
                  f"= {b[f'{stage}_s'] / a[f'{stage}_s']:.2f}x time")
    return 0


if __name__ == "__main__":
    sys.exit(main())
