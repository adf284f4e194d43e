"""Checks on the vectors Spark NLP returns.

Spark NLP does not raise when ONNX inference fails for a batch: it returns annotations
with empty embeddings, and DocumentAssembler produces no annotation at all for a text
it considers empty. Every vector is therefore checked before it is stored; a failed one
gets a reason code and goes to quarantine.

A good vector has exactly ``dimension`` finite components and (the model L2-normalises
its output) unit length, so a norm far from 1 is also a failure.
"""

from __future__ import annotations

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

__all__ = ["EMPTY_VECTOR", "NO_ANNOTATION", "NON_FINITE", "NORM_TOLERANCE", "NOT_UNIT_NORM",
           "WRONG_DIMENSION", "classify_vectors"]

NO_ANNOTATION = "no_annotation"
EMPTY_VECTOR = "empty_vector"
WRONG_DIMENSION = "wrong_dimension"
NON_FINITE = "non_finite"
NOT_UNIT_NORM = "not_unit_norm"

#: |1 - ||v||| above this means the vector did not come out of the model's normalisation.
NORM_TOLERANCE = 1e-3


def squared_norm(vector: Column) -> Column:
    """sum_i v_i^2 of an ARRAY<FLOAT> column, in double precision."""
    return F.aggregate(vector, F.lit(0.0).cast("double"), lambda acc, x: acc + x.cast("double") * x.cast("double"))


def vector_failure(n_annotations: Column, vector: Column, dimension: int) -> Column:
    """Reason code why ``vector`` is unusable, or null when it is good."""
    non_finite = F.exists(vector, lambda x: F.isnan(x) | (F.abs(x) == float("inf")))
    norm = F.sqrt(squared_norm(vector))
    return (
        F.when(n_annotations.isNull() | (n_annotations < 1) | vector.isNull(), F.lit(NO_ANNOTATION))
        .when(F.size(vector) == 0, F.lit(EMPTY_VECTOR))
        .when(F.size(vector) != dimension, F.lit(WRONG_DIMENSION))
        .when(non_finite, F.lit(NON_FINITE))
        .when(F.abs(norm - 1.0) > NORM_TOLERANCE, F.lit(NOT_UNIT_NORM))
    )


def classify_vectors(embedded: DataFrame, dimension: int) -> DataFrame:
    """Add ``reason`` (null for a good vector) and ``detail`` to ``[..., n_annotations, embedding]``."""
    reason = vector_failure(F.col("n_annotations"), F.col("embedding"), dimension)
    detail = F.when(
        reason.isNotNull(),
        F.format_string(
            "annotations=%d size=%d expected=%d",
            F.coalesce(F.col("n_annotations"), F.lit(0)),
            F.coalesce(F.size("embedding"), F.lit(-1)),
            F.lit(dimension),
        ),
    )
    return embedded.withColumn("reason", reason).withColumn("detail", detail)
