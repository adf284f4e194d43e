"""``fusionrec ingest``: raw logs -> Delta bronze / silver / gold / quarantine, with accounting."""

from __future__ import annotations

import argparse
import logging
from typing import Any

from fusionrec.config import Config
from fusionrec.lake import KINDS
from fusionrec.runlog import RunReport, stage
from fusionrec.stages import Stage

__all__ = ["HELP", "STAGE", "add_arguments", "check_before_spark", "run"]

HELP = "ingest events/items/reviews JSONL, a MovieLens or an Amazon directory into the Delta lake"

log = logging.getLogger("fusionrec")


STAGE = Stage(
    "ingest",
    writes=("bronze._batches", *(f"{layer}.{kind}" for layer in ("bronze", "quarantine", "silver") for kind in KINDS),
            "gold.interactions", "gold.item_documents", "gold.reviews"),
    params=("ingest",),
    uses=("mlflow",),
)


def _source(value: str) -> str:
    """``--source``, checked when given: the adapters import Spark, which --help must not."""
    from fusionrec.ingest.pipeline import SOURCES

    if value not in SOURCES:
        raise argparse.ArgumentTypeError(f"invalid choice: {value!r} (choose from {', '.join(SOURCES)})")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    what = parser.add_mutually_exclusive_group(required=True)
    what.add_argument("--source", type=_source, metavar="KIND",
                      help="kind of input at --path: events, items, reviews (JSONL), movielens or amazon")
    what.add_argument("--dir", action="store_true",
                      help="--path is a directory of events*/items*/reviews* JSONL files: ingest all of them")
    parser.add_argument("--path", required=True, help="input file or directory")
    parser.add_argument("--batch-id", default=None, help="batch id (default: hash of source and file contents)")


def _summary(report: dict[str, Any]) -> list[str]:
    lines = []
    state = "already ingested, skipped" if report.get("skipped") else "ingested"
    lines.append(f"batch {report['batch_id']} ({report['source']}): {state}")
    for kind, t in report.get("tables", {}).items():
        reasons = ", ".join(f"{k}={v}" for k, v in t["by_reason"].items()) or "none"
        lines.append(f"  {kind:8s} in={t['rows_in']} silver={t['accepted']} quarantined={t['quarantined']} "
                     f"duplicates={t['duplicates']} | {reasons}")
    return lines


def _metrics(report: dict[str, Any]) -> dict[str, float]:
    out: dict[str, float] = {}
    for kind, t in report.get("tables", {}).items():
        for key in ("rows_in", "accepted", "quarantined", "duplicates"):
            out[f"{kind}.{key}"] = t[key]
        for code, n in {**t["by_reason"], **t["fixes"]}.items():
            out[f"{kind}.{code}"] = n
    return out


def _log_mlflow(cfg: Config, batches: list[dict[str, Any]]) -> None:
    import mlflow

    from fusionrec.registry.store import configure_mlflow

    configure_mlflow(cfg.mlflow)
    for report in batches:
        if report.get("skipped"):
            continue
        with mlflow.start_run(run_name=f"ingest-{report['source']}"):
            mlflow.set_tags({"stage": "ingest", "source": report["source"], "batch_id": report["batch_id"]})
            mlflow.log_metrics(_metrics(report))
            mlflow.log_dict(report, "ingest_report.json")


def check_before_spark(cfg: Config, path: str, source: str | None) -> None:
    """The input checks that need no Spark session (a local ``path``; ``source`` None: a
    directory of JSONL files), run before the session starts so a bad path fails at once.

    A path without a scheme is checked here only when it is certainly on the local disk: a
    ``local[...]`` master and no other default filesystem set in ``spark.extra``; else the
    session's default filesystem decides, and the checks run after it starts.
    """
    from fusionrec.ingest.pipeline import check_inputs

    default_fs = cfg.spark.extra.get("spark.hadoop.fs.defaultFS", "file:///")
    bare_is_local = (cfg.spark.master or "").startswith("local") and default_fs.startswith("file:")
    check_inputs(path, source, bare_is_local=bare_is_local)


def run(cfg: Config, args: argparse.Namespace, report: RunReport) -> int:
    from fusionrec.ingest.pipeline import ingest, ingest_directory
    from fusionrec.session import build_spark

    from fusionrec.lake import Lake

    check_before_spark(cfg, args.path, None if args.dir else args.source)
    lake = Lake(build_spark(cfg), cfg.lake)
    with stage("ingest", report) as rec:
        if args.dir:
            result = ingest_directory(lake, cfg, args.path)
            batches = list(result["batches"].values())
        else:
            result = ingest(lake, cfg, args.source, args.path, args.batch_id)
            batches = [result]
        for b in batches:
            for kind, t in b.get("tables", {}).items():
                rec.counts[f"{b['source']}.{kind}.silver"] = t["accepted"]
                rec.counts[f"{b['source']}.{kind}.quarantined"] = t["quarantined"]
    report.results["ingest"] = result
    for b in batches:
        print("\n".join(_summary(b)))
    if cfg.ingest.log_mlflow:
        _log_mlflow(cfg, batches)
    return 0
