"""End to end on real Spark + Delta: generated logs with every kind of defect are accounted
for row by row, the gold tables hold, re-running a batch changes nothing, privacy holds."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
from delta.tables import DeltaTable
from pyspark.sql import functions as F

from fusionrec.generate import generate
from fusionrec.ingest.accounting import AccountingError, KindAccount
from fusionrec.ingest.pipeline import ingest, ingest_directory
from fusionrec.ingest.privacy import pseudonym_key
from fusionrec.lake import SCHEMAS
from conftest import table_path, lake_of
from _privacy import Leaks, generated_user_ids, reference_pseudonym, scan_lake

TABLES = ["silver.events", "silver.items", "silver.reviews", "gold.interactions", "gold.item_documents",
          "gold.reviews", "quarantine.events", "quarantine.items", "quarantine.reviews", "bronze.events"]


def load(spark, cfg, name):
    layer, _, table = name.partition(".")
    return spark.read.format("delta").load(table_path(cfg, layer, table))


def versions(spark, cfg):
    return {n: DeltaTable.forPath(spark, table_path(cfg, *n.split("."))).history(1).first()["version"] for n in TABLES}


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    out = tmp_path_factory.mktemp("generated")
    return generate(str(out), n_events=3000, n_users=120, n_items=80, seed=11, dirty_share=0.08, n_reviews=600)


def test_generated_logs_accounted_exactly_and_rerun_changes_nothing(spark, lake_cfg, generated):
    report = ingest_directory(lake_of(spark, lake_cfg), lake_cfg, generated["out_dir"])
    for kind, expected in generated["expected"].items():
        got = report["batches"][kind]["tables"][kind]
        assert {k: got[k] for k in expected} == expected, kind
        assert got["rows_in"] == got["accepted"] + got["quarantined"] + got["duplicates"]
        assert got["silver_rows"] == got["accepted"]
        assert got["bronze_rows"] == got["rows_in"] and got["quarantine_rows"] == got["quarantined"]  # commit metrics
        assert load(spark, lake_cfg, f"quarantine.{kind}").count() == got["quarantined"]
        assert load(spark, lake_cfg, f"bronze.{kind}").count() == got["rows_in"]  # raw rows as received

    # Contract schemas (names, types, nullability) of the tables other stages read.
    for name, ddl in SCHEMAS.items():
        if name.split(".")[0] in ("silver", "gold") and name != "gold.recommendations":
            df = load(spark, lake_cfg, name)
            expected = spark.createDataFrame([], ddl).schema
            actual = {f.name: (f.dataType, f.nullable) for f in df.schema.fields}
            assert all(actual[f.name] == (f.dataType, f.nullable) for f in expected.fields), name

    # Gold: one row per user-item, weight = sum of event weights (reviews included).
    events = load(spark, lake_cfg, "silver.events")
    inter = load(spark, lake_cfg, "gold.interactions")
    expected_w = events.groupBy("user_id", "item_id").agg(F.sum("weight").alias("w"), F.count("*").alias("n"))
    diff = inter.join(expected_w, ["user_id", "item_id"], "full_outer") \
        .where("w IS NULL OR weight IS NULL OR abs(weight - w) > 1e-9 OR n_events != n")
    assert diff.count() == 0 and inter.count() == expected_w.count()
    n_review_events = events.where("event_type = 'review'").count()
    assert n_review_events == load(spark, lake_cfg, "silver.reviews").count()
    docs = load(spark, lake_cfg, "gold.item_documents")
    assert docs.count() == generated["expected"]["items"]["accepted"]
    sample = docs.where("item_id = 'i0'").first()
    assert sample["text"].startswith(sample["title"]) and "Categories: " in sample["text"]
    assert docs.where("text RLIKE '<[a-z/]|&amp;|&nbsp;|\\uFFFD'").count() == 0
    reviews = load(spark, lake_cfg, "gold.reviews")
    assert reviews.where("NOT item_known").count() == generated["expected"]["reviews"]["fixes"]["item_unknown"]

    # Privacy: pseudonymised ids, no personal field past bronze.
    key = pseudonym_key(lake_cfg)
    assert events.where(F.col("user_id").startswith("u")).count() == 0
    with open(generated["files"]["reviews"][0], encoding="utf-8", errors="replace") as fh:
        user = next(json.loads(line)["user_id"] for line in fh if line.startswith('{"review_id"') and line.rstrip().endswith("}"))
    assert reviews.where(F.col("user_id") == reference_pseudonym(user, key)).count() >= 1
    # Quarantine keeps each rejected record with its user id pseudonymised (also in
    # unparseable lines); no raw id is left anywhere past bronze.
    quarantine = load(spark, lake_cfg, "quarantine.events")
    bad_ts = quarantine.where("reason = 'ts_out_of_range'").first()["raw"]
    assert json.loads(bad_ts)["user_id"] in {reference_pseudonym(u, key) for u in generated_user_ids(Path(generated["out_dir"]))}
    assert quarantine.where("reason = 'unparseable' AND raw RLIKE '\"user_id\":\"[0-9a-f]{32}\"'").count() > 0
    leaks = Leaks(generated_user_ids(Path(generated["out_dir"])), key)
    scan_lake(spark, Path(lake_cfg.lake.root), leaks)
    assert leaks.tables >= 9 and len(leaks.raw_ids) > 50
    assert not leaks.found, leaks.found
    silver_reviews = load(spark, lake_cfg, "silver.reviews")
    assert silver_reviews.where(F.map_contains_key(F.coalesce("extra", F.create_map().cast("map<string,string>")), "user_name")).count() == 0
    assert load(spark, lake_cfg, "quarantine.reviews").where(F.col("raw").contains('"user_name": "Reviewer')).count() == 0
    # Unknown fields are rescued, not dropped.
    assert events.where(F.col("extra")["session"].isNotNull()).count() > 0
    assert load(spark, lake_cfg, "silver.items").where(F.col("extra")["pages"].isNotNull()).count() > 0

    # Constraints and Change Data Feed on silver and gold.
    props = DeltaTable.forPath(spark, table_path(lake_cfg, "silver", "events")).detail().first()["properties"]
    assert props["delta.enableChangeDataFeed"] == "true" and "delta.constraints.weight_non_negative" in props
    bad = spark.createDataFrame([("x", "u", "i", "view", None, None, -1.0)],
                                "event_id STRING, user_id STRING, item_id STRING, event_type STRING, rating DOUBLE, "
                                "ts TIMESTAMP, weight DOUBLE")
    with pytest.raises(Exception, match="(?i)constraint|null"):
        bad.select("*", F.lit(None).cast("map<string,string>").alias("extra"), F.lit("s").alias("source"),
                   F.lit("b").alias("batch_id"), F.current_timestamp().alias("ingest_ts")) \
            .write.format("delta").mode("append").save(table_path(lake_cfg, "silver", "events"))

    # Re-running the same batch changes nothing: it is recognised and no table gets a commit.
    before = versions(spark, lake_cfg)
    again = ingest_directory(lake_of(spark, lake_cfg), lake_cfg, generated["out_dir"])
    assert all(b["skipped"] for b in again["batches"].values())
    assert versions(spark, lake_cfg) == before

    # A forced replay under a new batch id: MERGE keeps silver and gold identical.
    counts = {n: load(spark, lake_cfg, n).count() for n in TABLES if not n.startswith(("bronze", "quarantine"))}
    gold_before = sorted(map(tuple, load(spark, lake_cfg, "gold.interactions").collect()))
    replay = ingest(lake_of(spark, lake_cfg), lake_cfg, "events", generated["out_dir"], batch_id="replay-1")
    assert replay["tables"]["events"]["held_by_other_batches"] == replay["tables"]["events"]["accepted"]
    assert {n: load(spark, lake_cfg, n).count() for n in counts} == counts
    assert sorted(map(tuple, load(spark, lake_cfg, "gold.interactions").collect())) == gold_before


def test_written_counts_that_do_not_add_up_fail_the_batch():
    """Equations (2)-(4): silver, quarantine and bronze rows of the batch must match its split."""
    account = KindAccount("events", rows_in=10, accepted=7, quarantined=2, duplicates=1)
    account.check_split()
    with pytest.raises(AccountingError, match="not taken"):
        account.check_written()
    good = dict(silver_rows=5, held_by_other_batches=2, quarantine_rows=2, bronze_rows=10)
    dataclasses.replace(account, **good).check_written()
    for field, value, message in [("silver_rows", 6, "accepted 7 != silver rows"),
                                  ("quarantine_rows", 1, "quarantined 2 != quarantine rows"),
                                  ("bronze_rows", 9, "rows in 10 != bronze rows")]:
        with pytest.raises(AccountingError, match=message):
            dataclasses.replace(account, **{**good, field: value}).check_written()
