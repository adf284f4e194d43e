"""Vector arithmetic on ``ARRAY<FLOAT>`` columns with Spark SQL functions (no Python UDFs).

Grouped weighted sums and means use Spark ML's ``Summarizer``: a JVM aggregate that
adds dense vectors in place, so a group of n vectors of dimension d costs O(n d) without
exploding every vector into d rows. Arrays are converted to ML vectors only for that
aggregate and back to ``ARRAY<FLOAT>`` right after.
"""

from __future__ import annotations

from pyspark.ml.functions import array_to_vector, vector_to_array
from pyspark.ml.stat import Summarizer
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

__all__ = ["dot", "l2_normalise", "mean", "normalised", "scaled_sum", "weighted_sum"]


def norm(vector: Column) -> Column:
    """Euclidean norm ||v|| (double)."""
    return F.sqrt(F.aggregate(vector, F.lit(0.0).cast("double"), lambda acc, x: acc + x.cast("double") * x.cast("double")))


def l2_normalise(vector: Column) -> Column:
    """v / ||v|| as ARRAY<FLOAT>; null for a null or all-zero vector (it has no direction).

    The norm is passed into the element-wise lambda as a repeated array argument rather
    than referenced inside the lambda: a lambda body is evaluated once per element and
    Spark does not hoist common subexpressions out of it, so ``transform(v, x -> x / norm(v))``
    would cost O(d^2) per row (O(d^3) when ``v`` is itself a normalised expression).
    """
    n = norm(vector)
    return F.when(n > 0, F.zip_with(vector, F.array_repeat(n, F.size(vector)),
                                    lambda x, length: (x.cast("double") / length).cast("float")))


def normalised(df: DataFrame, col: str) -> DataFrame:
    """``df`` with ``col`` scaled to unit L2 norm; an all-zero vector stays zero (unlike
    :func:`l2_normalise`, which gives null), so that scoring treats it as "no signal"."""
    n = F.greatest(norm(F.col(col)), F.lit(1e-12))
    return df.withColumn(col, F.zip_with(F.col(col), F.array_repeat(n, F.size(col)),
                                         lambda x, length: (x.cast("double") / length).cast("float")))


def scaled_sum(a: Column, wa: float, b: Column, wb: float) -> Column:
    """wa * a + wb * b elementwise (null if either is null)."""
    return F.zip_with(a, b, lambda x, y: (F.lit(wa) * x + F.lit(wb) * y).cast("float"))


def dot(a: Column, b: Column) -> Column:
    """a . b (double); for unit vectors this is the cosine similarity."""
    return F.aggregate(
        F.zip_with(a, b, lambda x, y: x.cast("double") * y.cast("double")), F.lit(0.0).cast("double"), lambda acc, x: acc + x
    )


def weighted_sum(vector: Column, weight: Column) -> Column:
    """Aggregate: sum_i w_i v_i over the group, as ARRAY<FLOAT> (weights must be >= 0)."""
    return vector_to_array(Summarizer.sum(array_to_vector(vector), weight.cast("double")), "float32")


def mean(vector: Column) -> Column:
    """Aggregate: (1/n) sum_i v_i over the group, as ARRAY<FLOAT>."""
    return vector_to_array(Summarizer.mean(array_to_vector(vector)), "float32")
