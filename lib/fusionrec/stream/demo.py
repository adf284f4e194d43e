"""``make stream``: the real-time path on this machine, after ``make run``.

Starts a Kafka broker (KRaft, 127.0.0.1, its own JVM), replays events of the generated
inputs ``make run`` ingested as new events (new ids, timestamps of now, so they are events
since training for the same users), sends them to a topic and runs ``fusionrec stream``'s
query over it until the topic is drained; then stops the broker by pid.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import sys
import tempfile
from pathlib import Path

from fusionrec.config import load_config
from fusionrec.stream.broker import KafkaBroker, kafka_jars_dir
from fusionrec.lake import Lake
from fusionrec.session import build_spark
from fusionrec.stream.run import load_stream_model, start

__all__ = ["main", "replayed_events"]

PROJECT = Path(__file__).resolve().parents[3]


def replayed_events(lake: Lake, n: int) -> list[str]:
    """``n`` events of the generated inputs in ``lake`` (``_inputs/generated``, written by
    ``fusionrec pipeline --generate``) as new events: fresh ids, timestamps up to now.

    Parameters
    ----------
    lake : Lake
        A lake ``make run`` filled.
    n : int
        How many events.

    Returns
    -------
    list of str
        Canonical JSON event lines, oldest first.
    """
    pattern = f"{lake.uri('_inputs/generated')}/*/events*.jsonl"
    try:
        rows = lake.spark.read.text(pattern).limit(4 * n).collect()
    except Exception as exc:  # AnalysisException: the glob matched nothing
        raise SystemExit(f"no generated events at {pattern}; run 'make run' first ({exc.__class__.__name__})")
    now = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
    out: list[str] = []
    for row in rows:
        try:
            record = json.loads(row["value"])
        except ValueError:
            continue
        if not isinstance(record, dict):
            continue
        record["event_id"] = f"demo-{now:%Y%m%d%H%M%S}-{len(out)}"
        record["ts"] = (now - dt.timedelta(seconds=n - len(out))).isoformat()
        out.append(json.dumps(record))
        if len(out) == n:
            break
    return out


def main(argv: list[str] | None = None) -> int:
    """``make stream``: broker up, events sent, one drain of the topic, broker down; 0 on success."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--conf", default=str(PROJECT / "conf" / "local.yaml"))
    args = parser.parse_args(argv)
    cfg = load_config(args.conf, ["spark.show_progress=false"])
    spark = build_spark(cfg)
    lake = Lake(spark, cfg.lake)
    lines = replayed_events(lake, args.events)
    work = Path(tempfile.mkdtemp(prefix="fusionrec-stream-"))
    with KafkaBroker(kafka_jars_dir(PROJECT), work / "kafka") as broker:
        print(f"kafka broker at {broker.bootstrap_servers} (pid {broker.process.pid})", flush=True)
        topic = cfg.stream.topic
        (spark.createDataFrame([(line,) for line in lines], "value STRING").coalesce(1).write.format("kafka")
         .option("kafka.bootstrap.servers", broker.bootstrap_servers).option("topic", topic).save())
        run_cfg = cfg.replace(stream=dataclasses.replace(
            cfg.stream, source="kafka", bootstrap_servers=broker.bootstrap_servers, starting_offsets="earliest",
            checkpoint=str(work / "checkpoint")))
        run = start(spark, run_cfg, model=load_stream_model(lake, run_cfg), trigger_once=True,
                    on_batch=lambda b: print(json.dumps({k: b[k] for k in ("batch_id", "read", "accepted",
                                                                           "quarantined", "duplicates", "users",
                                                                           "seconds")}), flush=True))
        run.query.awaitTermination()
    print(f"{len(lines)} events sent; {len(run.batches)} micro-batches: {run.totals()}")
    return 0 if run.query.exception() is None else 1


if __name__ == "__main__":
    sys.exit(main())
