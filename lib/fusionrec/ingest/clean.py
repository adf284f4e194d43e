"""Cleaning rules: pure ``DataFrame -> DataFrame`` functions on staged frames (no UDFs).

Every staged row ends in exactly one of three places:

- *accepted* (silver): ``_reason`` is null and the row is not a duplicate;
- *quarantined*: ``_reason`` holds the code of the first rule it breaks (rules are checked
  in the order of the ``CASE`` expressions below);
- *duplicate removed*: a valid row whose natural key (``event_id``, ``item_id``,
  ``review_id``) is already held by a row that wins the tie-break rule of its kind.

so that ``rows in = accepted + quarantined + duplicates`` (:mod:`.accounting`).

:func:`classify_events` / :func:`classify_items` / :func:`classify_reviews` add ``_reason``,
``_duplicate`` and ``_fixes`` (codes of repairs applied) to every row; :func:`accepted`
takes the rows for silver from a classified frame, :func:`quarantined` the rejected ones.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F
from pyspark.sql.types import ArrayType, StringType

from fusionrec.config import IngestConfig
from fusionrec.ingest.privacy import pseudonymise
from fusionrec.ingest.schema import DUPLICATE_CODE, EVENT_TYPES, FIELDS, Fix, Reason
from fusionrec.ingest.sources.text import JSON_VALUE

__all__ = ["CLASSIFIERS", "DUPLICATE_CODE", "SILVER_COLUMNS", "CleaningRules", "accepted", "classify_events",
           "classify_items", "classify_reviews", "clean_text", "event_weight", "parse_price", "parse_ts",
           "pseudonymise_raw", "quarantined", "redact", "review_events"]

#: A tag that opens with a letter, ``/`` or ``!``; an unclosed tag runs to the end of the text.
_TAG = r"<[A-Za-z/!][^>]*(?:>|$)"
_NAMED_ENTITIES = {"&nbsp;": " ", "&lt;": "<", "&gt;": ">", "&quot;": '"', "&#39;": "'", "&apos;": "'"}
_MARKUP = r"<[A-Za-z/!]|&#?[A-Za-z0-9]+;"
_ID_SEPARATOR = "\u001f"


@dataclass(frozen=True)
class CleaningRules:
    """Everything the cleaning functions depend on, fixed for one batch."""

    ingest: IngestConfig
    #: Ingest time: rows later than ``now + ingest.max_future_s`` are in the future.
    now: dt.datetime
    #: HMAC key of the user-id pseudonyms.
    key: bytes

    @property
    def min_ts(self) -> dt.datetime:
        return dt.datetime.fromisoformat(self.ingest.min_ts)

    @property
    def max_ts(self) -> dt.datetime:
        return self.now + dt.timedelta(seconds=self.ingest.max_future_s)


# --------------------------------------------------------------------------- columns

def _blank_to_null(c: Column) -> Column:
    """Trimmed string, null when empty."""
    t = F.trim(c)
    return F.when(t != "", t)


def clean_text(c: Column) -> Column:
    """Strip HTML tags and entities and control characters, normalise whitespace.

    Tags (also an unclosed one at the end) become spaces; ``&nbsp; &lt; &gt; &quot; &#39;
    &apos;`` are decoded, other entities removed, ``&amp;`` decoded last (so ``&amp;lt;``
    stays the literal text ``&lt;``); control characters become spaces, format characters
    (zero-width spaces, BOM) and U+FFFD (left by undecodable bytes) are removed; runs of
    Unicode whitespace become one space; an empty result is null.
    """
    c = F.regexp_replace(c, _TAG, " ")
    for entity, char in _NAMED_ENTITIES.items():
        c = F.regexp_replace(c, entity, char)
    c = F.regexp_replace(c, r"&(?!amp;)#?[A-Za-z0-9]+;", " ")
    c = F.regexp_replace(c, "&amp;", "&")
    c = F.regexp_replace(c, r"\p{Cc}", " ")
    c = F.regexp_replace(c, r"[\p{Cf}\x{FFFD}]", "")
    c = F.regexp_replace(c, r"(?U)\s+", " ")
    return _blank_to_null(c)


def _truncate(c: Column, max_length: int) -> Column:
    """``c`` cut to ``max_length`` characters."""
    return F.when(F.length(c) > max_length, F.substring(c, 1, max_length)).otherwise(c)


def _clean_list(c: Column, max_length: int) -> Column:
    """Each element cleaned and truncated, empty ones dropped, duplicates removed; null -> []."""
    cleaned = F.transform(F.coalesce(c, F.array().cast(ArrayType(StringType()))),
                          lambda x: _truncate(clean_text(x), max_length))
    return F.array_distinct(F.filter(cleaned, lambda x: x.isNotNull()))


def parse_price(c: Column) -> Column:
    """A price string (``12.5``, ``$12.99``, ``$1,299.00``, ``$5.00 - $20.00`` -> the first
    amount) as a number; anything else (CSS or HTML junk, words) -> null, never an error."""
    amount = F.regexp_extract(F.trim(c), r"^(?:[$€£]|USD|EUR|GBP)?\s*([0-9][0-9,]*(?:\.[0-9]+)?)(?:\s|$|-)", 1)
    return F.when(amount != "", F.regexp_replace(amount, ",", "").cast("double"))


def parse_ts(c: Column) -> Column:
    """ISO-8601 text or epoch seconds (milliseconds when >= 1e11), integer or not, also in
    exponent notation (a JSON float parsed as text reads ``1.7000000005E9``) -> timestamp,
    else null."""
    s = F.trim(c)
    number = s.cast("double")
    numeric = s.rlike(r"^-?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][-+]?[0-9]+)?$")
    from_number = (F.when(F.abs(number) < 1e11, F.timestamp_seconds(number))
                   .when(F.abs(number) < 1e14, F.timestamp_millis(number.cast("long"))))
    return F.when(numeric, from_number).otherwise(F.to_timestamp(s))


#: Fields that may be a JSON array (of strings): texts are joined, lists kept.
_ARRAY_OK = ("title", "description", "text", "categories", "tags")


def _wrong_type(kind: str) -> Column:
    """True when a canonical field of ``kind`` holds a JSON type it cannot have: an object
    or a boolean anywhere, an array outside :data:`_ARRAY_OK` (see ``_json_types``)."""
    types = F.col("_json_types")
    wrong = [types[name].isin("object", "boolean") if name in _ARRAY_OK else types[name].isNotNull()
             for name in FIELDS[kind]]
    any_wrong = wrong[0]
    for w in wrong[1:]:
        any_wrong = any_wrong | w
    return F.coalesce(any_wrong, F.lit(False))


def _ts_reason(ts: Column, rules: CleaningRules) -> Column:
    """``ts_unparseable`` / ``ts_out_of_range`` / null."""
    return (F.when(ts.isNull(), F.lit(Reason.TS_UNPARSEABLE))
            .when((ts < F.lit(rules.min_ts)) | (ts > F.lit(rules.max_ts)), F.lit(Reason.TS_OUT_OF_RANGE)))


def _rating_reason(raw: Column, rating: Column, rules: CleaningRules) -> Column:
    """``bad_rating`` (present but not a number) / ``rating_out_of_range`` (NaN included) / null."""
    r = rules.ingest
    return (F.when(raw.isNotNull() & rating.isNull(), F.lit(Reason.BAD_RATING))
            .when(rating.isNotNull() & ~rating.between(r.rating_min, r.rating_max), F.lit(Reason.RATING_OUT_OF_RANGE)))


def event_weight(event_type: Column, rating: Column, cfg: IngestConfig) -> Column:
    """``weight_<type> + rating / rating_max * rating_weight`` (rating term only if rated)."""
    base = F.lit(0.0)
    for t in reversed(EVENT_TYPES):
        base = F.when(event_type == t, F.lit(float(getattr(cfg, f"weight_{t}")))).otherwise(base)
    return base + F.coalesce(rating / cfg.rating_max * cfg.rating_weight, F.lit(0.0))


def _derived_id(*parts: Column) -> Column:
    """A stable id for records without one: SHA-256 of the fields (nulls as empty)."""
    return F.substring(F.sha2(F.concat_ws(_ID_SEPARATOR, *[F.coalesce(p, F.lit("")) for p in parts]), 256), 1, 32)


def _fixes(*flags: tuple[Column, str]) -> Column:
    return F.array_compact(F.array(*[F.when(cond, F.lit(code)) for cond, code in flags]))


def _mark_duplicates(df: DataFrame, key: str, order: list[Column]) -> DataFrame:
    """``_duplicate``: a valid row whose key is held by an earlier row in ``order``."""
    w = Window.partitionBy(key, "_reason").orderBy(*order)
    return df.withColumn("_duplicate", F.col("_reason").isNull() & (F.row_number().over(w) > 1))


# --------------------------------------------------------------------------- kinds

def classify_events(staged: DataFrame, rules: CleaningRules) -> DataFrame:
    """Staged events -> silver event columns + ``_reason``, ``_duplicate``, ``_fixes``.

    Order of rules: blank line, unparseable, wrong JSON type, missing user id, missing item id, unknown
    event type, bad rating (also a ``rating`` event without one), rating out of range,
    timestamp unparseable, timestamp out of range. User ids are pseudonymised. Duplicates:
    same ``event_id`` (given, or derived from user, item, type, time and rating); the first
    by (file, raw line) is kept.
    """
    user_raw = _blank_to_null(F.col("user_id"))
    item = _blank_to_null(F.col("item_id"))
    etype = F.lower(_blank_to_null(F.col("event_type")))
    rating_raw = _blank_to_null(F.col("rating"))
    rating = rating_raw.cast("double")
    ts = parse_ts(F.col("ts"))
    df = staged.select(
        "_raw", "_file", "_parsed", "_non_utf8", "extra", "_user_pattern",
        _wrong_type("events").alias("_wrong_type"),
        pseudonymise(user_raw, rules.key).alias("user_id"), item.alias("item_id"), etype.alias("event_type"),
        rating_raw.alias("_rating_raw"), rating.alias("rating"), ts.alias("ts"),
        _blank_to_null(F.col("event_id")).alias("_event_id"), _blank_to_null(F.col("ts")).alias("_ts_raw"),
    )
    c = F.col
    reason = (F.when(c("_raw").isNull() | (F.trim(c("_raw")) == ""), F.lit(Reason.BLANK_LINE))
              .when(~c("_parsed"), F.lit(Reason.UNPARSEABLE))
              .when(c("_wrong_type"), F.lit(Reason.WRONG_TYPE))
              .when(c("user_id").isNull(), F.lit(Reason.MISSING_USER_ID))
              .when(c("item_id").isNull(), F.lit(Reason.MISSING_ITEM_ID))
              .when(c("event_type").isNull() | ~c("event_type").isin(*EVENT_TYPES), F.lit(Reason.UNKNOWN_EVENT_TYPE))
              .when((c("event_type") == "rating") & c("_rating_raw").isNull(), F.lit(Reason.BAD_RATING))
              .otherwise(F.coalesce(_rating_reason(c("_rating_raw"), c("rating"), rules),
                                    _ts_reason(c("ts"), rules))))
    df = df.select(
        "*",
        F.coalesce(c("_event_id"), _derived_id(c("user_id"), c("item_id"), c("event_type"), c("_ts_raw"), c("_rating_raw"))).alias("event_id"),
        event_weight(c("event_type"), c("rating"), rules.ingest).alias("weight"),
        reason.alias("_reason"),
        _fixes((c("_non_utf8"), Fix.NON_UTF8_REPLACED)).alias("_fixes"),
    )
    df = _mark_duplicates(df, "event_id", [c("_file"), c("_raw")])
    return df.drop("_parsed", "_non_utf8", "_wrong_type", "_rating_raw", "_event_id", "_ts_raw")


def classify_items(staged: DataFrame, rules: CleaningRules) -> DataFrame:
    """Staged items -> silver item columns + ``_reason``, ``_duplicate``, ``_fixes``.

    Texts are cleaned (:func:`clean_text`) and truncated (titles, brands and categories to
    ``max_title_length``, descriptions to ``max_text_length``; ``truncated`` records it).
    Rules: blank line, unparseable, wrong JSON type, missing item id, empty item text (no title, description,
    categories, tags or brand left after cleaning). Duplicate item records: the latest
    ``updated_at`` wins; without one (or on a tie) the record with the most non-empty
    fields; then the later file name; then the larger raw line (deterministic).
    """
    cfg = rules.ingest
    c = F.col
    title_clean = clean_text(c("title"))
    desc_clean = clean_text(c("description"))
    brand_clean = clean_text(c("brand"))
    df = staged.select(
        "_raw", "_file", "_parsed", "_non_utf8", "extra", "_user_pattern",
        _wrong_type("items").alias("_wrong_type"),
        _blank_to_null(c("item_id")).alias("item_id"),
        _truncate(title_clean, cfg.max_title_length).alias("title"),
        _truncate(desc_clean, cfg.max_text_length).alias("description"),
        _clean_list(c("categories"), cfg.max_title_length).alias("categories"),
        _clean_list(c("tags"), cfg.max_title_length).alias("tags"),
        _truncate(brand_clean, cfg.max_title_length).alias("brand"),
        parse_price(c("price")).alias("price"),
        F.when(_blank_to_null(c("year")).cast("int").between(1800, 2200), _blank_to_null(c("year")).cast("int")).alias("year"),
        parse_ts(c("updated_at")).alias("updated_ts"),
        ((F.length(title_clean) > cfg.max_title_length) | (F.length(desc_clean) > cfg.max_text_length)
         | (F.length(brand_clean) > cfg.max_title_length)
         | F.exists(F.coalesce(c("categories"), F.array().cast("array<string>")), lambda x: F.length(x) > cfg.max_title_length)
         ).alias("truncated"),
        (F.coalesce(c("title"), F.lit("")).rlike(_MARKUP) | F.coalesce(c("description"), F.lit("")).rlike(_MARKUP)).alias("_markup"),
        (_blank_to_null(c("price")).isNotNull()).alias("_has_price"),
    )
    df = df.withColumn("truncated", F.coalesce(c("truncated"), F.lit(False)))
    reason = (F.when(c("_raw").isNull() | (F.trim(c("_raw")) == ""), F.lit(Reason.BLANK_LINE))
              .when(~c("_parsed"), F.lit(Reason.UNPARSEABLE))
              .when(c("_wrong_type"), F.lit(Reason.WRONG_TYPE))
              .when(c("item_id").isNull(), F.lit(Reason.MISSING_ITEM_ID))
              .when(c("title").isNull() & c("description").isNull() & (F.size(c("categories")) == 0)
                    & (F.size(c("tags")) == 0) & c("brand").isNull(), F.lit(Reason.EMPTY_ITEM_TEXT)))
    completeness = sum(F.when(c(n).isNotNull(), 1).otherwise(0) for n in ("title", "description", "brand", "price", "year")) \
        + F.when(F.size(c("categories")) > 0, 1).otherwise(0)
    df = df.select(
        "*", reason.alias("_reason"),
        _fixes((c("truncated"), Fix.TEXT_TRUNCATED), (c("_markup"), Fix.MARKUP_STRIPPED),
               (c("_non_utf8"), Fix.NON_UTF8_REPLACED),
               (c("_has_price") & c("price").isNull(), Fix.PRICE_UNPARSED)).alias("_fixes"),
        completeness.alias("_completeness"),
    )
    df = _mark_duplicates(df, "item_id", [c("updated_ts").desc_nulls_last(), c("_completeness").desc(),
                                          c("_file").desc(), c("_raw").desc()])
    return df.drop("_parsed", "_non_utf8", "_wrong_type", "_markup", "_has_price", "_completeness")


def classify_reviews(staged: DataFrame, rules: CleaningRules) -> DataFrame:
    """Staged reviews -> silver review columns + ``_reason``, ``_duplicate``, ``_fixes``.

    Rules: blank line, unparseable, wrong JSON type, missing user id, missing item id, bad rating, rating
    out of range (the rating itself is optional), timestamp unparseable / out of range,
    empty review text (after cleaning). Texts longer than ``max_text_length`` are
    truncated. Duplicates: same ``review_id`` (given, or derived from user, item, time and
    text); the first by (file, raw line) is kept. A review of an item not in
    ``silver.items`` is kept and flagged in gold (``item_known``).
    """
    cfg = rules.ingest
    c = F.col
    text_clean = clean_text(c("text"))
    rating_raw = _blank_to_null(c("rating"))
    df = staged.select(
        "_raw", "_file", "_parsed", "_non_utf8", "extra", "_user_pattern",
        _wrong_type("reviews").alias("_wrong_type"),
        pseudonymise(_blank_to_null(c("user_id")), rules.key).alias("user_id"),
        _blank_to_null(c("item_id")).alias("item_id"),
        rating_raw.alias("_rating_raw"), rating_raw.cast("double").alias("rating"),
        _truncate(clean_text(c("title")), cfg.max_title_length).alias("summary"),
        _truncate(text_clean, cfg.max_text_length).alias("text"),
        (F.coalesce(F.length(text_clean), F.lit(0)) > cfg.max_text_length).alias("truncated"),
        parse_ts(c("ts")).alias("ts"), _blank_to_null(c("ts")).alias("_ts_raw"),
        _blank_to_null(c("review_id")).alias("_review_id"),
        (F.coalesce(c("text"), F.lit("")).rlike(_MARKUP)).alias("_markup"),
    )
    reason = (F.when(c("_raw").isNull() | (F.trim(c("_raw")) == ""), F.lit(Reason.BLANK_LINE))
              .when(~c("_parsed"), F.lit(Reason.UNPARSEABLE))
              .when(c("_wrong_type"), F.lit(Reason.WRONG_TYPE))
              .when(c("user_id").isNull(), F.lit(Reason.MISSING_USER_ID))
              .when(c("item_id").isNull(), F.lit(Reason.MISSING_ITEM_ID))
              .otherwise(F.coalesce(_rating_reason(c("_rating_raw"), c("rating"), rules),
                                    _ts_reason(c("ts"), rules),
                                    F.when(c("text").isNull(), F.lit(Reason.EMPTY_REVIEW_TEXT)))))
    df = df.select(
        "*",
        F.coalesce(c("_review_id"), _derived_id(c("user_id"), c("item_id"), c("_ts_raw"), c("text"))).alias("review_id"),
        reason.alias("_reason"),
        _fixes((c("truncated"), Fix.TEXT_TRUNCATED), (c("_markup"), Fix.MARKUP_STRIPPED),
               (c("_non_utf8"), Fix.NON_UTF8_REPLACED)).alias("_fixes"),
    )
    df = _mark_duplicates(df, "review_id", [c("_file"), c("_raw")])
    return df.drop("_parsed", "_non_utf8", "_wrong_type", "_rating_raw", "_ts_raw", "_review_id", "_markup")


CLASSIFIERS = {"events": classify_events, "items": classify_items, "reviews": classify_reviews}

SILVER_COLUMNS = {
    "events": ("event_id", "user_id", "item_id", "event_type", "rating", "ts", "weight", "extra"),
    "items": ("item_id", "title", "description", "categories", "tags", "brand", "price", "year",
              "updated_ts", "truncated", "extra"),
    "reviews": ("review_id", "user_id", "item_id", "rating", "summary", "text", "ts", "truncated", "extra"),
}


def redact(raw: Column, personal_fields: list[str]) -> Column:
    """``"<personal field>": <value>`` pairs of a raw JSON line replaced by ``"<field>":"<redacted>"``."""
    if not personal_fields:
        return raw
    names = "|".join(f for f in personal_fields if f.replace("_", "").isalnum())
    return F.regexp_replace(raw, rf'"({names})"\s*:\s*(?:{JSON_VALUE})', '"$1":"<redacted>"')


def pseudonymise_raw(raw: Column, pattern: Column, pseudonym: Column, key: bytes) -> Column:
    """``raw`` with the user id that ``pattern`` locates (see ``_user_pattern`` in
    :mod:`.schema`) written as ``"<its pseudonym>"``.

    ``pseudonym``: the row's parsed and pseudonymised ``user_id``; where the line did not
    parse it is null, and the id as written (unquoted) is pseudonymised instead. A line
    without a user id (null pattern, no match, blank or JSON null) is returned unchanged.
    """
    written = F.call_function("regexp_extract", raw, pattern, F.lit(2))
    unquoted = F.regexp_replace(F.trim(written), r'^"|"$', "")
    value = F.coalesce(pseudonym, F.when(unquoted != "null", pseudonymise(_blank_to_null(unquoted), key)))
    replaced = F.regexp_replace(raw, pattern, F.concat(F.lit('$1"'), value, F.lit('"')))
    return F.when(pattern.isNotNull() & value.isNotNull(), replaced).otherwise(raw)


def accepted(classified: DataFrame, kind: str) -> DataFrame:
    """The rows that go to silver: not rejected, not a duplicate (silver columns only, no provenance)."""
    return classified.where(F.col("_reason").isNull() & ~F.col("_duplicate")).select(*SILVER_COLUMNS[kind])


def quarantined(classified: DataFrame, *, personal_fields: list[str], key: bytes) -> DataFrame:
    """The rejected rows: ``raw`` (user id pseudonymised, personal fields redacted), ``file``, ``reason``.

    Parameters
    ----------
    classified : a frame of :func:`classify_events` / ``_items`` / ``_reviews``.
    personal_fields : JSON fields whose values are redacted (``ingest.personal_fields``).
    key : the pseudonym key, for ids of lines that did not parse.

    Returns
    -------
    One row per rejected row, the columns of ``quarantine.<kind>`` before provenance.
    """
    user = F.col("user_id") if "user_id" in classified.columns else F.lit(None).cast("string")
    raw = pseudonymise_raw(F.col("_raw"), F.col("_user_pattern"), user, key)
    return classified.where(F.col("_reason").isNotNull()).select(
        redact(raw, list(personal_fields)).alias("raw"), F.col("_file").alias("file"),
        F.col("_reason").alias("reason"))


def review_events(reviews: DataFrame, cfg: IngestConfig) -> DataFrame:
    """Accepted reviews as ``review`` events (id ``review:<review_id>``), so a review counts
    as an interaction: weight ``weight_review + rating / rating_max * rating_weight``."""
    return reviews.select(
        F.concat(F.lit("review:"), F.col("review_id")).alias("event_id"), "user_id", "item_id",
        F.lit("review").alias("event_type"), "rating", "ts",
        event_weight(F.lit("review"), F.col("rating"), cfg).alias("weight"),
        F.lit(None).cast("map<string,string>").alias("extra"),
    )
