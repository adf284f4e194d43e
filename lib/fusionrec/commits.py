"""Delta commits that survive a killed writer and concurrent writers.

Delta's optimistic concurrency control (Armbrust et al., "Delta Lake: High-Performance
ACID Table Storage over Cloud Object Stores", VLDB 2020, section 3.2) lets two writers
commit to one table as long as neither read data the other changed; otherwise the later
commit fails with one of :data:`CONFLICTS` and nothing of it is visible. The remedy is to
re-run the whole operation - re-read, recompute, re-commit - which
:func:`retry_on_conflict` does with capped exponential backoff and full jitter
(Brooker, "Exponential Backoff And Jitter", AWS Architecture Blog, 2015), bounded by
``lake.commit_retries``.

:func:`create_table` creates a table in one commit (schema with NOT NULL, partitioning,
properties, CHECK constraints). ``CREATE TABLE`` takes a ``_delta_log`` directory without
any commit - what a creator killed before its first commit leaves - for an existing table,
so such a skeleton (with at most a temporary commit file older than
``lake.stale_commit_s``) is removed first; two writers creating the same table at once
resolve like any other conflict (the loser finds the winner's table on a retry).
"""

from __future__ import annotations

import json
import logging
import random
import re
import time
import uuid
from typing import Callable, Iterable, TypeVar

from delta.exceptions import (
    ConcurrentAppendException,
    ConcurrentDeleteDeleteException,
    ConcurrentDeleteReadException,
    ConcurrentTransactionException,
    ConcurrentWriteException,
    DeltaConcurrentModificationException,
    MetadataChangedException,
    ProtocolChangedException,
)
from delta.tables import DeltaTable
from pyspark.errors import AnalysisException
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import StructType

from fusionrec.config import LakeConfig

__all__ = ["CONFLICTS", "CommitConflictError", "create_table", "create_table_with", "reconcile_table",
           "retry_on_conflict", "TableNotReady"]

log = logging.getLogger(__name__)

T = TypeVar("T")

#: A commit lost to a concurrent one; the operation can be re-run from its reads.
CONFLICTS: tuple[type[Exception], ...] = (
    ConcurrentAppendException,
    ConcurrentDeleteReadException,
    ConcurrentDeleteDeleteException,
    ConcurrentTransactionException,
    ConcurrentWriteException,
    MetadataChangedException,
    ProtocolChangedException,
    DeltaConcurrentModificationException,
)


class CommitConflictError(RuntimeError):
    """An operation still conflicted after ``lake.commit_retries`` retries."""


def backoff_s(attempt: int, lake: LakeConfig, rng: random.Random) -> float:
    """Full jitter: uniform in [0, min(cap, base * 2^attempt)]."""
    return rng.uniform(0.0, min(lake.commit_backoff_max_s, lake.commit_backoff_s * 2 ** attempt))


def retry_on_conflict(action: Callable[[], T], what: str, lake: LakeConfig,
                      also: tuple[type[Exception], ...] = ()) -> T:
    """Run ``action`` (a complete read-compute-commit), re-running it after a Delta conflict
    (or one of the exceptions ``also``).

    :raises CommitConflictError: still conflicting after ``lake.commit_retries`` retries.
    """
    rng = random.Random()
    for attempt in range(lake.commit_retries + 1):
        try:
            return action()
        except CONFLICTS + also as exc:
            if attempt == lake.commit_retries:
                raise CommitConflictError(
                    f"{what}: {type(exc).__name__} after {attempt + 1} attempts "
                    f"(lake.commit_retries={lake.commit_retries})") from exc
            wait = backoff_s(attempt, lake, rng)
            log.warning("%s: %s (concurrent writer); retry %d/%d in %.2fs", what, type(exc).__name__,
                        attempt + 1, lake.commit_retries, wait)
            time.sleep(wait)
    raise AssertionError("unreachable")


#: A commit file being written (Hadoop log stores write ``.<version>.json.<uuid>.tmp``, then rename).
_TEMP_COMMIT = re.compile(r"^\..*\.tmp(\.crc)?$")


class TableNotReady(RuntimeError):
    """No committed version at a table's path yet: another writer is creating it."""


def _remove_uncommitted_log(spark: SparkSession, path: str, stale_s: float) -> None:
    """Remove a ``_delta_log`` without any commit - what a creator killed before its first
    commit leaves (empty directories, and a temporary commit file it was writing), and what
    makes Delta take the path for an existing table.

    Nothing is removed while the log holds anything else, or a temporary commit file younger
    than ``stale_s``: that is a concurrent creator's commit in progress (it is renamed into
    place within moments). Directories are deleted non-recursively, so they go only if empty.
    """
    jvm = spark.sparkContext._jvm
    log_dir = jvm.org.apache.hadoop.fs.Path(f"{path.rstrip('/')}/_delta_log")
    fs = log_dir.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration())
    if not fs.exists(log_dir):
        return
    now_ms = time.time() * 1000
    stale_files, empty_dirs = [], []
    for status in fs.listStatus(log_dir):
        name = status.getPath().getName()
        if status.isDirectory() and not fs.listStatus(status.getPath()):
            empty_dirs.append(status.getPath())
        elif (not status.isDirectory() and _TEMP_COMMIT.match(name)
              and now_ms - status.getModificationTime() > stale_s * 1000):
            stale_files.append(status.getPath())
        else:
            return  # a commit, or one being written: not ours to touch
    log.warning("%s: uncommitted _delta_log left by an interrupted creation: removing it", path)
    for entry in stale_files + empty_dirs:
        fs.delete(entry, False)
    fs.delete(log_dir, False)


def create_table(spark: SparkSession, path: str, schema: StructType, lake: LakeConfig,
                 partition_by: Iterable[str] = (), properties: dict[str, str] | None = None) -> bool:
    """Create an empty Delta table at ``path`` unless one exists, in one commit with its
    schema (NOT NULL included), partitioning and ``properties`` (``delta.*`` table
    properties, CHECK constraints as ``delta.constraints.<name>``); an existing table gets
    the properties it lacks (:func:`reconcile_table`).

    Safe over the debris of a killed creator, and against a concurrent creator: whoever
    commits version 0 first wins, the other finds the table on a retry.
    :returns: whether the table was absent, so this call ran the creation.
    """
    props = properties or {}

    def create() -> bool:
        if DeltaTable.isDeltaTable(spark, path):
            return False
        _remove_uncommitted_log(spark, path, lake.stale_commit_s)
        # Delta compares the location with its own qualified form: file:///x is refused
        # as ambiguous with file:/x, so hand it Hadoop's form.
        location = spark.sparkContext._jvm.org.apache.hadoop.fs.Path(path).toString()
        builder = DeltaTable.createIfNotExists(spark).location(location).addColumns(schema)
        if partition_by:
            builder = builder.partitionedBy(*partition_by)
        for key, value in props.items():
            builder = builder.property(key, value)
        try:
            builder.execute()
        except AnalysisException as exc:
            # Delta saw the concurrent creator's log directory before its first commit.
            if DeltaTable.isDeltaTable(spark, path) or "DELTA_TABLE_NOT_FOUND" in str(exc):
                raise TableNotReady(f"{path}: being created by another writer") from exc
            raise
        if not DeltaTable.isDeltaTable(spark, path):
            raise TableNotReady(f"{path}: being created by another writer")
        return True

    created = retry_on_conflict(create, f"create {path}", lake, also=(TableNotReady,))
    if not created:  # ours was created with every property
        retry_on_conflict(lambda: reconcile_table(spark, path, props), f"alter {path}", lake)
    return created


def create_table_with(spark: SparkSession, path: str, schema: StructType, df: DataFrame, *,
                      partition_by: Iterable[str] = (), properties: dict[str, str] | None = None,
                      user_metadata: str | None = None) -> bool:
    """Create the Delta table at ``path`` holding the rows of ``df``, in one commit (version 0)
    with the table's ``schema`` (NOT NULL included), partitioning and ``properties``, every
    constraint checked on the rows written - what :func:`create_table` and a first write
    commit as two. ``user_metadata``: the commit's ``userMetadata``.

    A DataFrame write into a new path would do it in one commit too, but makes every column
    nullable; so the commit is made with Delta's transaction API.

    :returns: False, having committed nothing, when the path holds a table already - also
        one a concurrent creator committed first (Delta refuses a second version 0): the
        caller then writes to that table as usual.
    """
    jvm = spark.sparkContext._jvm
    delta = jvm.org.apache.spark.sql.delta
    location = jvm.org.apache.hadoop.fs.Path(path).toString()
    log_ = delta.DeltaLog.forTable(spark._jsparkSession, location)
    txn = log_.startTransaction(jvm.scala.Option.empty(), jvm.scala.Option.empty())
    if txn.readVersion() >= 0:
        return False
    partitions = list(partition_by)
    metadata = {"id": str(uuid.uuid4()), "format": {"provider": "parquet", "options": {}},
                "schemaString": schema.json(), "partitionColumns": partitions,
                "configuration": dict(properties or {}), "createdTime": int(time.time() * 1000)}
    actions = getattr(getattr(delta.actions, "Action$"), "MODULE$")  # the Scala object Action
    action = actions.fromJson(json.dumps({"metaData": metadata}))
    rows = df.select(*[F.col(f.name).cast(f.dataType) for f in schema.fields])
    try:
        txn.updateMetadataForNewTable(action)
        files = txn.writeFiles(rows._jdf, jvm.scala.Option.empty())
        seq = jvm.org.apache.spark.api.python.PythonUtils.toSeq
        operation = getattr(delta, "DeltaOperations$Write")(
            jvm.org.apache.spark.sql.SaveMode.ErrorIfExists, jvm.scala.Option.apply(seq(partitions)),
            jvm.scala.Option.empty(), jvm.scala.Option.apply(user_metadata))
        txn.commit(files, operation)
    except Exception:  # a Delta conflict (as PySpark converts it) or a Py4JJavaError
        # A concurrent creator won (our files stay unreferenced). Its version 0 is looked up
        # in the log: the DeltaLog cached for this path may still hold the empty snapshot.
        version0 = jvm.org.apache.hadoop.fs.Path(f"{path.rstrip('/')}/_delta_log/{0:020d}.json")
        if version0.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration()).exists(version0):
            log.info("%s: created by a concurrent writer meanwhile", path)
            return False
        raise
    return True


def reconcile_table(spark: SparkSession, path: str, properties: dict[str, str]) -> None:
    """Give an existing table the ``properties`` it lacks (each an idempotent ALTER; nothing
    is committed when nothing is missing)."""
    # SHOW TBLPROPERTIES reads the table's metadata only; detail() would also list its files.
    have = {row["key"] for row in spark.sql(f"SHOW TBLPROPERTIES delta.`{path}`").collect()}
    for key, value in properties.items():
        if key in have:
            continue
        if key.startswith("delta.constraints."):
            name = key[len("delta.constraints."):]
            spark.sql(f"ALTER TABLE delta.`{path}` ADD CONSTRAINT {name} CHECK ({value})")
        else:
            spark.sql(f"ALTER TABLE delta.`{path}` SET TBLPROPERTIES ('{key}' = '{value}')")
