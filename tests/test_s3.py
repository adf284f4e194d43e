"""The lake on an S3-compatible object store: SeaweedFS's S3 gateway on 127.0.0.1 (``make weed``),
reached through Hadoop's S3A connector (``make jars-s3``) with ``conf/cluster-s3.yaml``.

First a small Delta write / append / read / time travel on ``s3a://`` proves the jars, the
endpoint and the credentials from the environment; then the pipeline runs through
``spark-submit`` (the README's command line, with ``local[2]`` as the master) with
``lake.root=s3a://…``, and every table it wrote must be a Delta table on the object store,
seen both through Delta and in the server's own listing. The server is started and stopped
by pid; nothing is left running.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest
import yaml

from _seaweed import SeaweedS3
from fusionrec.cli import main as fusionrec_main
from fusionrec.session import local_jars
from _standalone import format_command, spark_submit_command

PROJECT = Path(__file__).resolve().parents[1]
WEED = PROJECT / ".cache" / "bin" / "weed"
BUCKET = "fusionrec"
pytestmark = pytest.mark.slow

#: Runs in a fresh interpreter: the test session's SparkSession has no S3A jars.
PROBE = """
import json, sys
from delta.tables import DeltaTable
from fusionrec.config import load_config
from fusionrec.session import build_spark

conf, mode, *paths = sys.argv[1:]
spark = build_spark(load_config(conf, overrides=["spark.master=local[1]", "spark.driver_memory=2g",
                                               "spark.shuffle_partitions=4"]))
out = {}
if mode == "write":
    path = paths[0]
    spark.range(5).write.format("delta").save(path)
    spark.range(5, 8).write.format("delta").mode("append").save(path)
    fs = spark._jvm.org.apache.hadoop.fs.Path(path).getFileSystem(spark._jsc.hadoopConfiguration())
    out = {"filesystem": fs.getClass().getName(), "is_delta": DeltaTable.isDeltaTable(spark, path),
           "rows": spark.read.format("delta").load(path).count(),
           "rows_v0": spark.read.format("delta").option("versionAsOf", 0).load(path).count(),
           "versions": sorted(r.version for r in DeltaTable.forPath(spark, path).history().collect())}
else:
    for path in paths:
        is_delta = DeltaTable.isDeltaTable(spark, path)
        out[path] = {"is_delta": is_delta,
                     "rows": spark.read.format("delta").load(path).count() if is_delta else None}
print("PROBE " + json.dumps(out))
"""

#: Tables the pipeline writes, one per stage at least.
TABLES = ("bronze/events", "silver/events", "gold/interactions", "gold/item_documents", "gold/reviews",
          "embeddings/item_embeddings", "embeddings/review_embeddings", "features/item_vectors",
          "features/user_profiles", "model/user_factors", "model/item_factors", "gold/recommendations")


@pytest.fixture(scope="module")
def s3(tmp_path_factory):
    if not WEED.is_file():
        pytest.skip(f"{WEED} absent: 'make weed' builds SeaweedFS from the Go module proxy (optional)")
    local_jars(str(PROJECT / ".cache" / "jars-s3"), "spark.s3_jars_dir", "jars-s3")  # SetupError if absent
    server = SeaweedS3(weed=WEED, work_dir=tmp_path_factory.mktemp("seaweed"))
    start = time.perf_counter()
    with server:
        server.create_bucket(BUCKET)
        print(f"\nSeaweedFS S3 gateway up with bucket '{BUCKET}' in {time.perf_counter() - start:.1f}s")
        yield server
        pid = server.process.pid
    with pytest.raises(ProcessLookupError):
        os.killpg(pid, 0)  # the whole process group is gone


def s3_conf(s3: SeaweedS3, work: Path, prefix: str) -> Path:
    """conf/cluster-s3.yaml pointed at this server, a fresh prefix of the bucket and local MLflow files."""
    conf = yaml.safe_load((PROJECT / "conf" / "cluster-s3.yaml").read_text())
    conf["spark"]["extra"]["spark.hadoop.fs.s3a.endpoint"] = s3.endpoint
    conf["spark"]["checkpoint_dir"] = f"s3a://{BUCKET}/{prefix}/checkpoints"
    # The probes start their own JVM: they take the jars of `make jars` / `make jars-s3`.
    conf["spark"]["jars_dir"] = str(PROJECT / ".cache" / "jars")
    conf["spark"]["s3_jars_dir"] = str(PROJECT / ".cache" / "jars-s3")
    conf["lake"]["root"] = f"s3a://{BUCKET}/{prefix}/lake"
    conf["embed"].update(model_cache=str(PROJECT / ".cache" / "models"), wheels_dir=str(PROJECT / ".cache" / "wheels"))
    conf["mlflow"].update(tracking_uri=f"sqlite:///{work / 'mlflow.db'}", artifact_location=str(work / "mlartifacts"))
    path = work / "cluster-s3.yaml"
    path.write_text(yaml.safe_dump(conf))
    return path


def s3_env(s3: SeaweedS3) -> dict[str, str]:
    """Credentials through the environment only (the AWS default provider chain)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    return {**env, "AWS_ACCESS_KEY_ID": s3.access_key, "AWS_SECRET_ACCESS_KEY": s3.secret_key,
            "FUSIONREC_PSEUDONYM_KEY": "s3-test-key", "PYTHONPATH": str(PROJECT / "lib")}


def probe(conf: Path, env: dict[str, str], mode: str, *paths: str) -> dict:
    result = subprocess.run([sys.executable, "-c", PROBE, str(conf), mode, *paths], capture_output=True, text=True,
                            timeout=900, env=env, cwd=conf.parent)
    lines = [line for line in result.stdout.splitlines() if line.startswith("PROBE ")]
    assert result.returncode == 0 and lines, result.stdout + result.stderr[-6000:]
    return json.loads(lines[-1][len("PROBE "):])


def test_delta_round_trip_on_s3a(s3, tmp_path):
    conf = s3_conf(s3, tmp_path, "probe")
    table = f"s3a://{BUCKET}/probe/t"
    start = time.perf_counter()
    out = probe(conf, s3_env(s3), "write", table)
    print(f"\nDelta round trip on s3a:// (JVM start included): {time.perf_counter() - start:.0f}s")
    assert out == {"filesystem": "org.apache.hadoop.fs.s3a.S3AFileSystem", "is_delta": True,
                   "rows": 8, "rows_v0": 5, "versions": [0, 1]}
    keys = s3.list_keys(BUCKET, "probe/t/")
    assert {"probe/t/_delta_log/00000000000000000000.json", "probe/t/_delta_log/00000000000000000001.json"} <= set(keys)
    assert any(k.endswith(".parquet") for k in keys)
    assert not any(tmp_path.glob("s3a*")), "an s3a:// location was used as a local path"


def test_wrong_secret_is_refused(s3, tmp_path):
    conf = s3_conf(s3, tmp_path, "refused")
    env = {**s3_env(s3), "AWS_SECRET_ACCESS_KEY": "not-the-secret"}
    result = subprocess.run([sys.executable, "-c", PROBE, str(conf), "write", f"s3a://{BUCKET}/refused/t"],
                            capture_output=True, text=True, timeout=900, env=env, cwd=tmp_path)
    assert result.returncode != 0
    assert "SignatureDoesNotMatch" in result.stderr or "403" in result.stderr, result.stderr[-4000:]
    assert s3.list_keys(BUCKET, "refused/") == []


def test_pipeline_on_s3a_lake(s3, tmp_path):
    raw = tmp_path / "raw"
    assert fusionrec_main(["generate", "--out", str(raw), "--events", "3000", "--seed", "7"]) == 0
    conf = s3_conf(s3, tmp_path, "pipeline")
    py_files = tmp_path / "fusionrec.zip"
    with zipfile.ZipFile(py_files, "w") as zf:
        for path in sorted((PROJECT / "lib" / "fusionrec").rglob("*.py")):
            zf.write(path, path.relative_to(PROJECT / "lib"))
    jars = local_jars(str(PROJECT / ".cache" / "jars-s3")) + local_jars(str(PROJECT / ".cache" / "jars"))
    submit = spark_submit_command("local[2]", jars, str(py_files), str(PROJECT / "jobs" / "pipeline.py"),
                                  ["--dir", str(raw), "--conf", str(conf), "--set", "spark.jars_dir=",
                                   "--set", "spark.s3_jars_dir=", "--set", "spark.shuffle_partitions=4",
                                   "--set", "embed.partitions=2"],
                                  python=sys.executable)
    start = time.perf_counter()
    result = subprocess.run(submit, capture_output=True, text=True, timeout=2400, cwd=tmp_path, env=s3_env(s3))
    print(f"\npipeline on an s3a:// lake through spark-submit (local[2]): {time.perf_counter() - start:.0f}s, "
          f"exit {result.returncode}")
    run_log = format_command(submit) + "\n" + result.stdout[-4000:] + result.stderr[-6000:]

    # What each stage wrote, checked even when a later stage failed, so a failure names the stage.
    lake = f"s3a://{BUCKET}/pipeline/lake"
    tables = probe(conf, s3_env(s3), "read", *(f"{lake}/{t}" for t in TABLES))
    keys = set(s3.list_keys(BUCKET, "pipeline/lake/"))
    for name in TABLES:
        assert tables[f"{lake}/{name}"]["is_delta"] and tables[f"{lake}/{name}"]["rows"] > 0, (name, run_log)
        assert f"pipeline/lake/{name}/_delta_log/00000000000000000000.json" in keys, name

    assert result.returncode == 0, run_log
    assert "champion: models:/" in result.stdout
    debris = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.glob("s3a*/**/*"))
    assert not debris, f"s3a:// locations used as local paths: {debris}"
