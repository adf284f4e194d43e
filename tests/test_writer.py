"""fusionrec's Delta writers (ingest/writer.py on commits.py): constraints, and re-runs that
change nothing - the properties the ingest's kill and rerun guarantees rest on."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest
from delta.tables import DeltaTable
from pyspark.sql.types import _parse_datatype_string

from conftest import lake_of
from fusionrec.commits import create_table
from fusionrec.errors import InputError
from fusionrec.ingest import writer
from fusionrec.ingest.schema import CONSTRAINTS

SCHEMA = "id STRING NOT NULL, v STRING, ts TIMESTAMP, batch_id STRING NOT NULL"
RULE = "t.ts IS NULL OR s.ts >= t.ts"  # the silver.items rule: an older record never replaces a newer one
T1, T2 = dt.datetime(2024, 1, 1), dt.datetime(2024, 2, 1)


def rows(spark, *values):
    return spark.createDataFrame(list(values), SCHEMA)


def content(spark, path):
    return sorted(tuple(r) for r in spark.read.format("delta").load(path).collect())


def table(spark, lake_cfg, name, partition_by=()):
    path = f"{lake_cfg.lake.root}/test/{name}"
    assert create_table(spark, path, _parse_datatype_string(SCHEMA), lake_cfg.lake, partition_by)
    return path


def test_ensure_table_declares_constraints_once(spark, lake_cfg):
    lake = lake_of(spark, lake_cfg)
    path = writer.ensure_table(lake, "silver.items")
    assert writer.ensure_table(lake, "silver.items") == path
    assert lake.version("silver.items") == 0  # the second call committed nothing
    properties = DeltaTable.forPath(spark, path).detail().first()["properties"]
    assert properties["delta.enableChangeDataFeed"] == "true"
    for name, expr in CONSTRAINTS["silver.items"].items():
        assert properties[f"delta.constraints.{name}"] == expr
    bad = lake.read("silver.items").limit(0).unionByName(
        spark.createDataFrame([("i1", -1.0, False, "test", "b1", T1)],
                              "item_id STRING, price DOUBLE, truncated BOOLEAN, source STRING, batch_id STRING, "
                              "ingest_ts TIMESTAMP"), allowMissingColumns=True)
    with pytest.raises(Exception, match="price_non_negative"):
        writer.merge_insert(spark, path, bad, ("item_id",), lake_cfg.lake)
    assert lake.read("silver.items").count() == 0


def test_merge_insert_inserts_a_key_once(spark, lake_cfg):
    path = table(spark, lake_cfg, "insert")
    first = rows(spark, ("a", "1", T1, "b1"), ("b", "2", T1, "b1"))
    assert writer.merge_insert(spark, path, first, ("id",), lake_cfg.lake)["numTargetRowsInserted"] == 2
    assert writer.merge_insert(spark, path, first, ("id",), lake_cfg.lake) == {
        "numTargetRowsInserted": 0, "numTargetRowsUpdated": 0}
    later = rows(spark, ("a", "changed", T2, "b2"), ("c", "3", T2, "b2"))
    assert writer.merge_insert(spark, path, later, ("id",), lake_cfg.lake)["numTargetRowsInserted"] == 1
    assert content(spark, path) == [("a", "1", T1, "b1"), ("b", "2", T1, "b1"), ("c", "3", T2, "b2")]


def test_merge_upsert_updates_only_changed_rows_the_rule_allows(spark, lake_cfg):
    path = table(spark, lake_cfg, "upsert")
    base = rows(spark, ("a", "1", T1, "b1"), ("b", "2", T2, "b1"))
    upsert = lambda df: writer.merge_upsert(spark, path, df, ("id",), ["v", "ts"], lake_cfg.lake, RULE)  # noqa: E731
    assert upsert(base) == {"numTargetRowsInserted": 2, "numTargetRowsUpdated": 0}
    assert upsert(base) == {"numTargetRowsInserted": 0, "numTargetRowsUpdated": 0}  # a re-run changes nothing
    newer_a, older_b = ("a", "1b", T2, "b2"), ("b", "2-old", T1, "b2")
    assert upsert(rows(spark, newer_a, older_b)) == {"numTargetRowsInserted": 0, "numTargetRowsUpdated": 1}
    assert content(spark, path) == [newer_a, ("b", "2", T2, "b1")]


def test_replace_batch_rewrites_its_own_batch_only(spark, lake_cfg):
    path = table(spark, lake_cfg, "batches", partition_by=("batch_id",))
    writer.replace_batch(rows(spark, ("a", "1", T1, "b1"), ("b", "2", T1, "b1")), path, "b1", lake_cfg.lake)
    writer.replace_batch(rows(spark, ("c", "3", T1, "b2")), path, "b2", lake_cfg.lake)
    rerun = rows(spark, ("a", "1", T1, "b1"))  # a re-run of b1 that now reads one row
    writer.replace_batch(rerun, path, "b1", lake_cfg.lake)
    writer.replace_batch(rerun, path, "b1", lake_cfg.lake)
    assert content(spark, path) == [("a", "1", T1, "b1"), ("c", "3", T1, "b2")]
    with pytest.raises(ValueError, match="only letters, digits"):
        writer.replace_batch(rerun, path, "b1' OR '1'='1", lake_cfg.lake)
    assert content(spark, path) == [("a", "1", T1, "b1"), ("c", "3", T1, "b2")]


def test_create_with_makes_the_table_of_ensure_table_in_one_commit(spark, lake_cfg):
    lake = lake_of(spark, lake_cfg)
    ddl = "item_id STRING, title STRING, truncated BOOLEAN, source STRING, batch_id STRING, ingest_ts TIMESTAMP, " \
          "price DOUBLE"

    def items(price):
        given = spark.createDataFrame([("i1", "Lamp", False, "test", "b1", T1, price)], ddl)
        return spark.createDataFrame([], writer.table_schema("silver.items")).unionByName(given, allowMissingColumns=True)

    with pytest.raises(Exception, match="price_non_negative"):  # the first rows are checked too
        writer.create_with(lake, "silver.items", items(-1.0))
    assert not lake.exists("silver.items")
    assert writer.create_with(lake, "silver.items", items(2.0), tag="t1") == 1
    assert writer.create_with(lake, "silver.items", items(2.0)) is None  # exists: nothing written
    assert lake.version("silver.items") == 0 and lake.read("silver.items").count() == 1
    assert lake.history("silver.items").first()["userMetadata"] == "t1"
    reference = lake_of(spark, lake_cfg.replace(lake=dataclasses.replace(lake_cfg.lake, root=lake_cfg.lake.root + "2")))
    writer.ensure_table(reference, "silver.items")
    assert lake.read("silver.items").schema == reference.read("silver.items").schema  # NOT NULL kept
    detail, expected = (DeltaTable.forPath(spark, lk.path("silver.items")).detail().first() for lk in (lake, reference))
    assert detail["properties"] == expected["properties"] and detail["partitionColumns"] == expected["partitionColumns"]
    with pytest.raises(InputError, match="only letters, digits"):
        writer.create_with(lake, "bronze.items", spark.createDataFrame([("x",)], "raw STRING"), batch_id="b' OR 1=1")
    assert not lake.exists("bronze.items")
