"""The registered pyfunc model: run contents, load by alias without Spark, raw user ids
pseudonymised with the serving key, request validation and flagged degenerate answers."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import mlflow
import pandas as pd
import pytest
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from fusionrec.ingest.privacy import key_file
from fusionrec.registry.pyfunc import (MAX_ID_LENGTH, MAX_LIST_ITEMS, MAX_REQUEST_ROWS, MAX_TEXT_LENGTH, NOTE_NOTHING_LEFT, NOTE_UNKNOWN_USER,
                                       REQUEST_FIELDS, RESPONSE_COLUMNS)
from _registry_lake import KEY_ENV, P

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


def test_model_loads_by_alias_and_predicts_without_spark(registered, registry_lake, key_env):
    lake_cfg, truth = registry_lake
    # Raw ids in ("u1", as the consumer knows the user); the key comes from the environment.
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
    assert set(unknown.note) == {NOTE_UNKNOWN_USER} and known.note.isna().all()
    # The same user after four football events since training: folded in at request time.
    football = set(truth["item_ids"][16:24])
    assert len(set(recent.item_id) & football) >= 2 and not recent.fallback.any()
    assert not {"i16", "i17", "i18", "i19"} & set(recent.item_id)


@pytest.fixture(scope="module")
def model(registered, registry_lake):
    lake_cfg, _ = registry_lake
    mlflow.set_tracking_uri(lake_cfg.mlflow.tracking_uri)
    return mlflow.pyfunc.load_model(registered.model_uri)


def test_raw_ids_are_pseudonymised_with_the_serving_key(model, registry_lake, key_env):
    lake_cfg, truth = registry_lake
    # The batch top-K of u5 is stored under its pseudonym; asking by the raw id finds it.
    from_raw = model.predict(pd.DataFrame({"user_id": ["u5"], "k": [3]}))
    assert not from_raw.fallback.any() and from_raw.note.isna().all()
    assert not set(from_raw.item_id) & set(truth["seen"]["u5"])
    # The pseudonym is not a way in: it is pseudonymised again and is nobody.
    by_pseudonym = model.predict(pd.DataFrame({"user_id": [P("u5")], "k": [3]}))
    assert by_pseudonym.fallback.all() and set(by_pseudonym.note) == {NOTE_UNKNOWN_USER}


def test_missing_key_fails_requests_by_user_id_only(registered, registry_lake, monkeypatch):
    lake_cfg, _ = registry_lake
    monkeypatch.delenv(KEY_ENV, raising=False)
    monkeypatch.delenv(KEY_ENV + "_FILE", raising=False)
    assert not key_file(lake_cfg).exists(), "the registry lake's local key file must not exist"
    fresh = mlflow.pyfunc.load_model(registered.model_uri)  # no key read yet
    assert len(fresh.predict(pd.DataFrame({"text": ["rockets and astronauts"], "k": [3]}))) == 3
    with pytest.raises(MlflowException, match=rf"^user_id: \${KEY_ENV} is not set .*cannot be pseudonymised") as caught:
        fresh.predict(pd.DataFrame({"user_id": ["u1"], "k": [3]}))
    assert "\n" not in caught.value.message and caught.value.get_http_status_code() == 500


def test_key_from_a_key_file_named_by_the_environment(registered, registry_lake, monkeypatch, tmp_path, key_env):
    key_file = tmp_path / "serving.key"
    key_file.write_text(key_env.encode().hex() + "\n")
    key_file.chmod(0o600)
    monkeypatch.delenv(KEY_ENV)
    monkeypatch.setenv(KEY_ENV + "_FILE", str(key_file))
    fresh = mlflow.pyfunc.load_model(registered.model_uri)
    assert not fresh.predict(pd.DataFrame({"user_id": ["u5"], "k": [3]})).fallback.any()


def test_a_text_that_matches_nothing_is_not_said_to_match(model):
    rows = model.predict(pd.DataFrame({"text": ["rockets and astronauts", "qxz vlorp zzkt wubba frell"], "k": [5, 5]}))
    space, gibberish = rows[rows.request_id == 0], rows[rows.request_id == 1]
    assert "matches your description" in set(space.reason)
    assert len(gibberish) == 5 and "matches your description" not in set(gibberish.reason)


BAD_K = {2.5: "2.5", True: "True", "5": "'5'", 1e30: "1e+30", 0: "0", -2: "-2", 101: "101", float("inf"): "inf"}


@pytest.mark.parametrize("value", list(BAD_K), ids=[repr(v) for v in BAD_K])
def test_k_is_strictly_an_integer_in_range(model, key_env, value):
    rows = pd.DataFrame({"user_id": ["u1", "u2"], "k": pd.Series([3, value], dtype=object)})
    with pytest.raises(MlflowException) as caught:
        model.predict(rows)
    assert caught.value.message == f"row 1: k must be an integer 1..100, got {BAD_K[value]}"
    assert caught.value.get_http_status_code() == 400


def test_k_defaults_per_row(model, key_env):
    out = model.predict(pd.DataFrame({"user_id": ["u1", "u2"], "k": [2, None]}))
    assert (out.request_id == 0).sum() == 2 and (out.request_id == 1).sum() == 5  # the model's k


@pytest.mark.parametrize("request_frame, message", [
    (pd.DataFrame({"k": [3]}), "request: needs a user_id, text, liked_items or recent_items field"),
    (pd.DataFrame({"user_id": ["u1"], "recent_items": [["i1", "i2"]], "recent_weights": [[1.0]]}),
     "row 0: recent_weights has 1 numbers for 2 recent_items"),
    (pd.DataFrame({"user_id": ["u1"], "recent_items": [["i1"]], "recent_weights": [[-1.0]]}),
     "row 0: recent_weights must be finite numbers >= 0, got -1.0"),
    (pd.DataFrame({"user_id": ["u1", None], "k": [3, 3]}), "row 1: give a user_id, a text, liked_items or recent_items"),
    (pd.DataFrame({"liked_items": [["nope", "never"]], "k": [3]}), "row 0: none of liked_items ['nope', 'never'] is in"),
    (pd.DataFrame({"text": ["   "], "k": [3]}), "row 0: text is blank"),
    (pd.DataFrame({"text": ["x" * (MAX_TEXT_LENGTH + 1)]}), f"row 0: text must be at most {MAX_TEXT_LENGTH} characters, got 4001"),
    (pd.DataFrame({"user_id": pd.Series(["u1", 17], dtype=object)}), "row 1: user_id must be a string of 1..256 characters, got int 17"),
    (pd.DataFrame({"liked_items": ["i1"], "k": [3]}), "row 0: liked_items must be a list of item id strings, got str 'i1'"),
    (pd.DataFrame({"liked_items": [["i1", 5]]}), "row 0: liked_items must be a list of item id strings, got an element 5"),
    (pd.DataFrame({"user_id": ["u1"] * (MAX_REQUEST_ROWS + 1)}), f"request: 1001 rows; at most {MAX_REQUEST_ROWS} rows per request"),
])
def test_malformed_requests_are_one_clear_error(model, key_env, request_frame, message):
    with pytest.raises(MlflowException) as caught:
        model.predict(request_frame)
    assert caught.value.message.startswith(message) and "\n" not in caught.value.message
    assert caught.value.get_http_status_code() == 400


def test_validation_without_schema_enforcement(model):
    """Called directly (as a Python object), the model still rejects bad input itself."""
    python_model = model.unwrap_python_model()
    with pytest.raises(ValueError, match="unknown field"):
        python_model.predict(None, pd.DataFrame({"user_id": ["u1"], "colour": ["red"]}))
    with pytest.raises(ValueError, match="expected a table"):
        python_model.predict(None, "u1")


def test_combined_inputs_and_degenerate_answers_are_flagged(model, registry_lake, key_env):
    lake_cfg, truth = registry_lake
    space, football = set(truth["item_ids"][:8]), set(truth["item_ids"][16:24])
    # u2 likes football (topic 2 of 4); a text about space is an extra signal, not ignored.
    alone = model.predict(pd.DataFrame({"user_id": ["u2"], "k": [5]}))
    with_text = model.predict(pd.DataFrame({"user_id": ["u2"], "text": ["rockets, astronauts and space travel"],
                                            "k": [5]}))
    assert list(zip(with_text.item_id, with_text.score)) != list(zip(alone.item_id, alone.score))
    assert not set(with_text.item_id) & set(truth["seen"]["u2"]) and not with_text.fallback.any()
    # Everything liked: one row saying there is nothing left, never zero rows.
    everything = model.predict(pd.DataFrame({"liked_items": [truth["item_ids"]], "k": [3]}))
    assert len(everything) == 1 and everything["rank"].iloc[0] == 0 and everything.item_id.isna().all()
    assert everything.note.iloc[0].endswith(NOTE_NOTHING_LEFT)
    # All but two liked: two rows, flagged as fewer than asked.
    most = model.predict(pd.DataFrame({"liked_items": [truth["item_ids"][2:]], "k": [3]}))
    assert len(most) == 2 and set(most.note) == {"only 2 items left to recommend (k=3)"}
    # Unknown items among the liked ones are named as ignored.
    partly = model.predict(pd.DataFrame({"liked_items": [["i16", "no-such-item"]], "k": [3]}))
    assert set(partly.note) == {"ignored 1 liked_items not in the catalogue"} and set(partly.item_id) <= football


def test_signature_and_input_example(registered, registry_lake):
    lake_cfg, _ = registry_lake
    info = mlflow.models.get_model_info(registered.model_uri)
    assert [c["name"] for c in info.signature.inputs.to_dict()] == list(REQUEST_FIELDS)
    assert [c["name"] for c in info.signature.outputs.to_dict()] == list(RESPONSE_COLUMNS)
    assert info.saved_input_example_info is not None


def test_recommend_command_answers_for_a_raw_user_id(registry_lake, spark, key_env, capsys):
    """``fusionrec recommend --user RAW_ID`` prints the user's rows of gold.recommendations."""
    from fusionrec.cli import main

    lake_cfg, truth = registry_lake
    expected = [r.item_id for r in spark.read.format("delta").load(f"{lake_cfg.lake.root}/gold/recommendations")
                .where(f"user_id = '{P('u4')}'").orderBy("rank").collect()]
    assert len(expected) == 3
    args = ["recommend", "--user", "u4", "--set", f"lake.root={lake_cfg.lake.root}"]
    assert main(args) == 0
    lines = capsys.readouterr().out.strip().splitlines()[-3:]
    assert [line.split()[1] for line in lines] == expected
    assert [line.split()[0] for line in lines] == ["1", "2", "3"]
    title = truth["titles"][truth["item_ids"].index(expected[0])]
    assert title in lines[0]
    # An id the lake does not know: one line, exit 2, and the id is not echoed.
    assert main(["recommend", "--user", "nobody-77", "--set", f"lake.root={lake_cfg.lake.root}"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no recommendations for this user" in err[0] and "nobody-77" not in err[0]


def test_readme_documents_the_request_schema_and_limits():
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    section = readme[readme.index("**Request schema**"):readme.index("**Combined inputs.**")]
    assert re.findall(r"^\| `(\w+)` \|", section, re.M) == list(REQUEST_FIELDS)
    limits = readme[readme.index("**Limits.**"):readme.index("**Errors.**")]
    for figure in (f"{MAX_REQUEST_ROWS:,} rows per request", f"{MAX_TEXT_LENGTH:,} characters per text",
                   f"{MAX_ID_LENGTH} characters per user id", f"{MAX_LIST_ITEMS:,} ids per list"):
        assert figure in " ".join(limits.split()), figure
