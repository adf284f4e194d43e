"""Ingestion throughput: the full cleaning path beside a plain copy of the same files.

Usage: .venv/bin/python bench/ingest.py [--events 1000000] [--dirty-share 0.05] [--seed 1]
       [--master local[2]] [--work work/bench-ingest] [--gzip]

Generates canonical JSONL (``fusionrec.generate``: events, items = events/100, reviews =
events/20, users = events/50), then, in one Spark session and one run:

- ``plain``: ``spark.read.json(files)`` (schema inferred, as a user would) ->
  ``write.format("delta")``, for the events, items and reviews files;
- ``full``: ``fusionrec.ingest.pipeline.ingest_directory`` on the same files into an empty
  lake: file checks and hashing (one job for every file), bronze, cleaning, quarantine,
  silver MERGE, gold (interactions, item documents, reviews) - a table's first write
  creates it, in one commit - the row accounting (counts
  from the one read of the input and from the commits' metrics; silver read back only
  when a MERGE did not write every accepted row), batch record.

Prints input lines per second for both, the ratio full / plain (target <= 2.5) and the
full path's steps in seconds (``inspect``, ``skip_check`` for all batches, then per batch
``read_classify_count``, ``bronze``, ``quarantine``, ``silver``, ``silver_count``,
``gold``, ``record``; ``full_steps_s`` in the JSON line).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import sys
import time
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT / "lib"))

from fusionrec.config import LakeConfig, load_config  # noqa: E402
from fusionrec.generate import generate  # noqa: E402
from fusionrec.ingest.pipeline import ingest_directory  # noqa: E402
from fusionrec.lake import Lake  # noqa: E402
from fusionrec.session import build_spark  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--dirty-share", type=float, default=0.05)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--master", default="local[2]")
    parser.add_argument("--work", default=str(PROJECT / "work" / "bench-ingest"))
    parser.add_argument("--gzip", action="store_true", help="generate .jsonl.gz input")
    args = parser.parse_args()

    work = Path(args.work).resolve()
    shutil.rmtree(work, ignore_errors=True)
    data = work / "input"
    t = time.perf_counter()
    gen = generate(str(data), args.events, max(10, args.events // 50), max(10, args.events // 100), args.seed,
                   args.dirty_share, compress=args.gzip)
    gen_s = time.perf_counter() - t
    lines = gen["lines"]
    total = sum(lines.values())
    size_mb = sum(p.stat().st_size for p in data.iterdir()) / 1e6
    print(f"generated {lines} ({total} lines, {size_mb:.0f} MB) in {gen_s:.1f}s")

    cfg = load_config(PROJECT / "conf" / "local.yaml", base_dir=PROJECT, env={})
    cfg = cfg.replace(spark=dataclasses.replace(cfg.spark, master=args.master),
                      lake=LakeConfig(root=str(work / "lake")))
    cfg = cfg.replace(ingest=dataclasses.replace(cfg.ingest, log_mlflow=False))
    spark = build_spark(cfg)
    spark.range(1).count()  # JVM warm-up outside the timings

    t = time.perf_counter()
    for kind, files in gen["files"].items():
        spark.read.json(files).write.format("delta").mode("overwrite").save(str(work / "plain" / kind))
    plain_s = time.perf_counter() - t

    t = time.perf_counter()
    report = ingest_directory(Lake(spark, cfg.lake), cfg, str(data))
    full_s = time.perf_counter() - t

    ok = all(report["batches"][k]["tables"][k]["by_reason"] == gen["expected"][k]["by_reason"]
             and report["batches"][k]["tables"][k]["accepted"] == gen["expected"][k]["accepted"]
             for k in gen["expected"])
    events = lines["events"]
    result = {
        "events": events, "lines": total, "master": args.master, "dirty_share": args.dirty_share,
        "plain_s": round(plain_s, 1), "full_s": round(full_s, 1),
        "plain_events_per_s": round(events / plain_s), "full_events_per_s": round(events / full_s),
        "plain_lines_per_s": round(total / plain_s), "full_lines_per_s": round(total / full_s),
        "ratio_full_over_plain": round(full_s / plain_s, 2), "accounting_matches_generator": ok,
    }
    print(f"plain read.json -> delta : {plain_s:7.1f}s  {events / plain_s:9.0f} events/s  ({total / plain_s:.0f} lines/s)")
    print(f"full bronze->silver->gold: {full_s:7.1f}s  {events / full_s:9.0f} events/s  ({total / full_s:.0f} lines/s)")
    print(f"ratio full / plain       : {full_s / plain_s:.2f}  (target <= 2.5)")
    print(f"accounting matches the generator's expected counts: {ok}")
    steps = {"inspect": report["timings_s"].get("inspect", 0.0)}
    print(f"  {'files':8s} steps (s): {report['timings_s']}")
    for kind, batch in report["batches"].items():
        steps.update({f"{kind}.{step}": s for step, s in batch["timings_s"].items()})
        print(f"  {kind:8s} steps (s): {batch['timings_s']}  (sum {sum(batch['timings_s'].values()):.1f})")
    result["full_steps_s"] = steps
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
