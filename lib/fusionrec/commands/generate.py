"""``fusionrec generate``: seeded synthetic logs in the canonical JSONL format."""

from __future__ import annotations

import argparse
import json

from fusionrec.config import Config
from fusionrec.runlog import RunReport, stage

__all__ = ["HELP", "add_arguments", "run"]

HELP = "write seeded synthetic events/items/reviews JSONL (with a share of dirty rows) to a directory"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", required=True, help="output directory (created)")
    parser.add_argument("--events", type=int, default=100_000, help="number of behaviour events")
    parser.add_argument("--users", type=int, default=None, help="number of users (default: events / 50)")
    parser.add_argument("--items", type=int, default=None, help="number of items (default: events / 100)")
    parser.add_argument("--reviews", type=int, default=None, help="number of reviews (default: events / 20)")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--dirty-share", type=float, default=0.05, help="share of dirty rows of every kind")
    parser.add_argument("--gzip", action="store_true", help="write .jsonl.gz files")


def run(cfg: Config, args: argparse.Namespace, report: RunReport) -> int:
    from fusionrec.generate import generate

    n_users = args.users or max(10, args.events // 50)
    n_items = args.items or max(10, args.events // 100)
    with stage("generate", report) as rec:
        result = generate(args.out, args.events, n_users, n_items, args.seed, args.dirty_share,
                          n_reviews=args.reviews, compress=args.gzip)
        rec.counts.update({f"{k}_lines": v for k, v in result["lines"].items()})
    report.results["generate"] = result
    print(json.dumps({"out": result["out_dir"], "lines": result["lines"]}))
    return 0
