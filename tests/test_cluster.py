"""spark-submit to a real Spark standalone cluster (1 master + 2 one-core workers on 127.0.0.1).

The full pipeline runs on seeded generated data through ``spark-submit`` on the cluster,
and its lake must agree with the shared ``local[2]`` run's (``_reference.py``): the same
row count in every Delta table, and evaluation metrics within a small tolerance (ALS's
parallel solves may sum in a different order on different executors).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest

from fusionrec.session import local_jars
from _reference import GENERATED, KEY_ENV, TEST_KEY, assert_lakes_agree, cluster_overrides
from _standalone import StandaloneCluster, format_command, spark_submit_command

PROJECT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.cluster


def _py_files(tmp_path: Path) -> str:
    """The same zip ``make dist`` builds: lib/fusionrec for --py-files."""
    out = tmp_path / "fusionrec.zip"
    with zipfile.ZipFile(out, "w") as zf:
        for path in sorted((PROJECT / "lib" / "fusionrec").rglob("*.py")):
            zf.write(path, path.relative_to(PROJECT / "lib"))
    return str(out)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    with StandaloneCluster(workers=2, cores_per_worker=1, work_dir=tmp_path_factory.mktemp("standalone"),
                           python=sys.executable) as running:
        yield running
    assert not running.processes


def test_pipeline_on_standalone_cluster_matches_local(cluster, cfg, spark, local_pipeline, tmp_path):
    on_cluster = tmp_path / "cluster"
    job_args = [*GENERATED, "--conf", str(PROJECT / "conf" / "cluster.yaml"), *cluster_overrides(cfg, on_cluster)]
    submit = spark_submit_command(cluster.master_url, local_jars(cfg.spark.jars_dir), _py_files(tmp_path),
                                  str(PROJECT / "jobs" / "pipeline.py"), job_args, python=sys.executable)
    start = time.perf_counter()
    result = subprocess.run(submit, capture_output=True, text=True, timeout=1500, cwd=tmp_path,
                            env={**os.environ, KEY_ENV: TEST_KEY})
    cluster_s = time.perf_counter() - start
    assert result.returncode == 0, format_command(submit) + "\n" + result.stdout + result.stderr[-6000:]
    assert "champion: models:/" in result.stdout
    print(f"\npipeline wall time: spark-submit on standalone cluster {cluster_s:.0f}s, "
          f"local[2] in the test process {local_pipeline.wall_s:.0f}s")
    assert_lakes_agree(spark, str(on_cluster / "lake"), str(local_pipeline.lake))


def test_doctor_on_standalone_cluster(cluster, cfg, tmp_path):
    cmd = spark_submit_command(cluster.master_url, local_jars(cfg.spark.jars_dir), _py_files(tmp_path),
                               str(PROJECT / "jobs" / "doctor.py"),
                               ["--conf", str(PROJECT / "conf" / "cluster.yaml"), *cluster_overrides(cfg, tmp_path)],
                               python=sys.executable)
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert result.returncode == 0, format_command(cmd) + "\n" + result.stdout + result.stderr[-4000:]
    assert f"on {cluster.master_url}" in result.stdout
    assert "doctor: all checks passed" in result.stdout
