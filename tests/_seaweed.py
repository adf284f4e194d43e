"""A SeaweedFS server with its S3 gateway on 127.0.0.1, started and stopped by pid (tests only).

``weed server -s3`` runs a master, a volume server, a filer and the S3 gateway in one
process. Every port is picked free on 127.0.0.1, telemetry is off, and S3 requests must
be signed with the one identity written to the ``-s3.config`` file.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import TracebackType

from _processes import stop_group

HOST = "127.0.0.1"


def free_ports(n: int) -> list[int]:
    """``n`` distinct ports free on 127.0.0.1 right now."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind((HOST, 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


class SeaweedS3:
    """``weed server -s3`` in its own process group, with one admin S3 identity.

    Parameters
    ----------
    weed:
        The ``weed`` binary (``make weed`` builds ``.cache/bin/weed``).
    work_dir:
        Data, metadata, identity file and log go here.

    Example
    -------
    >>> with SeaweedS3(weed=".cache/bin/weed", work_dir=tmp) as s3:   # doctest: +SKIP
    ...     s3.create_bucket("fusionrec")
    ...     s3.endpoint, s3.access_key
    """

    def __init__(self, *, weed: str | os.PathLike[str], work_dir: Path) -> None:
        self.weed = str(Path(weed).resolve())
        self.work_dir = Path(work_dir)
        self.access_key = "fusionrec" + secrets.token_hex(4)
        self.secret_key = secrets.token_urlsafe(24)
        (self.master, self.master_grpc, self.volume, self.volume_grpc,
         self.filer, self.filer_grpc, self.s3, self.s3_grpc) = free_ports(8)
        self.process: subprocess.Popen | None = None

    @property
    def endpoint(self) -> str:
        return f"http://{HOST}:{self.s3}"

    def command(self) -> list[str]:
        return [
            self.weed, "server", "-s3",
            f"-dir={self.work_dir / 'data'}", f"-ip={HOST}", f"-ip.bind={HOST}",
            f"-master.port={self.master}", f"-master.port.grpc={self.master_grpc}",
            f"-volume.port={self.volume}", f"-volume.port.grpc={self.volume_grpc}",
            f"-filer.port={self.filer}", f"-filer.port.grpc={self.filer_grpc}",
            f"-s3.port={self.s3}", f"-s3.port.grpc={self.s3_grpc}",
            # Only the S3 API: no Iceberg/Lance catalogs on fixed ports, nothing sent off the machine.
            "-s3.port.iceberg=0", "-s3.port.lance=0",
            "-master.telemetry=false", f"-master.telemetry.url=http://{HOST}:1/",
            "-volume.max=0", "-master.volumeSizeLimitMB=64",
            f"-s3.config={self.work_dir / 's3.json'}",
        ]

    def start(self, timeout_s: float = 120.0) -> "SeaweedS3":
        (self.work_dir / "data").mkdir(parents=True, exist_ok=True)
        identity = {"identities": [{
            "name": "fusionrec",
            "credentials": [{"accessKey": self.access_key, "secretKey": self.secret_key}],
            "actions": ["Admin", "Read", "List", "Tagging", "Write"],
        }]}
        (self.work_dir / "s3.json").write_text(json.dumps(identity))
        log = open(self.work_dir / "weed.log", "wb")
        self.process = subprocess.Popen(self.command(), stdout=log, stderr=subprocess.STDOUT,
                                        start_new_session=True, cwd=self.work_dir)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"weed server exited with {self.process.returncode}; see {self.work_dir / 'weed.log'}")
            if self._s3_answers():
                return self
            time.sleep(0.5)
        self.stop()
        raise RuntimeError(f"weed server: no S3 answer in {timeout_s:.0f}s; see {self.work_dir / 'weed.log'}")

    def _s3_answers(self) -> bool:
        # An unsigned request is refused (403) once the gateway runs: that is the readiness signal.
        try:
            urllib.request.urlopen(self.endpoint + "/", timeout=2)
            return True
        except urllib.error.HTTPError:
            return True
        except OSError:
            return False

    def shell(self, script: str, timeout_s: float = 120.0) -> str:
        """Run ``weed shell`` commands against this server; returns their output."""
        result = subprocess.run([self.weed, "shell", f"-master={HOST}:{self.master}.{self.master_grpc}"], input=script + "\nexit\n",
                                capture_output=True, text=True, timeout=timeout_s, cwd=self.work_dir)
        if result.returncode != 0:
            raise RuntimeError(f"weed shell failed ({result.returncode}): {result.stdout}{result.stderr}")
        return result.stdout

    def create_bucket(self, name: str, timeout_s: float = 120.0) -> None:
        """Create bucket ``name`` (retried while the filer registers with the master)."""
        deadline = time.monotonic() + timeout_s
        while True:
            self.shell(f"s3.bucket.create -name {name}")
            if name in self.shell("s3.bucket.list").split():
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"bucket {name} not created; see {self.work_dir / 'weed.log'}")
            time.sleep(1)

    def list_keys(self, bucket: str, prefix: str = "") -> list[str]:
        """Every object key under ``prefix`` in ``bucket``, read from the filer's own listing
        (independent of S3A): ``/buckets/<bucket>/...`` is where the gateway keeps objects."""
        keys: list[str] = []

        def walk(folder: str) -> None:
            last = ""
            while True:
                url = f"http://{HOST}:{self.filer}/buckets/{bucket}/{folder}?limit=1000&lastFileName={last}"
                req = urllib.request.Request(url, headers={"Accept": "application/json"})
                try:
                    with urllib.request.urlopen(req, timeout=10) as resp:
                        doc = json.load(resp)
                except urllib.error.HTTPError as exc:
                    if exc.code == 404:
                        return
                    raise
                entries = doc.get("Entries") or []
                for entry in entries:
                    name = entry["FullPath"].split(f"/buckets/{bucket}/", 1)[1]
                    if entry.get("Mode", 0) & (1 << 31):  # os.ModeDir
                        walk(name + "/")
                    else:
                        keys.append(name)
                if not doc.get("ShouldDisplayLoadMore"):
                    return
                last = entries[-1]["FullPath"].rsplit("/", 1)[1]

        walk(prefix)
        return sorted(keys)

    def stop(self) -> None:
        """Stop the server by pid (its process group): SIGTERM (a graceful stop takes ~30 s), then SIGKILL after 60 s."""
        proc, self.process = self.process, None
        if proc is None:
            return
        stop_group(proc, 60)

    def __enter__(self) -> "SeaweedS3":
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
