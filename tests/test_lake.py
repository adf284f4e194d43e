"""What the Lake reads from Delta's log without a Spark job: the rows its commits wrote."""

from __future__ import annotations

from conftest import lake_of


def test_rows_written_are_the_commit_metrics(spark, lake_cfg):
    """An overwrite counts its rows, a MERGE its inserted and updated rows (not the rows it
    copied), and nothing is counted twice across versions."""
    lake = lake_of(spark, lake_cfg)
    assert lake.rows_written("gold.t", since=None) == 0  # no table yet
    lake.overwrite("gold.t", spark.createDataFrame([(i, "a") for i in range(5)], "id INT, v STRING"))
    first = lake.version("gold.t")
    changes = spark.createDataFrame([(3, "b"), (7, "b"), (8, "b")], "id INT, v STRING")
    (lake.delta("gold.t").alias("t").merge(changes.alias("s"), "t.id = s.id")
     .whenMatchedUpdateAll().whenNotMatchedInsertAll().execute())
    assert lake.rows_written("gold.t", since=None) == 5 + 3
    assert lake.rows_written("gold.t", since=first) == 1 + 2
    assert lake.rows_written("gold.t", since=lake.version("gold.t")) == 0


def test_rows_written_by_one_tagged_commit(spark, lake_cfg):
    """A writer finds its own commit's rows by its tag, whatever other writers committed."""
    lake = lake_of(spark, lake_cfg)
    lake.overwrite("gold.tagged", spark.createDataFrame([(0, "a")], "id INT, v STRING"))
    before = lake.version("gold.tagged")
    rows = spark.createDataFrame([(i, "b") for i in range(4)], "id INT, v STRING")
    rows.write.format("delta").mode("append").option("userMetadata", "mine").save(lake.path("gold.tagged"))
    rows.limit(3).write.format("delta").mode("append").option("userMetadata", "other").save(lake.path("gold.tagged"))
    rows.limit(2).write.format("delta").mode("append").save(lake.path("gold.tagged"))
    assert lake.rows_written("gold.tagged", since=before, tag="mine") == 4
    assert lake.rows_written("gold.tagged", since=before, tag="other") == 3
    assert lake.rows_written("gold.tagged", since=before, tag="absent") == 0
    assert lake.rows_written("gold.tagged", since=before) == 4 + 3 + 2
