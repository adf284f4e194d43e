"""``fusionrec embed``: embed new and changed gold texts with Spark NLP, then build the side features."""

from __future__ import annotations

import argparse

from fusionrec.config import Config
from fusionrec.runlog import RunReport
from fusionrec.lake import Lake
from fusionrec.stages import Stage

__all__ = ["HELP", "STAGE", "add_arguments", "run"]

HELP = "embed item documents and reviews into Delta (incremental), then write the feature tables"


STAGE = Stage(
    "embed",
    reads=("gold.interactions", "gold.item_documents", "gold.reviews"),
    writes=("embeddings.item_embeddings", "embeddings.review_embeddings", "quarantine.embedding_failures",
            "features.item_vectors", "features.user_profiles", "features.review_sentiment",
            "features.item_sentiment"),
    params=("embed", "features"),
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--no-features", dest="features", action="store_false",
                        help="only update the embeddings tables, not features.*")


def run(cfg: Config, args: argparse.Namespace, report: RunReport) -> int:
    from fusionrec.embed.stage import run_embed
    from fusionrec.features import build_features
    from fusionrec.session import build_spark

    lake = Lake(build_spark(cfg), cfg.lake)
    embedded = run_embed(lake, cfg.embed, report)
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
        features = build_features(lake, cfg.features, report)
        report.results["features"] = features
        sentiment = features["sentiment"]
        auc = sentiment.get("auc")
        print(
            f"features: {features['item_vectors']} item vectors, {features['user_profiles']} user profiles, "
            f"{features['review_sentiment']} review sentiment scores, {features['item_sentiment']} items with sentiment"
            + (f" (held-out AUC {auc:.3f})" if auc is not None else f" (sentiment {sentiment['status']})")
        )
    return 0
