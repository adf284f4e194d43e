"""The one SparkSession factory used by every job, notebook and test."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

from pyspark import SparkContext
from pyspark.sql import SparkSession

from fusionrec.config import Config
from fusionrec.errors import UserError

log = logging.getLogger(__name__)

DELTA_EXTENSION = "io.delta.sql.DeltaSparkSessionExtension"
DELTA_CATALOG = "org.apache.spark.sql.delta.catalog.DeltaCatalog"


class SetupError(UserError, RuntimeError):
    """Something ``make setup`` provides is missing; the message says what to run."""


def local_jars(jars_dir: str | None) -> list[str]:
    """The jars resolved by ``make jars`` (empty when spark-submit supplies them)."""
    if not jars_dir:
        return []
    folder = Path(jars_dir)
    jars = sorted(str(p) for p in folder.glob("*.jar")) if folder.is_dir() else []
    if not jars:
        raise SetupError(
            f"spark.jars_dir: no jars in {folder}; run 'make setup' (or 'make jars'), "
            "or set spark.jars_dir to null when spark-submit passes --packages/--jars"
        )
    return jars


def build_spark(cfg: Config) -> SparkSession:
    """Create (or return the running) SparkSession for ``cfg``.

    The session has Delta Lake's SQL extension and catalog, Spark NLP on the classpath
    (from ``spark.jars_dir`` locally, or from ``spark-submit --packages/--jars`` on a
    cluster), Kryo with a buffer large enough for transformer weights, UTC time, a small
    shuffle-partition count that fits a laptop, and a checkpoint directory so that
    ALS's ``checkpointInterval`` takes effect.
    """
    sc = cfg.spark
    builder = SparkSession.builder.appName(sc.app_name)
    # Under spark-submit the JVM already exists and owns master and jars.
    under_submit = "PYSPARK_GATEWAY_PORT" in os.environ or SparkContext._active_spark_context is not None
    if sc.master and not under_submit:
        builder = builder.master(sc.master)
        if sc.master.startswith("local"):
            # A laptop's hostname may resolve to an address that is not routable.
            os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
            # Python workers (pandas functions, RDD lambdas) must run this interpreter,
            # which has fusionrec, numpy and pandas installed, not whatever `python3` is.
            os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    jars = local_jars(sc.jars_dir)
    if jars:
        builder = builder.config("spark.jars", ",".join(jars))
    settings = {
        "spark.driver.memory": sc.driver_memory,
        "spark.sql.extensions": DELTA_EXTENSION,
        "spark.sql.catalog.spark_catalog": DELTA_CATALOG,
        "spark.serializer": "org.apache.spark.serializer.KryoSerializer",
        "spark.kryoserializer.buffer.max": sc.kryo_buffer_max,
        "spark.driver.maxResultSize": "2g",
        "spark.sql.shuffle.partitions": str(sc.shuffle_partitions),
        "spark.default.parallelism": str(sc.shuffle_partitions),
        "spark.sql.adaptive.enabled": "true",
        "spark.sql.session.timeZone": "UTC",
        "spark.ui.showConsoleProgress": str(sc.show_progress).lower(),
        # Delta: let MERGE evolve nothing silently; keep commit history for time travel.
        "spark.databricks.delta.schema.autoMerge.enabled": "false",
        # Delta's default of 50 snapshot partitions dominates small-table latency.
        "spark.databricks.delta.snapshotPartitions": str(sc.shuffle_partitions),
        "spark.sql.warehouse.dir": str(Path(cfg.lake.root) / "_warehouse") if "://" not in cfg.lake.root else f"{cfg.lake.root}/_warehouse",
    }
    if sc.log4j_config and Path(sc.log4j_config).is_file():
        settings["spark.driver.extraJavaOptions"] = f"-Dlog4j.configurationFile=file:{sc.log4j_config}"
    settings.update(sc.extra)
    for key, value in settings.items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel(sc.log_level)
    if "://" not in sc.checkpoint_dir:
        Path(sc.checkpoint_dir).mkdir(parents=True, exist_ok=True)
    spark.sparkContext.setCheckpointDir(sc.checkpoint_dir)
    log.debug("spark %s session on %s", spark.version, spark.sparkContext.master)
    return spark
