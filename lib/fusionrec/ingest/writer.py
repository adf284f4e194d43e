"""Delta writers: tables with NOT NULL / CHECK constraints and Change Data Feed, and the
three idempotent write patterns of the ingestion stage.

- :func:`replace_batch` (bronze, quarantine): atomically replaces the rows of one batch
  (``replaceWhere batch_id = ...`` on a table partitioned by ``batch_id``), so a re-run
  writes the same rows once;
- :func:`merge_insert` (silver events and reviews): MERGE inserting only keys not yet present;
- :func:`merge_upsert` (silver items, gold): MERGE updating a matched row only when a
  column differs (and an optional rule allows it), inserting new keys.

Each Delta commit is atomic, so a killed job leaves every table either with or without a
given write, never half of it.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from delta.tables import DeltaTable
from pyspark.sql import DataFrame, SparkSession

from fusionrec.config import Config
from fusionrec.ingest.schema import CONSTRAINTS, table_schema
from fusionrec.lake import table_path

log = logging.getLogger(__name__)

_BATCH_ID = re.compile(r"^[A-Za-z0-9_.:-]+$")


def path_of(cfg: Config, name: str) -> str:
    layer, _, table = name.partition(".")
    return table_path(cfg, layer, table)


def _remove_uncommitted(spark: SparkSession, path: str) -> None:
    """Delete the debris of an interrupted table creation at ``path`` (no Delta commit exists)."""
    jvm = spark.sparkContext._jvm
    hadoop_path = jvm.org.apache.hadoop.fs.Path(path)
    fs = hadoop_path.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration())
    if fs.exists(hadoop_path):
        log.warning("%s: not a Delta table (an interrupted creation?): removing it before creating", path)
        fs.delete(hadoop_path, True)


def ensure_table(spark: SparkSession, cfg: Config, name: str) -> str:
    """Create table ``layer.table`` if absent - schema (NOT NULL included), CHECK constraints,
    partitioning, Change Data Feed on silver/gold, all in the one creating commit - and add
    any CHECK constraint an existing table lacks; returns its path."""
    path = path_of(cfg, name)
    layer = name.partition(".")[0]
    wanted = CONSTRAINTS.get(name, {})
    if not DeltaTable.isDeltaTable(spark, path):
        # A process killed while creating the table may leave files but no committed
        # version behind; Delta refuses to create a table over them.
        _remove_uncommitted(spark, path)
        builder = DeltaTable.createOrReplace(spark).location(path).addColumns(table_schema(name))
        if layer in ("silver", "gold"):
            builder = builder.property("delta.enableChangeDataFeed", "true")
        if layer in ("bronze", "quarantine") and not name.endswith("._batches"):
            builder = builder.partitionedBy("batch_id")
        for constraint, expr in wanted.items():
            builder = builder.property(f"delta.constraints.{constraint.lower()}", expr)
        builder.execute()
        return path
    if wanted:
        properties = DeltaTable.forPath(spark, path).detail().select("properties").first()[0] or {}
        for constraint, expr in wanted.items():
            if f"delta.constraints.{constraint.lower()}" not in properties:
                spark.sql(f"ALTER TABLE delta.`{path}` ADD CONSTRAINT {constraint} CHECK ({expr})")
    return path


def _check_batch_id(batch_id: str) -> str:
    if not _BATCH_ID.match(batch_id):
        raise ValueError(f"batch id {batch_id!r}: only letters, digits and _.:- are allowed")
    return batch_id


def replace_batch(df: DataFrame, path: str, batch_id: str) -> None:
    """Replace the rows of ``batch_id`` in the table at ``path`` by ``df`` (one atomic commit)."""
    (df.write.format("delta").mode("overwrite")
     .option("replaceWhere", f"batch_id = '{_check_batch_id(batch_id)}'").save(path))


def last_metrics(spark: SparkSession, path: str) -> dict[str, int]:
    """Operation metrics of the table's latest commit (``numTargetRowsInserted``, ...)."""
    row = DeltaTable.forPath(spark, path).history(1).select("operationMetrics").first()
    return {k: int(v) for k, v in (row[0] or {}).items() if str(v).lstrip("-").isdigit()}


def _on(keys: tuple[str, ...]) -> str:
    return " AND ".join(f"t.{k} = s.{k}" for k in keys)


def is_empty(spark: SparkSession, path: str) -> bool:
    """The table has no data files (read from the Delta log, no scan)."""
    return DeltaTable.forPath(spark, path).detail().select("numFiles").first()[0] == 0


def _append(spark: SparkSession, path: str, df: DataFrame) -> dict[str, int]:
    """Into an empty table, a MERGE inserts every source row: an append, minus the join."""
    df.write.format("delta").mode("append").save(path)
    metrics = last_metrics(spark, path)
    return {"numTargetRowsInserted": metrics.get("numOutputRows", 0), "numTargetRowsUpdated": 0}


def merge_insert(spark: SparkSession, path: str, df: DataFrame, keys: tuple[str, ...]) -> dict[str, int]:
    """Insert the rows of ``df`` whose key is not in the table yet; returns commit metrics.

    ``df`` must have unique keys (the cleaning rules remove duplicates).
    """
    if is_empty(spark, path):
        return _append(spark, path, df)
    (DeltaTable.forPath(spark, path).alias("t").merge(df.alias("s"), _on(keys))
     .whenNotMatchedInsertAll().execute())
    return last_metrics(spark, path)


def merge_upsert(spark: SparkSession, path: str, df: DataFrame, keys: tuple[str, ...],
                 compare: list[str], rule: str | None = None) -> dict[str, int]:
    """Upsert ``df``: a matched row is updated only when a ``compare`` column differs (so a
    re-run changes nothing) and ``rule`` (SQL over ``t.``/``s.``) holds; new keys inserted."""
    if is_empty(spark, path):
        return _append(spark, path, df)
    changed = " OR ".join(f"NOT (t.`{c}` <=> s.`{c}`)" for c in compare)
    condition = f"({changed})" + (f" AND ({rule})" if rule else "")
    (DeltaTable.forPath(spark, path).alias("t").merge(df.alias("s"), _on(keys))
     .whenMatchedUpdateAll(condition=condition).whenNotMatchedInsertAll().execute())
    return last_metrics(spark, path)


def read(spark: SparkSession, cfg: Config, name: str) -> DataFrame:
    return spark.read.format("delta").load(path_of(cfg, name))


def exists(spark: SparkSession, cfg: Config, name: str) -> bool:
    return DeltaTable.isDeltaTable(spark, path_of(cfg, name))


def merge_metrics_summary(metrics: dict[str, Any]) -> dict[str, int]:
    return {"inserted": int(metrics.get("numTargetRowsInserted", 0)),
            "updated": int(metrics.get("numTargetRowsUpdated", 0))}
