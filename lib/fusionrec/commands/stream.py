"""``fusionrec stream``: behaviour events from Kafka (or a directory of JSONL files) ingested
with the batch rules, the touched users folded in and re-recommended, micro-batch by micro-batch."""

from __future__ import annotations

import argparse
import json

from fusionrec.config import Config
from fusionrec.lake import FUSION_PARAMS, Lake
from fusionrec.runlog import RunReport, stage
from fusionrec.stages import Stage

__all__ = ["HELP", "add_arguments", "declaration", "run"]

HELP = ("stream events from Kafka or a JSONL directory: ingest each micro-batch, fold in the touched users, "
        "MERGE their top-K into gold.recommendations and their state into gold.user_state")

def declaration() -> Stage:
    """Not a pipeline stage (it runs until stopped); declared like one, and run with only
    these sections (``embed``: the text vectors' dimension in the bundle; ``evaluate``: the
    positive-feedback thresholds of the liked items). A function, not a constant like the
    stages' ``STAGE``: its tables are named by modules that import Spark, which ``--help`` must not."""
    from fusionrec.registry.build import BUNDLE_INPUTS
    from fusionrec.stream.batch import INGEST_TABLES, STATE_TABLES

    return Stage(
        "stream",
        reads=tuple(f"{layer}.{name}" for layer, name in BUNDLE_INPUTS),
        writes=(*INGEST_TABLES, *STATE_TABLES),
        params=("ingest", "model", "evaluate", "embed", "stream"),
        artifacts_in=(FUSION_PARAMS,),
    )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``--once``, ``--seconds``."""
    parser.add_argument("--once", action="store_true",
                        help="process what the source holds now, then stop (default: run until interrupted)")
    parser.add_argument("--seconds", type=float, default=None,
                        help="stop after this many seconds (default: run until interrupted)")


def run(cfg: Config, args: argparse.Namespace, report: RunReport) -> int:
    """Run the query until interrupted (``--once``: until the source is drained; ``--seconds``)."""
    from fusionrec.session import build_spark
    from fusionrec.stream.run import load_stream_model, start

    cfg = declaration().config_view(cfg)
    spark = build_spark(cfg)
    lake = Lake(spark, cfg.lake)
    with stage("stream.model", report):
        model = load_stream_model(lake, cfg)
    sc = cfg.stream
    print(f"streaming from {sc.source} ({sc.topic + ' at ' + sc.bootstrap_servers if sc.source == 'kafka' else sc.path}); "
          f"checkpoint {sc.checkpoint}")

    def show(batch: dict) -> None:
        print(json.dumps({k: batch[k] for k in ("batch_id", "read", "accepted", "quarantined", "duplicates",
                                                "users", "seconds") if k in batch}), flush=True)

    with stage("stream.run", report) as rec:
        run_ = start(spark, cfg, model=model, on_batch=show, trigger_once=args.once)
        try:
            if args.seconds is not None:
                run_.query.awaitTermination(args.seconds)
            else:
                run_.query.awaitTermination()
        finally:
            if run_.query.isActive:
                run_.query.stop()
        rec.counts.update(run_.totals())
    if run_.query.exception() is not None:
        raise RuntimeError(f"stream stopped: {run_.query.exception()}")
    report.results["stream"] = {"batches": len(run_.batches), **run_.totals()}
    print(f"stream: {len(run_.batches)} micro-batches, {run_.totals()}")
    return 0
