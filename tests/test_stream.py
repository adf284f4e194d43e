"""The stream end to end against a real Kafka broker: the batch rules, accounting, fold-in,
recommendations and user state; the files source; a replayed micro-batch changes nothing."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import shutil

import numpy as np
import pytest
from pyspark.sql import functions as F

from _kafka import produce
from _privacy import reference_pseudonym
from _registry_lake import write_lake
from conftest import lake_of
from fusionrec.ingest.privacy import pseudonym_key, pseudonymise
from fusionrec.stream.batch import process_batch
from fusionrec.stream.run import load_stream_model, start

pytest_plugins = ["_kafka"]

START = dt.datetime(2024, 3, 1)
USER_TABLES = ("gold.interactions", "model.user_factors", "features.user_profiles", "gold.recommendations")


def stream_lake(spark, cfg, tmp_path, template=None):
    """The registry test lake (a trained model) with its user ids pseudonymised as ingest
    would have them, so that stream events of ``u3`` reach the trained user ``u3``.

    ``template``: an earlier call's result; its lake, untouched since, is copied instead of
    written again (the tables' logs hold relative paths, and every lake of the test session
    has the same key file)."""
    lake_cfg = cfg.replace(lake=dataclasses.replace(cfg.lake, root=str(tmp_path / "lake")))
    if template is not None:
        template_cfg, truth, _ = template
        shutil.copytree(template_cfg.lake.root, lake_cfg.lake.root)
        return lake_cfg, truth, lake_of(spark, lake_cfg)
    truth = write_lake(spark, lake_cfg)
    lake = lake_of(spark, lake_cfg)
    key = pseudonym_key(lake_cfg)
    for table in USER_TABLES:
        df = lake.read(table).withColumn("user_id", pseudonymise(F.col("user_id"), key)).localCheckpoint()
        lake.overwrite(table, df)
    # The model is trained after the interactions it read (the stream pins them by time).
    lake.overwrite("model.item_factors", lake.read("model.item_factors").localCheckpoint())
    return lake_cfg, truth, lake


@pytest.fixture(scope="module")
def stream_start(spark, cfg, tmp_path_factory):
    """The stream tests' starting lake, written once: each test streams into a copy of it."""
    return stream_lake(spark, cfg, tmp_path_factory.mktemp("stream-start"))


def event(n: int, user: str | None, item: str, etype: str = "view", seconds: int | None = None) -> str:
    record = {"event_id": f"e{n}", "user_id": user, "item_id": item, "event_type": etype,
              "ts": (START + dt.timedelta(seconds=n if seconds is None else seconds)).isoformat()}
    return json.dumps({k: v for k, v in record.items() if v is not None})


def messages(truth) -> tuple[list[str], dict]:
    """~300 messages: known users reading the football shelf, new users, and the malformed."""
    seen = truth["seen"]
    lines, expect = [], {"bad": 0, "dup": 0}
    n = 0
    for u in range(24):
        user = f"u{u}"
        fresh = [i for i in truth["item_ids"][16:24] if i not in seen[user]][:6]
        for item in fresh:
            lines.append(event(n, user, item, "click"))
            n += 1
    for v in range(30):
        for j in range(4):
            lines.append(event(n, f"new{v}", f"i{(v * 4 + j) % 32}"))
            n += 1
    for k in range(10):  # a duplicate of an earlier message each
        lines.append(lines[k * 7])
        expect["dup"] += 1
    bad = ["{not json", json.dumps({"event_id": "x1", "user_id": "u1", "item_id": "i1", "event_type": "teleport",
                                    "ts": START.isoformat()}),
           event(10_000, None, "i2"), json.dumps({"event_id": "x2", "user_id": "u2", "event_type": "view",
                                                  "ts": START.isoformat()}), ""]
    lines += bad
    expect["bad"] = len(bad)
    return lines, expect


def test_stream_from_kafka_ingests_folds_in_and_recommends(spark, cfg, tmp_path, kafka_broker, stream_start):
    lake_cfg, truth, lake = stream_lake(spark, cfg, tmp_path, template=stream_start)
    lines, expect = messages(truth)
    topic = "events-test"
    produce(spark, kafka_broker.bootstrap_servers, topic, lines)
    run_cfg = lake_cfg.replace(stream=dataclasses.replace(
        lake_cfg.stream, source="kafka", bootstrap_servers=kafka_broker.bootstrap_servers, topic=topic,
        checkpoint=str(tmp_path / "checkpoint"), max_per_trigger=150, k=5))
    model = load_stream_model(lake, run_cfg)
    before = lake.read("gold.recommendations").toPandas()

    run = start(spark, run_cfg, model=model, trigger_once=True)
    run.query.awaitTermination(600)
    assert run.query.exception() is None
    totals = run.totals()
    assert len(run.batches) >= 2  # maxOffsetsPerTrigger split the topic
    # Every message is accounted for.
    assert totals["read"] == len(lines)
    assert totals["accepted"] + totals["quarantined"] + totals["duplicates"] == totals["read"]
    assert totals["quarantined"] == expect["bad"]
    assert totals["duplicates"] + totals["held_by_other_batches"] == expect["dup"]
    reasons = {}
    for b in run.batches:
        for code, count in b["by_reason"].items():
            reasons[code] = reasons.get(code, 0) + count
    assert {"unparseable", "unknown_event_type", "missing_user_id", "missing_item_id", "blank_line"} <= set(reasons)
    stream_batches = [b["batch_id"] for b in run.batches]
    silver = lake.read("silver.events").where(F.col("batch_id").isin(stream_batches))
    assert silver.count() == totals["accepted"] - totals["held_by_other_batches"] == len(lines) - expect["bad"] - expect["dup"]
    assert lake.read("quarantine.events").where(F.col("batch_id").isin(stream_batches)).count() == expect["bad"]

    # Touched users: 24 known and 30 new, each with state and a fresh top-5 of unseen items.
    state = lake.read("gold.user_state").toPandas().set_index("user_id")
    assert len(state) == 54 and totals["users"] >= 54
    recs = lake.read("gold.recommendations").toPandas()
    u3 = reference_pseudonym("u3", pseudonym_key(lake_cfg))
    mine = recs[recs.user_id == u3].sort_values("rank")
    assert mine["rank"].tolist() == [1, 2, 3, 4, 5]
    interacted = set(lake.read("gold.interactions").where(F.col("user_id") == u3).toPandas()["item_id"])
    assert not set(mine.item_id) & interacted
    old = before[before.user_id == u3]["item_id"].tolist()
    assert mine.item_id.tolist() != old
    # No raw user id past bronze.
    assert not recs.user_id.str.fullmatch(r"(u|new)\d+").any() and not state.index.str.fullmatch(r"(u|new)\d+").any()

    # The stream's factors are serving's fold-in of the same events.
    bundle = model.bundle
    events = list({e["event_id"]: e for e in map(json.loads, lines[:-expect["bad"]])
                   if e.get("user_id") == "u3" and e.get("event_type") == "click"}.values())
    assert len(events) >= 5
    query = bundle.folded_query(bundle.user_index(u3), np.array([bundle.item_index(e["item_id"]) for e in events]),
                                np.full(len(events), lake_cfg.ingest.weight_click))
    np.testing.assert_allclose(state.loc[u3, "factors"], query.factors, atol=1e-6)
    served = bundle.recommend(query, 5)
    assert mine.item_id.tolist() == bundle.item_ids[served.items].tolist()

    # A replayed micro-batch (same batch id) is recognised and changes nothing.
    def contents():
        return (sorted(map(tuple, lake.read("gold.recommendations").toPandas().astype(str).values.tolist())),
                sorted(map(tuple, lake.read("gold.user_state").drop("updated_ts").toPandas().astype(str).values.tolist())),
                lake.read("silver.events").count(), lake.read("gold.interactions").count())
    expected = contents()
    first = run.batches[-1]["batch_id"]  # a crash re-runs the last, uncommitted micro-batch
    replay = process_batch(spark.createDataFrame([("kafka:x/0", lines[0], False)],
                                                 "_file STRING, _raw STRING, _non_utf8 BOOLEAN"),
                           first, cfg=run_cfg, model=model, source="stream:kafka")
    assert replay["skipped"] and replay["users"] > 0
    assert contents() == expected


def test_stream_from_a_jsonl_directory(spark, cfg, tmp_path, stream_start):
    lake_cfg, truth, lake = stream_lake(spark, cfg, tmp_path, template=stream_start)
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    lines = [event(n, f"u{n % 3}", f"i{16 + n % 8}", "purchase") for n in range(20)] + ["{broken"]
    (inbox / "events-0001.jsonl").write_text("\n".join(lines) + "\n")
    run_cfg = lake_cfg.replace(stream=dataclasses.replace(lake_cfg.stream, source="files", path=str(inbox),
                                                          checkpoint=str(tmp_path / "checkpoint"), k=4))
    run = start(spark, run_cfg, trigger_once=True)
    run.query.awaitTermination(300)
    assert run.query.exception() is None
    totals = run.totals()
    assert (totals["read"], totals["accepted"], totals["quarantined"]) == (21, 20, 1)
    assert totals["users"] == 3
    recs = lake.read("gold.recommendations")
    state = lake.read("gold.user_state").toPandas()
    assert len(state) == 3 and state["batch_id"].str.startswith("stream-").all()
    # The three touched users have a fresh top-4; the others keep the trained model's top-3.
    assert recs.groupBy("user_id").count().where("count = 4").count() == 3


def test_a_broker_that_is_down_is_one_clear_error():
    from fusionrec.stream.broker import free_port
    from fusionrec.stream.source import StreamSourceError, check_broker

    port = free_port()
    with pytest.raises(StreamSourceError, match=f"no Kafka broker answers at 127.0.0.1:{port}") as info:
        check_broker(f"127.0.0.1:{port}", timeout_s=1)
    assert "\n" not in str(info.value)
