"""Fold-in: a user's factors from the fixed item factors, without retraining.

The exact implicit-ALS user step (Hu, Koren & Volinsky, "Collaborative Filtering for
Implicit Feedback Datasets", ICDM 2008, eq. 4):

    x_u = (YᵀY + Yᵀ(C_u − I)Y + λ_u I)⁻¹ Yᵀ C_u p(u)

with c_ui = 1 + alpha * w_ui for the user's items (1 elsewhere) and p_ui = 1 where
w_ui > 0. YᵀY runs over every item ALS trained (:func:`gram`, once per model); the other
two terms only over the user's own items, so a fold-in costs O(n_u r² + r³).

λ is on Spark ALS's scale: Spark's implicit ALS (``ml.recommendation.ALS.computeFactors``)
weights ``regParam`` by the number of the user's items with a positive rating
(``solver.solve(ls, numExplicits * regParam)``, after ALS-WR, Zhou et al. 2008), adds
c1 = alpha * |w| to the Gram term of every item and (1 + c1) y_i to the right-hand side
only where w > 0. :func:`fold_in` does exactly that, so folding in a training user
against the fitted item factors gives back the factors ALS itself computed in its last
user step (up to float32 rounding).

One numpy implementation, used by the stream (:func:`fold_in_users`, one pandas group per
user) and by the serving bundle (one request, numpy only).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Iterable

import numpy as np
import pandas as pd

if TYPE_CHECKING:  # Spark is imported where used: serving runs the numpy part without it
    from pyspark.sql import DataFrame

__all__ = ["FOLDED_SCHEMA", "fold_in", "fold_in_users", "gram", "item_gram", "latest_first", "session_vector"]

FOLDED_SCHEMA = "user_id STRING, factors ARRAY<FLOAT>, session ARRAY<FLOAT>, n_items INT"


def gram(item_factors: np.ndarray) -> np.ndarray:
    """YᵀY (rank x rank, float64) of the item factors ALS trained (one row per item)."""
    y = np.asarray(item_factors, dtype=np.float64)
    return y.T @ y


def fold_in(*, gram_matrix: np.ndarray, factors: np.ndarray, weights: np.ndarray, alpha: float,
            reg_param: float) -> np.ndarray:
    """The implicit-ALS user step for one user.

    Parameters
    ----------
    gram_matrix:
        YᵀY of the model (:func:`gram`).
    factors:
        (n, rank) factors y_i of the user's items, one row per (user, item) interaction.
    weights:
        (n,) interaction weights w_ui (confidence c = 1 + alpha * w).
    alpha, reg_param:
        The model's ALS ``alpha`` and ``regParam``.

    Returns
    -------
    np.ndarray
        x_u, float64 (rank,); zeros when the user has no item with factors.

    Example
    -------
    >>> y = np.eye(2)
    >>> fold_in(gram_matrix=gram(y), factors=y[:1], weights=np.array([1.0]), alpha=1.0, reg_param=0.0)
    array([1., 0.])
    """
    y = np.asarray(factors, dtype=np.float64).reshape(-1, gram_matrix.shape[0])
    w = np.asarray(weights, dtype=np.float64).reshape(-1)
    rank = gram_matrix.shape[0]
    if y.shape[0] == 0:
        return np.zeros(rank)
    c1 = alpha * np.abs(w)
    positive = w > 0
    a = gram_matrix + (y * c1[:, None]).T @ y
    a[np.diag_indices(rank)] += reg_param * int(positive.sum())
    b = y[positive].T @ (1.0 + c1[positive])
    try:
        return np.linalg.solve(a, b)
    except np.linalg.LinAlgError:  # only without regularisation and too few items
        return np.linalg.lstsq(a, b, rcond=None)[0]


def session_vector(factors: np.ndarray) -> np.ndarray | None:
    """r_u: the mean factor of the user's latest items (rows: their factors, most recent
    first, already cut to ``model.session_items``); None without any.

    Example
    -------
    >>> session_vector(np.array([[1.0, 0.0], [0.0, 1.0]]))
    array([0.5, 0.5])
    """
    y = np.asarray(factors, dtype=np.float64)
    return y.mean(axis=0) if y.shape[0] else None


def latest_first(item_ids: Iterable[str], last_ts: Iterable[float]) -> np.ndarray:
    """Order (indices) of a user's interactions by ``last_ts`` descending, ties by item id:
    the order of :func:`fusionrec.validation.feedback.latest_items`."""
    ids = np.asarray(list(item_ids), dtype=object).astype(str)
    ts = np.asarray(list(last_ts), dtype=np.float64)
    return np.lexsort((ids, -ts))


def fold_in_users(interactions: DataFrame, item_factors: DataFrame, *, gram_matrix: np.ndarray, alpha: float,
                  reg_param: float, session_items: int) -> DataFrame:
    """``[user_id, factors, session, n_items]`` for every user of ``interactions``
    (``[user_id, item_id, weight, last_ts]``, all of each user's interactions), folded in
    against ``item_factors`` ``[item_id, factors]`` with :func:`fold_in`; session = the
    mean factor of the user's ``session_items`` latest interactions with factors.

    The item factors are broadcast to the join, YᵀY travels with the function (rank²
    numbers); each user is one pandas group. Interactions with items without factors are
    left out, as ALS never saw them.
    """
    from pyspark.sql import functions as F

    from fusionrec.validation.feedback import latest_items

    # The latest session items are chosen before items without factors are dropped, as
    # fusion.session_vectors does (latest_items, then the join).
    recent = latest_items(interactions, session_items).withColumn("recent", F.lit(True))
    rows = (interactions.select("user_id", "item_id", F.col("weight").cast("double").alias("weight"))
            .join(recent, ["user_id", "item_id"], "left")
            .withColumn("recent", F.coalesce(F.col("recent"), F.lit(False)))
            .join(F.broadcast(item_factors.select("item_id", "factors")), "item_id"))
    g = np.asarray(gram_matrix, dtype=np.float64)

    def per_user(pdf: pd.DataFrame) -> pd.DataFrame:
        # Item id order: the same sums, in the same order, on every run and as serving's.
        pdf = pdf.sort_values("item_id", kind="stable")
        y = np.stack(pdf["factors"].to_numpy()).astype(np.float64)
        x = fold_in(gram_matrix=g, factors=y, weights=pdf["weight"].to_numpy(), alpha=alpha, reg_param=reg_param)
        session = session_vector(y[pdf["recent"].to_numpy()])
        return pd.DataFrame({"user_id": [pdf["user_id"].iloc[0]], "factors": [x.astype(np.float32)],
                             "session": [session.astype(np.float32) if session is not None else None],
                             "n_items": [len(pdf)]})

    return rows.groupBy("user_id").applyInPandas(per_user, FOLDED_SCHEMA)


def item_gram(item_factors: DataFrame) -> np.ndarray:
    """YᵀY of the items ALS trained (``source = 'als'`` rows of ``model.item_factors``),
    in item id order (the serving bundle and the stream compute it the same way)."""
    from pyspark.sql import functions as F

    rows = (item_factors.where(F.col("source") == "als").orderBy("item_id")
            .select("factors").toPandas()["factors"].to_numpy())
    if rows.size == 0:
        raise ValueError("item factors: no ALS item (source = 'als'); train the model first")
    return gram(np.stack(rows).astype(np.float32))
