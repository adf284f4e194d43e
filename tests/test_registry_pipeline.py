"""The pipeline's resumability, derived from the stages' declarations.

Every stage declares the tables, lake artifacts and configuration sections it reads
(:class:`fusionrec.stages.Stage`). Changing any declared section must re-run exactly that
stage and the stages downstream of it; the stages run with only their declared sections
(so a section missing from a declaration fails the end-to-end run, which reads through them).
"""

from __future__ import annotations

import dataclasses
import json

import pytest

from conftest import lake_of
from fusionrec.commands.pipeline import STAGES, read_state, stage_fingerprint, write_state
from fusionrec.config import Config
from fusionrec.errors import InputError
from fusionrec.stages import ConfigView, UndeclaredConfigError, dependants

BY_NAME = {s.name: s for s in STAGES}
DECLARED = [(stage.name, section) for stage in STAGES for section in stage.params]


def _changed(cfg: Config, section: str) -> Config:
    """``cfg`` with one setting of ``section`` changed (the first number, flag or text found)."""
    current = getattr(cfg, section)
    for field in dataclasses.fields(current):
        value = getattr(current, field.name)
        if isinstance(value, bool):
            new = not value
        elif isinstance(value, (int, float)):
            new = value + 1
        elif isinstance(value, str):
            new = value + "-changed"
        else:
            continue
        return cfg.replace(**{section: dataclasses.replace(current, **{field.name: new})})
    raise AssertionError(f"section {section} has no scalar setting to change")


def _fingerprints(lake, cfg: Config) -> dict[str, str]:
    return {stage.name: stage_fingerprint(lake, cfg, stage) for stage in STAGES}


def test_stage_graph_is_the_expected_chain():
    assert [s.name for s in STAGES] == ["ingest", "embed", "evaluate", "train", "recommend", "register"]
    assert dependants(STAGES, ["train"]) == ["train", "recommend", "register"]
    assert dependants(STAGES, ["ingest"]) == [s.name for s in STAGES]
    # train reads the settings the evaluation tuned
    assert dependants(STAGES, ["evaluate"]) == ["evaluate", "train", "recommend", "register"]


@pytest.mark.parametrize(("stage", "section"), DECLARED, ids=[f"{s}-{c}" for s, c in DECLARED])
def test_changing_a_declared_section_reruns_exactly_its_readers_and_their_dependants(lake_cfg, spark, stage, section):
    lake = lake_of(spark, lake_cfg)
    before = _fingerprints(lake, lake_cfg)
    after = _fingerprints(lake, _changed(lake_cfg, section))
    changed = [name for name in before if before[name] != after[name]]
    readers = [s.name for s in STAGES if section in s.params]
    assert changed == readers  # only the stages declaring the section see it
    assert stage in changed
    # What re-runs: those stages, then (their outputs having new versions) everything downstream.
    expected = dependants(STAGES, readers)
    assert set(expected) >= set(readers)
    for name in expected:
        assert name in readers or any(BY_NAME[name].depends_on(BY_NAME[r]) for r in expected if r != name)


def test_validation_fraction_reruns_train(lake_cfg, spark):
    lake = lake_of(spark, lake_cfg)
    tuned = lake_cfg.replace(evaluate=dataclasses.replace(
        lake_cfg.evaluate, validation_fraction=lake_cfg.evaluate.validation_fraction / 2))
    before, after = _fingerprints(lake, lake_cfg), _fingerprints(lake, tuned)
    assert before["train"] != after["train"]
    assert "train" in dependants(STAGES, [n for n in before if before[n] != after[n]])


def test_unread_settings_and_runtime_settings_rerun_nothing(lake_cfg, spark):
    lake = lake_of(spark, lake_cfg)
    before = _fingerprints(lake, lake_cfg)
    unrelated = lake_cfg.replace(maintain=dataclasses.replace(lake_cfg.maintain, optimize=not lake_cfg.maintain.optimize),
                                 spark=dataclasses.replace(lake_cfg.spark, shuffle_partitions=7))
    assert _fingerprints(lake, unrelated) == before


def test_fingerprints_follow_table_versions_and_artifacts(lake_cfg, spark):
    lake = lake_of(spark, lake_cfg)
    train, recommend = BY_NAME["train"], BY_NAME["recommend"]
    assert lake.version("gold.interactions") is None
    empty = _fingerprints(lake, lake_cfg)

    spark.range(3).write.format("delta").save(lake.path("gold.interactions"))
    assert lake.version("gold.interactions") == 0
    written = _fingerprints(lake, lake_cfg)
    readers = {s.name for s in STAGES if "gold.interactions" in s.reads}
    assert {n for n in written if written[n] != empty[n]} == readers
    assert _fingerprints(lake, lake_cfg) == written  # unchanged inputs: same fingerprints -> skipped

    spark.range(4).write.format("delta").mode("overwrite").save(lake.path("gold.interactions"))
    assert lake.version("gold.interactions") == 1
    assert stage_fingerprint(lake, lake_cfg, train) != written["train"]

    # recommend reads the fusion parameters train writes: a new file re-runs it.
    before = stage_fingerprint(lake, lake_cfg, recommend)
    lake.write_text("model/fusion_params.json", json.dumps({"rank": 4}))
    assert stage_fingerprint(lake, lake_cfg, recommend) != before


def test_raw_input_files_are_fingerprinted(lake_cfg, spark, tmp_path):
    lake = lake_of(spark, lake_cfg)
    ingest = BY_NAME["ingest"]
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "events.jsonl").write_text('{"a": 1}\n')
    first = stage_fingerprint(lake, lake_cfg, ingest, [str(raw)])
    assert stage_fingerprint(lake, lake_cfg, ingest, [str(raw)]) == first
    (raw / "events-2.jsonl").write_text('{"a": 2}\n')
    assert stage_fingerprint(lake, lake_cfg, ingest, [str(raw)]) != first


def test_a_stage_sees_only_its_declared_sections(lake_cfg):
    view = BY_NAME["train"].config_view(lake_cfg)
    assert view.model == lake_cfg.model and view.evaluate == lake_cfg.evaluate and view.spark == lake_cfg.spark
    with pytest.raises(UndeclaredConfigError, match="stage 'train' reads config section 'registry'"):
        view.registry  # noqa: B018
    assert isinstance(view.replace(model=lake_cfg.model), ConfigView)
    assert set(view.to_dict()) == set(BY_NAME["train"].params) | {"mode", "spark", "lake"}


def test_state_roundtrip_and_corrupt_state(lake_cfg, spark):
    lake = lake_of(spark, lake_cfg)
    assert read_state(lake) == {}
    write_state(lake, {"train": {"fingerprint": "abc", "run_id": "r1"}})
    assert read_state(lake)["train"]["fingerprint"] == "abc"
    lake.write_text("_pipeline_state.json", "{not json")
    with pytest.raises(InputError, match="_pipeline_state.json: not valid JSON"):
        read_state(lake)
