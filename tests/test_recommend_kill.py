"""``fusionrec recommend`` killed midway (SIGKILL) and re-run ends exactly like an
uninterrupted run: the same ``gold.recommendations``, no trace of the killed attempt."""

from __future__ import annotations

import dataclasses
import datetime as dt
import shutil

import pytest
from pyspark.sql import functions as F

from _kill import cli_args, committed_version, keyed, kill_midway, log_contains, rows
from _registry_lake import write_lake
from fusionrec.commands import recommend as recommend_cmd
from fusionrec.config import LakeConfig
from conftest import lake_of, table_path
from fusionrec.runlog import RunReport

pytestmark = pytest.mark.faults


def write_model_lake(spark, cfg) -> None:
    """A trained model's lake: factors, parameters, gold inputs, item embeddings, and the
    recommendations of an earlier run (version 0), which the run under test replaces."""
    write_lake(spark, cfg)
    users = table_path(cfg, "model", "user_factors")  # the model stage's layout: every user factor from ALS
    rows(spark, users).withColumn("source", F.lit("als")).write.format("delta").mode("overwrite") \
        .option("overwriteSchema", "true").save(users)
    (rows(spark, table_path(cfg, "features", "item_vectors"))
     .select("item_id", F.lit("h").alias("content_hash"), F.col("vector").alias("embedding"),
             F.lit("m").alias("model_id"), F.lit(dt.datetime(2024, 1, 1)).alias("created_ts"))
     .write.format("delta").save(table_path(cfg, "embeddings", "item_embeddings")))


def test_recommend_killed_midway_then_rerun_matches_uninterrupted(spark, cfg, tmp_path):
    model = dataclasses.replace(cfg.model, k=5, candidates_n=10, user_blocks=2)
    killed_cfg = cfg.replace(lake=LakeConfig(root=str(tmp_path / "killed")), model=model)
    clean_cfg = cfg.replace(lake=LakeConfig(root=str(tmp_path / "clean")), model=model)
    write_model_lake(spark, killed_cfg)
    shutil.copytree(killed_cfg.lake.root, clean_cfg.lake.root)
    recommendations = table_path(killed_cfg, "gold", "recommendations")

    # Killed while scoring: the model is loaded, the new recommendations are not committed.
    args = cli_args(killed_cfg, ["recommend", "--set", "spark.show_progress=false"], ("spark", "lake", "model"))
    kill_midway(args, log_contains(tmp_path / "killed.log", "stage=recommend.score event=start"), tmp_path / "killed.log")
    assert committed_version(spark, recommendations) == 0

    assert recommend_cmd.run(killed_cfg, None, RunReport("recommend")) == 0
    assert recommend_cmd.run(clean_cfg, None, RunReport("recommend")) == 0
    assert committed_version(spark, recommendations) == 1
    killed = keyed(rows(spark, recommendations), ["user_id", "rank"], ["item_id", "reason"])
    clean = keyed(rows(spark, table_path(clean_cfg, "gold", "recommendations")), ["user_id", "rank"], ["item_id", "reason"])
    assert killed == clean
    assert killed[0] == 24 * 5
