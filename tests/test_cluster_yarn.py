"""spark-submit to a real YARN cluster with the data on a real HDFS (one JVM on 127.0.0.1:
NameNode, DataNode, ResourceManager, NodeManager; see ``_hadoop.py``).

A tiny Delta job proves the plumbing in cluster deploy mode (the driver in a YARN
container; the pipeline below runs in client mode, which proves that one). Then the whole
pipeline runs on seeded generated data with ``lake.root`` on HDFS (the raw inputs are
copied into the lake there and read back by ingest), through ``spark-submit --master
yarn``, and is compared with the shared ``local[2]`` run as the standalone test does: the
same row count in every Delta table, evaluation metrics within a small tolerance, the
model registered.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from _hadoop import HadoopMiniCluster, hdfs_jars, spark_jars_archive, yarn_submit_command
from fusionrec.session import local_jars
from _standalone import format_command
from _reference import GENERATED, KEY_ENV, TEST_KEY, assert_lakes_agree, cluster_overrides
from test_cluster import _py_files

PROJECT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.cluster

#: Where the session's pyspark jars go in HDFS (``spark.yarn.archive``), and the project's
#: (``--jars``), as the README's YARN command has them.
SPARK_ARCHIVE = "/apps/spark/spark-jars-3.5.8.zip"
PROJECT_JARS = "/apps/fusionrec/jars"


@pytest.fixture(scope="module")
def yarn(hadoop: HadoopMiniCluster, spark, tmp_path_factory) -> HadoopMiniCluster:
    """The cluster, with pyspark's jars in HDFS once for every submit."""
    spark_jars_archive(spark, tmp_path_factory.mktemp("spark-archive"), hadoop.default_fs + SPARK_ARCHIVE)
    return hadoop


@pytest.fixture(scope="module")
def yarn_jars(yarn: HadoopMiniCluster, cfg, spark) -> list[str]:
    """The project's jars in HDFS once, as the ``hdfs://`` URIs every submit passes to ``--jars``."""
    return hdfs_jars(spark, local_jars(cfg.spark.jars_dir), yarn.default_fs + PROJECT_JARS)


def submit_env(cluster: HadoopMiniCluster) -> dict[str, str]:
    # The driver (client mode) must be reachable from the containers at the address it advertises.
    return {**os.environ, **cluster.env(), "SPARK_LOCAL_IP": "127.0.0.1",
            # Cluster mode refuses to pseudonymise user ids without a real key (see _reference.py).
            KEY_ENV: TEST_KEY}


def yarn_submit(cluster: HadoopMiniCluster, jars: list[str], tmp_path: Path, job: str, job_args: list[str], *,
                deploy_mode: str = "client", driver_memory: str = "4g") -> list[str]:
    return yarn_submit_command(archive=cluster.default_fs + SPARK_ARCHIVE, jars=jars,
                               py_files=_py_files(tmp_path), job=job, job_args=job_args, python=sys.executable,
                               driver_memory=driver_memory, deploy_mode=deploy_mode)


#: Writes 1000 rows to a Delta table in HDFS, each with the number of executors that had
#: registered (waiting up to a minute for the two requested), and reads them back.
TINY_JOB = textwrap.dedent('''
    import sys
    import time
    from pyspark.sql import SparkSession
    spark = SparkSession.builder.getOrCreate()
    target, wanted = sys.argv[1], int(spark.conf.get("spark.executor.instances"))
    executors = lambda: spark.sparkContext._jsc.sc().getExecutorMemoryStatus().size() - 1  # minus the driver
    deadline = time.monotonic() + 60
    while executors() < wanted and time.monotonic() < deadline:
        time.sleep(1)
    (spark.range(0, 1000, numPartitions=4).selectExpr("id", "id % 7 AS k", f"{executors()} AS executors")
     .write.format("delta").mode("overwrite").save(target))
    back = spark.read.format("delta").load(target)
    print(f"master={spark.sparkContext.master} app={spark.sparkContext.applicationId} "
          f"rows={back.count()} sum={back.groupBy().sum('id').first()[0]}")
''')


def test_delta_table_on_hdfs_from_yarn_in_cluster_mode(yarn, yarn_jars, spark, tmp_path):
    deploy_mode = "cluster"
    job = tmp_path / "tiny_delta_job.py"
    job.write_text(TINY_JOB)
    target = f"{yarn.default_fs}/tiny/{deploy_mode}"
    cmd = yarn_submit(yarn, yarn_jars, tmp_path, str(job), [target], deploy_mode=deploy_mode, driver_memory="1g")
    start = time.perf_counter()
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=tmp_path, env=submit_env(yarn))
    wall_s = time.perf_counter() - start
    assert result.returncode == 0, format_command(cmd) + "\n" + result.stdout + result.stderr[-6000:]
    print(f"\ntiny Delta job on YARN ({deploy_mode} mode): {wall_s:.0f}s; "
          f"Hadoop cluster started in {yarn.start_s:.1f}s")

    # The table is in HDFS: this process (local[2]) reads it back from there.
    back = spark.read.format("delta").load(target)
    assert back.count() == 1000
    assert back.groupBy().sum("id").first()[0] == 499500
    # Both requested executors ran: the NodeManager offers the memory for them and the AM.
    assert {row.executors for row in back.select("executors").distinct().collect()} == {2}
    from delta.tables import DeltaTable

    assert DeltaTable.isDeltaTable(spark, target)


def test_pipeline_on_yarn_and_hdfs_matches_local(yarn, yarn_jars, cfg, spark, local_pipeline, tmp_path):
    # The standalone test's data and the shared local run, so the three wall times compare.
    # The pipeline copies the generated inputs into the lake, so ingest reads them from HDFS.
    remote = f"{yarn.default_fs}/work"
    on_hdfs = ["--set", f"lake.root={remote}/lake", "--set", f"spark.checkpoint_dir={remote}/checkpoints"]
    # The MLflow store stays on the driver's disk (client mode): SQLite needs a local file.
    job_args = [*GENERATED, "--conf", str(PROJECT / "conf" / "cluster.yaml"),
                *cluster_overrides(cfg, tmp_path / "yarn"), *on_hdfs]
    submit = yarn_submit(yarn, yarn_jars, tmp_path, str(PROJECT / "jobs" / "pipeline.py"), job_args)
    start = time.perf_counter()
    result = subprocess.run(submit, capture_output=True, text=True, timeout=1500, cwd=tmp_path, env=submit_env(yarn))
    yarn_s = time.perf_counter() - start
    assert result.returncode == 0, format_command(submit) + "\n" + result.stdout + result.stderr[-6000:]
    assert "champion: models:/" in result.stdout
    print(f"\npipeline wall time: spark-submit on YARN + HDFS {yarn_s:.0f}s, "
          f"local[2] in the test process {local_pipeline.wall_s:.0f}s; Hadoop cluster started in {yarn.start_s:.1f}s")
    assert_lakes_agree(spark, f"{remote}/lake", str(local_pipeline.lake))
