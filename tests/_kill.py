"""Fault-test helpers: run a ``fusionrec`` command in a child process, SIGKILL it midway,
and compare the tables a stage wrote with those of an uninterrupted run.

The child runs in its own session (process group), so that ``os.killpg`` takes down the
Python driver and its JVM together, as a lost node or an OOM killer would.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, Iterable

from delta.tables import DeltaTable
from pyspark.sql import DataFrame, SparkSession

from fusionrec.config import Config

PROJECT = Path(__file__).resolve().parents[1]
#: The child's driver: small, it shares the machine with the test session's own driver.
CHILD_DRIVER_MEMORY = "2g"


def cli_args(cfg: Config, command: list[str], sections: Iterable[str] = ("spark", "lake")) -> list[str]:
    """``python -m fusionrec <command>`` with every scalar setting of ``sections`` of ``cfg``
    passed as ``--set``, so the child writes where the test reads (options in ``command``
    come last, so they win)."""
    args = [sys.executable, "-m", "fusionrec", command[0]]
    for key, value in cfg.flat().items():
        if key.split(".")[0] in sections and value is not None and not isinstance(value, (dict, list)):
            args += ["--set", f"{key}={value}"]
    return args + ["--set", f"spark.driver_memory={CHILD_DRIVER_MEMORY}", *command[1:]]


def log_contains(log: Path, text: str) -> Callable[[], bool]:
    """Marker: ``text`` appeared in the child's log."""
    return lambda: log.is_file() and text in log.read_text(errors="replace")


def path_exists(path: str | Path) -> Callable[[], bool]:
    """Marker: ``path`` exists."""
    return lambda: Path(path).exists()


def spawn(args: list[str], log: Path) -> subprocess.Popen:
    """Start ``args`` in the project folder, in its own session, output to ``log``."""
    with open(log, "wb") as out:
        return subprocess.Popen(args, cwd=PROJECT, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


def stop(proc: subprocess.Popen) -> None:
    """SIGKILL the process group of ``proc`` if it still runs (leave nothing behind)."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=60)


def kill_midway(args: list[str], midway: Callable[[], bool], log: Path, timeout_s: float = 600) -> str:
    """Start ``args``, wait until ``midway()`` holds, SIGKILL the child's whole process group.

    Fails the test when the child ends on its own first (it could not be killed midway).
    :returns: the child's log (stdout and stderr).
    """
    proc = spawn(args, log)
    try:
        deadline = time.monotonic() + timeout_s
        while not midway() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert proc.poll() is None, f"the child ended (rc {proc.returncode}) before it could be killed:\n" \
                                    + log.read_text(errors="replace")[-3000:]
        assert midway(), f"no marker after {timeout_s}s:\n" + log.read_text(errors="replace")[-3000:]
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=60)
        assert proc.returncode == -signal.SIGKILL
    finally:
        stop(proc)  # after a failed assertion above
    return log.read_text(errors="replace")


def committed_version(spark: SparkSession, path: str) -> int | None:
    """Latest committed Delta version at ``path``, None when there is no Delta table."""
    if not DeltaTable.isDeltaTable(spark, path):
        return None
    return DeltaTable.forPath(spark, path).history(1).first()["version"]


def rows(spark: SparkSession, path: str) -> DataFrame:
    return spark.read.format("delta").load(path)


def keyed(df: DataFrame, keys: list[str], values: list[str] | None = None) -> tuple[int, list[tuple]]:
    """Row count and the sorted ``keys`` (+ ``values``) tuples of a (small) table."""
    cols = keys + (values or [])
    return df.count(), sorted((tuple(r) for r in df.select(*cols).collect()), key=repr)
