"""Canonical input schemas, Delta table schemas, constraints and reason codes.

Canonical JSON Lines (one JSON object per line, UTF-8, optionally gzip-compressed):

``events``
    ``event_id`` (optional; derived from the other fields when absent), ``user_id``,
    ``item_id``, ``event_type`` (view | click | cart | purchase | rating | review),
    ``rating`` (number, required for ``rating`` events), ``ts``.
``items``
    ``item_id``, ``title``, ``description`` (string or list of strings), ``categories``
    (list of strings, or one string with ``|`` separators), ``tags`` (idem), ``brand``,
    ``price`` (number or a string such as ``"$12.99"``), ``year``, ``updated_at``.
``reviews``
    ``review_id`` (optional; derived when absent), ``user_id``, ``item_id``, ``rating``
    (optional), ``title`` (optional summary), ``text``, ``ts``.

Timestamps (``ts``, ``updated_at``) are ISO-8601 strings (``2021-03-04T05:06:07Z``) or
epoch numbers, integer or not (seconds; values above 1e11 are read as milliseconds). Ids,
event types, ratings, timestamps, prices and years are JSON strings or numbers, texts and
lists may also be arrays of strings: a field holding a JSON object, or a boolean (or an
array where no list is expected), is quarantined as ``wrong_type``. Any other field is
kept in the silver ``extra`` map ("rescued"), except the personal fields listed in
``ingest.personal_fields``, which never leave bronze.

The adapters of :mod:`fusionrec.ingest.sources` all produce *staged* frames: the fields
above as strings (``categories``/``tags`` as arrays) plus ``_raw`` (the line as received,
invalid UTF-8 replaced), ``_file``, ``_parsed`` (the line is a well-formed record),
``_non_utf8``, ``extra``, ``_user_pattern``: a regex locating the user id in ``_raw``
(group 1 what precedes it, group 2 the id as written; null for items), by which quarantine
replaces the id with its pseudonym, whatever the source format, and ``_json_types``: the
canonical fields written as a JSON ``object``, ``array`` or ``boolean``, with that type
(strings, numbers and nulls are not listed; null for a source without JSON types).
"""

from __future__ import annotations

from pyspark.sql.types import (
    ArrayType,
    BooleanType,
    MapType,
    StringType,
    StructField,
    StructType,
)
from pyspark.sql import types as T
from pyspark.sql import DataFrame

from fusionrec.lake import KINDS, SCHEMAS as LAKE_SCHEMAS

__all__ = ["ARRAY_FIELDS", "CONSTRAINTS", "DUPLICATE_CODE", "EVENT_FIELDS", "EVENT_TYPES", "FIELDS",
           "ITEM_FIELDS", "KEYS", "KINDS", "REVIEW_FIELDS", "TABLES", "conform_staged", "Duplicate", "Fix",
           "Reason", "staged_schema", "table_schema"]

EVENT_FIELDS = ("event_id", "user_id", "item_id", "event_type", "rating", "ts")
ITEM_FIELDS = ("item_id", "title", "description", "categories", "tags", "brand", "price", "year", "updated_at")
REVIEW_FIELDS = ("review_id", "user_id", "item_id", "rating", "title", "text", "ts")
FIELDS = {"events": EVENT_FIELDS, "items": ITEM_FIELDS, "reviews": REVIEW_FIELDS}

#: Fields of the staged contract that are arrays rather than strings.
ARRAY_FIELDS = {"categories", "tags"}

EVENT_TYPES = ("view", "click", "cart", "purchase", "rating", "review")


def staged_schema(kind: str) -> StructType:
    """The output contract of every source adapter for ``kind``."""
    fields = [StructField(name, ArrayType(StringType()) if name in ARRAY_FIELDS else StringType())
              for name in FIELDS[kind]]
    return StructType(fields + [
        StructField("extra", MapType(StringType(), StringType())),
        StructField("_raw", StringType()),
        StructField("_file", StringType()),
        StructField("_parsed", BooleanType()),
        StructField("_non_utf8", BooleanType()),
        StructField("_user_pattern", StringType()),
        StructField("_json_types", MapType(StringType(), StringType())),
    ])


def conform_staged(df: DataFrame, kind: str) -> DataFrame:
    """``df`` (a source adapter's output) with the columns of :func:`staged_schema` in its order.

    Raises ``TypeError`` naming every column that is missing or of another type, so an
    adapter that drifts from the contract fails before any row is classified.
    """
    want = staged_schema(kind)
    got = {f.name: f.dataType.simpleString() for f in df.schema.fields}
    wrong = [f"{f.name} ({got.get(f.name, 'missing')}, expected {f.dataType.simpleString()})"
             for f in want.fields if got.get(f.name) != f.dataType.simpleString()]
    if wrong:
        raise TypeError(f"staged {kind} rows break the adapter contract: {', '.join(wrong)}")
    return df.select(*want.fieldNames())


class Reason:
    """Reason codes of quarantined rows (``quarantine.<kind>.reason``)."""

    UNPARSEABLE = "unparseable"            # not a JSON object / not a CSV record
    WRONG_TYPE = "wrong_type"              # a field holds a JSON object, boolean or unexpected array
    BLANK_LINE = "blank_line"
    MISSING_USER_ID = "missing_user_id"
    MISSING_ITEM_ID = "missing_item_id"
    UNKNOWN_EVENT_TYPE = "unknown_event_type"
    BAD_RATING = "bad_rating"              # not a number, or a rating event without one
    RATING_OUT_OF_RANGE = "rating_out_of_range"
    TS_UNPARSEABLE = "ts_unparseable"      # missing or not a timestamp
    TS_OUT_OF_RANGE = "ts_out_of_range"    # before ingest.min_ts or in the future
    EMPTY_REVIEW_TEXT = "empty_review_text"
    EMPTY_ITEM_TEXT = "empty_item_text"    # no title, description, categories, tags or brand


class Duplicate:
    """Codes of removed duplicates (counted, not quarantined: the kept row is in silver)."""

    EVENT = "duplicate_event"
    ITEM = "duplicate_item"
    REVIEW = "duplicate_review"


DUPLICATE_CODE = {"events": Duplicate.EVENT, "items": Duplicate.ITEM, "reviews": Duplicate.REVIEW}


class Fix:
    """Codes of repairs applied to accepted rows (counted in the report)."""

    TEXT_TRUNCATED = "text_truncated"
    MARKUP_STRIPPED = "markup_stripped"
    NON_UTF8_REPLACED = "non_utf8_replaced"
    PRICE_UNPARSED = "price_unparsed"
    ITEM_UNKNOWN = "item_unknown"          # review kept, flagged item_known = false in gold


def _ddl(ddl: str) -> StructType:
    return T._parse_datatype_string(ddl)  # type: ignore[attr-defined]


_META = "source STRING NOT NULL, batch_id STRING NOT NULL, ingest_ts TIMESTAMP NOT NULL"

#: Delta table schemas (``layer.table`` -> DDL). Silver and gold extend the contract of
#: :data:`fusionrec.lake.SCHEMAS` with provenance and rescued fields.
TABLES: dict[str, str] = {
    "bronze.events": f"raw STRING, file STRING NOT NULL, {_META}",
    "bronze.items": f"raw STRING, file STRING NOT NULL, {_META}",
    "bronze.reviews": f"raw STRING, file STRING NOT NULL, {_META}",
    "bronze._batches": (
        "batch_id STRING NOT NULL, source STRING NOT NULL, kinds ARRAY<STRING>, files ARRAY<STRING>, "
        "status STRING NOT NULL, report STRING, completed_ts TIMESTAMP NOT NULL"
    ),
    "quarantine.events": f"raw STRING, file STRING NOT NULL, reason STRING NOT NULL, {_META}",
    "quarantine.items": f"raw STRING, file STRING NOT NULL, reason STRING NOT NULL, {_META}",
    "quarantine.reviews": f"raw STRING, file STRING NOT NULL, reason STRING NOT NULL, {_META}",
    "silver.events": (
        "event_id STRING NOT NULL, user_id STRING NOT NULL, item_id STRING NOT NULL, "
        "event_type STRING NOT NULL, rating DOUBLE, ts TIMESTAMP NOT NULL, weight DOUBLE NOT NULL, "
        f"extra MAP<STRING, STRING>, {_META}"
    ),
    "silver.items": (
        "item_id STRING NOT NULL, title STRING, description STRING, categories ARRAY<STRING>, "
        "tags ARRAY<STRING>, brand STRING, price DOUBLE, year INT, updated_ts TIMESTAMP, "
        f"truncated BOOLEAN NOT NULL, extra MAP<STRING, STRING>, {_META}"
    ),
    "silver.reviews": (
        "review_id STRING NOT NULL, user_id STRING NOT NULL, item_id STRING NOT NULL, rating DOUBLE, "
        "summary STRING, text STRING NOT NULL, ts TIMESTAMP NOT NULL, truncated BOOLEAN NOT NULL, "
        f"extra MAP<STRING, STRING>, {_META}"
    ),
    # Gold tables are the contract with later stages: declared once, in fusionrec.lake.
    **{name: LAKE_SCHEMAS[name] for name in ("gold.interactions", "gold.item_documents", "gold.reviews")},
}

#: CHECK constraints (``layer.table`` -> {name: SQL predicate}); NOT NULL comes from the schema.
CONSTRAINTS: dict[str, dict[str, str]] = {
    "silver.events": {
        "event_id_not_empty": "length(event_id) > 0",
        "user_id_not_empty": "length(user_id) > 0",
        "item_id_not_empty": "length(item_id) > 0",
        "known_event_type": "event_type IN (" + ", ".join(f"'{t}'" for t in EVENT_TYPES) + ")",
        "weight_non_negative": "weight >= 0",
        "rating_non_negative": "rating IS NULL OR rating >= 0",
    },
    "silver.items": {
        "item_id_not_empty": "length(item_id) > 0",
        "price_non_negative": "price IS NULL OR price >= 0",
    },
    "silver.reviews": {
        "review_id_not_empty": "length(review_id) > 0",
        "text_not_empty": "length(text) > 0",
        "rating_non_negative": "rating IS NULL OR rating >= 0",
    },
    "gold.interactions": {
        "weight_non_negative": "weight >= 0",
        "n_events_positive": "n_events >= 1",
        "ts_ordered": "first_ts <= last_ts",
    },
    "gold.item_documents": {"text_not_empty": "length(text) > 0"},
    "gold.reviews": {"text_not_empty": "length(text) > 0"},
}

#: Natural keys used by MERGE.
KEYS: dict[str, tuple[str, ...]] = {
    "silver.events": ("event_id",),
    "silver.items": ("item_id",),
    "silver.reviews": ("review_id",),
    "gold.interactions": ("user_id", "item_id"),
    "gold.item_documents": ("item_id",),
    "gold.reviews": ("review_id",),
}


def table_schema(name: str) -> StructType:
    """The Spark schema of table ``layer.table``."""
    return _ddl(TABLES[name])
