"""OPTIMIZE + VACUUM keep the data and time travel within the retention."""

import dataclasses

import pytest

from conftest import lake_of
from fusionrec.config import ConfigError
from fusionrec.maintain import maintain_lake


def test_compacts_small_files_and_keeps_time_travel(spark, lake_cfg):
    lake = lake_of(spark, lake_cfg)
    path = f"{lake_cfg.lake.root}/silver/things"
    for i in range(4):  # four appends -> at least four small files
        spark.range(i * 10, i * 10 + 10).repartition(1).write.format("delta").mode("append").save(path)
    assert lake.tables() == ["silver.things"]

    tracker = spark.sparkContext.statusTracker()
    spark.sparkContext.setJobGroup("maintain-under-test", "OPTIMIZE and VACUUM of one small table")
    try:
        [result] = maintain_lake(lake, lake_cfg.maintain)
    finally:
        spark.sparkContext.setLocalProperty("spark.jobGroup.id", None)
    assert result.files_before >= 4 and result.files_after == 1
    # On one machine VACUUM lists the table in a few tasks, not Spark's default 10,000 (each
    # a task's fixed cost: tens of seconds for four files).
    jobs = [tracker.getJobInfo(j) for j in tracker.getJobIdsForGroup("maintain-under-test")]
    stages = [tracker.getStageInfo(s) for job in jobs if job is not None for s in job.stageIds]
    assert stages and sum(s.numTasks for s in stages if s is not None) < 1000
    assert spark.read.format("delta").load(path).count() == 40
    # Files of old versions are younger than the retention: time travel still works.
    assert spark.read.format("delta").option("versionAsOf", 0).load(path).count() == 10


def test_refuses_retention_that_breaks_time_travel(spark, lake_cfg):
    spark.range(3).write.format("delta").save(f"{lake_cfg.lake.root}/gold/x")
    short = dataclasses.replace(lake_cfg.maintain, vacuum_retention_hours=1)
    with pytest.raises(ConfigError, match="maintain.vacuum_retention_hours: 1 is below 168"):
        maintain_lake(lake_of(spark, lake_cfg), short)
