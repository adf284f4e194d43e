"""A batch killed midway (SIGKILL) and re-run ends exactly like an uninterrupted run."""

from __future__ import annotations

from pathlib import Path

import pytest

from _kill import cli_args, keyed, kill_midway, path_exists, rows
from fusionrec.config import LakeConfig
from fusionrec.generate import generate
from fusionrec.ingest.pipeline import ingest_directory
from fusionrec.ingest.schema import KEYS
from conftest import table_path, lake_of

pytestmark = pytest.mark.faults

#: Every table a directory ingest writes, with its key columns.
TABLES = {("bronze", "events"): ["batch_id", "raw"], ("quarantine", "events"): ["batch_id", "raw"],
          ("silver", "events"): list(KEYS["silver.events"]), ("silver", "items"): list(KEYS["silver.items"]),
          ("silver", "reviews"): list(KEYS["silver.reviews"]),
          ("gold", "interactions"): list(KEYS["gold.interactions"]),
          ("gold", "item_documents"): list(KEYS["gold.item_documents"]), ("gold", "reviews"): list(KEYS["gold.reviews"]),
          ("bronze", "_batches"): ["batch_id", "status"]}


def snapshot(spark, cfg):
    return {f"{layer}.{name}": keyed(rows(spark, table_path(cfg, layer, name)), keys)
            for (layer, name), keys in TABLES.items()}


def test_sigkill_midway_then_rerun_matches_uninterrupted(spark, cfg, tmp_path):
    data = tmp_path / "input"
    generate(str(data), n_events=4000, n_users=200, n_items=100, seed=3, dirty_share=0.05, n_reviews=300)
    killed_cfg = cfg.replace(lake=LakeConfig(root=str(tmp_path / "killed")))
    clean_cfg = cfg.replace(lake=LakeConfig(root=str(tmp_path / "clean")))

    args = cli_args(killed_cfg, ["ingest", "--dir", "--path", str(data), "--quiet", "--set", "ingest.log_mlflow=false"])
    # Kill once the events batch has started writing: items are done, events/reviews are not.
    kill_midway(args, path_exists(Path(table_path(killed_cfg, "bronze", "events")) / "_delta_log"),
                tmp_path / "killed.log")
    assert not Path(table_path(killed_cfg, "gold", "reviews")).exists()  # really interrupted

    rerun = ingest_directory(lake_of(spark, killed_cfg), killed_cfg, str(data))
    assert rerun["batches"]["items"]["skipped"]  # completed before the kill
    assert not rerun["batches"]["events"]["skipped"]
    ingest_directory(lake_of(spark, clean_cfg), clean_cfg, str(data))
    assert snapshot(spark, killed_cfg) == snapshot(spark, clean_cfg)
