"""Amazon reviews adapter (McAuley lab 2018 format): ``*_5.json.gz`` / ``<Category>.json.gz``
reviews and ``meta_*.json.gz`` item metadata, JSON Lines.

Reviews: ``reviewerID`` -> user_id, ``asin`` -> item_id, ``overall`` -> rating,
``summary`` -> title, ``reviewText`` -> text, ``unixReviewTime`` -> ts; ``reviewerName``
is personal and stays in bronze; ``verified``, ``vote``, ``style``, ``image`` are rescued
into ``extra``. Items: ``asin`` -> item_id, ``category`` -> categories, ``title``,
``description`` (a list), ``brand``, ``price`` (often CSS or HTML junk: parsed or null);
the remaining fields (``also_buy``, ``rank``, ``details``, ...) go to ``extra``.
"""

from __future__ import annotations

from pyspark.sql import DataFrame, SparkSession

from fusionrec.config import Config
from fusionrec.errors import InputError
from fusionrec.ingest.sources import jsonl
from fusionrec.ingest.sources.files import InputFile
from fusionrec.ingest.sources.text import read_lines

__all__ = ["ITEM_FIELDS", "PATTERNS", "REVIEW_FIELDS", "check", "read"]

PATTERNS = ("*.json.gz", "*.json", "*.jsonl.gz", "*.jsonl")
REVIEW_FIELDS = {"user_id": "reviewerID", "item_id": "asin", "rating": "overall", "title": "summary",
                 "text": "reviewText", "ts": "unixReviewTime"}
ITEM_FIELDS = {"item_id": "asin", "categories": "category", "updated_at": "date"}


def _is_meta(f: InputFile) -> bool:
    return f.name.startswith("meta_")


def check(files: list[InputFile]) -> None:
    jsonl.check(files)
    if not any(not _is_meta(f) for f in files) and not any(_is_meta(f) for f in files):
        raise InputError(f"{files[0].path}: no Amazon review or meta_ files")


def read(spark: SparkSession, files: list[InputFile], cfg: Config) -> dict[str, DataFrame]:
    personal = list(cfg.ingest.personal_fields)
    out: dict[str, DataFrame] = {}
    reviews = [f.path for f in files if not _is_meta(f)]
    meta = [f.path for f in files if _is_meta(f)]
    if reviews:
        out["reviews"] = jsonl.stage_json(read_lines(spark, reviews), "reviews", personal, REVIEW_FIELDS)
    if meta:
        out["items"] = jsonl.stage_json(read_lines(spark, meta), "items", personal, ITEM_FIELDS)
    return out
