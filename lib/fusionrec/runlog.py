"""Logging in one format, stage timing, and the run report that is written even on failure."""

from __future__ import annotations

import contextvars
import json
import logging
import os
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

__all__ = ["LOG_FORMAT", "RunReport", "setup_logging", "stage", "StageRecord", "warnings_only"]

log = logging.getLogger("fusionrec")

LOG_FORMAT = "%(asctime)s %(levelname)-5s %(name)s | %(message)s"

#: How many :func:`stage` blocks enclose the running code (per thread: a fresh context).
_DEPTH: contextvars.ContextVar[int] = contextvars.ContextVar("fusionrec_stage_depth", default=0)


def setup_logging(verbosity: int = 0) -> None:
    """``verbosity``: -1 quiet (warnings only), 0 normal, 1 verbose (debug)."""
    level = {-1: logging.WARNING, 0: logging.INFO}.get(verbosity, logging.DEBUG)
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(LOG_FORMAT, "%Y-%m-%dT%H:%M:%S"))
    root.addHandler(handler)
    root.setLevel(logging.WARNING)
    logging.getLogger("fusionrec").setLevel(level)
    # py4j, MLflow and xgboost.spark are chatty at INFO. MLflow sets its own logger's level when imported,
    # which the commands do lazily, after this: it takes the level from the environment.
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")
    for noisy in ("py4j", "mlflow", "alembic", "urllib3", "XGBoost-PySpark"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


@contextmanager
def warnings_only() -> Iterator[None]:
    """Inside, fusionrec logs only warnings and errors, unless debug logging is on
    (``--verbose``): for a command run as a step of another that reports it in one line."""
    logger = logging.getLogger("fusionrec")
    before = logger.level
    if logger.getEffectiveLevel() > logging.DEBUG:
        logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        logger.setLevel(before)


@dataclass
class StageRecord:
    """What one stage did: filled in by the stage, logged and reported by :func:`stage`."""

    name: str
    counts: dict[str, Any] = field(default_factory=dict)
    status: str = "running"
    elapsed_s: float = 0.0
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "status": self.status, "elapsed_s": round(self.elapsed_s, 3),
                "counts": self.counts, "error": self.error}


@contextmanager
def stage(name: str, report: "RunReport | None" = None, *, quiet: bool = False) -> Iterator[StageRecord]:
    """Time a stage and log ``stage=<name> event=start|end|failed`` with its counts.

    Only the outermost stage logs at INFO; a stage inside another (the steps of ``train.fit``)
    and a ``quiet`` one (``fusionrec pipeline`` logs its own line per stage) log at DEBUG
    (``--verbose``). A failure is logged at ERROR whatever the depth.
    """
    record = StageRecord(name)
    if report is not None:
        report.stages.append(record)
    depth = _DEPTH.get()
    level = logging.DEBUG if depth or quiet else logging.INFO
    token = _DEPTH.set(depth + 1)
    log.log(level, "stage=%s event=start", name)
    start = time.perf_counter()
    try:
        yield record
        record.status = "ok"
    except BaseException as exc:
        record.status = "failed"
        record.error = f"{type(exc).__name__}: {exc}".splitlines()[0]
        raise
    finally:
        _DEPTH.reset(token)
        record.elapsed_s = time.perf_counter() - start
        counts = " ".join(f"{k}={v}" for k, v in record.counts.items() if not isinstance(v, (dict, list)))
        log.log(level if record.status == "ok" else logging.ERROR, "stage=%s event=%s elapsed_s=%.2f %s", name,
                "end" if record.status == "ok" else "failed", record.elapsed_s, counts)


@dataclass
class RunReport:
    """The JSON report of one command: stages, results, and the failure if any."""

    command: str
    stages: list[StageRecord] = field(default_factory=list)
    results: dict[str, Any] = field(default_factory=dict)
    status: str = "running"
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"command": self.command, "status": self.status, "error": self.error,
                "stages": [s.to_dict() for s in self.stages], "results": self.results}

    def write(self, path: str | Path) -> None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_dict(), indent=2, default=str) + "\n")
