"""Delta Lake on the real session: write, read, MERGE upsert, time travel."""

from delta.tables import DeltaTable


def test_write_read_merge_time_travel(spark, tmp_path):
    path = str(tmp_path / "t")
    spark.createDataFrame([(1, "a"), (2, "b")], "id INT, v STRING").write.format("delta").save(path)
    assert spark.read.format("delta").load(path).count() == 2

    updates = spark.createDataFrame([(2, "B"), (3, "c")], "id INT, v STRING")
    (DeltaTable.forPath(spark, path).alias("t")
        .merge(updates.alias("u"), "t.id = u.id")
        .whenMatchedUpdateAll().whenNotMatchedInsertAll().execute())

    now = {r.id: r.v for r in spark.read.format("delta").load(path).collect()}
    assert now == {1: "a", 2: "B", 3: "c"}
    v0 = {r.id: r.v for r in spark.read.format("delta").option("versionAsOf", 0).load(path).collect()}
    assert v0 == {1: "a", 2: "b"}
    assert DeltaTable.forPath(spark, path).history().count() == 2
