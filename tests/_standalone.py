"""A real Spark standalone cluster on this machine: one master and N workers on 127.0.0.1.

Started from the pip pyspark distribution, which ships ``bin/spark-class`` but not
``sbin/start-*.sh``::

    spark-class org.apache.spark.deploy.master.Master --host 127.0.0.1 --port P
    spark-class org.apache.spark.deploy.worker.Worker spark://127.0.0.1:P --cores 1

Every process started is tracked by pid and stopped on exit (terminate, then kill),
so a test that uses the cluster leaves nothing running.
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import socket
import subprocess
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

import pyspark


def spark_home() -> Path:
    """The pip pyspark distribution (holds ``bin/spark-class`` and ``bin/spark-submit``)."""
    return Path(pyspark.__file__).resolve().parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class StandaloneCluster:
    """``with StandaloneCluster(workers=2, cores_per_worker=1) as c: ... c.master_url``."""

    workers: int = 2
    cores_per_worker: int = 1
    memory_per_worker: str = "3g"
    work_dir: Path = field(default_factory=lambda: Path("work/standalone"))
    python: str | None = None
    start_timeout_s: float = 90.0
    master_port: int = field(default_factory=free_port)
    master_ui_port: int = field(default_factory=free_port)
    processes: list[subprocess.Popen] = field(default_factory=list)

    @property
    def master_url(self) -> str:
        return f"spark://127.0.0.1:{self.master_port}"

    def _env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update({
            "SPARK_HOME": str(spark_home()),
            "SPARK_LOCAL_IP": "127.0.0.1",
            "SPARK_NO_DAEMONIZE": "1",
        })
        if self.python:
            env["PYSPARK_PYTHON"] = self.python
        return env

    def _spawn(self, name: str, args: list[str]) -> None:
        self.work_dir.mkdir(parents=True, exist_ok=True)
        log = open(self.work_dir / f"{name}.log", "wb")
        cmd = [str(spark_home() / "bin" / "spark-class"), *args]
        # A new session so that the whole JVM tree can be signalled by pid group.
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=self._env(), start_new_session=True)
        self.processes.append(proc)

    def alive_workers(self) -> int:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.master_ui_port}/json/", timeout=2) as resp:
                state = json.load(resp)
        except (OSError, ValueError):
            return 0
        return sum(1 for w in state.get("workers", []) if w.get("state") == "ALIVE")

    def start(self) -> "StandaloneCluster":
        self._spawn("master", ["org.apache.spark.deploy.master.Master", "--host", "127.0.0.1",
                               "--port", str(self.master_port), "--webui-port", str(self.master_ui_port)])
        for i in range(self.workers):
            worker_dir = (self.work_dir / f"worker-{i}").resolve()
            worker_dir.mkdir(parents=True, exist_ok=True)
            self._spawn(f"worker-{i}", ["org.apache.spark.deploy.worker.Worker", self.master_url,
                                        "--host", "127.0.0.1", "--cores", str(self.cores_per_worker),
                                        "--memory", self.memory_per_worker, "--webui-port", str(free_port()),
                                        "--work-dir", str(worker_dir)])
        deadline = time.monotonic() + self.start_timeout_s
        while self.alive_workers() < self.workers:
            dead = [p.args[1] for p in self.processes if p.poll() is not None]
            if dead or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(
                    f"standalone cluster did not start ({'exited: ' + ', '.join(dead) if dead else 'timeout'}); "
                    f"see logs in {self.work_dir}"
                )
            time.sleep(0.5)
        return self

    def stop(self) -> None:
        """Stop every process this cluster started, by pid (process group)."""
        for proc in reversed(self.processes):
            if proc.poll() is None:
                try:
                    os.killpg(proc.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        for proc in reversed(self.processes):
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=5)
        self.processes.clear()

    def __enter__(self) -> "StandaloneCluster":
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()


#: The driver's log4j2 configuration: benign JVM warnings off the console.
LOG4J = str(Path(__file__).resolve().parents[1] / "conf" / "log4j2.properties")


def spark_submit_command(master_url: str, jars: list[str], py_files: str, job: str, job_args: list[str],
                         executor_memory: str = "2g", driver_memory: str = "4g",
                         python: str | None = None, submit: str | None = None,
                         deploy_mode: str = "client", conf: dict[str, str] | None = None,
                         log4j: str = LOG4J) -> list[str]:
    """The spark-submit command line used by the cluster tests (and shown in the README).

    :param submit: the ``spark-submit`` program (default: the one of the pyspark distribution).
    :param conf: settings of one cluster manager (e.g. ``spark.yarn.archive``), after the common ones.
    :param log4j: the driver's log4j2 file, in client deploy mode (in cluster mode the driver
        runs on a node that may not have it).
    """
    cmd = [submit or str(spark_home() / "bin" / "spark-submit"), "--master", master_url,
           "--deploy-mode", deploy_mode, "--driver-memory", driver_memory]
    if deploy_mode == "client":
        cmd += ["--driver-java-options", f"-Dlog4j.configurationFile={log4j}"]
    cmd += ["--conf", f"spark.executor.memory={executor_memory}",
            "--conf", "spark.serializer=org.apache.spark.serializer.KryoSerializer",
            "--conf", "spark.kryoserializer.buffer.max=1000m",
            "--conf", "spark.sql.extensions=io.delta.sql.DeltaSparkSessionExtension",
            "--conf", "spark.sql.catalog.spark_catalog=org.apache.spark.sql.delta.catalog.DeltaCatalog"]
    for key, value in (conf or {}).items():
        cmd += ["--conf", f"{key}={value}"]
    if python:
        cmd += ["--conf", f"spark.pyspark.python={python}"]
    cmd += ["--jars", ",".join(jars), "--py-files", py_files, job, *job_args]
    return cmd


#: Options that start a new line of a wrapped command.
_OWN_LINE = ("--driver-java-options", "--conf", "--jars", "--packages", "--py-files", "--files", "--archives")


def _quote(token: str) -> str:
    # A shell expansion (``$VAR``, ``$(...)``) stays live inside double quotes.
    return f'"{token}"' if token.startswith("$") else shlex.quote(token)


def format_command(cmd: list[str], wrap: bool = False) -> str:
    """``cmd`` as a shell command line; ``wrap``: one ``--conf``/``--jars``/... option per
    line and the job (the first ``*.py``) with its arguments on the last, as in the README."""
    if not wrap:
        return " ".join(_quote(c) for c in cmd)
    lines: list[list[str]] = [[]]
    job_seen = False
    for i, token in enumerate(cmd):
        is_job = not job_seen and token.endswith(".py") and i > 0 and not cmd[i - 1].startswith("--")
        if lines[-1] and (token in _OWN_LINE and not job_seen or is_job):
            lines.append([])
        job_seen = job_seen or is_job
        lines[-1].append(_quote(token))
    return " \\\n".join(("  " if n else "") + " ".join(line) for n, line in enumerate(lines))
