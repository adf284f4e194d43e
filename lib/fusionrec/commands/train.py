"""``fusionrec train``: fit the fused model on the lake and write factors + parameters."""

from __future__ import annotations

import argparse

from fusionrec.config import Config
from fusionrec.model.train import fit_pipeline, params_path, read_inputs, write_model
from fusionrec.runlog import RunReport, stage
from fusionrec.session import build_spark

__all__ = ["HELP", "add_arguments", "run"]

HELP = "fit ALS + text maps + ranker on gold.interactions and the embeddings; write model.* and fusion_params.json"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    del parser  # only the common options


def run(cfg: Config, args: argparse.Namespace, report: RunReport) -> int:
    spark = build_spark(cfg)
    with stage("train.read", report) as rec:
        inputs = read_inputs(spark, cfg)
        rec.counts["interactions"] = inputs["interactions"].count()
        rec.counts["item_embeddings"] = inputs["item_embeddings"].count()
        rec.counts["reviews"] = inputs["reviews"].count() if inputs["reviews"] is not None else 0
    with stage("train.fit", report) as rec:
        fitted = fit_pipeline(inputs["interactions"], inputs["item_embeddings"], inputs["reviews"],
                              inputs["review_embeddings"], cfg, events=inputs["events"])
        rec.counts.update(fitted.model.counts)
    with stage("train.write", report) as rec:
        doc = write_model(fitted, cfg)
        rec.counts["params"] = params_path(cfg)
    report.results["train"] = {"als": doc["als"], "ranker": doc["ranker"], "search": doc["search"],
                               "train_cutoff": doc["train_cutoff"], "counts": fitted.model.counts}
    print(f"model written: {params_path(cfg)} (rank {doc['rank']}, "
          f"{fitted.model.counts['als_users']} ALS users, {fitted.model.counts['text_map_items']} text-mapped items)")
    return 0
