"""The pipeline's resumability: stage fingerprints from Delta versions, files and config; the state file."""

from __future__ import annotations

import dataclasses

import pytest

from fusionrec.commands.pipeline import (
    STAGES, delta_versions, read_state, stage_fingerprint, state_path, write_state)
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



def _changed(value):
    """Another value of the same kind as ``value``."""
    if isinstance(value, bool):
        return not value
    if isinstance(value, (int, float)):
        return value * 2 + 1
    if isinstance(value, str):
        return value + "-changed"
    if isinstance(value, (list, tuple)):
        return [*value, value[0]] if value else ["changed"]
    if isinstance(value, dict):
        return {**value, "changed": 1}
    return "changed"


def _variants(cfg):
    """``(section, key, cfg with that one setting changed)`` for every setting of every section
    but ``lake`` (its root is where the stages read, not a setting of theirs)."""
    for field in dataclasses.fields(cfg):
        section = getattr(cfg, field.name)
        if field.name == "lake" or not dataclasses.is_dataclass(section):
            continue
        for key in dataclasses.fields(section):
            value = _changed(getattr(section, key.name))
            yield field.name, key.name, cfg.replace(**{field.name: dataclasses.replace(section, **{key.name: value})})


@pytest.mark.parametrize("spec", STAGES, ids=[s.name for s in STAGES])
def test_every_setting_of_a_declared_section_changes_the_fingerprint(lake_cfg, spec):
    """Each setting of each section the stage declares changes its fingerprint; a setting of
    another section does not (unless it moves a file the stage reads)."""
    base = stage_fingerprint(lake_cfg, spec)
    files = [f(lake_cfg) for f in spec.files]
    tried = set()
    for section, key, changed in _variants(lake_cfg):
        if section in spec.config_sections:
            assert stage_fingerprint(changed, spec) != base, f"{spec.name}: {section}.{key} does not re-run it"
            tried.add(section)
        elif [f(changed) for f in spec.files] == files:
            assert stage_fingerprint(changed, spec) == base, f"{spec.name}: {section}.{key} re-runs it"
    assert tried == set(spec.config_sections)


def test_train_reruns_when_the_validation_split_changes(lake_cfg):
    """train tunes ALS and fits the ranker on a validation period cut by evaluate.validation_fraction."""
    split = lake_cfg.replace(evaluate=dataclasses.replace(lake_cfg.evaluate, validation_fraction=0.3))
    assert stage_fingerprint(split, TRAIN) != stage_fingerprint(lake_cfg, TRAIN)


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
    with pytest.raises(ValueError, match="_pipeline_state.json: not valid JSON"):
        read_state(lake_cfg)
