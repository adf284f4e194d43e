"""``fusionrec model``: import the embedding model into Spark NLP and cache it."""

from __future__ import annotations

import argparse

from fusionrec.config import Config
from fusionrec.runlog import RunReport, stage

__all__ = ["HELP", "add_arguments", "run"]

HELP = "import the sentence-embedding model (ONNX) into Spark NLP and save it in the model cache"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--force", action="store_true", help="rebuild even if the cache is valid")


def run(cfg: Config, args: argparse.Namespace, report: RunReport) -> int:
    from fusionrec.embed.model import build_model_cache, cache_path
    from fusionrec.session import build_spark

    spark = build_spark(cfg)
    with stage("model", report) as rec:
        path = build_model_cache(spark, cfg.embed, force=args.force)
        rec.counts["path"] = str(path)
    report.results["model_cache"] = str(cache_path(cfg.embed))
    print(f"model cache: {path}")
    return 0
