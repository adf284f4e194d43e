"""The pipeline's resumability: stage fingerprints from Delta versions, files and config; the state file."""

from __future__ import annotations

import dataclasses

import pytest

from fusionrec.commands.pipeline import (
    STAGES, delta_versions, read_state, stage_fingerprint, state_path, write_state)
from fusionrec.errors import InputError
from fusionrec.lake import table_path

TRAIN = next(s for s in STAGES if s.name == "train")


def test_fingerprint_follows_inputs_not_unrelated_settings(lake_cfg, spark):
    path = table_path(lake_cfg, "gold", "interactions")
    assert delta_versions(lake_cfg, (("gold", "interactions"),)) == {"gold.interactions": None}
    before = stage_fingerprint(lake_cfg, TRAIN)

    spark.range(3).write.format("delta").save(path)
    assert delta_versions(lake_cfg, (("gold", "interactions"),)) == {"gold.interactions": 0}
    written = stage_fingerprint(lake_cfg, TRAIN)
    assert written != before
    assert stage_fingerprint(lake_cfg, TRAIN) == written  # unchanged inputs: same fingerprint -> skipped

    spark.range(4).write.format("delta").mode("overwrite").save(path)
    assert delta_versions(lake_cfg, (("gold", "interactions"),)) == {"gold.interactions": 1}
    appended = stage_fingerprint(lake_cfg, TRAIN)
    assert appended != written

    # A setting the stage reads changes it; one it does not read does not.
    tuned = lake_cfg.replace(model=dataclasses.replace(lake_cfg.model, rank=lake_cfg.model.rank + 8))
    assert stage_fingerprint(tuned, TRAIN) != appended
    unrelated = lake_cfg.replace(registry=dataclasses.replace(lake_cfg.registry, max_k=7))
    assert stage_fingerprint(unrelated, TRAIN) == appended


def test_raw_input_files_are_fingerprinted(lake_cfg, tmp_path):
    ingest = next(s for s in STAGES if s.name == "ingest")
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "events.jsonl").write_text('{"a": 1}\n')
    first = stage_fingerprint(lake_cfg, ingest, [raw])
    assert stage_fingerprint(lake_cfg, ingest, [raw]) == first
    (raw / "events-2.jsonl").write_text('{"a": 2}\n')
    assert stage_fingerprint(lake_cfg, ingest, [raw]) != first


def test_state_roundtrip_and_corrupt_state(lake_cfg):
    assert read_state(lake_cfg) == {}
    write_state(lake_cfg, {"train": {"fingerprint": "abc", "run_id": "r1"}})
    assert read_state(lake_cfg)["train"]["fingerprint"] == "abc"
    state_path(lake_cfg).write_text("{not json")
    with pytest.raises(InputError, match="_pipeline_state.json: not valid JSON"):
        read_state(lake_cfg)
