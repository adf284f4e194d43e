"""fusionrec train + recommend through the lake: Delta factor tables, parameters JSON,
gold.recommendations with K unseen items and a reason for every user."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from pathlib import Path

import pytest

from pyspark.sql import functions as F

from fusionrec.lake import SCHEMAS
from conftest import table_path
from fusionrec.model.ranker import RANKER_FEATURES
from _synthetic import synthetic

pytestmark = pytest.mark.slow


def _small(cfg):
    return dataclasses.replace(cfg.model, rank=6, max_iter=5, candidates_n=15, k=5, user_blocks=2)


def _synthetic_lake(spark, cfg, *, n_users: int, n_items: int) -> dict:
    """gold.interactions and embeddings.item_embeddings of :func:`_synthetic.synthetic` data in
    ``cfg``'s lake; returns the data."""
    d = synthetic(spark, n_users=n_users, n_items=n_items)
    d["interactions"].write.format("delta").save(table_path(cfg, "gold", "interactions"))
    d["item_vectors"].select("item_id", F.lit("h").alias("content_hash"), F.col("vector").alias("embedding"),
                             F.lit("m").alias("model_id"), F.lit(dt.datetime(2025, 1, 1)).alias("created_ts")) \
        .write.format("delta").save(table_path(cfg, "embeddings", "item_embeddings"))
    return d


def test_train_then_recommend_writes_the_contract_tables(spark, lake_cfg):
    from fusionrec.commands import recommend as recommend_cmd
    from fusionrec.commands import train as train_cmd
    from fusionrec.runlog import RunReport

    cfg = lake_cfg.replace(model=_small(lake_cfg))
    d = _synthetic_lake(spark, cfg, n_users=40, n_items=36)
    d["item_documents"].withColumn("categories", F.array(F.split("text", " ")[1])) \
        .write.format("delta").save(table_path(cfg, "gold", "item_documents"))
    # a user with no interactions at all but... only interactions define users; add one new
    # item without interactions so the text map has something to place
    report = RunReport("train")
    assert train_cmd.run(cfg, None, report) == 0
    assert report.results["train"]["tuning"] == "own search (no evaluation of these inputs)"
    assert len(report.results["train"]["search"]) > 1
    params = json.loads(Path(cfg.lake.root, "model", "fusion_params.json").read_text())
    assert params["ranker"]["features"] == list(RANKER_FEATURES)
    assert len(params["text_to_item_factor"]) == 8 + 1 and len(params["text_to_item_factor"][0]) == 6
    assert params["k"] == 5 and params["candidates_n"] == 15 and params["train_cutoff"]
    items = spark.read.format("delta").load(table_path(cfg, "model", "item_factors"))
    assert set(items.columns) >= {"item_id", "factors", "source"}
    assert items.count() == 36

    report = RunReport("recommend")
    assert recommend_cmd.run(cfg, None, report) == 0
    recs = spark.read.format("delta").load(table_path(cfg, "gold", "recommendations"))
    assert [f.name for f in recs.schema] == [c.strip().split(" ")[0] for c in SCHEMAS["gold.recommendations"].split(",")]
    per_user = recs.groupBy("user_id").agg(F.count(F.lit(1)).alias("n"), F.min("rank").alias("lo"),
                                           F.max("rank").alias("hi")).collect()
    assert len(per_user) == 40 and all(r.n == 5 and r.lo == 1 and r.hi == 5 for r in per_user)
    assert recs.join(d["interactions"], ["user_id", "item_id"]).count() == 0  # seen items excluded
    assert recs.where(F.col("reason").isNull()).count() == 0
    reasons = {r.reason.split(" ")[0] for r in recs.select("reason").distinct().collect()}
    assert reasons & {"similar", "popular"}
    assert report.results["recommend"]["users"] == 40


def test_train_takes_the_evaluations_choice_on_the_same_inputs_only(spark, lake_cfg):
    from fusionrec.commands import train as train_cmd
    from fusionrec.lake import TUNED_SETTINGS
    from fusionrec.model.tuned import TunedSettings, settings_digest
    from fusionrec.runlog import RunReport
    from conftest import lake_of

    cfg = lake_cfg.replace(model=_small(lake_cfg))
    _synthetic_lake(spark, cfg, n_users=30, n_items=24)
    lake = lake_of(spark, cfg)
    # A choice outside the search grid, so that taking it is visible.
    versions = lake.versions(train_cmd.STAGE.reads)
    tuned = TunedSettings(rank=5, reg_param=0.7, alpha=2.5, ranker="pointwise", tables=versions,
                          settings=settings_digest(cfg.to_dict()))
    lake.write_text(TUNED_SETTINGS, tuned.to_json())

    report = RunReport("train")
    assert train_cmd.run(cfg, None, report) == 0
    result = report.results["train"]
    assert result["tuning"].startswith("the evaluation's choice on the same inputs"), result["tuning"]
    assert [(t["rank"], t["reg_param"], t["alpha"]) for t in result["search"]] == [(5, 0.7, 2.5)]
    assert (result["als"]["rank"], result["als"]["reg_param"], result["als"]["alpha"]) == (5, 0.7, 2.5)
    assert result["ranker_choice"]["kind"] == "pointwise"

    # Other settings, another table version, the switch off or a broken file: the search runs.
    other = cfg.replace(model=dataclasses.replace(cfg.model, max_iter=cfg.model.max_iter + 1))
    assert train_cmd.reusable_tuning(lake, other, versions)[1] == (
        "own search (the model, evaluate or features settings differ from the evaluation's)")
    newer = {**versions, "gold.interactions": versions["gold.interactions"] + 1}
    assert train_cmd.reusable_tuning(lake, cfg, newer)[1] == (
        f"own search (gold.interactions is at version {newer['gold.interactions']}, "
        f"the evaluation read version {versions['gold.interactions']})")
    off = cfg.replace(model=dataclasses.replace(cfg.model, search_from_evaluation=False))
    assert train_cmd.reusable_tuning(lake, off, versions) == (None, "own search (model.search_from_evaluation is off)")
    lake.write_text(TUNED_SETTINGS, '{"rank": 5}')
    tuned_again, why = train_cmd.reusable_tuning(lake, cfg, versions)
    assert tuned_again is None and why.startswith("own search (") and "missing key(s) 'reg_param'" in why, why
