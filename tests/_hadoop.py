"""A real Hadoop cluster on this machine: HDFS (1 NameNode + 1 DataNode) and YARN
(1 ResourceManager + 1 NodeManager) in one JVM, from ``hadoop-client-minicluster``
(``make hadoop`` puts it in ``.cache/hadoop``, away from Spark's classpath)::

    java -cp '.cache/hadoop/*' tests/jvm/HadoopMiniCluster.java BASE CONF key=value ...

The JVM is tracked by pid in its own process group (the YARN containers it launches are
its children) and stopped on exit (terminate, then kill), so a test that uses the cluster
leaves nothing running. Its client configuration is written to ``conf_dir``: point
``HADOOP_CONF_DIR``/``YARN_CONF_DIR`` there (:meth:`HadoopMiniCluster.env`).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
import urllib.request
import xml.etree.ElementTree as ET
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

from _processes import stop_group
from _standalone import LOG4J, spark_home, spark_submit_command

PROJECT = Path(__file__).resolve().parents[1]
HADOOP_JARS = PROJECT / ".cache" / "hadoop"
LAUNCHER = Path(__file__).resolve().parent / "jvm" / "HadoopMiniCluster.java"
LOG4J = LAUNCHER.parent / "log4j.properties"
#: Hadoop 3.3 predates Java 17's closed modules (Guice in YARN defines classes by reflection).
OPENS = [f"--add-opens=java.base/{package}=ALL-UNNAMED" for package in
         ("java.lang", "java.lang.reflect", "java.io", "java.net", "java.nio", "java.util",
          "java.util.concurrent", "sun.nio.ch", "sun.security.action")]
#: Written by the launcher to HDFS before it writes the client configuration.
READY_FILE = "/tmp/minicluster-ready"


def java_home() -> str:
    """JAVA_HOME for the NodeManager's containers (their launch script runs ``$JAVA_HOME/bin/java``)."""
    if os.environ.get("JAVA_HOME"):
        return os.environ["JAVA_HOME"]
    java = shutil.which("java")
    if not java:
        raise RuntimeError("no java on PATH")
    return str(Path(java).resolve().parents[1])


def read_site(path: Path) -> dict[str, str]:
    """The properties of a Hadoop ``*-site.xml`` file."""
    root = ET.parse(path).getroot()
    return {p.findtext("name"): p.findtext("value") for p in root.iter("property")}


@dataclass
class HadoopMiniCluster:
    """``with HadoopMiniCluster(work_dir=tmp) as c: ... c.default_fs, c.env()``.

    The NodeManager offers ``nodemanager_memory_mb``/``nodemanager_vcores`` to YARN (the
    defaults fit an application master and two 2g executors with their overhead); its
    physical and virtual memory checks are off, as on a developer machine.
    """

    work_dir: Path
    nodemanager_memory_mb: int = 8192
    nodemanager_vcores: int = 4
    heap: str = "1g"
    start_timeout_s: float = 240.0
    process: subprocess.Popen | None = None
    #: Seconds from launching the JVM to HDFS written and YARN's NodeManager registered.
    start_s: float | None = None
    settings: dict[str, str] = field(default_factory=dict)

    @property
    def conf_dir(self) -> Path:
        return self.work_dir / "conf"

    @property
    def default_fs(self) -> str:
        """``hdfs://127.0.0.1:PORT``."""
        return read_site(self.conf_dir / "core-site.xml")["fs.defaultFS"]

    @property
    def resource_manager_web(self) -> str:
        return "http://" + read_site(self.conf_dir / "yarn-site.xml")["yarn.resourcemanager.webapp.address"]

    def env(self) -> dict[str, str]:
        """What a Hadoop/YARN client (``spark-submit --master yarn``) needs in its environment."""
        return {"HADOOP_CONF_DIR": str(self.conf_dir), "YARN_CONF_DIR": str(self.conf_dir)}

    def configuration(self) -> dict[str, str]:
        conf = {
            "yarn.nodemanager.resource.memory-mb": str(self.nodemanager_memory_mb),
            # MiniYARNCluster overwrites the NodeManager's memory with this one (default 4096 MB,
            # room for an application master and a single 2g executor: the second one requested
            # never came, and the driver waited out its 30 s for registered executors).
            "yarn.minicluster.yarn.nodemanager.resource.memory-mb": str(self.nodemanager_memory_mb),
            "yarn.nodemanager.resource.cpu-vcores": str(self.nodemanager_vcores),
            "yarn.scheduler.minimum-allocation-mb": "256",
            "yarn.scheduler.maximum-allocation-mb": str(self.nodemanager_memory_mb),
            "yarn.scheduler.maximum-allocation-vcores": str(self.nodemanager_vcores),
            # One queue for everything (a real cluster reads this from capacity-scheduler.xml);
            # the default 10% for application masters would not admit a Spark one.
            "yarn.scheduler.capacity.root.queues": "default",
            "yarn.scheduler.capacity.root.default.capacity": "100",
            "yarn.scheduler.capacity.root.default.maximum-capacity": "100",
            "yarn.scheduler.capacity.maximum-am-resource-percent": "0.5",
            "yarn.nodemanager.pmem-check-enabled": "false",
            "yarn.nodemanager.vmem-check-enabled": "false",
            # A full developer disk must not turn the only NodeManager unhealthy.
            "yarn.nodemanager.disk-health-checker.max-disk-utilization-per-disk-percentage": "99.5",
            # Containers' logs stay readable after a failed application.
            "yarn.nodemanager.delete.debug-delay-sec": "600",
            "dfs.replication": "1",
            "dfs.permissions.enabled": "false",
        }
        conf.update(self.settings)
        return conf

    def _get_json(self, url: str) -> dict | None:
        try:
            with urllib.request.urlopen(url, timeout=3) as resp:
                return json.load(resp)
        except (OSError, ValueError):
            return None

    def hdfs_ready(self) -> bool:
        """The launcher's probe file is in HDFS (the NameNode's WebHDFS API)."""
        http = read_site(self.conf_dir / "hdfs-site.xml")["dfs.namenode.http-address"]
        status = self._get_json(f"http://{http}/webhdfs/v1{READY_FILE}?op=GETFILESTATUS")
        return bool(status and status["FileStatus"]["length"] > 0)

    def start(self) -> "HadoopMiniCluster":
        if not (HADOOP_JARS / ".complete").exists():
            raise RuntimeError(f"{HADOOP_JARS} is missing; run 'make hadoop' (part of 'make setup')")
        base = (self.work_dir / "cluster").resolve()
        base.mkdir(parents=True, exist_ok=True)
        cmd = ["java", f"-Xmx{self.heap}", *OPENS, f"-Dlog4j.configuration={LOG4J.as_uri()}",
               "-cp", f"{HADOOP_JARS}/*", str(LAUNCHER), str(base), str(self.conf_dir.resolve()),
               *(f"{k}={v}" for k, v in self.configuration().items())]
        env = {**os.environ, "JAVA_HOME": java_home()}
        for var in ("HADOOP_CONF_DIR", "YARN_CONF_DIR", "HADOOP_HOME"):
            env.pop(var, None)
        log = open(self.work_dir / "hadoop.log", "wb")
        started = time.perf_counter()
        # A new session so that the JVM and the containers it launches are signalled as one group;
        # cwd: MiniYARNCluster puts the NodeManager's folders under ./target.
        self.process = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=base,
                                        start_new_session=True)
        deadline = started + self.start_timeout_s
        # The launcher writes core-site.xml once MiniYARNCluster.start() has returned, which
        # waits for the NodeManager to register (the RM's REST API is not served by this jar).
        while not ((self.conf_dir / "core-site.xml").exists() and self.hdfs_ready()):
            if self.process.poll() is not None or time.perf_counter() > deadline:
                reason = f"exited with {self.process.returncode}" if self.process.poll() is not None else "timeout"
                self.stop()
                raise RuntimeError(f"Hadoop mini cluster did not start ({reason}); see {self.work_dir / 'hadoop.log'}")
            time.sleep(0.5)
        self.start_s = time.perf_counter() - started
        return self

    def stop(self) -> None:
        """Stop the cluster's JVM and every container it launched, by pid (process group)."""
        proc, self.process = self.process, None
        if proc is None:
            return
        stop_group(proc, 30)
        # Containers outlive a JVM killed before it stopped them: the group goes too.
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    def group_alive(self, pgid: int) -> bool:
        """Whether any process of the cluster's process group ``pgid`` (its JVM's pid) still runs."""
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return False
        return True

    def __enter__(self) -> "HadoopMiniCluster":
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()


def hdfs_put(spark, local: Path, uri: str) -> str:
    """Copy a local file or folder to ``uri`` (``hdfs://…``) through the session's Hadoop FileSystem."""
    jvm = spark.sparkContext._jvm
    target = jvm.org.apache.hadoop.fs.Path(uri)
    fs = target.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration())
    fs.copyFromLocalFile(False, True, jvm.org.apache.hadoop.fs.Path(local.resolve().as_uri()), target)
    return uri


def spark_jars_archive(spark, work_dir: Path, uri: str) -> str:
    """pyspark's jars as one archive in HDFS, for ``spark.yarn.archive``: YARN localizes it
    once per node instead of spark-submit uploading 300 MB of jars for every application."""
    archive = work_dir / "spark-jars.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_STORED) as zf:
        for jar in sorted((spark_home() / "jars").glob("*.jar")):
            zf.write(jar, jar.name)
    return hdfs_put(spark, archive, uri)


def hdfs_jars(spark, jars: list[str], uri: str) -> list[str]:
    """``jars`` copied once into the HDFS folder ``uri``, as the ``hdfs://`` URIs for ``--jars``:
    spark-submit then uploads nothing per application (it did 313 MB, about 30 s, each time),
    and YARN localizes the world-readable files once per node for every application."""
    return [hdfs_put(spark, Path(jar), f"{uri}/{Path(jar).name}") for jar in jars]


def yarn_conf(*, archive: str, executors: int = 2) -> dict[str, str]:
    """The YARN settings of the submit command: pyspark's jars from ``archive`` (HDFS), and
    ``executors`` one-core executors (as many cores as the standalone test's two workers)."""
    return {
        "spark.yarn.archive": archive,
        "spark.executor.instances": str(executors),
        "spark.executor.cores": "1",
        "spark.yarn.am.memory": "512m",  # the client-mode application master only launches executors
    }


def yarn_submit_command(*, archive: str, jars: list[str], py_files: str, job: str, job_args: list[str],
                        python: str | None, driver_memory: str = "4g", deploy_mode: str = "client",
                        submit: str | None = None, log4j: str = LOG4J) -> list[str]:
    """``spark-submit --master yarn``: the standalone command line plus :func:`yarn_conf`
    (the YARN test runs it; the README shows it with placeholders)."""
    return spark_submit_command("yarn", jars, py_files, job, job_args, driver_memory=driver_memory, python=python,
                                submit=submit, deploy_mode=deploy_mode, conf=yarn_conf(archive=archive), log4j=log4j)
