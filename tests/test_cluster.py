"""spark-submit to a real Spark standalone cluster (1 master + 2 one-core workers on 127.0.0.1)."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from fusionrec.session import local_jars
from fusionrec.standalone import StandaloneCluster, format_command, spark_submit_command

PROJECT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.cluster


def _py_files(tmp_path: Path) -> str:
    """The same zip ``make dist`` builds: lib/fusionrec for --py-files."""
    out = tmp_path / "fusionrec.zip"
    with zipfile.ZipFile(out, "w") as zf:
        for path in sorted((PROJECT / "lib" / "fusionrec").rglob("*.py")):
            zf.write(path, path.relative_to(PROJECT / "lib"))
    return str(out)


def _job_args(cfg, work: Path) -> list[str]:
    return [
        "--conf", str(PROJECT / "conf" / "cluster.yaml"),
        "--set", f"lake.root={work / 'lake'}",
        "--set", f"spark.checkpoint_dir={work / 'checkpoints'}",
        "--set", f"embed.model_cache={cfg.embed.model_cache}",
        "--set", f"embed.wheels_dir={cfg.embed.wheels_dir}",
        "--set", f"mlflow.tracking_uri=sqlite:///{work / 'mlflow.db'}",
        "--set", f"mlflow.artifact_location={work / 'mlartifacts'}",
    ]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    with StandaloneCluster(workers=2, cores_per_worker=1, work_dir=tmp_path_factory.mktemp("standalone"),
                           python=sys.executable) as running:
        yield running
    assert not running.processes


def test_doctor_on_standalone_cluster(cluster, cfg, tmp_path):
    cmd = spark_submit_command(cluster.master_url, local_jars(cfg.spark.jars_dir), _py_files(tmp_path),
                               str(PROJECT / "jobs" / "doctor.py"), _job_args(cfg, tmp_path), python=sys.executable)
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert result.returncode == 0, format_command(cmd) + "\n" + result.stdout + result.stderr[-4000:]
    assert f"on {cluster.master_url}" in result.stdout
    assert "doctor: all checks passed" in result.stdout
