"""One micro-batch: ingest with the batch rules, fold in the touched users, MERGE their
top-K into ``gold.recommendations`` and their state into ``gold.user_state``.

Exactly once = the query's checkpoint (a micro-batch not committed there is re-run with
the same offsets and the same ``batchId``) + idempotent writes: the ingest batch id is
derived from the query id and ``batchId`` (a re-run finds the batch complete and skips
the ingest), and the fold-in, recommendation and state writes are MERGEs computed from
the lake, so re-running them changes nothing.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from dataclasses import dataclass
from typing import Any

from pyspark import StorageLevel
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from fusionrec.config import Config
from fusionrec.ingest import writer
from fusionrec.ingest.pipeline import ingest_lines
from fusionrec.lake import SCHEMAS, Lake
from fusionrec.registry.bundle import ModelBundle
from fusionrec.stream.rescore import fold_in, rescore

__all__ = ["INGEST_TABLES", "RECOMMENDATION_COLUMNS", "STATE_TABLES", "USER_STATE_SCHEMA", "StreamModel",
           "prepare_tables", "process_batch", "replace_recommendations", "stream_batch_id", "update_users"]

log = logging.getLogger(__name__)

RECOMMENDATION_COLUMNS = ("user_id", "rank", "item_id", "score", "reason")
#: gold.user_state: the users the stream folded in, after the micro-batch that last touched them.
USER_STATE_SCHEMA = ("user_id STRING NOT NULL, factors ARRAY<FLOAT>, session ARRAY<FLOAT>, n_items INT, "
                     "batch_id STRING NOT NULL, updated_ts TIMESTAMP NOT NULL")


@dataclass(frozen=True)
class StreamModel:
    """What every micro-batch scores with: the serving bundle, the version of
    ``model.item_factors`` it was built from, and the bundle broadcast to the executors
    (once per query)."""

    bundle: ModelBundle
    item_factors_version: int
    shared: Any = None


def stream_batch_id(query_id: str, batch_id: int) -> str:
    """The ingest batch id of micro-batch ``batch_id`` of query ``query_id`` (stable across
    restarts from the same checkpoint).

    >>> stream_batch_id("3f0c9b1e-aaaa-bbbb-cccc-000000000000", 7)
    'stream-3f0c9b1e-000000007'
    """
    return f"stream-{query_id.split('-')[0]}-{batch_id:09d}"


#: Tables a micro-batch writes; created before the query starts (creating a table from
#: the query's own session is refused by Delta as an ambiguous location).
INGEST_TABLES = ("bronze._batches", "bronze.events", "quarantine.events", "silver.events", "gold.interactions")
STATE_TABLES = ("gold.recommendations", "gold.user_state")


def prepare_tables(lake: Lake) -> None:
    """Create every table the stream writes, unless it exists."""
    for table in INGEST_TABLES:
        writer.ensure_table(lake, table)
    for table in STATE_TABLES:
        _ensure(lake, table)


def process_batch(lines: DataFrame, batch_id: str, *, cfg: Config, model: StreamModel, source: str) -> dict[str, Any]:
    """Run one micro-batch of lines ``[_file, _raw, _non_utf8]`` as ingest batch ``batch_id``
    and update the touched users; returns the accounting and the update counts."""
    start = time.perf_counter()
    # The micro-batch belongs to the query's session: temp views (MERGE sources) must too.
    lake = Lake(lines.sparkSession, cfg.lake)
    report = ingest_lines(lake, cfg, kind="events", lines=lines, source=source, batch_id=batch_id)
    events = report["tables"].get("events", {})
    out = {"batch_id": batch_id, "skipped": report.get("skipped", False),
           "read": events.get("rows_in", 0), "accepted": events.get("accepted", 0),
           "quarantined": events.get("quarantined", 0), "duplicates": events.get("duplicates", 0),
           "held_by_other_batches": events.get("held_by_other_batches", 0),
           "by_reason": events.get("by_reason", {})}
    out.update(update_users(lake, cfg, model, batch_id))
    out["seconds"] = round(time.perf_counter() - start, 3)
    log.info("stream batch %s: read %d accepted %d quarantined %d duplicates %d; %d users updated in %.2fs",
             batch_id, out["read"], out["accepted"], out["quarantined"], out["duplicates"], out["users"],
             out["seconds"])
    return out


def update_users(lake: Lake, cfg: Config, model: StreamModel, batch_id: str) -> dict[str, int]:
    """Fold in every user with an event of ingest batch ``batch_id`` in silver (a re-run
    finds the same users) and MERGE their top-K and state."""
    if not lake.exists("silver.events"):
        return {"users": 0}
    touched = (lake.read("silver.events").where(F.col("batch_id") == batch_id)
               .select("user_id").distinct())
    interactions = lake.read("gold.interactions").join(touched, "user_id", "left_semi").persist(
        StorageLevel.MEMORY_AND_DISK)
    try:
        items = lake.read("model.item_factors", model.item_factors_version)
        folded = fold_in(model.bundle, interactions, items).persist(StorageLevel.MEMORY_AND_DISK)
        n_users = folded.count()
        if n_users == 0:
            return {"users": 0}
        recs = rescore(model.bundle, folded, interactions, cfg.stream.k, model.shared).persist(StorageLevel.MEMORY_AND_DISK)
        replace_recommendations(lake, cfg, recs, folded.select("user_id"))
        now = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None, microsecond=0)
        state = folded.select("user_id", "factors", "session", "n_items", F.lit(batch_id).alias("batch_id"),
                              F.lit(now).alias("updated_ts"))
        path = _ensure(lake, "gold.user_state")
        # A re-run of the same micro-batch writes the same state (updated_ts aside): no update.
        writer.merge_upsert(lake.spark, path, state, ("user_id",), ["factors", "session", "n_items", "batch_id"],
                            cfg.lake)
        n_recs = recs.count()
        recs.unpersist()
        folded.unpersist()
        return {"users": n_users, "recommendations": n_recs}
    finally:
        interactions.unpersist()


def replace_recommendations(lake: Lake, cfg: Config, recs: DataFrame, users: DataFrame) -> None:
    """Make ``users``' rows of ``gold.recommendations`` exactly ``recs``, in one MERGE: new
    and changed ranks upserted, ranks no longer there (a shorter list) deleted."""
    path = _ensure(lake, "gold.recommendations")
    current = lake.read("gold.recommendations").join(users, "user_id", "left_semi")
    stale = (current.select("user_id", "rank").join(recs.select("user_id", "rank"), ["user_id", "rank"], "left_anti")
             .select("user_id", "rank", F.lit(None).cast("string").alias("item_id"),
                     F.lit(None).cast("double").alias("score"), F.lit(None).cast("string").alias("reason"),
                     F.lit(True).alias("_delete")))
    source = recs.select(*RECOMMENDATION_COLUMNS, F.lit(False).alias("_delete")).unionByName(stale)
    cols = ", ".join(f"`{c}` = s.`{c}`" for c in RECOMMENDATION_COLUMNS)
    values = ", ".join(f"s.`{c}`" for c in RECOMMENDATION_COLUMNS)
    names = ", ".join(f"`{c}`" for c in RECOMMENDATION_COLUMNS)
    writer.merge(lake.spark, path, source,
                  "ON t.user_id = s.user_id AND t.rank = s.rank "
                  "WHEN MATCHED AND s._delete THEN DELETE "
                  "WHEN MATCHED AND NOT (t.item_id <=> s.item_id AND t.score <=> s.score AND t.reason <=> s.reason) "
                  f"THEN UPDATE SET {cols} "
                  f"WHEN NOT MATCHED AND NOT s._delete THEN INSERT ({names}) VALUES ({values})", cfg.lake)


def _ensure(lake: Lake, table: str) -> str:
    ddl = USER_STATE_SCHEMA if table == "gold.user_state" else SCHEMAS[table]
    lake.create(table, lake.spark.createDataFrame([], ddl).schema)
    return lake.path(table)
