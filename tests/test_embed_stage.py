"""The embedding stage on real Spark NLP and real Delta tables: accounting, incrementality, failures."""

from __future__ import annotations

import dataclasses
import json
import math
import shutil
from datetime import datetime

import numpy as np
import pytest
from delta.tables import DeltaTable

from fusionrec.config import Config
from fusionrec.embed.model import MANIFEST, cache_path
from fusionrec.embed.stage import QUARANTINE_TABLE, run_embed
from fusionrec.embed.validate import classify_vectors
from fusionrec.lake import SCHEMAS
from conftest import table_path, lake_of

TS = datetime(2024, 1, 1)
LONG_TEXT = " ".join(f"word{i % 97} and the magazine issue number {i}" for i in range(600))  # ~4,800 tokens

ITEM_TEXTS = {
    "i-plain": "A monthly magazine about woodworking, tools and furniture design.",
    "i-same-a": "Weekly news   magazine\twith politics and economics.",
    "i-same-b": "Weekly news magazine with politics and economics.",  # identical after normalisation
    "i-empty": "   \n\t ",
    "i-punct": "?!... ;-)",
    "i-emoji": "\U0001F600\U0001F389\U0001F44D",
    "i-zh": "这是一本关于烹饪和美食的杂志。",
    "i-ar": "مجلة شهرية عن السفر والثقافة",
    "i-ru": "Ежемесячный журнал о науке и технике.",
    "i-long": LONG_TEXT,
}


def _item_rows(texts: dict[str, str]) -> list[tuple]:
    return [(item_id, item_id.upper(), text, ["magazines"], None, None, TS) for item_id, text in texts.items()]


def write_gold(spark, cfg: Config, items: list[tuple], reviews: list[tuple] | None = None) -> None:
    """Gold tables with exactly the contract schemas."""
    spark.createDataFrame(items, SCHEMAS["gold.item_documents"]).write.format("delta").mode("overwrite").save(
        table_path(cfg, "gold", "item_documents"))
    if reviews is not None:
        spark.createDataFrame(reviews, SCHEMAS["gold.reviews"]).write.format("delta").mode("overwrite").save(
            table_path(cfg, "gold", "reviews"))


def read(spark, cfg: Config, layer: str, name: str):
    return spark.read.format("delta").load(table_path(cfg, layer, name))


def vectors(spark, cfg: Config) -> dict[str, tuple[str, np.ndarray]]:
    rows = read(spark, cfg, "embeddings", "item_embeddings").collect()
    return {r.item_id: (r.content_hash, np.array(r.embedding, dtype=np.float64)) for r in rows}


def unloadable(cfg: Config, tmp_path):
    """``cfg.embed`` with the same model id (so the same content hashes) but no model that could
    be loaded: any attempt to load it raises."""
    return dataclasses.replace(cfg.embed, model_cache=str(tmp_path / "no-models"), wheels_dir=str(tmp_path / "no-wheels"))


TABLES = [("embeddings", "item_embeddings"), ("embeddings", "review_embeddings"), ("quarantine", QUARANTINE_TABLE)]


def _version(spark, cfg: Config, layer: str, name: str) -> int:
    return DeltaTable.forPath(spark, table_path(cfg, layer, name)).history(1).first()["version"]


REVIEWS = [
    ("r1", "u1", "i-plain", 5.0, "Great projects every month, clear plans.", TS, True),
    ("r2", "u2", "i-plain", 1.0, "Great projects every month, clear plans.", TS, True),  # same text as r1
    ("r3", "u2", "i-zh", 4.0, "", TS, True),
]


def test_every_text_is_embedded_or_quarantined_and_a_rerun_embeds_nothing(spark, lake_cfg, tmp_path):
    items = _item_rows(ITEM_TEXTS) + [("i-dup", "D", "first text", None, None, None, TS),
                                      ("i-dup", "D", "second text", None, None, None, TS)]
    write_gold(spark, lake_cfg, items, REVIEWS)

    first = run_embed(lake_of(spark, lake_cfg), lake_cfg.embed)

    items_counts = first["item_embeddings"]
    assert items_counts["input"] == 12
    assert items_counts["failed_by_reason"] == {"empty_text": 1, "duplicate_id": 2}
    assert items_counts["quarantined"] == 3
    # 9 usable records, two of them with the same normalised text: 8 texts through the model.
    assert items_counts["texts_embedded"] == 8 and items_counts["texts_failed"] == 0
    assert items_counts["embedded"] == 9 and items_counts["reused_identical"] == 0
    assert items_counts["skipped_present"] == 0
    reviews_counts = first["review_embeddings"]
    assert (reviews_counts["input"], reviews_counts["embedded"], reviews_counts["texts_embedded"]) == (3, 2, 1)
    assert reviews_counts["failed_by_reason"] == {"empty_text": 1}

    stored = vectors(spark, lake_cfg)
    quarantine = read(spark, lake_cfg, "quarantine", QUARANTINE_TABLE)
    q_items = {r.record_id for r in quarantine.where("source = 'item_documents'").collect()}
    # Exact accounting: every input id is either stored or quarantined, never both.
    assert set(stored) | q_items == {row[0] for row in items} and not set(stored) & q_items
    assert quarantine.count() == 4 and set(stored) == set(ITEM_TEXTS) - {"i-empty"}
    dup = quarantine.where("record_id = 'i-dup'").select("reason", "model_id").distinct().collect()
    assert [tuple(r) for r in dup] == [("duplicate_id", lake_cfg.embed.model_id)]

    for item_id, (_, v) in stored.items():
        assert v.shape == (384,) and abs(np.linalg.norm(v) - 1.0) < 1e-3, item_id
    # Identical texts share one hash and one vector.
    assert stored["i-same-a"][0] == stored["i-same-b"][0]
    np.testing.assert_array_equal(stored["i-same-a"][1], stored["i-same-b"][1])
    # Non-Latin scripts get distinct, meaningful vectors (not the all-[UNK] vector of emoji).
    scripts = [stored[k][1] for k in ("i-zh", "i-ar", "i-ru")]
    assert max(float(a @ b) for a, b in [(scripts[0], scripts[1]), (scripts[0], scripts[2]), (scripts[1], scripts[2])]) < 0.99
    # The Russian magazine description is closer to the English magazine texts than emoji are.
    assert float(stored["i-ru"][1] @ stored["i-plain"][1]) > float(stored["i-emoji"][1] @ stored["i-plain"][1])

    versions = {name: _version(spark, lake_cfg, layer, name) for layer, name in TABLES}
    # A re-run without changes decides from the stored hashes alone, before any model is needed.
    second = run_embed(lake_of(spark, lake_cfg), unloadable(lake_cfg, tmp_path))
    assert second["item_embeddings"]["model_load_s"] == 0 and second["review_embeddings"]["model_load_s"] == 0
    assert second["item_embeddings"]["texts_embedded"] == 0
    assert second["item_embeddings"]["skipped_present"] == 9
    assert second["item_embeddings"]["quarantined"] == 3
    assert second["review_embeddings"]["texts_embedded"] == 0
    assert second["item_embeddings"]["merge"] == {"inserted": 0, "updated": 0, "deleted": 0}
    assert {k: (h, v.tolist()) for k, (h, v) in vectors(spark, lake_cfg).items()} == {
        k: (h, v.tolist()) for k, (h, v) in stored.items()}
    assert read(spark, lake_cfg, "quarantine", QUARANTINE_TABLE).count() == 4
    # Nothing changed, so nothing was committed.
    assert {name: _version(spark, lake_cfg, layer, name) for layer, name in TABLES} == versions


def test_changed_text_replaces_its_vector_and_identical_new_text_is_reused(spark, lake_cfg, tmp_path):
    base = {"a": "Gardening tips for small balconies.", "b": "Chess openings explained for beginners.",
            "c": "A magazine about vintage motorcycles."}
    write_gold(spark, lake_cfg, _item_rows(base))
    run_embed(lake_of(spark, lake_cfg), lake_cfg.embed)
    before = vectors(spark, lake_cfg)

    changed = {"a": "Deep-sea fishing boats and the people who sail them.",  # changed
               "b": base["b"],                                               # unchanged
               "d": base["c"]}                                               # new id, identical text; c removed
    write_gold(spark, lake_cfg, _item_rows(changed))
    counts = run_embed(lake_of(spark, lake_cfg), lake_cfg.embed)["item_embeddings"]

    assert counts["texts_embedded"] == 1  # only the changed text goes through the model
    assert (counts["embedded"], counts["reused_identical"], counts["skipped_present"]) == (1, 1, 1)
    assert counts["deleted"] == 1  # c's vector went with c
    after = vectors(spark, lake_cfg)
    assert set(after) == {"a", "b", "d"}
    assert after["a"][0] != before["a"][0] and float(after["a"][1] @ before["a"][1]) < 0.9
    np.testing.assert_array_equal(after["b"][1], before["b"][1])
    np.testing.assert_array_equal(after["d"][1], before["c"][1])
    assert counts["merge"] == {"inserted": 1, "updated": 1, "deleted": 1}  # d new, a replaced, c gone
    # The table holds one row per id after the MERGE.
    assert read(spark, lake_cfg, "embeddings", "item_embeddings").count() == 3

    # Emptying a text needs no model: its vector is deleted and the record quarantined.
    write_gold(spark, lake_cfg, _item_rows({**changed, "b": " "}))
    counts = run_embed(lake_of(spark, lake_cfg), unloadable(lake_cfg, tmp_path))["item_embeddings"]
    assert (counts["skipped_present"], counts["quarantined"], counts["model_load_s"]) == (2, 1, 0)
    assert counts["merge"] == {"inserted": 0, "updated": 0, "deleted": 1} and counts["quarantine_written"]
    assert set(vectors(spark, lake_cfg)) == {"a", "d"}
    assert [r.record_id for r in read(spark, lake_cfg, "quarantine", QUARANTINE_TABLE).collect()] == ["b"]


def test_a_model_change_reembeds_everything(spark, lake_cfg, tmp_path):
    texts = {"a": "Gardening tips for small balconies.", "b": "Chess openings explained for beginners."}
    write_gold(spark, lake_cfg, _item_rows(texts))
    run_embed(lake_of(spark, lake_cfg), lake_cfg.embed)
    before = vectors(spark, lake_cfg)

    # The same weights published under a new model id (a version bump): cache it under that id.
    new_embed = dataclasses.replace(lake_cfg.embed, model_id="all-MiniLM-L6-v2-onnx-int8-r2",
                                    model_cache=str(tmp_path / "models"))
    shutil.copytree(cache_path(lake_cfg.embed), cache_path(new_embed))
    manifest = json.loads((cache_path(new_embed) / MANIFEST).read_text())
    (cache_path(new_embed) / MANIFEST).write_text(json.dumps({**manifest, "model_id": new_embed.model_id}))
    cfg2 = lake_cfg.replace(embed=new_embed)

    counts = run_embed(lake_of(spark, cfg2), cfg2.embed)["item_embeddings"]
    assert (counts["texts_embedded"], counts["skipped_present"], counts["reused_identical"]) == (2, 0, 0)
    assert counts["merge"]["updated"] == 2
    after = read(spark, cfg2, "embeddings", "item_embeddings").collect()
    assert {r.model_id for r in after} == {new_embed.model_id}
    assert all(r.content_hash != before[r.item_id][0] for r in after)


def test_vector_checks_give_a_reason_for_every_bad_vector(spark):
    good = (np.ones(4) / 2.0).tolist()
    rows = [
        ("ok", 1, good),
        ("none", 0, None),
        ("empty", 1, []),
        ("short", 1, good[:3]),
        ("nan", 1, [float("nan"), 0.5, 0.5, 0.5]),
        ("inf", 1, [math.inf, 0.0, 0.0, 0.0]),
        ("zero", 1, [0.0, 0.0, 0.0, 0.0]),
    ]
    df = spark.createDataFrame(rows, "content_hash STRING, n_annotations INT, embedding ARRAY<FLOAT>")
    got = {r.content_hash: r.reason for r in classify_vectors(df, dimension=4).collect()}
    assert got == {"ok": None, "none": "no_annotation", "empty": "empty_vector", "short": "wrong_dimension",
                   "nan": "non_finite", "inf": "non_finite", "zero": "not_unit_norm"}


def test_missing_gold_tables_are_a_clear_error(spark, lake_cfg):
    with pytest.raises(FileNotFoundError, match=r"gold/item_documents: no gold text tables"):
        run_embed(lake_of(spark, lake_cfg), lake_cfg.embed)


def test_failed_model_outputs_are_quarantined_with_their_reason_and_nothing_is_lost(spark, lake_cfg):
    """Spark NLP signals an ONNX failure with empty vectors, not an exception: such records must
    end in quarantine, not in the table (the model output here is what such a failure looks like)."""
    from fusionrec.embed.plan import plan_embedding
    from fusionrec.embed.stage import new_vectors, quarantine_rows
    from fusionrec.embed.texts import prepare_texts

    records = spark.createDataFrame([("a", "good text"), ("b", "broken text"), ("c", "good text"), ("d", " ")],
                                    "item_id STRING, text STRING")
    prepared = prepare_texts(records, "item_id", "text", lake_cfg.embed)
    plan = plan_embedding(prepared, spark.createDataFrame([], "record_id STRING, content_hash STRING, embedding ARRAY<FLOAT>"))
    hashes = {r.text: r.content_hash for r in plan.to_embed.collect()}
    assert set(hashes) == {"good text", "broken text"}  # identical texts of a and c: one model call
    model_output = spark.createDataFrame(
        [(hashes["good text"], 1, (np.ones(384) / np.sqrt(384)).tolist()), (hashes["broken text"], 1, [])],
        "content_hash STRING, n_annotations INT, embedding ARRAY<FLOAT>")
    vectors_df, failed = new_vectors(plan, classify_vectors(model_output, 384))
    assert sorted(r.record_id for r in vectors_df.collect()) == ["a", "c"]
    rows = {r.record_id: (r.reason, r.detail) for r in quarantine_rows("item_documents", plan.rejected, failed, lake_cfg.embed).collect()}
    assert rows == {"b": ("empty_vector", "annotations=1 size=0 expected=384"), "d": ("empty_text", None)}


def test_a_small_increment_is_cut_into_length_ranges_that_the_cores_share(spark):
    """A few texts are not one batch padded to the longest on one core: each partition holds a
    range of lengths, so the long texts pad only each other."""
    from pyspark.sql import functions as F

    from fusionrec.embed.infer import _length_ranges

    lengths = [7, 1, 19, 3, 12, 5, 16, 2, 9, 14, 4, 18, 6, 11, 8, 20, 10, 15, 13, 17]
    texts = spark.createDataFrame([(f"h{n}", " ".join(["word"] * n)) for n in lengths],
                                  "content_hash STRING, text STRING")
    rows = (_length_ranges(texts, n_texts=len(lengths), partitions=2)
            .select(F.spark_partition_id().alias("part"), F.length("text").alias("chars")).collect())
    ranges: dict[int, list[int]] = {}
    for row in rows:
        ranges.setdefault(row.part, []).append(row.chars)
    assert sum(len(v) for v in ranges.values()) == len(lengths)
    assert len(ranges) > 2  # more than one range per core
    ordered = [sorted(ranges[p]) for p in sorted(ranges)]
    assert all(a[-1] < b[0] for a, b in zip(ordered, ordered[1:]))  # disjoint, ascending ranges
