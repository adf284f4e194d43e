"""Delta table upkeep: OPTIMIZE (bin-packing compaction) and VACUUM.

Incremental MERGE writes leave many small files; OPTIMIZE rewrites them into fewer
large ones (a new table version; readers of older versions are unaffected). VACUUM
deletes data files that no version younger than the retention period references, so
the retention bounds how far back time travel can go. Delta refuses a retention
below its 7-day safety check; so does this module, because a shorter one can break
concurrent readers and writers.

Suggested schedule: after each nightly pipeline run, ``fusionrec maintain`` (OPTIMIZE
every table that gained files), and VACUUM weekly with the default 168 hours.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from delta.tables import DeltaTable
from pyspark.sql import SparkSession

from fusionrec.config import ConfigError, MaintainConfig

#: Delta's own safety floor (spark.databricks.delta.retentionDurationCheck).
MIN_RETENTION_HOURS = 168


@dataclass(frozen=True)
class TableUpkeep:
    path: str
    files_before: int
    files_after: int
    files_removed_by_optimize: int
    version_after: int


def delta_tables(lake_root: str) -> list[str]:
    """Every Delta table below ``lake_root`` (folders holding a ``_delta_log``)."""
    root = Path(lake_root)
    if not root.is_dir():
        return []
    return sorted(str(p.parent) for p in root.rglob("_delta_log") if p.is_dir())


def _file_count(spark: SparkSession, path: str) -> int:
    return int(DeltaTable.forPath(spark, path).detail().first()["numFiles"])


def maintain_table(spark: SparkSession, path: str, cfg: MaintainConfig) -> TableUpkeep:
    """OPTIMIZE (if configured) then VACUUM one table."""
    if cfg.vacuum_retention_hours < MIN_RETENTION_HOURS:
        raise ConfigError(
            f"maintain.vacuum_retention_hours: {cfg.vacuum_retention_hours} is below {MIN_RETENTION_HOURS} "
            "hours; a shorter retention breaks time travel and concurrent readers"
        )
    table = DeltaTable.forPath(spark, path)
    before = _file_count(spark, path)
    removed = 0
    if cfg.optimize and before > 1:
        metrics = table.optimize().executeCompaction().first()["metrics"]
        removed = int(metrics["numFilesRemoved"])
    table.vacuum(float(cfg.vacuum_retention_hours))
    version = int(table.history(1).first()["version"])
    return TableUpkeep(path, before, _file_count(spark, path), removed, version)


def maintain_lake(spark: SparkSession, lake_root: str, cfg: MaintainConfig) -> list[TableUpkeep]:
    return [maintain_table(spark, path, cfg) for path in delta_tables(lake_root)]
