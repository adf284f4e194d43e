"""Texts to embed: normalisation, the content hash that keys every vector, and triage.

A text is embedded under the key

    content_hash = SHA-256(model_id || 0x1F || max_sentence_length || 0x1F || normalise(text))

so that identical texts share one vector, an edited text gets a new key, and a different
model (or a different truncation length, which changes the vectors of long texts)
invalidates every key at once. ``normalise`` collapses every run of Unicode whitespace
to one space and trims the ends; case and punctuation are kept, since the model's
tokenizer decides what they mean.

All functions here are pure ``DataFrame -> DataFrame`` transformations.
"""

from __future__ import annotations

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql.window import Window

from fusionrec.config import EmbedConfig

__all__ = ["DUPLICATE_ID", "EMPTY_TEXT", "prepare_texts"]

#: Reason codes of texts that are never sent to the model.
EMPTY_TEXT = "empty_text"
DUPLICATE_ID = "duplicate_id"

_SEPARATOR = "\u001f"


def normalise_text(text: Column) -> Column:
    """Whitespace-normalised text: Unicode whitespace runs -> one space, ends trimmed."""
    return F.trim(F.regexp_replace(text, r"(?U)\s+", " "))


def embedding_key(cfg: EmbedConfig) -> str:
    """What, besides the text, determines a vector: the model and its truncation length."""
    return f"{cfg.model_id}{_SEPARATOR}{cfg.max_sentence_length}"


def content_hash(normalised_text: Column, key: str) -> Column:
    """Hex SHA-256 of the embedding key and the normalised text."""
    return F.sha2(F.concat(F.lit(key + _SEPARATOR), normalised_text), 256)


def prepare_texts(records: DataFrame, id_col: str, text_col: str, cfg: EmbedConfig) -> DataFrame:
    """Normalise, hash and triage the texts of a table.

    :returns: ``[record_id, text, content_hash, n_chars, reason]`` with one row per input
        row. ``reason`` is null for a text that should be embedded, ``empty_text`` for a
        null or blank text (DocumentAssembler would silently produce no annotation), and
        ``duplicate_id`` for every row of an id that occurs more than once (which of its
        texts is meant cannot be decided here).
    """
    normalised = normalise_text(F.coalesce(F.col(text_col), F.lit("")))
    # A window, not a join with per-id counts: the table is read once.
    prepared = records.select(
        F.col(id_col).cast("string").alias("record_id"),
        normalised.alias("text"),
    ).withColumn("n_chars", F.length("text")).withColumn(
        "_rows", F.count(F.lit(1)).over(Window.partitionBy("record_id")))
    return (
        prepared
        .withColumn(
            "reason",
            F.when(F.col("_rows") > 1, F.lit(DUPLICATE_ID))
            .when(F.col("n_chars") == 0, F.lit(EMPTY_TEXT)),
        )
        .withColumn(
            "content_hash",
            F.when(F.col("n_chars") > 0, content_hash(F.col("text"), embedding_key(cfg))),
        )
        .select("record_id", "text", "content_hash", "n_chars", "reason")
    )
