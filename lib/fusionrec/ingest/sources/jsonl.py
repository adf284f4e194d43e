"""Canonical JSON Lines adapter (``events*.jsonl[.gz]``, ``items*``, ``reviews*``).

Each line is parsed once, as a ``map<string,string>`` (nested values keep their JSON text),
so a record with unexpected types never fails the parse, canonical fields are looked up
by name, and every other field is rescued into ``extra`` (personal fields excepted).
A line that is not a JSON object parses to null and is quarantined as ``unparseable``.
"""

from __future__ import annotations

from typing import Mapping

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import MapType, StringType

from fusionrec.config import Config
from fusionrec.errors import InputError
from fusionrec.ingest.schema import ARRAY_FIELDS, FIELDS
from fusionrec.ingest.sources.files import InputFile
from fusionrec.ingest.sources.text import as_list, as_text, json_field_pattern, read_lines

__all__ = ["PATTERNS", "check", "read", "stage_json"]

PATTERNS = {kind: (f"{kind}*.jsonl", f"{kind}*.jsonl.gz", f"{kind}*.json", f"{kind}*.json.gz")
            for kind in FIELDS}

_JSON_MAP = MapType(StringType(), StringType())


def check(files: list[InputFile]) -> None:
    """Every file must look like JSON Lines: its first non-blank line opens a JSON object."""
    for f in files:
        if not f.first_line.startswith("{"):
            snippet = f.first_line[:40].encode("unicode_escape").decode("ascii")
            raise InputError(f"{f.path}: not JSON Lines (first line starts with {snippet!r}, expected a JSON object)")


def stage_json(lines: DataFrame, kind: str, personal_fields: list[str],
               field_map: Mapping[str, str] | None = None) -> DataFrame:
    """Lines -> the staged contract of ``kind``.

    ``field_map``: canonical field -> key in the source records (identity by default);
    keys neither mapped nor personal go to ``extra``.
    """
    field_map = {f: (field_map or {}).get(f, f) for f in FIELDS[kind]}
    record = F.from_json(F.col("_raw"), _JSON_MAP)
    consumed = sorted(set(field_map.values()) | set(personal_fields))
    parsed = lines.select("*", record.alias("_record"))
    m = F.col("_record")

    def field(name: str) -> Column:
        value = m.getItem(field_map[name])
        if name in ARRAY_FIELDS:
            return as_list(value)
        if name in ("title", "description", "text"):
            return as_text(value)
        return value

    extra = F.map_filter(m, lambda k, v: ~k.isin(*consumed))
    types = F.create_map(*[c for name in FIELDS[kind]
                           for c in (F.lit(name), _json_type(field_map[name], m.getItem(field_map[name])))])
    return parsed.select(
        *[field(name).alias(name) for name in FIELDS[kind]],
        F.when(F.size(extra) > 0, extra).alias("extra"),
        "_raw", "_file",
        m.isNotNull().alias("_parsed"),
        "_non_utf8",
        F.lit(json_field_pattern(field_map["user_id"]) if "user_id" in field_map else None)
        .cast("string").alias("_user_pattern"),
        F.map_filter(types, lambda k, v: v.isNotNull()).alias("_json_types"),
    )


def _json_type(key: str, value: Column) -> Column:
    """``object`` / ``array`` / ``boolean`` when field ``key`` (parsed as ``value``) is
    written as one, else null. The map keeps only text, so the value as written is looked up
    in the line, only for a value that may be one of these (cheap for the rest); both must
    agree, so a like-named key nested earlier in the line is not mistaken for it."""
    written = F.regexp_extract(F.col("_raw"), json_field_pattern(key), 2)
    maybe = value.startswith("{") | value.startswith("[") | value.isin("true", "false")
    # The map holds an object or array as compact JSON text: what is written (up to the first
    # space, comma or closing bracket) starts it.
    return F.when(maybe, F.when(written.startswith("{") & value.startswith(written), F.lit("object"))
                  .when(written.startswith("[") & value.startswith(written), F.lit("array"))
                  .when(value.isin("true", "false") & (written == value), F.lit("boolean")))


def read(spark: SparkSession, kind: str, files: list[InputFile], cfg: Config) -> dict[str, DataFrame]:
    """Canonical JSONL files of one ``kind`` -> ``{kind: staged frame}``."""
    lines = read_lines(spark, [f.path for f in files])
    return {kind: stage_json(lines, kind, list(cfg.ingest.personal_fields))}
