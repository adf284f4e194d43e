"""``fusionrec maintain``: compact and vacuum every Delta table of the lake."""

from __future__ import annotations

import argparse

from fusionrec.config import Config
from fusionrec.lake import Lake
from fusionrec.maintain import maintain_lake
from fusionrec.runlog import RunReport, stage

__all__ = ["HELP", "add_arguments", "run"]

HELP = "OPTIMIZE (compaction) and VACUUM every Delta table under lake.root, keeping time travel within the retention"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """No options of its own: retention and compaction come from the ``maintain`` config section."""


def run(cfg: Config, args: argparse.Namespace, report: RunReport) -> int:
    from fusionrec.session import build_spark

    lake = Lake(build_spark(cfg), cfg.lake)
    with stage("maintain", report) as rec:
        results = maintain_lake(lake, cfg.maintain)
        rec.counts.update(tables=len(results), files_before=sum(r.files_before for r in results),
                          files_after=sum(r.files_after for r in results))
    report.results["tables"] = [r.__dict__ for r in results]
    for r in results:
        print(f"{r.path}: {r.files_before} -> {r.files_after} files (version {r.version_after})")
    return 0
