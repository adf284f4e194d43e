"""Ridge maps from text vectors to ALS factors, for items and users that ALS has not seen.

Given warm rows with a text vector v (d-dim) and an ALS factor y (r-dim), with
x = [v, 1] (bias appended), the map W ((d+1) x r) solves

    min_W  sum_rows ||x W - y||^2 + lambda ||W_{1..d}||^2      (bias row unpenalised)
    W = (X^T X + lambda I')^{-1} X^T Y,  I' = I with a 0 in the bias position.

X^T X ((d+1)^2) and X^T Y ((d+1) x r) are sufficient statistics: each partition computes
its own with one BLAS product, Spark sums them with ``treeReduce``, the driver solves the
small (d+1) x (d+1) system. Applying W is one matrix product per Arrow batch
(``mapInPandas``). This is the "attribute-to-feature mapping" cold-start approach of
Gantner et al., "Learning Attribute-to-Feature Mappings for Cold-Start Recommendations",
ICDM 2010.
"""

from __future__ import annotations

from typing import Iterable, Iterator

import numpy as np
import pandas as pd
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from fusionrec.errors import InputError

__all__ = ["NoFitRows", "apply_text_map", "fit_text_map", "solve_ridge", "sufficient_statistics"]


class NoFitRows(InputError):
    """No row has both a text vector and a factor, so there is nothing to fit a map on."""


def _partition_stats(rows: Iterable) -> Iterator[tuple[np.ndarray, np.ndarray, int]]:
    """``(X^T X, X^T Y, n)`` of one partition (nothing for an empty one); the dimensions
    come from the rows themselves, so no separate Spark job is needed to find them."""
    xtx = xty = None
    n = 0
    chunk_x: list = []
    chunk_y: list = []

    def flush() -> None:
        nonlocal xtx, xty
        if chunk_x:
            x = np.hstack([np.asarray(chunk_x, dtype=np.float64), np.ones((len(chunk_x), 1))])
            y = np.asarray(chunk_y, dtype=np.float64)
            xtx = x.T @ x if xtx is None else xtx + x.T @ x
            xty = x.T @ y if xty is None else xty + x.T @ y
            chunk_x.clear()
            chunk_y.clear()

    for vec, fac in rows:
        chunk_x.append(vec)
        chunk_y.append(fac)
        n += 1
        if len(chunk_x) >= 4096:
            flush()
    flush()
    if n:
        yield xtx, xty, n


def sufficient_statistics(pairs: DataFrame, x_col: str, y_col: str) -> tuple[np.ndarray, np.ndarray, int]:
    """``(X^T X, X^T Y, n)`` over ``pairs`` with the bias column appended to X, summed by Spark
    in one job.

    :raises NoFitRows: ``pairs`` is empty.
    """
    stats = pairs.select(x_col, y_col).rdd.map(tuple).mapPartitions(_partition_stats)
    total = stats.treeAggregate(None, _add_stats, _add_stats)
    if total is None:
        raise NoFitRows("ridge map: no rows with both a text vector and a factor to fit on")
    return total


def _add_stats(a: tuple | None, b: tuple | None) -> tuple | None:
    """Sum of two partial ``(X^T X, X^T Y, n)``; None is an empty part."""
    if a is None or b is None:
        return b if a is None else a
    return a[0] + b[0], a[1] + b[1], a[2] + b[2]


def solve_ridge(xtx: np.ndarray, xty: np.ndarray, ridge_lambda: float) -> np.ndarray:
    """W = (X^T X + lambda I')^{-1} X^T Y with the last (bias) row unpenalised.

    With ``ridge_lambda > 0`` and at least one row the system is positive definite, so
    numpy's ``LinAlgError`` (singular) only arises from a non-positive lambda or non-finite
    inputs, and is left to propagate."""
    penalty = np.full(xtx.shape[0], float(ridge_lambda))
    penalty[-1] = 0.0
    return np.linalg.solve(xtx + np.diag(penalty), xty)


def fit_text_map(vectors: DataFrame, factors: DataFrame, key: str, ridge_lambda: float,
                 vec_col: str = "vector", factor_col: str = "factors") -> tuple[np.ndarray, int]:
    """Fit W on rows of ``key`` present in both tables; returns ``(W, n_rows)``.

    :raises NoFitRows: no ``key`` has both a vector and a factor.
    """
    pairs = vectors.select(key, F.col(vec_col).alias("x")).join(
        factors.select(key, F.col(factor_col).alias("y")), key)
    xtx, xty, n = sufficient_statistics(pairs, "x", "y")
    return solve_ridge(xtx, xty, ridge_lambda), n


def apply_text_map(vectors: DataFrame, weights: np.ndarray, key: str,
                   vec_col: str = "vector") -> DataFrame:
    """``[<key>, factors ARRAY<FLOAT>]`` = [v, 1] W for every row of ``vectors``."""
    w = weights.astype(np.float32)

    def project(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        for batch in batches:
            if batch.empty:
                continue
            x = np.stack(batch["x"].to_numpy()).astype(np.float32)
            y = x @ w[:-1] + w[-1]
            yield pd.DataFrame({key: batch[key], "factors": list(y)})

    return vectors.select(key, F.col(vec_col).alias("x")).mapInPandas(
        project, f"{key} STRING, factors ARRAY<FLOAT>")
