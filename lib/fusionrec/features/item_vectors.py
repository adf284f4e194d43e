"""Item vectors: what an item is about (its document) mixed with what reviewers said of it.

For item i with document vector d_i and review vectors r_i1..r_in (all unit length):

    m_i = normalise((1/n) sum_k r_ik)                 (direction of the mean review)
    v_i = normalise(w_doc * d_i + w_rev * m_i)

An item without reviews gets v_i = d_i; an item without a document (reviewed but
unknown to the catalogue) gets v_i = m_i. The mean review vector is normalised before
mixing so that the weights, not the reviewers' disagreement (which shortens the mean),
decide the balance.
"""

from __future__ import annotations

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from fusionrec.config import ConfigError
from fusionrec.features.vectors import l2_normalise, mean, scaled_sum

__all__ = ["item_vectors"]


def mean_review_vectors(review_embeddings: DataFrame, reviews: DataFrame) -> DataFrame:
    """``[item_id, review_vector, n_reviews]``: the normalised mean vector of each item's reviews.

    Only reviews present in ``reviews`` count, so passing a training split keeps later
    reviews out.
    """
    return (
        reviews.select("review_id", "item_id")
        .join(review_embeddings.select("review_id", "embedding"), "review_id")
        .groupBy("item_id")
        .agg(mean(F.col("embedding")).alias("review_mean"), F.count(F.lit(1)).alias("n_reviews"))
        .select("item_id", l2_normalise(F.col("review_mean")).alias("review_vector"), "n_reviews")
    )


def item_vectors(
    item_embeddings: DataFrame,
    review_embeddings: DataFrame,
    reviews: DataFrame,
    doc_weight: float,
    review_weight: float,
) -> DataFrame:
    """``[item_id, vector ARRAY<FLOAT>]``, unit length, for every item with a document or a review.

    :param item_embeddings: ``[item_id, embedding]`` document vectors.
    :param review_embeddings: ``[review_id, embedding]``.
    :param reviews: ``[review_id, item_id, ...]``: which reviews count, and their items.
    """
    if doc_weight < 0 or review_weight < 0 or doc_weight + review_weight <= 0:
        raise ConfigError(
            f"features.item_doc_weight/item_review_weight: need non-negative weights with a positive sum, "
            f"got {doc_weight} and {review_weight}"
        )
    docs = item_embeddings.select("item_id", F.col("embedding").alias("doc_vector"))
    doc, rev = F.col("doc_vector"), F.col("review_vector")
    # With one of the two parts missing the other is the item's direction, whatever the weights.
    mixed = F.when(doc.isNotNull() & rev.isNotNull(), scaled_sum(doc, doc_weight, rev, review_weight)).otherwise(
        F.coalesce(doc, rev)
    )
    items = docs.join(mean_review_vectors(review_embeddings, reviews), "item_id", "full_outer")
    return items.select("item_id", l2_normalise(mixed).alias("vector")).where(F.col("vector").isNotNull())
