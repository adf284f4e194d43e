"""The streaming driver SIGKILLed mid-batch and restarted from its checkpoint ends with the
tables of an uninterrupted run: no event lost or counted twice."""

from __future__ import annotations

import dataclasses

import pytest
from pyspark.sql import functions as F

from _kill import cli_args, keyed, kill_midway
from fusionrec.stream.run import start
from test_stream import event, stream_lake

pytestmark = pytest.mark.slow

#: Tables the stream writes, compared without the ids of its batches (two runs, two query ids).
TABLES = {"silver.events": (["event_id", "user_id", "item_id", "weight"], []),
          "gold.interactions": (["user_id", "item_id"], ["weight", "n_events", "last_ts"]),
          "gold.recommendations": (["user_id", "rank"], ["item_id"]),
          "gold.user_state": (["user_id"], ["n_items"])}


def inbox(tmp_path, files: int = 4, per_file: int = 40):
    folder = tmp_path / "inbox"
    folder.mkdir()
    n = 0
    for f in range(files):
        lines = []
        for _ in range(per_file):
            lines.append(event(n, f"u{n % 7}" if n % 3 else f"new{n % 11}", f"i{(n * 5) % 32}", "click"))
            n += 1
        (folder / f"events-{f:04d}.jsonl").write_text("\n".join(lines + ["{bad"]) + "\n")
    return folder


def snapshot(spark, lake):
    return {t: keyed(lake.read(t), keys, values) for t, (keys, values) in TABLES.items()}


def test_sigkill_mid_batch_then_restart_matches_uninterrupted(spark, cfg, tmp_path):
    folder = inbox(tmp_path)
    killed_cfg, _, killed_lake = stream_lake(spark, cfg, tmp_path / "killed")
    killed_cfg = killed_cfg.replace(stream=dataclasses.replace(
        killed_cfg.stream, source="files", path=str(folder), checkpoint=str(tmp_path / "killed-checkpoint"),
        max_per_trigger=1))
    args = cli_args(killed_cfg, ["stream", "--once", "--quiet"], sections=("spark", "lake", "stream"))
    # Killed once the second micro-batch has written silver: its fold-in and recommendations are not done.
    second = lambda: (killed_lake.exists("gold.user_state")  # noqa: E731
                      and killed_lake.read("silver.events").select("batch_id").distinct().count() >= 2)
    kill_midway(args, second, tmp_path / "killed.log")
    start(spark, killed_cfg, trigger_once=True).query.awaitTermination(600)

    clean_cfg, _, clean_lake = stream_lake(spark, cfg, tmp_path / "clean")
    clean_cfg = clean_cfg.replace(stream=dataclasses.replace(
        clean_cfg.stream, source="files", path=str(folder), checkpoint=str(tmp_path / "clean-checkpoint")))
    start(spark, clean_cfg, trigger_once=True).query.awaitTermination(600)

    assert snapshot(spark, killed_lake) == snapshot(spark, clean_lake)
    assert killed_lake.read("silver.events").count() == 160
    assert killed_lake.read("quarantine.events").count() == 4
    factors = {r["user_id"]: r["factors"] for r in killed_lake.read("gold.user_state").collect()}
    clean = {r["user_id"]: r["factors"] for r in clean_lake.read("gold.user_state").collect()}
    assert factors.keys() == clean.keys()
    for user, x in factors.items():
        assert x == pytest.approx(clean[user], abs=1e-6)
