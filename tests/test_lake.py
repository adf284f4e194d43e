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
