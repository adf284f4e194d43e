"""Two ingests of different batches running at the same time against one lake both land:
no row lost or duplicated compared with ingesting the batches one after the other."""

from __future__ import annotations

import datetime as dt
import re

import pytest

from _kill import cli_args, keyed, rows, spawn, stop
from fusionrec.config import LakeConfig
from fusionrec.generate import generate
from fusionrec.ingest.pipeline import ingest_directory
from fusionrec.ingest.schema import KEYS
from conftest import table_path, lake_of

pytestmark = pytest.mark.faults

KINDS = ("events", "items")
#: Every table a directory ingest writes: key columns, and the value columns that do not
#: depend on the order of the batches (an item's record does: the later batch wins a tie).
TABLES = {
    **{("bronze", k): (["batch_id", "raw"], []) for k in KINDS},
    **{("quarantine", k): (["batch_id", "raw"], []) for k in KINDS},
    ("silver", "events"): (list(KEYS["silver.events"]), ["batch_id", "weight"]),
    ("silver", "items"): (list(KEYS["silver.items"]), []),
    ("gold", "interactions"): (list(KEYS["gold.interactions"]), ["weight", "n_events", "first_ts", "last_ts"]),
    ("gold", "item_documents"): (list(KEYS["gold.item_documents"]), []),
}
STAGE_LINE = re.compile(r"^(\S+) INFO .*stage=ingest event=(start|end)", re.M)


def snapshot(spark, cfg) -> dict:
    return {f"{layer}.{name}": keyed(rows(spark, table_path(cfg, layer, name)), keys, values)
            for (layer, name), (keys, values) in TABLES.items()}


def ingest_window(log: str) -> tuple[dt.datetime, dt.datetime]:
    times = {event: dt.datetime.fromisoformat(ts) for ts, event in STAGE_LINE.findall(log)}
    return times["start"], times["end"]


def test_two_concurrent_ingests_of_different_batches_both_land(spark, cfg, tmp_path):
    inputs = [tmp_path / "a", tmp_path / "b"]
    for seed, path in enumerate(inputs, start=21):  # same user and item ids, different events and records
        generate(str(path), n_events=1500, n_users=100, n_items=60, seed=seed, dirty_share=0.05, n_reviews=1)
        for reviews in path.glob("reviews*"):  # items and events: two batches per ingest keep the test short
            reviews.unlink()
    together = cfg.replace(lake=LakeConfig(root=str(tmp_path / "together")))
    apart = cfg.replace(lake=LakeConfig(root=str(tmp_path / "apart")))

    logs = [tmp_path / f"ingest-{p.name}.log" for p in inputs]
    procs = [spawn(cli_args(together, ["ingest", "--dir", "--path", str(p), "--set", "ingest.log_mlflow=false",
                                       "--set", "spark.show_progress=false"]), log)
             for p, log in zip(inputs, logs)]
    try:
        for proc in procs:
            proc.wait(timeout=900)
    finally:
        for proc in procs:
            stop(proc)
    texts = [log.read_text(errors="replace") for log in logs]
    for proc, text in zip(procs, texts):
        assert proc.returncode == 0, text[-4000:]
    (start_a, end_a), (start_b, end_b) = (ingest_window(t) for t in texts)
    assert start_a < end_b and start_b < end_a, "the two ingests did not overlap in time"
    retries = sum(t.count("(concurrent writer); retry") + t.count("recomputing") for t in texts)
    print(f"\nconcurrent ingests: {retries} retries after a conflict")

    for path in inputs:
        ingest_directory(lake_of(spark, apart), apart, str(path))
    assert snapshot(spark, together) == snapshot(spark, apart)
    batches = lake_of(spark, together).read("bronze._batches").where("status = 'complete'").select("batch_id").collect()
    assert len(batches) == len({b.batch_id for b in batches}) == 4
