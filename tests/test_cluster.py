"""spark-submit to a real Spark standalone cluster (1 master + 2 one-core workers on 127.0.0.1).

The full pipeline runs on a MovieLens slice twice — once through ``spark-submit`` on the
cluster, once in ``local[2]`` — and the two lakes must agree: the same row count in
every Delta table, and evaluation metrics within a small tolerance (ALS's parallel
solves may sum in a different order on different executors).
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest

from conftest import shared_dataset
from fusionrec.config import LakeConfig
from fusionrec.evaluate.chart import EVALUATION_NAME, evaluation_report
from fusionrec.lake import Lake
from fusionrec.session import local_jars
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


def _overrides(cfg, work: Path) -> list[str]:
    return [
        "--set", f"lake.root={work / 'lake'}",
        "--set", f"spark.checkpoint_dir={work / 'checkpoints'}",
        "--set", f"embed.model_cache={cfg.embed.model_cache}",
        "--set", f"embed.wheels_dir={cfg.embed.wheels_dir}",
        "--set", f"mlflow.tracking_uri=sqlite:///{work / 'mlflow.db'}",
        "--set", f"mlflow.artifact_location={work / 'mlartifacts'}",
        # A small slice: a few partitions keep tasks from being mostly scheduling overhead.
        "--set", "spark.shuffle_partitions=4",
        "--set", "embed.partitions=2",
    ]


def movielens_slice(source: Path, out: Path, n_movies: int = 250, n_users: int = 80) -> Path:
    """The most-rated movies and the most active users among them: a small real MovieLens directory."""
    out.mkdir(parents=True, exist_ok=True)
    with open(source / "ratings.csv", newline="") as fh:
        ratings = list(csv.DictReader(fh))
    by_movie: dict[str, int] = {}
    for r in ratings:
        by_movie[r["movieId"]] = by_movie.get(r["movieId"], 0) + 1
    movies = set(sorted(by_movie, key=lambda m: (-by_movie[m], int(m)))[:n_movies])
    by_user: dict[str, int] = {}
    for r in ratings:
        if r["movieId"] in movies:
            by_user[r["userId"]] = by_user.get(r["userId"], 0) + 1
    users = set(sorted(by_user, key=lambda u: (-by_user[u], int(u)))[:n_users])

    def copy(name: str, keep) -> None:
        with open(source / name, newline="") as src, open(out / name, "w", newline="") as dst:
            reader = csv.DictReader(src)
            writer = csv.DictWriter(dst, reader.fieldnames, lineterminator="\r\n")
            writer.writeheader()
            writer.writerows(r for r in reader if keep(r))

    copy("ratings.csv", lambda r: r["movieId"] in movies and r["userId"] in users)
    copy("movies.csv", lambda r: r["movieId"] in movies)
    copy("tags.csv", lambda r: r["movieId"] in movies and r["userId"] in users)
    return out


def table_counts(spark, lake_root: str) -> dict[str, int]:
    """Rows of every table of the lake at ``lake_root`` (any Hadoop URI)."""
    lake = Lake(spark, LakeConfig(root=str(lake_root)))
    return {table: lake.read(table).count() for table in lake.tables()}


def evaluation_rows(spark, lake_root: str) -> dict[tuple[str, int], dict]:
    lake = Lake(spark, LakeConfig(root=str(lake_root)))
    data = lake.read_json(f"{evaluation_report(EVALUATION_NAME)}.json", written_by="evaluate")
    return {(r["model"], r["k"]): r for r in data["table"]}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    with StandaloneCluster(workers=2, cores_per_worker=1, work_dir=tmp_path_factory.mktemp("standalone"),
                           python=sys.executable) as running:
        yield running
    assert not running.processes


def test_pipeline_on_standalone_cluster_matches_local(cluster, cfg, spark, tmp_path):
    data = movielens_slice(shared_dataset("movielens-small"), tmp_path / "movielens")
    on_cluster, local = tmp_path / "cluster", tmp_path / "local"
    job_args = ["--movielens", str(data), "--conf", str(PROJECT / "conf" / "cluster.yaml")]

    submit = spark_submit_command(cluster.master_url, local_jars(cfg.spark.jars_dir), _py_files(tmp_path),
                                  str(PROJECT / "jobs" / "pipeline.py"), job_args + _overrides(cfg, on_cluster),
                                  python=sys.executable)
    start = time.perf_counter()
    # Cluster mode refuses to pseudonymise user ids without a real key; both runs share one.
    env = {**os.environ, "FUSIONREC_PSEUDONYM_KEY": "cluster-test-key"}
    result = subprocess.run(submit, capture_output=True, text=True, timeout=1500, cwd=tmp_path, env=env)
    cluster_s = time.perf_counter() - start
    assert result.returncode == 0, format_command(submit) + "\n" + result.stdout + result.stderr[-6000:]
    assert "champion: models:/" in result.stdout

    local_cmd = [str(PROJECT / ".venv" / "bin" / "fusionrec"), "pipeline", "--movielens", str(data),
                 "--conf", str(PROJECT / "conf" / "local.yaml"), "--set", "spark.master=local[2]",
                 "--set", f"spark.jars_dir={cfg.spark.jars_dir}", *_overrides(cfg, local)]
    start = time.perf_counter()
    result = subprocess.run(local_cmd, capture_output=True, text=True, timeout=1500, cwd=tmp_path, env=env)
    local_s = time.perf_counter() - start
    assert result.returncode == 0, result.stdout + result.stderr[-6000:]
    print(f"\npipeline wall time: spark-submit on standalone cluster {cluster_s:.0f}s, local[2] {local_s:.0f}s")

    cluster_counts = table_counts(spark, on_cluster / "lake")
    assert cluster_counts == table_counts(spark, local / "lake")
    assert cluster_counts["gold.recommendations"] > 0 and cluster_counts["silver.events"] > 0

    remote, here = evaluation_rows(spark, on_cluster / "lake"), evaluation_rows(spark, local / "lake")
    assert remote.keys() == here.keys()
    for key, row in here.items():
        for metric in ("precision", "recall", "ndcg", "hit_rate"):
            # 80 test users: 0.05 is a few users' worth of difference at K=10.
            assert remote[key][metric] == pytest.approx(row[metric], abs=0.05), (key, metric)


def test_doctor_on_standalone_cluster(cluster, cfg, tmp_path):
    cmd = spark_submit_command(cluster.master_url, local_jars(cfg.spark.jars_dir), _py_files(tmp_path),
                               str(PROJECT / "jobs" / "doctor.py"),
                               ["--conf", str(PROJECT / "conf" / "cluster.yaml"), *_overrides(cfg, tmp_path)],
                               python=sys.executable)
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert result.returncode == 0, format_command(cmd) + "\n" + result.stdout + result.stderr[-4000:]
    assert f"on {cluster.master_url}" in result.stdout
    assert "doctor: all checks passed" in result.stdout
