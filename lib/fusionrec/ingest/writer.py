"""Delta writers: tables with NOT NULL / CHECK constraints and Change Data Feed, and the
three idempotent write patterns of the ingestion stage.

- :func:`replace_batch` (bronze, quarantine): atomically replaces the rows of one batch
  (``replaceWhere batch_id = ...`` on a table partitioned by ``batch_id``), so a re-run
  writes the same rows once;
- :func:`merge_insert` (silver events and reviews): MERGE inserting only keys not yet present;
- :func:`merge_upsert` (silver items, gold): MERGE updating a matched row only when a
  column differs (and an optional rule allows it), inserting new keys;

and :func:`create_with`, the first write into a table not there yet: it creates the table
holding its rows, in one commit.

Each Delta commit is atomic, so a killed job leaves every table either with or without a
given write, never half of it. Writers of different batches may run at the same time:
every write is re-run after a Delta concurrency conflict (:mod:`fusionrec.commits`), and
table creation tolerates a concurrent creator.
"""

from __future__ import annotations

import re
import uuid
from typing import Any

from pyspark.sql import DataFrame, SparkSession

from fusionrec import commits
from fusionrec.commits import retry_on_conflict
from fusionrec.config import LakeConfig
from fusionrec.errors import InputError
from fusionrec.ingest.schema import CONSTRAINTS, table_schema
from fusionrec.lake import Lake

__all__ = ["create_with", "ensure_table", "merge", "merge_insert", "merge_metrics_summary", "merge_upsert", "replace_batch"]

_BATCH_ID = re.compile(r"^[A-Za-z0-9_.:-]+$")


def _layout(name: str) -> tuple[dict[str, str], tuple[str, ...]]:
    """Table properties (CHECK constraints, Change Data Feed on silver/gold) and partition
    columns of table ``layer.table``."""
    layer = name.partition(".")[0]
    properties = {f"delta.constraints.{c.lower()}": expr for c, expr in CONSTRAINTS.get(name, {}).items()}
    if layer in ("silver", "gold"):
        properties["delta.enableChangeDataFeed"] = "true"
    if layer == "gold":
        # A MERGE updating a few rows of a file marks them deleted instead of rewriting it.
        properties["delta.enableDeletionVectors"] = "true"
    partition_by = ("batch_id",) if layer in ("bronze", "quarantine") and not name.endswith("._batches") else ()
    return properties, partition_by


def ensure_table(lake: Lake, name: str) -> str:
    """Create table ``layer.table`` if absent - schema (NOT NULL included), CHECK constraints,
    partitioning, Change Data Feed on silver/gold - and give an existing table any of these
    it lacks; safe over a killed creator's debris and against a concurrent creator
    (:func:`fusionrec.commits.create_table`). Returns its path."""
    properties, partition_by = _layout(name)
    lake.create(name, table_schema(name), partition_by=partition_by, properties=properties)
    return lake.path(name)


def create_with(lake: Lake, name: str, df: DataFrame, *, tag: str | None = None,
                batch_id: str | None = None) -> int | None:
    """Create table ``layer.table``, absent so far, holding the rows of ``df``: one commit
    instead of :func:`ensure_table` and a first write (the table as :func:`ensure_table`
    makes it). ``tag``: the commit's ``userMetadata``; ``batch_id``: the batch the rows
    belong to, checked as :func:`replace_batch` does.

    Returns
    -------
    int or None
        The rows written (the commit's metrics); None, nothing written, when the table
        exists (also when a concurrent creator committed first): write to it as usual.
    """
    if batch_id is not None:
        _check_batch_id(batch_id)
    if lake.exists(name):
        return None
    tag = tag or uuid.uuid4().hex
    properties, partition_by = _layout(name)
    if not commits.create_table_with(lake.spark, lake.path(name), table_schema(name), df,
                                     partition_by=partition_by, properties=properties, user_metadata=tag):
        return None
    return lake.rows_written(name, since=None, tag=tag)


def _check_batch_id(batch_id: str) -> str:
    if not _BATCH_ID.match(batch_id):
        raise InputError(f"batch id {batch_id!r}: only letters, digits and _.:- are allowed")
    return batch_id


def replace_batch(df: DataFrame, path: str, batch_id: str, lake: LakeConfig, *, tag: str | None = None) -> None:
    """Replace the rows of ``batch_id`` in the table at ``path`` by ``df`` (one atomic commit).

    The table is partitioned by ``batch_id``, so writers of other batches touch other
    partitions and do not conflict; a conflict (the same batch written twice at once) is retried.
    ``tag``: the commit's ``userMetadata``, so that its metrics can be found among other
    writers' commits (:meth:`fusionrec.lake.Lake.rows_written`).
    """
    where = f"batch_id = '{_check_batch_id(batch_id)}'"
    write = df.write.format("delta").mode("overwrite").option("replaceWhere", where)
    if tag is not None:
        write = write.option("userMetadata", tag)
    retry_on_conflict(lambda: write.save(path), f"replace batch {batch_id} in {path}", lake)


def _on(keys: tuple[str, ...]) -> str:
    return " AND ".join(f"t.`{k}` = s.`{k}`" for k in keys)


def _merge(spark: SparkSession, path: str, df: DataFrame, clauses: str, lake: LakeConfig) -> dict[str, int]:
    """``MERGE INTO <path> t USING df s <clauses>``, re-run on a concurrency conflict.

    :returns: this MERGE's own counts (``numTargetRowsInserted``, ``numTargetRowsUpdated``):
        SQL MERGE returns them, whereas the table's latest history entry may already be
        another writer's commit.
    """
    view = f"_merge_source_{uuid.uuid4().hex}"
    df.createOrReplaceTempView(view)
    try:
        row = retry_on_conflict(
            lambda: spark.sql(f"MERGE INTO delta.`{path}` t USING {view} s {clauses}").first(),
            f"merge into {path}", lake)
    finally:
        spark.catalog.dropTempView(view)
    return {"numTargetRowsInserted": int(row["num_inserted_rows"]), "numTargetRowsUpdated": int(row["num_updated_rows"])}


def merge(spark: SparkSession, path: str, df: DataFrame, clauses: str, lake: LakeConfig) -> dict[str, int]:
    """A MERGE with the caller's own ``clauses``, re-run on a concurrency conflict.

    Parameters
    ----------
    spark : SparkSession
    path : str
        The target table's location (``t`` in the clauses).
    df : DataFrame
        The source rows (``s`` in the clauses).
    clauses : str
        What follows ``MERGE INTO <path> t USING df s``: ``ON ... WHEN ...``.
    lake : LakeConfig
        Retry settings.

    Returns
    -------
    dict
        ``numTargetRowsInserted`` and ``numTargetRowsUpdated`` of the commit.
    """
    return _merge(spark, path, df, clauses, lake)


def merge_insert(spark: SparkSession, path: str, df: DataFrame, keys: tuple[str, ...],
                 lake: LakeConfig) -> dict[str, int]:
    """Insert the rows of ``df`` whose key is not in the table yet; returns this commit's counts.

    ``df`` must have unique keys (the cleaning rules remove duplicates). Always a MERGE, even
    into an empty table: a blind append would not conflict with a concurrent writer inserting
    the same keys.
    """
    return _merge(spark, path, df, f"ON {_on(keys)} WHEN NOT MATCHED THEN INSERT *", lake)


def merge_upsert(spark: SparkSession, path: str, df: DataFrame, keys: tuple[str, ...],
                 compare: list[str], lake: LakeConfig, rule: str | None = None) -> dict[str, int]:
    """Upsert ``df``: a matched row is updated only when a ``compare`` column differs (so a
    re-run changes nothing) and ``rule`` (SQL over ``t.``/``s.``) holds; new keys inserted."""
    changed = " OR ".join(f"NOT (t.`{c}` <=> s.`{c}`)" for c in compare)
    condition = f"({changed})" + (f" AND ({rule})" if rule else "")
    return _merge(spark, path, df, f"ON {_on(keys)} WHEN MATCHED AND {condition} THEN UPDATE SET * "
                                   f"WHEN NOT MATCHED THEN INSERT *", lake)


def merge_metrics_summary(metrics: dict[str, Any]) -> dict[str, int]:
    return {"inserted": int(metrics.get("numTargetRowsInserted", 0)),
            "updated": int(metrics.get("numTargetRowsUpdated", 0))}
