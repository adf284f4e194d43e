"""``mlflow models serve`` on loopback answers REST requests by raw user id, in both JSON
formats, with one-line 400s for bad requests."""

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


def test_rest_serving_answers(registered, registry_lake, key_env, tmp_path):
    lake_cfg, truth = registry_lake
    port = _free_port()
    mlflow_cli = Path(sys.executable).with_name("mlflow")
    # The server execs uvicorn by name: the environment's bin folder must be on PATH. The key
    # reaches it through the environment (key_env), as in a deployment.
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

        records = [
            {"user_id": "u2", "k": 3},  # the consumer's own id; fields left out are defaults
            {"liked_items": ["i24", "i25"], "k": 2},
            {"user_id": "somebody-new"},
        ]
        for payload in ({"dataframe_records": records}, {"inputs": records}):
            status, body = _post(f"{base}/invocations", payload)
            assert status == 200, body
            rows = body["predictions"]
            known, liked, unknown = ([r for r in rows if r["request_id"] == i] for i in range(3))
            assert [r["rank"] for r in known] == [1, 2, 3] and len(liked) == 2 and len(unknown) == 5
            assert not {r["item_id"] for r in known} & set(truth["seen"]["u2"])
            assert all(r["item_id"] in truth["item_ids"][24:32] for r in liked)  # gardening, like i24 and i25
            assert all(r["title"] and r["reason"] and r["fallback"] is False and r["note"] is None
                       for r in known + liked)
            assert all(r["fallback"] is True and r["note"] == "unknown user_id: popular items" for r in unknown)

        # Columns ({"inputs": {field: [...]}}) work too.
        status, body = _post(f"{base}/invocations", {"inputs": {"user_id": ["u2", "u3"], "k": [1, 2]}})
        assert status == 200 and len(body["predictions"]) == 3, body

        for bad, message in (
                ({"user_id": "u2", "k": 0}, "row 1: k must be an integer 1..100, got 0"),
                ({"user_id": "u2", "k": 2.5}, "row 1: k must be an integer 1..100, got 2.5"),
                ({"user_id": "u2", "k": "5"}, "row 1: k must be an integer 1..100, got '5'"),
                ({"user_id": "u2", "k": True}, "row 1: k must be an integer 1..100, got True"),
                ({"user_id": "u2", "k": 1e30}, "row 1: k must be an integer 1..100, got 1e+30"),
                ({"user_id": 7}, "row 1: user_id must be a string of 1..256 characters, got int 7")):
            for fmt in ("dataframe_records", "inputs"):
                status, body = _post(f"{base}/invocations", {fmt: [{"user_id": "u1", "k": 3}, bad]})
                assert status == 400 and body["message"] == message, (fmt, bad, body)
        status, body = _post(f"{base}/invocations", {"inputs": [{"user_id": "u1"}] * 1001})
        assert status == 400 and body["message"] == "request: 1001 rows; at most 1000 rows per request", body
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait(timeout=30)
        log.close()
