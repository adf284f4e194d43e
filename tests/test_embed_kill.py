"""``fusionrec embed`` killed midway (SIGKILL) and re-run ends exactly like an uninterrupted run:
same rows in every table it writes, bit-identical vectors."""

from __future__ import annotations

import datetime as dt
import shutil
from argparse import Namespace

import numpy as np
import pytest

from _kill import cli_args, committed_version, keyed, kill_midway, log_contains, rows
from fusionrec.commands import embed as embed_cmd
from fusionrec.config import LakeConfig
from fusionrec.embed.stage import QUARANTINE_TABLE
from fusionrec.lake import SCHEMAS
from conftest import table_path
from fusionrec.runlog import RunReport

pytestmark = pytest.mark.faults

TOPICS = {
    "gardening": ["roses", "compost", "tomatoes", "pruning", "seedlings", "orchids"],
    "cooking": ["pasta", "bread", "spices", "soups", "pastry", "grilling"],
    "astronomy": ["telescopes", "comets", "galaxies", "eclipses", "planets", "nebulae"],
}
GOOD = ["clear and useful", "a delight every month", "beautiful photos and great advice"]
BAD = ["thin and full of adverts", "arrived late and torn", "nothing new, a waste of money"]

#: Every table ``fusionrec embed`` writes, with its key columns.
TABLES = {
    ("embeddings", "item_embeddings"): ["item_id", "content_hash"],
    ("embeddings", "review_embeddings"): ["review_id", "content_hash"],
    ("quarantine", QUARANTINE_TABLE): ["source", "record_id", "reason"],
    ("features", "item_vectors"): ["item_id"],
    ("features", "user_profiles"): ["user_id"],
    ("features", "review_sentiment"): ["review_id"],
    ("features", "item_sentiment"): ["item_id"],
}


def write_gold(spark, cfg) -> None:
    """36 item documents (one empty: quarantined), 90 reviews, 30 users' interactions."""
    ts = dt.datetime(2024, 3, 1)
    items, reviews, interactions = [], [], []
    for t, (topic, words) in enumerate(TOPICS.items()):
        for w, word in enumerate(words):
            for edition in (1, 2):
                item = f"i-{topic}-{word}-{edition}"
                items.append((item, f"{word.title()} {edition}", f"A {topic} magazine about {word}, issue {edition}.",
                              [topic], None, None, ts))
    items.append(("i-blank", "Blank", " ", ["misc"], None, None, ts))
    for n in range(90):
        item = items[n % 36][0]
        rating = 5.0 if n % 2 else 1.0
        text = f"{(GOOD if rating > 3 else BAD)[n % 3]} ({item.split('-')[2]})"
        reviews.append((f"r{n}", f"u{n % 30}", item, rating, text, ts + dt.timedelta(hours=n), True))
        interactions.append((f"u{n % 30}", item, rating, 1, ts + dt.timedelta(hours=n), ts + dt.timedelta(hours=n),
                             rating))
    for name, data in (("item_documents", items), ("reviews", reviews), ("interactions", interactions)):
        spark.createDataFrame(data, SCHEMAS[f"gold.{name}"]).write.format("delta").save(table_path(cfg, "gold", name))


def snapshot(spark, cfg) -> dict:
    out = {}
    for (layer, name), keys in TABLES.items():
        out[f"{layer}.{name}"] = keyed(rows(spark, table_path(cfg, layer, name)), keys)
    return out


def vectors(spark, cfg, name: str, key: str) -> dict[str, np.ndarray]:
    df = rows(spark, table_path(cfg, "embeddings", name)).select(key, "embedding")
    return {r[0]: np.array(r[1], dtype=np.float32) for r in df.collect()}


def test_embed_killed_midway_then_rerun_matches_uninterrupted(spark, cfg, tmp_path):
    killed_cfg = cfg.replace(lake=LakeConfig(root=str(tmp_path / "killed")))
    clean_cfg = cfg.replace(lake=LakeConfig(root=str(tmp_path / "clean")))
    write_gold(spark, killed_cfg)
    shutil.copytree(killed_cfg.lake.root, clean_cfg.lake.root)

    # Killed while the reviews are embedded: the item vectors are committed, nothing else.
    args = cli_args(killed_cfg, ["embed", "--set", "spark.show_progress=false"])
    kill_midway(args, log_contains(tmp_path / "killed.log", "stage=embed.review_embeddings event=start"),
                tmp_path / "killed.log")
    assert committed_version(spark, table_path(killed_cfg, "embeddings", "item_embeddings")) >= 1
    assert committed_version(spark, table_path(killed_cfg, "features", "item_vectors")) is None

    report = RunReport("embed")
    assert embed_cmd.run(killed_cfg, Namespace(features=True), report) == 0
    items = report.results["embeddings"]["item_embeddings"]
    assert items["skipped_present"] == 36 and items["embedded"] == 0  # the killed run's vectors were kept
    assert embed_cmd.run(clean_cfg, Namespace(features=True), RunReport("embed")) == 0

    assert snapshot(spark, killed_cfg) == snapshot(spark, clean_cfg)
    for name, key in (("item_embeddings", "item_id"), ("review_embeddings", "review_id")):
        killed, clean = vectors(spark, killed_cfg, name, key), vectors(spark, clean_cfg, name, key)
        assert killed.keys() == clean.keys()
        for record, vector in clean.items():
            np.testing.assert_array_equal(killed[record], vector, err_msg=f"{name} {record}")

