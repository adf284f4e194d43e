"""``fusionrec embed``: embed new and changed gold texts with Spark NLP, then build the side features."""

from __future__ import annotations

import argparse

from fusionrec.config import Config
from fusionrec.embed.stage import run_embed
from fusionrec.features import build_features
from fusionrec.runlog import RunReport
from fusionrec.session import build_spark

__all__ = ["HELP", "add_arguments", "run"]

HELP = "embed item documents and reviews into Delta (incremental), then write the feature tables"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--no-features", dest="features", action="store_false",
                        help="only update the embeddings tables, not features.*")


def run(cfg: Config, args: argparse.Namespace, report: RunReport) -> int:
    spark = build_spark(cfg)
    embedded = run_embed(spark, cfg, report)
    report.results["embeddings"] = embedded
    for table, counts in embedded.items():
        if counts.get("status") == "absent":
            print(f"{table}: source table absent, nothing embedded")
            continue
        failed = ", ".join(f"{reason}={n}" for reason, n in sorted(counts["failed_by_reason"].items())) or "none"
        print(
            f"{table}: {counts['input']} records: {counts['embedded']} embedded "
            f"({counts['texts_embedded']} distinct texts through the model), "
            f"{counts['reused_identical']} reused from identical texts, "
            f"{counts['skipped_present']} skipped as already present, "
            f"{counts['quarantined']} quarantined ({failed}), {counts['deleted']} stale vectors deleted"
        )
    if args.features:
        features = build_features(spark, cfg, report)
        report.results["features"] = features
        sentiment = features["sentiment"]
        auc = sentiment.get("auc")
        print(
            f"features: {features['item_vectors']} item vectors, {features['user_profiles']} user profiles, "
            f"{features['review_sentiment']} review sentiment scores, {features['item_sentiment']} items with sentiment"
            + (f" (held-out AUC {auc:.3f})" if auc is not None else f" (sentiment {sentiment['status']})")
        )
    return 0
