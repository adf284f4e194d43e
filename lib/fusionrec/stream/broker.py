"""A real Apache Kafka broker on this machine, in KRaft mode (no ZooKeeper), for the stream's
tests and the ``make stream`` demo.

The broker's jars come from Maven Central (``make kafka`` copies ``kafka_2.13`` and its
runtime dependencies to ``.cache/kafka``); it runs in a JVM of its own::

    java -cp '.cache/kafka/*' kafka.tools.StorageTool format -t <cluster id> -c server.properties
    java -cp '.cache/kafka/*' kafka.Kafka server.properties

on 127.0.0.1 only, tracked by pid and stopped by pid (its process group: terminate, then
kill). It lives in the library, not with the test services, because ``make stream`` and
``bench/stream.py`` start it too.
"""

from __future__ import annotations

import base64
import os
import signal
import socket
import subprocess
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

__all__ = ["READY_LINE", "KafkaBroker", "free_port", "kafka_jars_dir", "stop_group"]

#: Written to the broker's log once it serves clients.
READY_LINE = "Kafka Server started"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def kafka_jars_dir(project: Path) -> Path:
    """The broker's jars under ``project`` (``.cache/kafka``, made by ``make kafka``).

    Parameters
    ----------
    project : Path
        The project directory.

    Returns
    -------
    Path
        The folder; :class:`FileNotFoundError` (naming ``make kafka``) when it holds no broker.
    """
    folder = project / ".cache" / "kafka"
    if not any(folder.glob("kafka_2.13-*.jar")):
        raise FileNotFoundError(f"{folder}: no Kafka broker jars; run 'make kafka' (or 'make setup')")
    return folder


@dataclass
class KafkaBroker:
    """A KRaft broker + controller in one JVM on 127.0.0.1.

    >>> with KafkaBroker(kafka_jars_dir(project), tmp_path / "kafka") as broker:   # doctest: +SKIP
    ...     servers = broker.bootstrap_servers
    """

    jars_dir: Path
    work_dir: Path
    port: int = field(default_factory=free_port)
    controller_port: int = field(default_factory=free_port)
    heap: str = "512m"
    partitions: int = 2
    start_timeout_s: float = 90.0
    process: subprocess.Popen | None = None

    @property
    def bootstrap_servers(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def log_file(self) -> Path:
        return self.work_dir / "broker.log"

    def _properties(self) -> Path:
        data = self.work_dir / "data"
        props = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.voters": f"1@127.0.0.1:{self.controller_port}",
            "listeners": f"PLAINTEXT://127.0.0.1:{self.port},CONTROLLER://127.0.0.1:{self.controller_port}",
            "advertised.listeners": f"PLAINTEXT://127.0.0.1:{self.port}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
            "log.dirs": str(data),
            "num.partitions": str(self.partitions),
            "auto.create.topics.enable": "true",
            "offsets.topic.replication.factor": "1",
            "offsets.topic.num.partitions": "1",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "group.initial.rebalance.delay.ms": "0",
        }
        path = self.work_dir / "server.properties"
        path.write_text("".join(f"{k}={v}\n" for k, v in props.items()))
        log4j = self.work_dir / "log4j.properties"
        log4j.write_text("log4j.rootLogger=INFO, stdout\n"
                         "log4j.appender.stdout=org.apache.log4j.ConsoleAppender\n"
                         "log4j.appender.stdout.layout=org.apache.log4j.PatternLayout\n"
                         "log4j.appender.stdout.layout.ConversionPattern=[%d] %p %m (%c)%n\n")
        return path

    def _java(self, main: str, *args: str) -> list[str]:
        return ["java", f"-Xmx{self.heap}", f"-Dlog4j.configuration=file:{self.work_dir / 'log4j.properties'}",
                "-cp", f"{self.jars_dir}/*", main, *args]

    def start(self) -> "KafkaBroker":
        """Format the storage, start the broker and wait until it serves clients."""
        self.work_dir.mkdir(parents=True, exist_ok=True)
        props = self._properties()
        cluster_id = "-"
        while cluster_id.startswith("-"):  # StorageTool would read a leading '-' as an option (as Kafka's Uuid avoids)
            cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode("ascii").rstrip("=")
        formatted = subprocess.run(self._java("kafka.tools.StorageTool", "format", "-t", cluster_id, "-c", str(props)),
                                   capture_output=True, text=True, timeout=120)
        if formatted.returncode != 0:
            raise RuntimeError(f"kafka storage format failed: {(formatted.stderr or formatted.stdout).strip()[-500:]}")
        log = open(self.log_file, "wb")
        # A new session, so that the JVM can be signalled by its process group.
        self.process = subprocess.Popen(self._java("kafka.Kafka", str(props)), stdout=log, stderr=subprocess.STDOUT,
                                        start_new_session=True)
        deadline = time.monotonic() + self.start_timeout_s
        while READY_LINE not in self.log_file.read_text(errors="replace"):
            if self.process.poll() is not None or time.monotonic() > deadline:
                tail = self.log_file.read_text(errors="replace")[-800:]
                self.stop()
                raise RuntimeError(f"kafka broker did not start (see {self.log_file}): {tail}")
            time.sleep(0.3)
        return self

    def stop(self) -> None:
        """Stop the broker by pid (process group): terminate, then kill."""
        proc, self.process = self.process, None
        if proc is not None:
            stop_group(proc, grace_s=30)

    def __enter__(self) -> "KafkaBroker":
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()


def stop_group(proc: subprocess.Popen, grace_s: float) -> None:
    """SIGTERM to ``proc``'s process group, then SIGKILL if it has not exited within ``grace_s``.

    Every service fusionrec or its tests start runs in its own process group (its JVM and
    any children), stopped by pid through this function.
    """
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    try:
        proc.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
