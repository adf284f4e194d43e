"""Reading input files as lines: the one physical read shared by every adapter."""

from __future__ import annotations

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import ArrayType, StringType

__all__ = ["JSON_VALUE", "as_list", "as_text", "csv_column_pattern", "json_field_pattern", "read_lines"]


def read_lines(spark: SparkSession, paths: list[str]) -> DataFrame:
    """``_file``, ``_raw`` (the line, invalid UTF-8 bytes replaced by U+FFFD, no trailing CR)
    and ``_non_utf8`` (the line had invalid bytes), one row per line of ``paths``.

    Spark keeps the bytes of a line as they are; ``encode`` goes through a Java string, which
    replaces malformed sequences, so comparing before and after detects them.
    """
    fixed = F.decode(F.encode(F.col("value"), "UTF-8"), "UTF-8")
    return spark.read.text(paths).select(
        F.input_file_name().alias("_file"),
        F.regexp_replace(fixed, "\r$", "").alias("_raw"),
        (F.col("value") != fixed).alias("_non_utf8"),
    )


def as_list(value: Column) -> Column:
    """A JSON array of strings, or one string with ``|`` separators -> array of strings."""
    parsed = F.from_json(value, ArrayType(StringType()))
    return F.when(F.trim(value).startswith("["), parsed).otherwise(F.split(value, r"\|"))


def as_text(value: Column) -> Column:
    """A string, or a JSON array of strings joined by spaces."""
    joined = F.array_join(F.from_json(value, ArrayType(StringType())), " ")
    return F.when(F.trim(value).startswith("["), F.coalesce(joined, value)).otherwise(value)


#: A JSON value as written: a string (its closing quote may be cut off, as in a truncated
#: line), or a bare token (number, true, false, null).
JSON_VALUE = r'"(?:[^"\\]|\\.)*"?|[^\s,}\]]+'


def json_field_pattern(key: str) -> str:
    """Regex locating field ``key`` of a JSON line: group 1 = up to the value, group 2 = the
    value as written (see :data:`JSON_VALUE`); matches truncated and unparseable lines too."""
    if not key.replace("_", "").isalnum():
        raise ValueError(f"JSON field name {key!r}: only letters, digits and _ are supported")
    return rf'("{key}"\s*:\s*)({JSON_VALUE})'


def csv_column_pattern(index: int) -> str:
    """Regex locating column ``index`` (0-based) of a comma-separated line: group 1 = the
    columns before it, group 2 = its value as written."""
    return rf"^((?:[^,]*,){{{index}}})([^,]*)"
