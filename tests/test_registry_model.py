"""The registered pyfunc model: run contents, load by alias without Spark, request validation."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import mlflow
import pandas as pd
import pytest
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from fusionrec.registry.pyfunc import RESPONSE_COLUMNS

pytest_plugins = ["_registry_lake"]

# Runs in a fresh interpreter: load by alias, predict the three kinds of request, and report
# whether a JVM was started (a py4j gateway, or any java child process).
CONSUMER = textwrap.dedent("""
    import json, os, sys
    import mlflow, pandas as pd
    mlflow.set_tracking_uri(sys.argv[1])
    model = mlflow.pyfunc.load_model(f"models:/{sys.argv[2]}@champion")
    requests = pd.DataFrame({
        "user_id": ["u1", None, None, "someone-new", "u1"],
        "text": [None, "rockets, astronauts and the exploration of space", None, None, None],
        "liked_items": [None, None, ["i16", "i17"], None, None],
        "k": [3, 3, 3, 2, 3],
        "recent_items": [None, None, None, None, ["i16", "i17", "i18", "i19"]],
        "recent_weights": [None, None, None, None, [8.0, 8.0, 8.0, 8.0]],
    })
    out = model.predict(requests)
    from pyspark import SparkContext
    children = []
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                stat = open(f"/proc/{pid}/stat").read().split()
            except OSError:
                continue
            if int(stat[3]) == os.getpid():
                children.append(stat[1])
    print(json.dumps({"rows": out.to_dict("records"), "columns": list(out.columns),
                      "gateway": SparkContext._gateway is not None, "children": children}))
""")


def test_register_logs_a_traceable_run(registered, registry_lake):
    lake_cfg, _ = registry_lake
    client = MlflowClient(lake_cfg.mlflow.tracking_uri)
    run = client.get_run(registered.run_id)
    # Params = resolved configuration; tags = git commit and lane versions.
    assert run.data.params["model.rank"] == str(lake_cfg.model.rank)
    assert run.data.params["lake.root"] == lake_cfg.lake.root
    assert run.data.tags["lane.pyspark"] == "3.5.8" and run.data.tags["lane.mlflow"] == mlflow.__version__
    assert "git.commit" in run.data.tags
    # Metrics: the evaluation table and the gate's number.
    assert run.data.metrics["eval.hybrid.ndcg_at_10"] == pytest.approx(0.30)
    assert run.data.metrics["eval.popularity.recall_at_10"] == pytest.approx(0.1)
    assert run.data.metrics["eval.hybrid.cold_items.recall_at_10"] == pytest.approx(0.2)
    artifacts = {a.path for a in client.list_artifacts(registered.run_id, "evaluation")}
    assert artifacts == {"evaluation/evaluation.json", "evaluation/evaluation.png"}
    assert "run_report.json" in {a.path for a in client.list_artifacts(registered.run_id)}
    # Dataset inputs: every Delta table read, pinned to its version.
    inputs = {d.dataset.name: d for d in run.inputs.dataset_inputs}
    assert "gold.interactions@v0" in inputs and "gold.recommendations@v0" in inputs
    item_factors = inputs["model.item_factors@v0"]
    assert json.loads(item_factors.dataset.source)["path"].endswith("/model/item_factors")
    assert item_factors.dataset.source_type == "delta_table" and item_factors.dataset.digest == "v0"
    assert {t.key: t.value for t in item_factors.tags}["delta_version"] == "0"
    assert run.data.tags["delta.gold.recommendations.version"] == "0"
    # The recommendations snapshot of exactly this version, as Parquet.
    local = mlflow.artifacts.download_artifacts(
        run_id=registered.run_id, artifact_path="recommendations/recommendations_v0.parquet",
        tracking_uri=lake_cfg.mlflow.tracking_uri)
    snapshot = pd.read_parquet(local)
    assert list(snapshot.columns) == ["user_id", "rank", "item_id", "score", "reason"]
    assert len(snapshot) == 24 * 3
    version = client.get_model_version(lake_cfg.mlflow.model_name, registered.version)
    assert version.tags["recommendations.delta_version"] == "0"
    assert float(version.tags["eval.metric_value"]) == pytest.approx(0.30)


def test_model_loads_by_alias_and_predicts_without_spark(registered, registry_lake):
    lake_cfg, truth = registry_lake
    done = subprocess.run([sys.executable, "-c", CONSUMER, lake_cfg.mlflow.tracking_uri, lake_cfg.mlflow.model_name],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["gateway"] is False and "(java)" not in result["children"]
    assert result["columns"] == list(RESPONSE_COLUMNS)
    rows = pd.DataFrame(result["rows"])
    known, text, liked, unknown, recent = (rows[rows.request_id == i] for i in range(5))
    assert list(known["rank"]) == [1, 2, 3] and not known.fallback.any()
    assert not set(known.item_id) & set(truth["seen"]["u1"])
    assert known.score.is_monotonic_decreasing
    # A sentence about space brings space titles; two football items bring football.
    space = set(truth["item_ids"][:8])
    assert set(text.item_id) <= space
    assert set(liked.item_id) <= set(truth["item_ids"][16:24]) and not {"i16", "i17"} & set(liked.item_id)
    assert unknown.fallback.all() and set(unknown.reason) == {"popular now"} and len(unknown) == 2
    # The same user after four football events since training: folded in at request time.
    football = set(truth["item_ids"][16:24])
    assert len(set(recent.item_id) & football) >= 2 and not recent.fallback.any()
    assert not {"i16", "i17", "i18", "i19"} & set(recent.item_id)


@pytest.fixture(scope="module")
def model(registered, registry_lake):
    lake_cfg, _ = registry_lake
    mlflow.set_tracking_uri(lake_cfg.mlflow.tracking_uri)
    return mlflow.pyfunc.load_model(registered.model_uri)


@pytest.mark.parametrize("request_frame, message", [
    (pd.DataFrame({"k": [3]}), "needs a user_id, text or liked_items column"),
    (pd.DataFrame({"user_id": ["u1"], "recent_items": [["i1", "i2"]], "recent_weights": [[1.0]]}),
     "row 0: recent_weights has 1 numbers for 2 recent_items"),
    (pd.DataFrame({"user_id": ["u1"], "k": [0]}), "k=0 is out of range"),
    (pd.DataFrame({"user_id": ["u1"], "k": [-2]}), "k=-2 is out of range"),
    (pd.DataFrame({"user_id": ["u1"], "k": [10 ** 6]}), "k=1000000 is out of range; 1 <= k <= 32"),
    (pd.DataFrame({"user_id": ["u1", None], "k": [3, 3]}), "row 1: give a user_id, a text or liked_items"),
    (pd.DataFrame({"liked_items": [["nope", "never"]], "k": [3]}), "none of liked_items"),
    (pd.DataFrame({"text": ["   "], "k": [3]}), "row 0: text is empty"),
    (pd.DataFrame({"user_id": [17], "k": [3]}), "user_id"),
    (pd.DataFrame({"user_id": ["u1"], "k": [2.5]}), "column k"),
    (pd.DataFrame({"user_id": ["u1"], "k": ["many"]}), "column k"),
])
def test_malformed_requests_are_one_clear_error(model, request_frame, message):
    with pytest.raises(MlflowException, match=message) as caught:
        model.predict(request_frame)
    assert "Traceback" not in str(caught.value)


def test_validation_without_schema_enforcement(model):
    """Called directly (as a Python object), the model still rejects bad types itself."""
    python_model = model.unwrap_python_model()
    with pytest.raises(ValueError, match="row 0: user_id must be a string, got int"):
        python_model.predict(None, pd.DataFrame({"user_id": [17], "k": [3]}))
    with pytest.raises(ValueError, match="k must be a whole number"):
        python_model.predict(None, pd.DataFrame({"user_id": ["u1"], "k": [2.5]}))
    with pytest.raises(ValueError, match="liked_items must be a list"):
        python_model.predict(None, pd.DataFrame({"liked_items": ["i1"], "k": [3]}))
    with pytest.raises(ValueError, match="unknown column"):
        python_model.predict(None, pd.DataFrame({"user_id": ["u1"], "colour": ["red"]}))
    with pytest.raises(ValueError, match="expected a table"):
        python_model.predict(None, [{"user_id": "u1"}])


def test_signature_and_input_example(registered, registry_lake):
    lake_cfg, _ = registry_lake
    info = mlflow.models.get_model_info(registered.model_uri)
    assert [c["name"] for c in info.signature.inputs.to_dict()] == ["user_id", "text", "liked_items", "k",
                                                                    "recent_items", "recent_weights"]
    assert [c["name"] for c in info.signature.outputs.to_dict()] == list(RESPONSE_COLUMNS)
    assert info.saved_input_example_info is not None
