"""Real datasets (Amazon, MovieLens) and bad input: one clear line, non-zero exit, no partial write."""

from __future__ import annotations

import gzip
import json

import pytest
from delta.tables import DeltaTable

from fusionrec.cli import main
from fusionrec.ingest.pipeline import ingest
from conftest import table_path, lake_of
from conftest import shared_dataset


def load(spark, cfg, layer, name):
    return spark.read.format("delta").load(table_path(cfg, layer, name))


def test_amazon_magazines(spark, lake_cfg):
    path = shared_dataset("amazon-magazine-subscriptions")
    report = ingest(lake_of(spark, lake_cfg), lake_cfg, "amazon", str(path))
    items, reviews = report["tables"]["items"], report["tables"]["reviews"]
    assert items["rows_in"] == 3385 and reviews["rows_in"] == 2375
    # 2,320 distinct asins: each kept once, the rest duplicates or empty records.
    assert items["by_reason"].get("duplicate_item", 0) + items["accepted"] + items["quarantined"] == 3385
    assert load(spark, lake_cfg, "silver", "items").select("item_id").distinct().count() == items["accepted"] <= 2320
    assert items["fixes"]["markup_stripped"] > 0 and items["fixes"]["price_unparsed"] > 0
    titles = load(spark, lake_cfg, "gold", "item_documents")
    assert titles.where("text RLIKE '<span|&amp;|a-box-inner'").count() == 0
    assert titles.where("price IS NOT NULL").count() == 0  # only CSS junk in this dataset's price field
    gold_reviews = load(spark, lake_cfg, "gold", "reviews")
    assert gold_reviews.count() == reviews["accepted"]
    assert gold_reviews.where("NOT item_known").select("item_id").distinct().count() == 6
    silver_reviews = load(spark, lake_cfg, "silver", "reviews")
    assert "reviewerName" not in " ".join(str(r["extra"]) for r in silver_reviews.select("extra").limit(500).collect())
    assert silver_reviews.where("extra['verified'] IS NOT NULL").count() > 0  # rescued field
    events = load(spark, lake_cfg, "silver", "events")
    assert events.where("event_type = 'review'").count() == reviews["accepted"]


@pytest.mark.slow
def test_movielens_small(spark, lake_cfg):
    path = shared_dataset("movielens-small")
    report = ingest(lake_of(spark, lake_cfg), lake_cfg, "movielens", str(path))
    t = report["tables"]
    assert (t["events"]["rows_in"], t["items"]["rows_in"], t["reviews"]["rows_in"]) == (100836, 9742, 3683)
    assert t["events"]["accepted"] == 100836 and t["items"]["accepted"] == 9742
    toy = load(spark, lake_cfg, "silver", "items").where("item_id = '1'").first()
    assert (toy["title"], toy["year"]) == ("Toy Story", 1995)
    assert toy["categories"] == ["Adventure", "Animation", "Children", "Comedy", "Fantasy"]
    assert "pixar" in toy["tags"]
    doc = load(spark, lake_cfg, "gold", "item_documents").where("item_id = '1'").first()["text"]
    assert doc.startswith("Toy Story. Categories: Adventure") and "Tags: " in doc
    inter = load(spark, lake_cfg, "gold", "interactions")
    assert inter.where("rating IS NOT NULL").count() == 100836


def _cli(cfg, *args):
    argv = ["ingest", *args]
    for key, value in cfg.flat().items():
        if key.split(".")[0] in ("spark", "lake", "mlflow") and value is not None and not isinstance(value, dict):
            argv += ["--set", f"{key}={value}"]
    return main(argv + ["--set", "ingest.log_mlflow=false"])


def _no_silver_or_gold(spark, cfg):
    for layer in ("silver", "gold"):
        for name in ("events", "items", "reviews", "interactions", "item_documents"):
            assert not DeltaTable.isDeltaTable(spark, table_path(cfg, layer, name)), f"{layer}.{name}"


def test_bad_input_is_one_line_and_writes_nothing(spark, lake_cfg, tmp_path, capsys):
    good = tmp_path / "good.jsonl"
    good.write_text(json.dumps({"user_id": "u", "item_id": "i", "event_type": "view", "ts": 1600000000}) + "\n")
    truncated = tmp_path / "events.jsonl.gz"
    truncated.write_bytes(gzip.compress(good.read_bytes() * 2000)[:-200])
    csv = tmp_path / "wrong.jsonl"
    csv.write_text("user,item,ts\nu1,i1,1600000000\n")
    fake_gz = tmp_path / "fake.jsonl.gz"
    fake_gz.write_text(good.read_text())
    empty_dir = tmp_path / "empty"
    empty_dir.mkdir()
    ml = tmp_path / "ml"
    ml.mkdir()
    (ml / "ratings.csv").write_text("userId,movieId,timestamp\r\n1,1,964982703\r\n")
    (ml / "movies.csv").write_text("movieId,title,genres\r\n1,Toy Story (1995),Comedy\r\n")
    cases = [
        (["--source", "events", "--path", str(tmp_path / "nope")], "nope: no such file or directory"),
        (["--source", "events", "--path", str(empty_dir)], "empty: directory has no input files"),
        (["--dir", "--path", str(empty_dir)], "empty: directory has no events*/items*/reviews*"),
        (["--source", "events", "--path", str(csv)], "wrong.jsonl: not JSON Lines"),
        (["--source", "events", "--path", str(truncated)], "events.jsonl.gz: truncated gzip stream"),
        (["--source", "events", "--path", str(fake_gz)], "fake.jsonl.gz: not a gzip file"),
        (["--source", "movielens", "--path", str(ml)], "ratings.csv: missing column 'rating'"),
    ]
    for args, message in cases:
        code = _cli(lake_cfg, *args)
        err = capsys.readouterr().err.strip().splitlines()
        errors = [line for line in err if line.startswith("fusionrec ingest: error: ")]
        assert code == 2, args
        assert len(errors) == 1 and message in errors[0], err
    # A file whose lines are all unparseable as records (a JSON array per line) is refused
    # after reading, still before any write.
    arrays = tmp_path / "arrays.jsonl"
    arrays.write_text("{not json at all\n[1, 2]\n")
    assert _cli(lake_cfg, "--source", "events", "--path", str(arrays)) == 2
    assert "arrays.jsonl: no line is a valid events record" in capsys.readouterr().err
    _no_silver_or_gold(spark, lake_cfg)


def test_library_refuses_folders_named_like_inputs_and_reports_skipped(spark, lake_cfg, tmp_path, caplog):
    """The checks also run after Spark starts, for a library call with a file: URI."""
    import logging
    import os

    from fusionrec.errors import InputError
    from fusionrec.ingest.pipeline import ingest_directory
    from fusionrec.ingest.sources.files import list_inputs

    d = tmp_path / "in"
    d.mkdir()
    (d / "events-1.jsonl").write_text(json.dumps({"user_id": "u", "item_id": "i", "event_type": "view",
                                                  "ts": 1600000000}) + "\n")
    (d / "events-2.jsonl").mkdir()
    lake = lake_of(spark, lake_cfg)
    with pytest.raises(InputError, match=r"events-2.jsonl: is a directory, not an input file$"):
        ingest_directory(lake, lake_cfg, d.as_uri())
    (d / "events-2.jsonl").rmdir()
    os.symlink(d / "gone.jsonl", d / "events-3.jsonl")
    with pytest.raises(InputError, match=r"events-3.jsonl: dangling symbolic link"):
        ingest(lake, lake_cfg, "events", d.as_uri())
    (d / "events-3.jsonl").unlink()
    (d / "_events-4.jsonl").write_text("{}\n")
    (d / "notes.txt").write_text("x")
    with caplog.at_level(logging.WARNING, logger="fusionrec"):
        files, other = list_inputs(spark, str(d), ("*.jsonl",))
    assert [f.rsplit("/", 1)[1] for f in files] == ["events-1.jsonl"] and other == ["notes.txt"]
    assert "skipped 1 hidden file(s) named like inputs: _events-4.jsonl" in caplog.text
    _no_silver_or_gold(spark, lake_cfg)
