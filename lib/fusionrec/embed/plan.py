"""Incremental planning: which texts need the model, which are already embedded.

Given the prepared texts of a table (see :func:`fusionrec.embed.texts.prepare_texts`)
and the vectors already stored for it, every record falls into exactly one group:

- ``rejected``: never sent to the model (``empty_text``, ``duplicate_id``);
- ``present``: its (id, content hash) is already stored -- skipped;
- ``pending``: new or changed text, which needs a vector. Its vector is either
  ``reusable`` from a stored record with an identical text (same content hash), or
  computed, once per distinct text, from ``to_embed``.

The groups come from one grouping of the usable records and the stored
``[record_id, content_hash]`` by content hash (one pass over the stored keys, never the
vectors): per hash, the record ids in gold and those stored. A record is present when
its id is in both lists of its hash; a hash with pending ids and no stored id is a text
to embed. Only ``reusable`` reads stored vectors.

A model change alters every content hash, so after one nothing is present or reusable.
"""

from __future__ import annotations

from dataclasses import dataclass

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

__all__ = ["EmbeddingPlan", "plan_embedding"]


@dataclass(frozen=True)
class EmbeddingPlan:
    """The groups of one table's records (lazy DataFrames)."""

    #: ``[content_hash, text, gold_ids, stored_ids, present_ids, pending_ids]``: one row per
    #: hash of a usable or stored record (``text`` is null for a hash only stored); every
    #: other group is derived from it. Persist it when several groups are used.
    by_hash: DataFrame
    #: ``[record_id, content_hash, text, n_chars, reason]`` with a reason code.
    rejected: DataFrame
    #: ``[record_id, content_hash]`` whose vector is stored and current.
    present: DataFrame
    #: ``[record_id, content_hash, text, n_chars]`` that need a (new) vector.
    pending: DataFrame
    #: ``[record_id, content_hash]``: the pending records whose text already has a stored vector.
    reused: DataFrame
    #: ``[content_hash, embedding]``: stored vectors of pending texts (identical text, other id).
    reusable: DataFrame
    #: ``[content_hash, text]``: distinct texts that must go through the model.
    to_embed: DataFrame
    #: ``[record_id, content_hash]``: stored rows that are not present (text changed, gone or unusable).
    stale: DataFrame


def _ids(mask: Column) -> Column:
    """The record ids of a hash's rows where ``mask`` holds (nulls are skipped)."""
    return F.collect_list(F.when(mask, F.col("record_id")))


def plan_embedding(prepared: DataFrame, stored: DataFrame) -> EmbeddingPlan:
    """Split ``prepared`` against ``stored`` = ``[record_id, content_hash, embedding]``.

    Parameters
    ----------
    prepared : DataFrame
        ``[record_id, text, content_hash, n_chars, reason]`` from
        :func:`fusionrec.embed.texts.prepare_texts` (usable records have unique ids).
    stored : DataFrame
        The vectors already stored, one row per record id.

    Returns
    -------
    EmbeddingPlan
        ``rejected`` + ``present`` + ``pending`` hold every row of ``prepared`` exactly once;
        ``reused`` and the texts of ``to_embed`` split ``pending``; ``present`` + ``stale``
        hold every stored row exactly once.

    Example
    -------
    >>> plan = plan_embedding(prepare_texts(reviews, "review_id", "text", cfg), stored)  # doctest: +SKIP
    >>> plan.to_embed.count()                                                            # doctest: +SKIP
    20
    """
    candidates = prepared.where(F.col("reason").isNull())
    tagged = candidates.select("content_hash", "record_id", "text", F.lit(True).alias("in_gold")).unionByName(
        stored.select("content_hash", F.col("record_id").cast("string").alias("record_id"),
                      F.lit(None).cast("string").alias("text"), F.lit(False).alias("in_gold")))
    by_hash = (
        tagged.groupBy("content_hash")
        .agg(F.max("text").alias("text"),  # the normalised text: the same for every usable row of a hash
             _ids(F.col("in_gold")).alias("gold_ids"), _ids(~F.col("in_gold")).alias("stored_ids"))
        .withColumn("present_ids", F.array_intersect("gold_ids", "stored_ids"))
        .withColumn("pending_ids", F.array_except("gold_ids", "stored_ids"))
    )

    def records(ids: str | Column, *columns: Column) -> DataFrame:
        return by_hash.select(F.explode(ids).alias("record_id"), "content_hash", *columns)

    pending = records("pending_ids", "text", F.length("text").alias("n_chars"),
                      (F.size("stored_ids") > 0).alias("_reused"))
    reused = pending.where("_reused").select("record_id", "content_hash")
    reusable = (
        stored.select("content_hash", "embedding")
        .join(reused.select("content_hash").distinct(), "content_hash", "left_semi")
        .dropDuplicates(["content_hash"])
    )
    to_embed = by_hash.where((F.size("pending_ids") > 0) & (F.size("stored_ids") == 0)).select("content_hash", "text")
    return EmbeddingPlan(
        by_hash=by_hash,
        rejected=prepared.where(F.col("reason").isNotNull()),
        present=records("present_ids"),
        pending=pending.drop("_reused"),
        reused=reused,
        reusable=reusable,
        to_embed=to_embed,
        stale=records(F.array_except("stored_ids", "gold_ids")),
    )
