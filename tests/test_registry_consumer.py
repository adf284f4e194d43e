"""The consumer notebook runs against the registry: champion by alias, three kinds of request, no Spark."""

from __future__ import annotations

import json
import os
from pathlib import Path

import nbformat
from nbclient import NotebookClient

pytest_plugins = ["_registry_lake"]

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "consumer.ipynb"


def test_notebook_is_committed_without_outputs():
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    code = [c for c in notebook.cells if c.cell_type == "code"]
    assert code and all(not c.outputs and c.execution_count is None for c in code)


def test_consumer_notebook(registered, registry_lake, key_env, monkeypatch):
    lake_cfg, truth = registry_lake
    # The kernel inherits this environment: the test store, the test model, the key (key_env),
    # a raw user id and two gardening items.
    monkeypatch.setenv("MLFLOW_TRACKING_URI", lake_cfg.mlflow.tracking_uri)
    monkeypatch.setenv("FUSIONREC_MODEL_NAME", lake_cfg.mlflow.model_name)
    monkeypatch.setenv("FUSIONREC_KNOWN_USER", "u6")
    monkeypatch.setenv("FUSIONREC_LIKED_ITEMS", json.dumps(["i24", "i26"]))
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(notebook, timeout=300, kernel_name="python3",
                   resources={"metadata": {"path": str(NOTEBOOK.parent)}}).execute(env=dict(os.environ))
    last = notebook.cells[-1].outputs
    summary = json.loads("".join(o.get("text", "") for o in last if o.get("name") == "stdout").strip())

    assert summary["jvm_started"] is False
    assert summary["version"] == registered.version
    known = summary["known"]
    assert summary["known_user"] == "u6"
    assert len(known) == 5 and not any(r["fallback"] for r in known)
    assert not {r["item_id"] for r in known} & set(truth["seen"][summary["known_user"]])
    # "an exciting space adventure with astronauts and rockets" -> space titles first.
    assert {r["item_id"] for r in summary["from_text"][:3]} <= set(truth["item_ids"][:8])
    from_items = {r["item_id"] for r in summary["from_items"]}
    assert not from_items & {"i24", "i26"} and {r["item_id"] for r in summary["from_items"][:3]} <= set(truth["item_ids"][24:32])
