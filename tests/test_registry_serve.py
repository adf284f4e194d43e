"""``mlflow models serve`` on loopback answers a REST request for recommendations."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path


pytest_plugins = ["_registry_lake"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _post(url: str, payload: dict) -> tuple[int, dict]:
    request = urllib.request.Request(url, data=json.dumps(payload).encode(),
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def test_rest_serving_answers(registered, registry_lake, tmp_path):
    lake_cfg, truth = registry_lake
    port = _free_port()
    mlflow_cli = Path(sys.executable).with_name("mlflow")
    # The server execs uvicorn by name: the environment's bin folder must be on PATH.
    env = {**os.environ, "MLFLOW_TRACKING_URI": lake_cfg.mlflow.tracking_uri,
           "PATH": f"{mlflow_cli.parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    log = (tmp_path / "serve.log").open("w")
    server = subprocess.Popen(
        [str(mlflow_cli), "models", "serve", "-m", f"models:/{lake_cfg.mlflow.model_name}@champion",
         "--host", "127.0.0.1", "--port", str(port), "--env-manager", "local", "--workers", "1"],
        stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 240
        while True:
            assert server.poll() is None, (tmp_path / "serve.log").read_text()[-3000:]
            try:
                with urllib.request.urlopen(f"{base}/ping", timeout=5) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            assert time.monotonic() < deadline, "server did not answer /ping in time"
            time.sleep(1)

        status, body = _post(f"{base}/invocations", {"dataframe_records": [
            # Rows of one batch name the same columns (null where unused): MLflow converts per column.
            {"user_id": "u2", "liked_items": None, "k": 3},
            {"user_id": None, "liked_items": ["i24", "i25"], "k": 2},
        ]})
        assert status == 200, body
        rows = body["predictions"]
        known = [r for r in rows if r["request_id"] == 0]
        liked = [r for r in rows if r["request_id"] == 1]
        assert [r["rank"] for r in known] == [1, 2, 3] and len(liked) == 2
        assert not {r["item_id"] for r in known} & set(truth["seen"]["u2"])
        assert all(r["item_id"] in truth["item_ids"][24:32] for r in liked)  # gardening, like i24 and i25
        assert all(r["title"] and r["reason"] and r["fallback"] is False for r in rows)

        status, body = _post(f"{base}/invocations", {"dataframe_records": [{"user_id": "u2", "k": 0}]})
        assert status == 400 and "k=0 is out of range" in body["message"]
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait(timeout=30)
        log.close()
