"""Incremental planning: which texts need the model, which are already embedded.

Given the prepared texts of a table (see :func:`fusionrec.embed.texts.prepare_texts`)
and the vectors already stored for it, every record falls into exactly one group:

- ``rejected``: never sent to the model (``empty_text``, ``duplicate_id``);
- ``present``: its (id, content hash) is already stored -- skipped;
- ``pending``: new or changed text, which needs a vector. Its vector is either
  ``reusable`` from a stored record with an identical text (same content hash), or
  computed, once per distinct text, from ``to_embed``.

Every group but ``reusable`` reads only the stored ``[record_id, content_hash]``, never
the vectors, so counting the groups (what decides whether the model is needed at all)
is an anti-join over two small columns.

A model change alters every content hash, so after one nothing is present or reusable.
"""

from __future__ import annotations

from dataclasses import dataclass

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

__all__ = ["EmbeddingPlan", "plan_embedding"]


@dataclass(frozen=True)
class EmbeddingPlan:
    """The groups of one table's records (lazy DataFrames)."""

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


def plan_embedding(prepared: DataFrame, stored: DataFrame) -> EmbeddingPlan:
    """Split ``prepared`` against ``stored`` = ``[record_id, content_hash, embedding]``.

    Parameters
    ----------
    prepared : DataFrame
        ``[record_id, text, content_hash, n_chars, reason]`` from
        :func:`fusionrec.embed.texts.prepare_texts`.
    stored : DataFrame
        The vectors already stored, one row per record id.

    Returns
    -------
    EmbeddingPlan
        ``rejected`` + ``present`` + ``pending`` hold every row of ``prepared`` exactly once;
        ``reused`` and the texts of ``to_embed`` split ``pending``.
    """
    candidates = prepared.where(F.col("reason").isNull()).drop("reason")
    stored_keys = stored.select("record_id", "content_hash")
    stored_hashes = stored.select("content_hash")
    present = candidates.join(stored_keys, ["record_id", "content_hash"], "left_semi").select(
        "record_id", "content_hash"
    )
    pending = candidates.join(stored_keys, ["record_id", "content_hash"], "left_anti")
    reused = pending.join(stored_hashes, "content_hash", "left_semi").select("record_id", "content_hash")
    pending_hashes = pending.select("content_hash").distinct()
    reusable = (
        stored.select("content_hash", "embedding")
        .dropDuplicates(["content_hash"])
        .join(pending_hashes, "content_hash", "left_semi")
    )
    to_embed = (
        pending.join(stored_hashes, "content_hash", "left_anti")
        .select("content_hash", "text")
        .dropDuplicates(["content_hash"])
    )
    rejected = prepared.where(F.col("reason").isNotNull())
    return EmbeddingPlan(rejected=rejected, present=present, pending=pending, reused=reused, reusable=reusable,
                         to_embed=to_embed)
