"""Row-wise vector arithmetic on Spark DataFrames, vectorised with numpy per Arrow batch."""

from __future__ import annotations

from typing import Iterator

import numpy as np
import pandas as pd
from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql.types import DoubleType, StructField, StructType


def _stack(col: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Stack a column of arrays (some may be null) into a matrix and a validity mask."""
    valid = col.notna().to_numpy()
    if not valid.any():
        return np.zeros((len(col), 0), dtype=np.float32), valid
    dim = len(col[valid].iloc[0])
    out = np.zeros((len(col), dim), dtype=np.float32)
    out[valid] = np.stack(col[valid].to_numpy()).astype(np.float32)
    return out, valid


def row_dot(df: DataFrame, a_col: str, b_col: str, out_col: str, normalise: bool = False) -> DataFrame:
    """``df`` plus ``out_col`` = a . b per row (cosine when ``normalise``); 0.0 where either
    vector is null. One batched ``einsum`` per Arrow batch instead of a per-row loop."""
    schema = StructType(df.schema.fields + [StructField(out_col, DoubleType(), False)])

    def dot(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        for batch in batches:
            a, va = _stack(batch[a_col])
            b, vb = _stack(batch[b_col])
            if a.shape[1] == 0 or b.shape[1] == 0:
                values = np.zeros(len(batch))
            else:
                if normalise:
                    a = a / np.maximum(np.linalg.norm(a, axis=1, keepdims=True), 1e-12)
                    b = b / np.maximum(np.linalg.norm(b, axis=1, keepdims=True), 1e-12)
                values = np.einsum("ij,ij->i", a, b).astype(np.float64)
                values[~(va & vb)] = 0.0
            batch[out_col] = values
            yield batch

    return df.mapInPandas(dot, schema)


def normalised(df: DataFrame, col: str) -> DataFrame:
    """``col`` scaled to unit L2 norm (Spark SQL higher-order functions, no UDF).

    The norm enters the element-wise lambda as an argument array, never as an expression
    inside the lambda (that would be re-evaluated per element: O(d^2) per row).
    """
    vector = F.col(col)
    norm = F.greatest(F.sqrt(F.aggregate(vector, F.lit(0.0), lambda acc, x: acc + x * x)), F.lit(1e-12))
    return df.withColumn(col, F.zip_with(vector, F.array_repeat(norm, F.size(vector)),
                                         lambda x, length: (x / length).cast("float")))
