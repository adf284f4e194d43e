"""``fusionrec train``: fit the fused model on the lake and write factors + parameters."""

from __future__ import annotations

import argparse
import logging
from typing import TYPE_CHECKING

from fusionrec.config import Config
from fusionrec.errors import InputError
from fusionrec.lake import ALS_MODEL, FUSION_PARAMS, TUNED_SETTINGS, Lake
from fusionrec.runlog import RunReport, stage
from fusionrec.stages import Stage

if TYPE_CHECKING:
    from fusionrec.model.tuned import TunedSettings

__all__ = ["HELP", "STAGE", "add_arguments", "reusable_tuning", "run"]

log = logging.getLogger(__name__)

HELP = "fit ALS + text maps + ranker on gold.interactions and the embeddings; write model.* and fusion_params.json"


STAGE = Stage(
    "train",
    reads=("gold.interactions", "gold.reviews", "silver.events", "embeddings.item_embeddings",
           "embeddings.review_embeddings"),
    writes=("model.user_factors", "model.item_factors", "model.als_user_ids", "model.als_item_ids"),
    # evaluate: the validation period the search and the ranker are fitted on.
    params=("model", "evaluate", "features"),
    # The evaluation's choice on the same inputs, taken instead of a search of its own.
    artifacts_in=(TUNED_SETTINGS,),
    artifacts_out=(FUSION_PARAMS, f"{ALS_MODEL}/metadata/part-00000"),
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    del parser  # only the common options


def reusable_tuning(lake: Lake, cfg: Config, versions: dict[str, int | None]) -> tuple[TunedSettings | None, str]:
    """The evaluation's choice (:mod:`fusionrec.model.tuned`) when this fit may take it, and a
    sentence saying where the fit's setting comes from."""
    from fusionrec.model.tuned import TunedSettings, settings_digest

    if not cfg.model.search_from_evaluation:
        return None, "own search (model.search_from_evaluation is off)"
    text = lake.read_text(TUNED_SETTINGS)
    if text is None:
        return None, "own search (no evaluation of these inputs)"
    try:
        tuned = TunedSettings.from_json(text)
    except InputError as exc:
        log.warning("%s: %s; the search runs instead", lake.uri(TUNED_SETTINGS), exc)
        return None, f"own search ({lake.uri(TUNED_SETTINGS)}: {exc})"
    refused = tuned.reuse_refused(versions, settings_digest(cfg.to_dict()))
    if refused is not None:
        return None, f"own search ({refused})"
    return tuned, f"the evaluation's choice on the same inputs ({tuned.describe()})"


def run(cfg: Config, args: argparse.Namespace, report: RunReport) -> int:
    from fusionrec.model.train import fit_pipeline, read_training_tables, write_model
    from fusionrec.session import build_spark

    lake = Lake(build_spark(cfg), cfg.lake)
    with stage("train.read", report) as rec:
        versions = lake.versions(STAGE.reads)
        tables = read_training_tables(lake)
        rec.counts["interactions"] = tables.interactions.count()
        rec.counts["item_embeddings"] = tables.item_embeddings.count()
        rec.counts["reviews"] = tables.reviews.count() if tables.reviews is not None else 0
    tuned, tuning = reusable_tuning(lake, cfg, versions)
    if tuned is not None:
        cfg = cfg.replace(model=tuned.applied_to(cfg.model))
    with stage("train.fit", report) as rec:
        rec.counts["tuning"] = "evaluation" if tuned is not None else "search"
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
    report.results["train"] = {"als": doc["als"], "tuning": tuning,
                               "ranker": params.ranker.summary() if params.ranker else None, "search": doc["search"],
                               "train_cutoff": doc["train_cutoff"], "counts": fitted.model.counts,
                               "degraded": doc["degraded"], "cold_slot": doc["cold_slot"],
                               "ranker_choice": doc["ranker_choice"]}
    print(f"model written: {lake.uri(FUSION_PARAMS)} (rank {params.rank}, reg_param {params.als.reg_param:g}, "
          f"alpha {params.als.alpha:g}: {tuning}; {len(fitted.trials)} search fit(s), "
          f"{fitted.model.counts['als_users']} ALS users, {fitted.model.counts['text_map_items']} text-mapped items)")
    for sentence in params.degraded:
        print(f"degraded: {sentence}")
    return 0
