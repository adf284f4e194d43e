"""Cleaning rules, one by one, as pure DataFrame functions on the real Spark session."""

from __future__ import annotations

import datetime as dt

import pytest
from pyspark.sql import functions as F

from fusionrec.config import IngestConfig
from fusionrec.ingest.clean import (
    CLASSIFIERS,
    CleaningRules,
    accepted,
    classify_events,
    classify_items,
    classify_reviews,
    clean_text,
    parse_price,
    parse_ts,
    quarantined,
    redact,
)
from fusionrec.ingest.privacy import pseudonymise
from fusionrec.ingest.schema import conform_staged, staged_schema
from fusionrec.ingest.sources.text import json_field_pattern
from _privacy import reference_pseudonym

KEY = b"test-key"
NOW = dt.datetime(2024, 6, 1, 12, 0, 0)
RULES = CleaningRules(IngestConfig(), NOW, KEY)


def staged(spark, kind, rows):
    """Staged rows from dicts of canonical fields (strings); metadata filled in."""
    schema = staged_schema(kind)
    out = []
    for i, r in enumerate(rows):
        r = dict(r)
        row = {f.name: None for f in schema.fields}
        row.update({"_raw": r.pop("_raw", f"line {i}"), "_file": "f.jsonl", "_parsed": r.pop("_parsed", True),
                    "_non_utf8": False, "_user_pattern": json_field_pattern("user_id") if kind != "items" else None})
        row.update(r)
        out.append(tuple(row[f.name] for f in schema.fields))
    return spark.createDataFrame(out, schema)


def production_split(staged_df, kind):
    """``(silver rows, quarantine rows)`` as the ingest pipeline takes them from a batch."""
    classified = CLASSIFIERS[kind](conform_staged(staged_df, kind), RULES)
    return accepted(classified, kind), quarantined(classified, personal_fields=list(RULES.ingest.personal_fields), key=RULES.key)


def test_a_source_that_breaks_the_staged_contract_fails_by_column(spark):
    good = staged(spark, "events", [{"user_id": "u1", "ts": "2021-01-01"}])
    assert conform_staged(good.select(*reversed(good.columns)), "events").columns == good.columns
    broken = good.drop("ts").withColumn("rating", F.lit(4.0))
    with pytest.raises(TypeError, match=r"rating \(double, expected string\), ts \(missing, expected string\)"):
        conform_staged(broken, "events")


def event(**kw):
    base = {"event_id": None, "user_id": "u1", "item_id": "i1", "event_type": "view", "rating": None,
            "ts": "2021-03-04T05:06:07Z"}
    base.update(kw)
    return base


def reasons(df):
    return [r["_reason"] for r in df.orderBy("_raw").collect()]


def test_clean_text_strips_markup_controls_and_whitespace(spark):
    rows = [("<b>Big</b>&nbsp;&amp;&nbsp;bold &lt;3 &eacute;t&eacute;",),
            ("line\u0007one\n\n\ttwo\u200b  three",),
            ('<span class="a-size-medium a-color-secondary"',),
            ("   ",), ("a &amp;lt; b",), (None,)]
    got = [r[0] for r in spark.createDataFrame(rows, "t STRING").select(clean_text(F.col("t"))).collect()]
    assert got == ["Big & bold <3 t", "line one two three", None, None, "a &lt; b", None]


def test_parse_price_never_fails(spark):
    rows = [("12.5",), ("$1,299.00",), ("$5.00 - $20.00",), (".a-box-inner{background-color:#fff}",),
            ("\n\n<script",), ("free",), ("",), (None,)]
    got = [r[0] for r in spark.createDataFrame(rows, "p STRING").select(parse_price(F.col("p"))).collect()]
    assert got == [12.5, 1299.0, 5.0, None, None, None, None, None]


def test_parse_ts_iso_and_epoch(spark):
    rows = [("2021-03-04T05:06:07Z",), ("2021-03-04 05:06:07",), ("1614834367",), ("1614834367000",),
            ("yesterday",), (None,)]
    got = [r[0] for r in spark.createDataFrame(rows, "t STRING").select(parse_ts(F.col("t"))).collect()]
    expected = dt.datetime(2021, 3, 4, 5, 6, 7)
    assert got[:4] == [expected] * 4
    assert got[4:] == [None, None]


EVENT_CASES = [
    ({"_raw": "", "_parsed": False}, "blank_line"),
    ({"_raw": "{broken", "_parsed": False}, "unparseable"),
    (event(user_id="  "), "missing_user_id"),
    (event(item_id=None), "missing_item_id"),
    (event(event_type="hover"), "unknown_event_type"),
    (event(event_type="rating"), "bad_rating"),
    (event(event_type="rating", rating="five"), "bad_rating"),
    (event(event_type="rating", rating="7.5"), "rating_out_of_range"),
    (event(event_type="rating", rating="NaN"), "rating_out_of_range"),
    (event(ts="last week"), "ts_unparseable"),
    (event(ts="1994-12-31T23:59:59Z"), "ts_out_of_range"),
    (event(ts="2024-06-03T00:00:00Z"), "ts_out_of_range"),  # beyond now + 1 day of skew
    (event(event_type="PURCHASE"), None),
    (event(ts="2024-06-02T00:00:00Z"), None),  # within the tolerated skew
]


def test_event_rules(spark):
    """Each case on its own row (raw = case number); every row gets the expected code."""
    rows = [dict(row, _raw=row.get("_raw", f"case {i:02d}")) for i, (row, _) in enumerate(EVENT_CASES)]
    got = {r["_raw"]: r["_reason"] for r in classify_events(staged(spark, "events", rows), RULES).collect()}
    assert [got[row["_raw"]] for row in rows] == [reason for _, reason in EVENT_CASES]


def test_event_weights_pseudonyms_and_duplicates(spark):
    rows = [event(event_id="e1", event_type="purchase"), event(event_id="e1", event_type="purchase"),
            event(event_type="rating", rating="4", item_id="i2"), event(event_type="rating", rating="4", item_id="i2"),
            event(event_id="e3", event_type="click", user_id="u2", item_id="i3")]
    clean_df, quarantine_df = production_split(staged(spark, "events", rows), "events")
    got = {r["event_id"]: r for r in clean_df.collect()}
    assert quarantine_df.count() == 0
    assert len(got) == 3  # one exact duplicate by id, one by derived id
    assert got["e1"]["weight"] == 8.0 and got["e3"]["weight"] == 2.0
    rated = next(r for k, r in got.items() if k not in ("e1", "e3"))
    assert rated["weight"] == pytest.approx(4 / 5 * 5) and rated["rating"] == 4.0
    assert got["e1"]["user_id"] == reference_pseudonym("u1", KEY) and got["e3"]["user_id"] == reference_pseudonym("u2", KEY)


def test_pseudonymise_is_hmac_sha256(spark):
    long_key = b"k" * 100  # longer than the block: hashed first, as RFC 2104 says
    for key in (KEY, long_key):
        got = spark.createDataFrame([("user-42",), ("ü",)], "u STRING").select(pseudonymise(F.col("u"), key)).collect()
        assert [r[0] for r in got] == [reference_pseudonym(u, key) for u in ("user-42", "ü")]


def test_item_rules_texts_prices_and_latest_record_wins(spark):
    long_description = "word " * 1000
    rows = [
        {"item_id": "a", "title": "Old <i>title</i>", "updated_at": "2020-01-01T00:00:00Z", "categories": ["X"]},
        {"item_id": "a", "title": "New title", "updated_at": "2021-01-01T00:00:00Z", "categories": ["X"]},
        {"item_id": "b", "title": "Sparse", "categories": ["X"]},
        {"item_id": "b", "title": "Complete", "description": "Text", "brand": "B", "categories": ["X"]},
        {"item_id": "c", "title": "T", "description": long_description, "price": "$1,299.00",
         "categories": [" <b>Cat</b> ", "", "Cat"]},
        {"item_id": "d", "title": "Junk price", "price": ".a-box-inner{background-color:#fff}"},
        {"item_id": "e", "title": '<span class="a-size-medium"', "description": " ", "categories": []},
        {"item_id": " ", "title": "No id"},
    ]
    classified = classify_items(staged(spark, "items", rows), RULES).cache()
    kept = {r["item_id"]: r for r in classified.where("_reason IS NULL AND NOT _duplicate").collect()}
    assert kept["a"]["title"] == "New title"  # latest updated_at
    assert kept["b"]["title"] == "Complete"   # no timestamps: most complete record
    assert kept["c"]["price"] == 1299.0 and kept["c"]["categories"] == ["Cat"]
    assert kept["c"]["truncated"] and len(kept["c"]["description"]) == IngestConfig().max_text_length
    assert "text_truncated" in kept["c"]["_fixes"]
    assert kept["d"]["price"] is None and "price_unparsed" in kept["d"]["_fixes"]
    rejected = {r["_raw"]: r["_reason"] for r in classified.where("_reason IS NOT NULL").collect()}
    assert sorted(rejected.values()) == ["empty_item_text", "missing_item_id"]
    assert classified.where("_duplicate").count() == 2


def test_review_rules_and_redaction(spark):
    base = {"user_id": "u1", "item_id": "i1", "rating": "5", "text": "Great!", "ts": "2020-01-01T00:00:00Z"}
    rows = [dict(base, _raw='{"reviewerName": "Jane \\"JD\\" Doe", "x": 1}', text=" <br/> "),
            dict(base, _raw="b", rating=None),
            dict(base, _raw="c", rating="0"),
            dict(base, _raw="d", text="x" * 5000),
            dict(base, _raw="e", review_id="r1"), dict(base, _raw="f", review_id="r1")]
    classified = classify_reviews(staged(spark, "reviews", rows), RULES)
    by_raw = {r["_raw"]: r for r in classified.collect()}
    assert by_raw['{"reviewerName": "Jane \\"JD\\" Doe", "x": 1}']["_reason"] == "empty_review_text"
    assert by_raw["b"]["_reason"] is None and by_raw["b"]["rating"] is None  # a rating is optional
    assert by_raw["c"]["_reason"] == "rating_out_of_range"
    assert by_raw["d"]["truncated"] and len(by_raw["d"]["text"]) == 4000
    assert [by_raw["e"]["_duplicate"], by_raw["f"]["_duplicate"]] == [False, True]
    _, quarantine_df = production_split(staged(spark, "reviews", rows), "reviews")
    raws = sorted(r["raw"] for r in quarantine_df.collect())
    assert raws[1] == '{"reviewerName":"<redacted>", "x": 1}'
    redacted = spark.createDataFrame([('{"email": "a@b.c", "user_name": "x"}',)], "r STRING") \
        .select(redact(F.col("r"), ["email", "user_name"])).first()[0]
    assert "a@b.c" not in redacted and '"user_name":"<redacted>"' in redacted


def test_wrong_json_types_are_quarantined_and_float_epochs_accepted(spark):
    """From JSON lines through the adapter: an object, array or boolean where an id belongs is
    ``wrong_type`` (never a string in silver); numbers as ids and strings that only look like
    other types pass; epoch seconds with a fraction parse like integer ones."""
    from fusionrec.ingest.sources.jsonl import stage_json

    base = '"event_type": "view", "ts": 1700000000'
    lines = {
        "object_item": '{"event_id": "a", "user_id": "u1", "item_id": {"x": 1}, ' + base + '}',
        "bool_user": '{"event_id": "b", "user_id": true, "item_id": "i1", ' + base + '}',
        "array_item": '{"event_id": "c", "user_id": "u1", "item_id": ["i1"], ' + base + '}',
        "object_ts": '{"event_id": "d", "user_id": "u1", "item_id": "i1", "event_type": "view", "ts": {"s": 1}}',
        "float_ts": '{"event_id": "e", "user_id": "u1", "item_id": "i1", "event_type": "view", "ts": 1700000000.5}',
        "float_ms": '{"event_id": "f", "user_id": "u1", "item_id": "i1", "event_type": "view", "ts": 1.7000000005E12}',
        "numbers": '{"event_id": "g", "user_id": 42, "item_id": 7, ' + base + '}',
        "lookalikes": '{"meta": {"item_id": {"y": 2}}, "event_id": "h", "user_id": "true", "item_id": "{x}", '
                      '"event_type": "view", "ts": "1700000000.25"}',
    }
    raw = spark.createDataFrame([(line, "f.jsonl", False) for line in lines.values()],
                                "_raw STRING, _file STRING, _non_utf8 BOOLEAN")
    classified = classify_events(conform_staged(stage_json(raw, "events", []), "events"), RULES)
    got = {r["_raw"]: r for r in classified.collect()}
    by_case = {case: got[line] for case, line in lines.items()}
    assert {case: r["_reason"] for case, r in by_case.items()} == {
        "object_item": "wrong_type", "bool_user": "wrong_type", "array_item": "wrong_type", "object_ts": "wrong_type",
        "float_ts": None, "float_ms": None, "numbers": None, "lookalikes": None}
    assert by_case["float_ts"]["ts"].replace(tzinfo=dt.timezone.utc).timestamp() == 1700000000.5
    assert by_case["float_ms"]["ts"].replace(tzinfo=dt.timezone.utc).timestamp() == 1700000000.5
    assert by_case["lookalikes"]["item_id"] == "{x}" and by_case["numbers"]["item_id"] == "7"
    assert by_case["lookalikes"]["ts"].replace(tzinfo=dt.timezone.utc).timestamp() == 1700000000.25
    silver = accepted(classified, "events").collect()
    assert sorted(r["event_id"] for r in silver) == ["e", "f", "g", "h"]
    quarantine = quarantined(classified, personal_fields=[], key=KEY).collect()
    assert sorted(r["reason"] for r in quarantine) == ["wrong_type"] * 4


def test_wrong_json_types_in_items_and_reviews(spark):
    from fusionrec.ingest.sources.jsonl import stage_json

    items = ['{"item_id": "a", "title": ["Part", "one"], "categories": ["X"]}',
             '{"item_id": "b", "title": {"en": "Two"}}',
             '{"item_id": "c", "title": "Three", "price": true}']
    reviews = ['{"user_id": "u1", "item_id": "a", "text": "fine", "ts": 1700000000.5}',
               '{"user_id": {"id": "u1"}, "item_id": "a", "text": "fine", "ts": 1700000000}']

    def classify(kind, lines):
        raw = spark.createDataFrame([(line, "f.jsonl", False) for line in lines],
                                    "_raw STRING, _file STRING, _non_utf8 BOOLEAN")
        df = CLASSIFIERS[kind](conform_staged(stage_json(raw, kind, []), kind), RULES)
        return [r["_reason"] for r in sorted(df.collect(), key=lambda r: lines.index(r["_raw"]))]

    assert classify("items", items) == [None, "wrong_type", "wrong_type"]
    assert classify("reviews", reviews) == [None, "wrong_type"]
