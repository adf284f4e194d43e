"""Table creation over a killed creator's debris and against a concurrent creator (real Delta)."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

from delta.tables import DeltaTable

from fusionrec.commits import create_table

DDL = "id STRING NOT NULL, n INT, batch_id STRING NOT NULL"
PROPS = {"delta.constraints.n_positive": "n > 0", "delta.enableChangeDataFeed": "true"}


def test_create_over_the_uncommitted_log_of_a_killed_creator(spark, cfg, tmp_path):
    path = str(tmp_path / "t")
    # What a kill during the first commit leaves: the log skeleton and the commit file being written.
    (tmp_path / "t" / "_delta_log" / "_commits").mkdir(parents=True)
    for name in (".00000000000000000000.json.0a1b.tmp", "..00000000000000000000.json.0a1b.tmp.crc"):
        temp = tmp_path / "t" / "_delta_log" / name
        temp.write_bytes(b"")
        old = time.time() - cfg.lake.stale_commit_s - 5
        os.utime(temp, (old, old))
    schema = spark.createDataFrame([], DDL).schema
    assert create_table(spark, path, schema, cfg.lake, ("batch_id",), PROPS)
    detail = DeltaTable.forPath(spark, path).detail().first()
    assert detail["partitionColumns"] == ["batch_id"]
    assert {k: detail["properties"][k] for k in PROPS} == PROPS
    assert [(f.name, f.nullable) for f in spark.read.format("delta").load(path).schema] == \
        [("id", False), ("n", True), ("batch_id", False)]
    assert not create_table(spark, path, schema, cfg.lake, ("batch_id",), PROPS)  # exists: nothing committed
    assert DeltaTable.forPath(spark, path).history().count() == 1


def test_two_writers_creating_one_table_at_once(spark, cfg, tmp_path):
    schema = spark.createDataFrame([], DDL).schema
    for trial in range(3):
        path = str(tmp_path / f"race{trial}")
        results: list[object] = []

        def create() -> None:
            try:
                results.append(create_table(spark, path, schema, cfg.lake, ("batch_id",), PROPS))
            except Exception as exc:  # reported below
                results.append(exc)

        threads = [threading.Thread(target=create) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        # Both may have run the creation (Delta lets an identical CREATE IF NOT EXISTS pass),
        # but one commit created the table, and no writer failed.
        assert len(results) == 2 and all(isinstance(r, bool) for r in results) and any(results), results
        assert DeltaTable.forPath(spark, path).history().count() == 1
        assert Path(path, "_delta_log", "00000000000000000000.json").is_file()
