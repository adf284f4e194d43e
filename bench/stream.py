"""Real-time figures, side by side: stream throughput and latency, fold-in against a refit.

Usage: .venv/bin/python bench/stream.py [--events 3000] [--rate 300] [--trigger 2]
       [--foldin-only]

- fold-in (numpy): the implicit-ALS user step per user (rank of the configuration,
  MovieLens-like history lengths), YᵀY computed once, timed over 5,000 users;
- with the lake of ``make run`` (a trained model): a local Kafka broker (KRaft, its own
  JVM), events of the generated users replayed at ``--rate`` events/s by a producer thread
  while the query runs on ``local[2]`` with the ``--trigger`` interval; sustained events/s
  = events / (last batch end - first send); latency of an event = end of the micro-batch
  that updated its user's recommendations - its send time (p50, p99);
- a full ALS refit on ``gold.interactions`` (``model/als.py``, the configuration's
  parameters) against the stream's fold-in of every touched user.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

PROJECT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT / "lib"))

from fusionrec.config import load_config  # noqa: E402
from fusionrec.model.foldin import fold_in, gram  # noqa: E402


def numpy_fold_in(rank: int, n_items: int = 10_000, users: int = 5_000, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    y = rng.normal(scale=0.3, size=(n_items, rank)).astype(np.float32)
    start = time.perf_counter()
    g = gram(y)
    gram_s = time.perf_counter() - start
    lengths = np.minimum(rng.lognormal(mean=3.5, sigma=1.0, size=users).astype(int) + 1, 2000)
    histories = [rng.choice(n_items, size=n, replace=False) for n in lengths]
    start = time.perf_counter()
    for items in histories:
        fold_in(gram_matrix=g, factors=y[items], weights=np.ones(items.size), alpha=1.0, reg_param=0.1)
    per_user = (time.perf_counter() - start) / users
    return {"rank": rank, "items": n_items, "users": users, "mean_history": float(lengths.mean()),
            "gram_ms": round(gram_s * 1000, 2), "fold_in_us_per_user": round(per_user * 1e6, 1)}


def stream_figures(cfg, events: int, rate: float, trigger: float) -> dict:
    from pyspark.sql import functions as F

    from fusionrec.stream.broker import KafkaBroker, kafka_jars_dir
    from fusionrec.lake import Lake
    from fusionrec.model.als import fit_als
    from fusionrec.session import build_spark
    from fusionrec.stream.demo import replayed_events
    from fusionrec.stream.rescore import fold_in as stream_fold_in
    from fusionrec.stream.run import load_stream_model, start

    spark = build_spark(cfg)
    lake = Lake(spark, cfg.lake)
    lines = replayed_events(lake, events)
    ids = [json.loads(line)["event_id"] for line in lines]
    work = Path(tempfile.mkdtemp(prefix="fusionrec-bench-stream-"))
    sent: dict[str, float] = {}
    ended: list[tuple[str, float]] = []
    with KafkaBroker(kafka_jars_dir(PROJECT), work / "kafka") as broker:
        run_cfg = cfg.replace(stream=dataclasses.replace(
            cfg.stream, source="kafka", bootstrap_servers=broker.bootstrap_servers, topic="bench",
            checkpoint=str(work / "checkpoint"), trigger_s=trigger, starting_offsets="earliest"))
        model = load_stream_model(lake, run_cfg)
        # Create the topic before the query subscribes.
        (spark.createDataFrame([("{}",)], "value STRING").write.format("kafka")
         .option("kafka.bootstrap.servers", broker.bootstrap_servers).option("topic", "bench").save())
        run = start(spark, run_cfg, model=model, on_batch=lambda b: ended.append((b["batch_id"], time.time())))
        chunk = max(1, int(rate))

        def produce() -> None:
            for lo in range(0, len(lines), chunk):
                t0 = time.time()
                part = lines[lo:lo + chunk]
                (spark.createDataFrame([(x,) for x in part], "value STRING").coalesce(1).write.format("kafka")
                 .option("kafka.bootstrap.servers", broker.bootstrap_servers).option("topic", "bench").save())
                for i in ids[lo:lo + chunk]:
                    sent[i] = time.time()
                time.sleep(max(0.0, 1.0 - (time.time() - t0)))

        producer = threading.Thread(target=produce)
        producer.start()
        producer.join()
        total = len(lines) + 1
        deadline = time.time() + 600
        while sum(b["read"] for b in run.batches) < total and time.time() < deadline:
            time.sleep(0.5)
        run.query.stop()
    batches = {b["batch_id"]: b for b in run.batches}
    done = dict(ended)
    silver = lake.read("silver.events").where(F.col("batch_id").isin(list(batches))).select("event_id", "batch_id")
    latency = [done[r["batch_id"]] - sent[r["event_id"]] for r in silver.collect() if r["event_id"] in sent]
    first_send = min(sent.values())
    throughput = len(sent) / (max(done.values()) - first_send)
    users = sum(b["users"] for b in run.batches)

    # Fold-in of every user the stream touched (one Spark job) against a full refit.
    touched = lake.read("silver.events").where(F.col("batch_id").isin(list(batches))).select("user_id").distinct()
    interactions = lake.read("gold.interactions")
    mine = interactions.join(touched, "user_id", "left_semi").cache()
    mine.count()
    t0 = time.perf_counter()
    n_folded = stream_fold_in(model.bundle, mine, lake.read("model.item_factors")).count()
    fold_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    refit = fit_als(interactions, cfg.model)
    refit.users.count()
    refit_s = time.perf_counter() - t0
    return {"events": len(sent), "micro_batches": len(run.batches), "trigger_s": trigger, "offered_rate": rate,
            "events_per_s": round(throughput, 1),
            "latency_p50_s": round(float(np.percentile(latency, 50)), 2),
            "latency_p99_s": round(float(np.percentile(latency, 99)), 2),
            "user_updates": users, "fold_in_users": n_folded, "fold_in_s": round(fold_s, 2),
            "fold_in_ms_per_user": round(1000 * fold_s / max(n_folded, 1), 2),
            "refit_s": round(refit_s, 2), "refit_users": interactions.select("user_id").distinct().count(),
            "interactions": interactions.count()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=3000)
    parser.add_argument("--rate", type=float, default=300.0)
    parser.add_argument("--trigger", type=float, default=2.0)
    parser.add_argument("--foldin-only", action="store_true")
    args = parser.parse_args()
    cfg = load_config(PROJECT / "conf" / "local.yaml", ["spark.master=local[2]", "spark.show_progress=false"],
                      base_dir=PROJECT)
    out = {"numpy_fold_in": numpy_fold_in(cfg.model.rank)}
    if not args.foldin_only:
        out["stream"] = stream_figures(cfg, args.events, args.rate, args.trigger)
    print(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
