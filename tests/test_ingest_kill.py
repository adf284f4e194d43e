"""A batch killed midway (SIGKILL) and re-run ends exactly like an uninterrupted run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from fusionrec.config import LakeConfig
from fusionrec.generate import generate
from fusionrec.ingest.pipeline import ingest_directory
from fusionrec.lake import table_path

PROJECT = Path(__file__).resolve().parents[1]
TABLES = [("bronze", "events"), ("quarantine", "events"), ("silver", "events"), ("silver", "items"),
          ("silver", "reviews"), ("gold", "interactions"), ("gold", "item_documents"), ("gold", "reviews")]


def counts(spark, cfg):
    return {f"{layer}.{name}": spark.read.format("delta").load(table_path(cfg, layer, name)).count()
            for layer, name in TABLES}


def test_sigkill_midway_then_rerun_matches_uninterrupted(spark, cfg, tmp_path):
    data = tmp_path / "input"
    generate(str(data), n_events=20_000, n_users=300, n_items=150, seed=3, dirty_share=0.05, n_reviews=1000)
    killed_cfg = cfg.replace(lake=LakeConfig(root=str(tmp_path / "killed")))
    clean_cfg = cfg.replace(lake=LakeConfig(root=str(tmp_path / "clean")))

    args = [sys.executable, "-m", "fusionrec", "ingest", "--dir", "--path", str(data), "--quiet",
            "--set", "ingest.log_mlflow=false"]
    for key, value in killed_cfg.flat().items():
        if key.split(".")[0] in ("spark", "lake") and value is not None and not isinstance(value, dict):
            args += ["--set", f"{key}={value}"]
    proc = subprocess.Popen(args, cwd=PROJECT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    # Kill once the events batch has started writing: items are done, events/reviews are not.
    marker = Path(table_path(killed_cfg, "bronze", "events")) / "_delta_log"
    deadline = time.monotonic() + 600
    while not marker.is_dir() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    assert proc.poll() is None, "the ingest finished before it could be killed"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert not Path(table_path(killed_cfg, "gold", "reviews")).exists()  # really interrupted

    rerun = ingest_directory(spark, killed_cfg, str(data))
    assert rerun["batches"]["items"]["skipped"]  # completed before the kill
    assert not rerun["batches"]["events"]["skipped"]
    ingest_directory(spark, clean_cfg, str(data))
    assert counts(spark, killed_cfg) == counts(spark, clean_cfg)
