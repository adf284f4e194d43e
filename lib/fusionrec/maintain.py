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
from fusionrec.config import ConfigError, MaintainConfig
from fusionrec.lake import Lake

__all__ = ["MIN_RETENTION_HOURS", "maintain_table", "maintain_lake", "TableUpkeep"]

#: Delta's own safety floor (spark.databricks.delta.retentionDurationCheck).
MIN_RETENTION_HOURS = 168


@dataclass(frozen=True)
class TableUpkeep:
    path: str
    files_before: int
    files_after: int
    files_removed_by_optimize: int
    version_after: int


def _file_count(lake: Lake, table: str) -> int:
    return int(lake.delta(table).detail().first()["numFiles"])


def maintain_table(lake: Lake, table: str, cfg: MaintainConfig) -> TableUpkeep:
    """OPTIMIZE (if configured) then VACUUM one table."""
    if cfg.vacuum_retention_hours < MIN_RETENTION_HOURS:
        raise ConfigError(
            f"maintain.vacuum_retention_hours: {cfg.vacuum_retention_hours} is below {MIN_RETENTION_HOURS} "
            "hours; a shorter retention breaks time travel and concurrent readers"
        )
    delta = lake.delta(table)
    before = _file_count(lake, table)
    removed = 0
    if cfg.optimize and before > 1:
        metrics = delta.optimize().executeCompaction().first()["metrics"]
        removed = int(metrics["numFilesRemoved"])
    delta.vacuum(float(cfg.vacuum_retention_hours))
    return TableUpkeep(lake.path(table), before, _file_count(lake, table), removed, lake.version(table))


def maintain_lake(lake: Lake, cfg: MaintainConfig) -> list[TableUpkeep]:
    """OPTIMIZE and VACUUM every table of ``lake`` (:meth:`Lake.tables`)."""
    return [maintain_table(lake, table, cfg) for table in lake.tables()]
