"""``fusionrec doctor``: check every component of the stack, say what is wrong and how to fix it."""

from __future__ import annotations

import argparse
import importlib.metadata
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from typing import Callable

import numpy as np

from fusionrec.config import Config
from fusionrec.runlog import RunReport

__all__ = ["FIXES", "HELP", "add_arguments", "Check", "lane_pins", "run"]

HELP = "check Java, Spark, Delta Lake, Spark NLP and the MLflow store; non-zero exit on any failure"


def lane_pins() -> dict[str, str]:
    """``{package: version}``: the exact (``==``) pins of fusionrec's requirements, as installed
    from pyproject.toml (the one place they are written)."""
    pins = {}
    for requirement in importlib.metadata.requires("fusionrec") or []:
        spec = requirement.split(";")[0].replace(" ", "")
        if "==" in spec and ";" not in requirement:
            name, version = spec.split("==", 1)
            pins[name] = version
    return pins


@dataclass
class Check:
    name: str
    ok: bool
    detail: str
    fix: str = ""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--skip", action="append", default=[], choices=["sparknlp", "mlflow"],
                        help="skip a slow check (repeatable)")


def _java(cfg: Config) -> Check:
    java = shutil.which("java")
    if not java:
        return Check("java", False, "no java on PATH", "install a JDK 17 (apt-get install openjdk-17-jdk-headless) or set JAVA_HOME")
    out = subprocess.run([java, "-version"], capture_output=True, text=True).stderr
    match = re.search(r'version "(\d+)(?:\.(\d+))?', out)
    major = int(match.group(1)) if match else 0
    major = int(match.group(2)) if major == 1 and match and match.group(2) else major
    ok = major in (8, 11, 17)
    return Check("java", ok, out.splitlines()[0] if out else "unknown version",
                 "" if ok else "Spark 3.5 runs on Java 8, 11 or 17: point JAVA_HOME at a JDK 17")


def _packages(cfg: Config) -> Check:
    try:
        pins = lane_pins()
    except importlib.metadata.PackageNotFoundError:
        return Check("packages", False, "fusionrec is not installed: its version pins are unknown",
                     "run 'make setup', or install the wheel from 'make dist'")
    found, wrong = [], []
    for name, pinned in pins.items():
        try:
            version = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            version = "missing"
        found.append(f"{name} {version}")
        if version != pinned:
            wrong.append(f"{name} {version} (want {pinned})")
    return Check("packages", not wrong, ", ".join(found), "run 'make setup'" if wrong else "")


def _spark(cfg: Config, state: dict) -> Check:
    from fusionrec.session import build_spark

    spark = build_spark(cfg)
    state["spark"] = spark
    n = spark.range(1000).selectExpr("sum(id) AS s").first()["s"]
    ok = n == 499500
    return Check("spark", ok, f"Spark {spark.version} on {spark.sparkContext.master}",
                 "" if ok else "Spark computed a wrong sum")


def _delta(cfg: Config, state: dict) -> Check:
    from delta.tables import DeltaTable

    spark = state["spark"]
    with tempfile.TemporaryDirectory(prefix="fusionrec-doctor-") as tmp:
        path = f"{tmp}/t"
        spark.range(5).write.format("delta").save(path)
        spark.range(5, 8).write.format("delta").mode("append").save(path)
        rows = spark.read.format("delta").load(path).count()
        v0 = spark.read.format("delta").option("versionAsOf", 0).load(path).count()
        history = DeltaTable.forPath(spark, path).history().count()
    ok = (rows, v0, history) == (8, 5, 2)
    return Check("delta", ok, f"write/append/read/time-travel ok ({rows} rows, {history} versions)",
                 "" if ok else "Delta returned wrong counts; check the delta-spark jar in spark.jars_dir")


def _sparknlp(cfg: Config, state: dict) -> Check:
    from fusionrec.embed.model import load_embedder
    from pyspark.ml import Pipeline
    from sparknlp.base import DocumentAssembler

    spark = state["spark"]
    embedder = load_embedder(spark, cfg.embed)
    df = spark.createDataFrame([("fusionrec doctor checks the sentence embedding model.",)], ["text"])
    pipeline = Pipeline(stages=[DocumentAssembler().setInputCol("text").setOutputCol("document"), embedder])
    row = pipeline.fit(df).transform(df).selectExpr("embedding[0].embeddings AS v").first()
    vector = np.asarray(row["v"] or [], dtype=np.float64)
    ok = vector.shape == (cfg.embed.dimension,) and abs(np.linalg.norm(vector) - 1.0) < 1e-3
    return Check("sparknlp", ok,
                 f"{cfg.embed.annotator} {cfg.embed.model_id}: {vector.shape[0]}-d, norm {np.linalg.norm(vector):.4f}" if vector.size else "empty vector (ONNX inference failed)",
                 "" if ok else "run 'fusionrec model --force' (or 'make model') to rebuild the model cache")


def _mlflow(cfg: Config, state: dict) -> Check:
    from fusionrec.registry.store import configure_mlflow

    client = configure_mlflow(cfg.mlflow)
    experiments = len(client.search_experiments())
    models = len(client.search_registered_models(max_results=100))
    location = client.get_experiment_by_name(cfg.mlflow.experiment).artifact_location
    problem = _unwritable(location)
    detail = f"{cfg.mlflow.tracking_uri}: {experiments} experiments, {models} registered models"
    return Check("mlflow", problem is None, detail if problem is None else f"{detail}; {problem}",
                 "" if problem is None else FIXES["mlflow_artifacts"])


def _unwritable(location: str) -> str | None:
    """Why runs cannot store artifacts at ``location`` (a local path or ``file:`` URI), or None.
    Other stores (a tracking server, an object store) are only reached when a run logs."""
    if "://" in location and not location.startswith("file:"):
        return None
    path = location[len("file://"):] if location.startswith("file://") else location.removeprefix("file:")
    try:
        os.makedirs(path, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path):
            pass
    except OSError as exc:
        return f"artifact location {location} is not writable ({exc.strerror or exc})"
    return None


FIXES = {
    "spark": "run 'make setup'; check JAVA_HOME and spark.jars_dir",
    "delta": "run 'make jars'; the delta-spark jar must match Spark 3.5 (delta-spark_2.12 3.3.x)",
    "sparknlp": "run 'make model' to rebuild the embedding model cache",
    "mlflow": "check mlflow.tracking_uri / MLFLOW_TRACKING_URI (default sqlite:///work/mlflow.db)",
    "mlflow_artifacts": "point mlflow.artifact_location at a writable folder (an experiment keeps the location "
                        "it was created with: set mlflow.experiment to a new name to use another)",
}


def run(cfg: Config, args: argparse.Namespace, report: RunReport) -> int:
    state: dict = {}
    steps: list[tuple[str, Callable[[], Check]]] = [
        ("java", lambda: _java(cfg)),
        ("packages", lambda: _packages(cfg)),
        ("spark", lambda: _spark(cfg, state)),
        ("delta", lambda: _delta(cfg, state)),
        ("sparknlp", lambda: _sparknlp(cfg, state)),
        ("mlflow", lambda: _mlflow(cfg, state)),
    ]
    checks: list[Check] = []
    for name, step in steps:
        if name in args.skip:
            continue
        if name in ("delta", "sparknlp") and "spark" not in state:
            checks.append(Check(name, False, "skipped: Spark did not start", FIXES["spark"]))
        else:
            try:
                checks.append(step())
            except Exception as exc:  # each failure is reported, the other checks still run
                detail = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
                checks.append(Check(name, False, f"{type(exc).__name__}: {detail}", FIXES.get(name, "")))
        c = checks[-1]
        print(f"[{' ok ' if c.ok else 'FAIL'}] {c.name:9s} {c.detail}" + (f"\n       fix: {c.fix}" if not c.ok and c.fix else ""),
              flush=True)
    report.results["checks"] = [c.__dict__ for c in checks]
    failed = [c.name for c in checks if not c.ok]
    print("doctor: all checks passed" if not failed else f"doctor: {len(failed)} failed: {', '.join(failed)}")
    return 0 if not failed else 1
