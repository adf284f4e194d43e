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


def test_train_then_recommend_writes_the_contract_tables(spark, lake_cfg):
    from fusionrec.commands import recommend as recommend_cmd
    from fusionrec.commands import train as train_cmd
    from fusionrec.runlog import RunReport

    cfg = lake_cfg.replace(model=_small(lake_cfg))
    d = synthetic(spark, n_users=40, n_items=36)
    now = dt.datetime(2025, 1, 1)
    d["interactions"].write.format("delta").save(table_path(cfg, "gold", "interactions"))
    d["item_vectors"].select("item_id", F.lit("h").alias("content_hash"), F.col("vector").alias("embedding"),
                             F.lit("m").alias("model_id"), F.lit(now).alias("created_ts")) \
        .write.format("delta").save(table_path(cfg, "embeddings", "item_embeddings"))
    d["item_documents"].withColumn("categories", F.array(F.split("text", " ")[1])) \
        .write.format("delta").save(table_path(cfg, "gold", "item_documents"))
    # a user with no interactions at all but... only interactions define users; add one new
    # item without interactions so the text map has something to place
    report = RunReport("train")
    assert train_cmd.run(cfg, None, report) == 0
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
