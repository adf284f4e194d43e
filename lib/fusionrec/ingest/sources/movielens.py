"""MovieLens adapter (``ratings.csv``, ``movies.csv``, optional ``tags.csv``; ml-latest layout).

- ``ratings.csv`` (userId, movieId, rating, timestamp) -> ``rating`` events;
- ``movies.csv`` (movieId, title, genres) -> items: the year is parsed out of the title
  (``"Heat (1995)"`` -> title ``Heat``, year 1995), genres split on ``|`` into categories
  (``(no genres listed)`` dropped), and the item's distinct lower-cased tags attached;
- ``tags.csv`` (userId, movieId, tag, timestamp) -> short reviews without a rating.

Lines are parsed with ``from_csv`` using the file's own header (columns may come in any
order; CRLF line endings are handled by the line reader), so each CSV line is one staged
row and its raw text goes to bronze as received.
"""

from __future__ import annotations

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from fusionrec.config import Config
from fusionrec.errors import InputError
from fusionrec.ingest.sources.files import InputFile
from fusionrec.ingest.sources.text import csv_column_pattern, read_lines

__all__ = ["NO_GENRES", "PATTERNS", "REQUIRED", "check", "read"]

PATTERNS = ("ratings.csv", "movies.csv", "tags.csv")
REQUIRED = {
    "ratings.csv": ("userId", "movieId", "rating", "timestamp"),
    "movies.csv": ("movieId", "title", "genres"),
    "tags.csv": ("userId", "movieId", "tag", "timestamp"),
}
NO_GENRES = "(no genres listed)"


def _header(f: InputFile) -> list[str]:
    return [c.strip().strip('"') for c in f.first_line.split(",")]


def check(files: list[InputFile]) -> None:
    """``ratings.csv`` and ``movies.csv`` present; every file's header has its required columns."""
    names = {f.name for f in files}
    for needed in ("ratings.csv", "movies.csv"):
        if needed not in names:
            folder = files[0].folder if files else "?"
            raise InputError(f"{folder}/{needed}: missing (a MovieLens directory needs ratings.csv and movies.csv)")
    for f in files:
        header = _header(f)
        missing = [c for c in REQUIRED[f.name] if c not in header]
        if missing:
            raise InputError(f"{f.path}: missing column {missing[0]!r} (header: {','.join(header)})")


def _parse(spark: SparkSession, f: InputFile) -> DataFrame:
    """Lines of a CSV file (header removed) with its columns as strings + ``_parsed``."""
    header = _header(f)
    ddl = ", ".join(f"`{c}` STRING" for c in header)
    lines = read_lines(spark, [f.path])
    body = lines.where(F.regexp_replace("_raw", "^\ufeff", "") != f.first_line)
    record = F.from_csv(F.col("_raw"), ddl)
    # A record with fewer separators than columns is malformed (quoted commas only add some).
    well_formed = record.isNotNull() & (F.size(F.split("_raw", ",")) >= len(header))
    user = F.lit(csv_column_pattern(header.index("userId")) if "userId" in header else None).cast("string")
    return body.select("*", record.alias("_r"), well_formed.alias("_parsed"), user.alias("_user_pattern"))


def read(spark: SparkSession, files: list[InputFile], cfg: Config) -> dict[str, DataFrame]:
    by_name = {f.name: f for f in files}
    r = F.col("_r")
    null = F.lit(None).cast("string")
    no_extra = F.lit(None).cast("map<string,string>")
    meta = ["extra", "_raw", "_file", "_parsed", "_non_utf8", "_user_pattern", "_json_types"]
    staged_meta = [no_extra.alias(m) if m in ("extra", "_json_types") else m for m in meta]

    ratings = _parse(spark, by_name["ratings.csv"]).select(
        null.alias("event_id"), r["userId"].alias("user_id"), r["movieId"].alias("item_id"),
        F.lit("rating").alias("event_type"), r["rating"].alias("rating"), r["timestamp"].alias("ts"),
        *staged_meta)
    out = {"events": ratings}

    tags_lists = None
    if "tags.csv" in by_name:
        tags = _parse(spark, by_name["tags.csv"])
        out["reviews"] = tags.select(
            null.alias("review_id"), r["userId"].alias("user_id"), r["movieId"].alias("item_id"),
            null.alias("rating"), null.alias("title"), r["tag"].alias("text"), r["timestamp"].alias("ts"),
            *staged_meta)
        tags_lists = (tags.where(F.col("_parsed") & (F.length(F.trim(r["tag"])) > 0))
                      .groupBy(F.trim(r["movieId"]).alias("_movie"))
                      .agg(F.array_sort(F.collect_set(F.lower(F.trim(r["tag"])))).alias("tags")))

    movies = _parse(spark, by_name["movies.csv"])
    title = F.trim(r["title"])
    year_pattern = r"\s*\((\d{4})\)\s*$"
    genres = F.filter(F.split(r["genres"], r"\|"), lambda g: (F.trim(g) != "") & (g != NO_GENRES))
    items = movies.select(
        F.trim(r["movieId"]).alias("item_id"), F.regexp_replace(title, year_pattern, "").alias("title"),
        null.alias("description"), genres.alias("categories"), null.alias("brand"), null.alias("price"),
        F.when(F.regexp_extract(title, year_pattern, 1) != "", F.regexp_extract(title, year_pattern, 1)).alias("year"),
        null.alias("updated_at"), *staged_meta)
    if tags_lists is not None:
        items = items.join(tags_lists, items["item_id"] == tags_lists["_movie"], "left").drop("_movie")
    else:
        items = items.withColumn("tags", F.lit(None).cast("array<string>"))
    out["items"] = items.select("item_id", "title", "description", "categories", "tags", "brand", "price",
                                "year", "updated_at", *meta)
    return out
