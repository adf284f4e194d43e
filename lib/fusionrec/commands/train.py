"""``fusionrec train``: fit the fused model on the lake and write factors + parameters."""

from __future__ import annotations

import argparse

from fusionrec.config import Config
from fusionrec.lake import ALS_MODEL, FUSION_PARAMS, Lake
from fusionrec.runlog import RunReport, stage
from fusionrec.stages import Stage

__all__ = ["HELP", "STAGE", "add_arguments", "run"]

HELP = "fit ALS + text maps + ranker on gold.interactions and the embeddings; write model.* and fusion_params.json"


STAGE = Stage(
    "train",
    reads=("gold.interactions", "gold.reviews", "silver.events", "embeddings.item_embeddings",
           "embeddings.review_embeddings"),
    writes=("model.user_factors", "model.item_factors", "model.als_user_ids", "model.als_item_ids"),
    # evaluate: the validation period the search and the ranker are fitted on.
    params=("model", "evaluate", "features"),
    artifacts_out=(FUSION_PARAMS, f"{ALS_MODEL}/metadata/part-00000"),
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    del parser  # only the common options


def run(cfg: Config, args: argparse.Namespace, report: RunReport) -> int:
    from fusionrec.model.train import fit_pipeline, read_training_tables, write_model
    from fusionrec.session import build_spark

    lake = Lake(build_spark(cfg), cfg.lake)
    with stage("train.read", report) as rec:
        tables = read_training_tables(lake)
        rec.counts["interactions"] = tables.interactions.count()
        rec.counts["item_embeddings"] = tables.item_embeddings.count()
        rec.counts["reviews"] = tables.reviews.count() if tables.reviews is not None else 0
    with stage("train.fit", report) as rec:
        fitted = fit_pipeline(tables.interactions, tables.item_embeddings, tables.reviews,
                              tables.review_embeddings, cfg, events=tables.events)
        rec.counts.update(fitted.model.counts)
        # The search's choice as run metrics (the full search is in the report and fusion_params.json).
        rec.counts.update(als_rank=fitted.params.rank, als_reg_param=fitted.params.reg_param,
                          als_alpha=fitted.params.alpha, search_fits=len(fitted.trials),
                          ranker=(fitted.ranker_choice or {}).get("kind"))
        if fitted.ranker.cold_floor is not None:
            rec.counts["cold_slot_floor"] = fitted.ranker.cold_floor
    with stage("train.write", report) as rec:
        params = write_model(lake, fitted, cfg)
        rec.counts["params"] = lake.uri(FUSION_PARAMS)
    doc = params.to_dict()
    report.results["train"] = {"als": doc["als"], "ranker": params.ranker.summary() if params.ranker else None,
                               "search": doc["search"],
                               "train_cutoff": doc["train_cutoff"], "counts": fitted.model.counts,
                               "degraded": doc["degraded"], "cold_slot": doc["cold_slot"],
                               "ranker_choice": doc["ranker_choice"]}
    print(f"model written: {lake.uri(FUSION_PARAMS)} (rank {params.rank}, reg_param {params.als.reg_param:g}, "
          f"alpha {params.als.alpha:g} of {len(fitted.trials)} search fits, "
          f"{fitted.model.counts['als_users']} ALS users, {fitted.model.counts['text_map_items']} text-mapped items)")
    for sentence in params.degraded:
        print(f"degraded: {sentence}")
    return 0
