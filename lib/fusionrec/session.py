"""The one SparkSession factory used by every job, notebook and test."""

from __future__ import annotations

import logging
import os
import re
import sys
from pathlib import Path

from pyspark import SparkContext
from pyspark.sql import SparkSession

from fusionrec.lake import normalise_uri
from fusionrec.config import Config
from fusionrec.errors import UserError

__all__ = ["DELTA_CATALOG", "DELTA_EXTENSION", "build_spark", "local_cores", "local_jars", "SetupError", "snapshot_partitions"]

log = logging.getLogger(__name__)

DELTA_EXTENSION = "io.delta.sql.DeltaSparkSessionExtension"
DELTA_CATALOG = "org.apache.spark.sql.delta.catalog.DeltaCatalog"


class SetupError(UserError, RuntimeError):
    """Something ``make setup`` provides is missing; the message says what to run."""


def local_jars(jars_dir: str | None, key: str = "spark.jars_dir", target: str = "jars") -> list[str]:
    """The jars resolved by ``make jars`` (empty when spark-submit supplies them).

    Parameters
    ----------
    jars_dir:
        Folder of ``*.jar`` files; ``None`` or empty: no local jars.
    key, target:
        The setting and the ``make`` target named in the error when the folder is empty.

    Returns
    -------
    The jar paths, sorted.
    """
    if not jars_dir:
        return []
    folder = Path(jars_dir)
    jars = sorted(str(p) for p in folder.glob("*.jar")) if folder.is_dir() else []
    if not jars:
        raise SetupError(
            f"{key}: no jars in {folder}; run 'make setup' (or 'make {target}'), "
            f"or set {key} to null when spark-submit passes --packages/--jars"
        )
    return jars


def session_jars(cfg: Config) -> list[str]:
    """The local jars a session of ``cfg`` loads: the S3A connector and AWS SDK first (only for an
    ``s3a://`` lake; first so that its SDK bundle, not the older SDK pieces Spark NLP brings,
    serves every ``com.amazonaws`` class), then those of ``make jars``.

    Example
    -------
    >>> from fusionrec.config import load_config
    >>> cfg = load_config("conf/local.yaml", overrides=["lake.root=s3a://bucket/lake"])
    >>> [Path(j).name for j in session_jars(cfg)][:2]
    ['aws-java-sdk-bundle-1.12.262.jar', 'hadoop-aws-3.3.4.jar']
    """
    s3 = local_jars(cfg.spark.s3_jars_dir, "spark.s3_jars_dir", "jars-s3") if cfg.lake.root.startswith("s3a://") else []
    return s3 + local_jars(cfg.spark.jars_dir)


def local_cores(master: str | None) -> int | None:
    """The cores of a ``local`` / ``local[N]`` / ``local[*]`` master; None for a cluster's.

    >>> local_cores("local[2]"), local_cores("local"), local_cores("local[4,2]"), local_cores("yarn")
    (2, 1, 4, None)
    """
    match = re.fullmatch(r"local(?:\[(\d+|\*)(?:,\d+)?\])?", master or "")
    if match is None:
        return None
    threads = match.group(1)
    if threads is None:
        return 1  # plain "local" is one thread
    return (os.cpu_count() or 1) if threads == "*" else int(threads)


def snapshot_partitions(master: str | None, shuffle_partitions: int) -> int:
    """Partitions of a Delta table's log replay: the shuffle partitions, at most the cores of
    a ``local[N]`` / ``local[*]`` master (measured on 2 cores: an ingest at 200k events
    51.0 s with 8, 45.0 s with 2).

    >>> snapshot_partitions("local[2]", 8), snapshot_partitions("yarn", 64), snapshot_partitions("local[4,2]", 8)
    (2, 64, 4)
    """
    cores = local_cores(master)
    return shuffle_partitions if cores is None else max(1, min(shuffle_partitions, cores))


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
    jars = session_jars(cfg)
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
        # The pseudonym HMAC's key pads are literals in ingest plans: blank them in explain/UI.
        "spark.sql.redaction.string.regex": "(?i)0x[0-9a-f]{128}",
        "spark.ui.showConsoleProgress": str(sc.show_progress).lower(),
        # Delta: let MERGE evolve nothing silently; keep commit history for time travel.
        "spark.databricks.delta.schema.autoMerge.enabled": "false",
        # Delta's default of 50 snapshot partitions dominates small-table latency; on one
        # machine more partitions than cores only add tasks to every table's log replay.
        "spark.databricks.delta.snapshotPartitions": str(snapshot_partitions(sc.master, sc.shuffle_partitions)),
        "spark.sql.warehouse.dir": f"{normalise_uri(cfg.lake.root)}/_warehouse",
    }
    cores = local_cores(sc.master)
    if cores is not None:
        # Delta's VACUUM lists a table in as many tasks as this (Spark's default: 10,000, for
        # a cluster's huge tables); on one machine each is pure overhead (2 cores: OPTIMIZE +
        # VACUUM of a four-file table 46.8 s with the default, 4.7 s with 8).
        settings["spark.sql.sources.parallelPartitionDiscovery.parallelism"] = str(4 * cores)
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
