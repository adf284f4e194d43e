"""Strong single-model peers of the hybrid, fitted on the driver in numpy: EASE and item-kNN,
and any model completed by the popularity fallback.

Both are fitted on the binary user x item matrix X of training interactions (1 where the user
interacted with the item, whatever the weight or rating), over the items with a training
interaction, sorted by id (so ties break by item id, as every top-N of the project):

- **EASE** (H. Steck, "Embarrassingly Shallow Autoencoders for Sparse Data", WWW 2019):
  P = (X^T X + lambda I)^-1, B = I - P diag(1 / diag(P)) (so diag(B) = 0); s_u = x_u B.
  B is a dense n x n float64 matrix, so EASE is supported for catalogues of at most
  :data:`MAX_EASE_ITEMS` = 20,000 items with a training interaction (3.2 GB per matrix;
  one inversion of n = 10,000 takes tens of seconds on 2 cores); above it
  :func:`ease_weights` refuses with :class:`CatalogueTooLarge` (a ``ValueError``).
- **item-kNN** (B. Sarwar, G. Karypis, J. Konstan and J. Riedl, "Item-based collaborative
  filtering recommendation algorithms", WWW 2001; M. Deshpande and G. Karypis, "Item-based
  top-N recommendation algorithms", ACM TOIS 22(1), 2004): cosine similarity of the item
  columns of X, S_ij = x_i . x_j / (|x_i| |x_j|), S_ii = 0, each item j keeping only its k
  most similar items i; s_uj = sum over the user's items i of S_ij. Same size limit.

lambda and k are chosen from the fixed grids :data:`EASE_LAMBDAS` and :data:`KNN_NEIGHBOURS`
(deterministic fits: nothing to seed) on the validation period the model's own search uses:
each user's last ``evaluate.validation_fraction`` of training
(:func:`fusionrec.validation.split.user_boundaries` on the training split), fitted on the
period before it, scored by the project's NDCG@K
(:func:`fusionrec.validation.metrics.ranking_metrics`, highest wins, ties to the first in
the grid); then refitted on the whole training split. The test period is never read.

**+fallback**: a model's top K, except that the evaluated users without any training row
(nothing to rank them by) get the popularity fallback of batch and serving,
:func:`fusionrec.model.scoring.popular_fallback` (each category's most popular items first).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from scipy import sparse
from scipy.linalg import lapack

from fusionrec.model.scoring import Catalogue, popular_fallback, popular_order, top_columns
from fusionrec.validation.metrics import per_user_metrics

__all__ = ["CatalogueTooLarge", "EASE_LAMBDAS", "KNN_NEIGHBOURS", "MAX_EASE_ITEMS", "PEERS", "ease_weights", "fallback_top_k",
           "fit_peer", "knn_weights", "PeerFit", "rank_rows", "tune_peer", "with_fallback"]

log = logging.getLogger(__name__)

#: Largest number of items (with a training interaction) EASE and item-kNN accept.
MAX_EASE_ITEMS = 20_000
#: The validation grid of EASE's lambda (on the Gram matrix of a binary X).
EASE_LAMBDAS = (10.0, 100.0, 500.0, 2000.0)
#: The validation grid of item-kNN's neighbours per item.
KNN_NEIGHBOURS = (20, 50, 100, 200, 500)
#: peer name -> its grid
PEERS = {"ease": EASE_LAMBDAS, "item_knn": KNN_NEIGHBOURS}

RECS_SCHEMA = "user_id STRING, item_id STRING, score DOUBLE, rank INT"
_SEP = "\x1f"  # between a grid position and a user id


class CatalogueTooLarge(ValueError):
    """More items than the dense n x n weights of EASE / item-kNN are supported for."""


def _check_size(n: int) -> None:
    if n > MAX_EASE_ITEMS:
        raise CatalogueTooLarge(f"EASE / item-kNN: {n} items with a training interaction; dense n x n weights are "
                         f"supported up to {MAX_EASE_ITEMS} items")


def ease_weights(gram: np.ndarray, *, lam: float) -> np.ndarray:
    """B = I - P diag(1 / diag(P)), P = (G + lam I)^-1, G = X^T X (module docstring).

    >>> g = np.array([[1.0, 1.0, 0.0], [1.0, 2.0, 1.0], [0.0, 1.0, 1.0]])  # X = [[1, 1, 0], [0, 1, 1]]
    >>> ease_weights(g, lam=1.0).round(4).tolist()
    [[0.0, 0.5, -0.2], [0.4, 0.0, 0.4], [-0.2, 0.5, 0.0]]
    """
    n = gram.shape[0]
    _check_size(n)
    if lam <= 0:
        raise ValueError(f"EASE lambda must be > 0, got {lam}")
    a = np.array(gram, dtype=np.float64, order="F")
    a[np.diag_indices(n)] += lam
    # G + lam I is symmetric positive definite: Cholesky, then the inverse from it (half an LU's work).
    c, info = lapack.dpotrf(a, lower=False, clean=True, overwrite_a=True)
    if info != 0:
        raise np.linalg.LinAlgError(f"EASE: Cholesky failed (info {info})")
    p, info = lapack.dpotri(c, lower=False, overwrite_c=True)
    if info != 0:
        raise np.linalg.LinAlgError(f"EASE: inverse failed (info {info})")
    p = np.triu(p) + np.triu(p, 1).T
    b = -p / np.diag(p)  # column j divided by P_jj
    b[np.diag_indices(n)] = 0.0
    return b


def knn_weights(gram: np.ndarray, *, k: int) -> np.ndarray:
    """S with S_ij = cosine of item columns i and j, S_ii = 0, column j keeping its ``k`` largest
    entries (ties: lower index first).

    >>> g = np.array([[2.0, 1.0, 0.0], [1.0, 1.0, 1.0], [0.0, 1.0, 2.0]])
    >>> knn_weights(g, k=1).round(4).tolist()
    [[0.0, 0.7071, 0.0], [0.7071, 0.0, 0.7071], [0.0, 0.0, 0.0]]
    """
    _check_size(gram.shape[0])
    if k < 1:
        raise ValueError(f"item-kNN k must be >= 1, got {k}")
    norms = np.sqrt(np.diag(gram))
    s = gram / np.maximum(np.outer(norms, norms), 1e-12)
    s[np.diag_indices(s.shape[0])] = 0.0
    keep = top_columns(s.T, k).T  # per column j: its k most similar items
    return np.where(keep, s, 0.0)


def rank_rows(scores: np.ndarray, allowed: np.ndarray, k: int) -> list[np.ndarray]:
    """Per row: the indices of its ``k`` highest allowed scores, best first (ties: lower index)."""
    masked = np.where(allowed, scores, -np.inf)
    keep = top_columns(masked, k) & allowed
    out = []
    for row in range(masked.shape[0]):
        idx = np.flatnonzero(keep[row])
        out.append(idx[np.lexsort((idx, -masked[row, idx]))])
    return out


@dataclass(frozen=True)
class PeerFit:
    """The chosen setting of one peer and the validation trials that chose it."""

    name: str
    value: float
    trials: list[dict[str, Any]]


class _Matrix:
    """The binary user x item matrix of ``pairs`` ``[user_id, item_id]`` (items sorted by id)."""

    def __init__(self, pairs: pd.DataFrame) -> None:
        pairs = pairs[["user_id", "item_id"]].drop_duplicates()
        self.items = np.sort(pairs["item_id"].unique()).astype(object)
        self.users = np.sort(pairs["user_id"].unique()).astype(object)
        _check_size(self.items.size)
        item_code = pd.Index(self.items).get_indexer(pairs["item_id"])
        user_code = pd.Index(self.users).get_indexer(pairs["user_id"])
        self.x = sparse.csr_matrix((np.ones(len(pairs)), (user_code, item_code)),
                                   shape=(self.users.size, self.items.size))
        self._gram: np.ndarray | None = None

    @property
    def gram(self) -> np.ndarray:
        if self._gram is None:
            self._gram = np.asarray((self.x.T @ self.x).toarray(), dtype=np.float64)
        return self._gram

    def weights(self, name: str, value: float) -> np.ndarray:
        if name == "ease":
            return ease_weights(self.gram, lam=float(value))
        if name == "item_knn":
            return knn_weights(self.gram, k=int(value))
        raise ValueError(f"unknown peer {name!r} ({', '.join(PEERS)})")

    def top_k(self, weights: np.ndarray, users: np.ndarray, k: int, chunk: int = 1024) -> pd.DataFrame:
        """``[user_id, item_id, score, rank]`` of ``users`` that have a row, seen items excluded."""
        rows = pd.Index(self.users).get_indexer(users)
        rows = np.sort(rows[rows >= 0])
        out: dict[str, list] = {"user_id": [], "item_id": [], "score": [], "rank": []}
        for lo in range(0, rows.size, chunk):
            block_rows = rows[lo:lo + chunk]
            block = self.x[block_rows]
            scores = np.asarray(block @ weights)
            allowed = ~np.asarray(block.toarray(), dtype=bool)
            for r, (u, idx) in enumerate(zip(block_rows, rank_rows(scores, allowed, k))):
                out["user_id"] += [self.users[u]] * idx.size
                out["item_id"] += self.items[idx].tolist()
                out["score"] += scores[r, idx].tolist()
                out["rank"] += list(range(1, idx.size + 1))
        return pd.DataFrame(out, columns=["user_id", "item_id", "score", "rank"])


def _to_spark(spark: SparkSession, recs: pd.DataFrame) -> DataFrame:
    return spark.createDataFrame(recs.astype({"score": "float64", "rank": "int32"}), RECS_SCHEMA)


def _pairs(df: DataFrame) -> pd.DataFrame:
    return df.select("user_id", "item_id").distinct().toPandas()


def tune_peer(name: str, *, fit: DataFrame, validation_relevant: DataFrame, k: int,
              grid: tuple[float, ...] | None = None) -> PeerFit:
    """The setting of ``grid`` (default :data:`PEERS`) with the highest validation NDCG@``k``.

    Every setting's NDCG@k is the project's (:func:`fusionrec.validation.metrics.per_user_metrics`
    averaged over the validation users, as :func:`~fusionrec.validation.metrics.ranking_metrics`
    averages it), computed for the whole grid in one Spark pass: user ids are prefixed with the
    setting's position.

    Parameters
    ----------
    name : str
        ``ease`` or ``item_knn``.
    fit : DataFrame
        The interactions before each user's validation start ``[user_id, item_id, ...]``.
    validation_relevant : DataFrame
        ``[user_id, item_id]``: the relevant items of the validation period (its users are scored).
    k : int
        The cut-off of the validation NDCG.
    """
    spark = fit.sparkSession
    grid = tuple(grid or PEERS[name])
    matrix = _Matrix(_pairs(fit))
    users = validation_relevant.select("user_id").distinct().toPandas()["user_id"].to_numpy()
    tops = []
    for position, value in enumerate(grid):
        top = matrix.top_k(matrix.weights(name, value), users, k)
        tops.append(top.assign(user_id=str(position) + _SEP + top["user_id"].astype(str)))
    settings = spark.createDataFrame([(str(j),) for j in range(len(grid))], "_setting STRING")
    relevant_all = (validation_relevant.select("user_id", "item_id").crossJoin(settings)
                    .select(F.concat("_setting", F.lit(_SEP), "user_id").alias("user_id"), "item_id"))
    per_user = per_user_metrics(_to_spark(spark, pd.concat(tops, ignore_index=True)), relevant_all, k).toPandas()
    ndcg = per_user.groupby(per_user["user_id"].str.split(_SEP, n=1).str[0])["ndcg"].mean()
    trials: list[dict[str, Any]] = []
    best: tuple[float, float] | None = None
    for position, value in enumerate(grid):
        score = float(ndcg.get(str(position), 0.0))
        trials.append({"value": value, f"validation_ndcg@{k}": round(score, 5)})
        log.info("peer %s %g: validation ndcg@%d=%.4f", name, value, k, score)
        if best is None or score > best[0]:
            best = (score, value)
    assert best is not None
    return PeerFit(name, best[1], trials)


def fit_peer(chosen: PeerFit, *, train: DataFrame, users: DataFrame, k: int) -> DataFrame:
    """``[user_id, item_id, score, rank]``: the peer at its chosen setting, refitted on ``train``,
    for the ``users`` ``[user_id]`` that have a training row (seen items excluded)."""
    matrix = _Matrix(_pairs(train))
    wanted = users.select("user_id").distinct().toPandas()["user_id"].to_numpy()
    return _to_spark(train.sparkSession, matrix.top_k(matrix.weights(chosen.name, chosen.value), wanted, k))


def fallback_top_k(*, popularity: DataFrame, categories: DataFrame | None, users: DataFrame, k: int) -> DataFrame:
    """``[user_id, item_id, score, rank]``: :func:`fusionrec.model.scoring.popular_fallback` for
    every user of ``users`` (users without training rows: nothing is excluded as seen).

    :param popularity: ``[item_id, log_popularity]`` of the training interactions
        (:func:`fusionrec.model.fusion.popularity`)
    :param categories: ``[item_id, categories ARRAY<STRING>]`` (the first counts, as in batch)
    """
    spark = users.sparkSession
    items = popularity.select("item_id", "log_popularity")
    if categories is not None:
        items = items.join(categories.select("item_id", F.col("categories")[0].alias("category")), "item_id", "left")
    else:
        items = items.withColumn("category", F.lit(None).cast("string"))
    table = items.toPandas().sort_values("item_id", kind="stable").reset_index(drop=True)
    n = len(table)
    log_pop = table["log_popularity"].to_numpy(dtype=np.float64)
    empty = np.zeros((n, 0))
    none = np.zeros(n, dtype=bool)
    catalogue = Catalogue(factors=empty, vectors=empty, has_factors=none, has_vector=none, log_popularity=log_pop,
                          item_sentiment=np.zeros(n), recent_popularity=np.zeros(n),
                          popular_order=popular_order(log_pop, table["category"].fillna("").to_numpy(dtype=object)))
    scored = popular_fallback(catalogue, np.ones(n, dtype=bool), k)
    ids = table["item_id"].to_numpy(dtype=object)[scored.items].tolist()
    listing = spark.createDataFrame(
        [(item, float(score), rank) for rank, (item, score) in enumerate(zip(ids, scored.scores.tolist()), 1)],
        "item_id STRING, score DOUBLE, rank INT")
    return users.select("user_id").distinct().crossJoin(F.broadcast(listing)).select(
        "user_id", "item_id", "score", "rank")


def with_fallback(top: DataFrame, *, fallback: DataFrame, train: DataFrame) -> DataFrame:
    """``top`` for the users with a training row; ``fallback`` rows for the users without one."""
    trained = train.select("user_id").distinct()
    cols = ["user_id", "item_id", "score", "rank"]
    return (top.select(*cols).join(trained, "user_id")
            .unionByName(fallback.select(*cols).join(trained, "user_id", "left_anti")))
