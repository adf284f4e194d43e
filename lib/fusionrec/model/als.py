"""Implicit-feedback ALS (Spark MLlib) on the gold interaction weights.

ALS with ``implicitPrefs`` minimises
sum_{u,i} c_ui (p_ui - x_u . y_i)^2 + lambda (sum ||x_u||^2 + sum ||y_i||^2),
with preference p_ui = 1 for observed pairs, 0 otherwise, and confidence
c_ui = 1 + alpha * w_ui from the interaction weight w_ui
(Hu, Koren & Volinsky, "Collaborative Filtering for Implicit Feedback Datasets", ICDM 2008).

Spark ALS needs integer ids: string ids are indexed with ``zipWithIndex`` (distributed)
and mapped back, so factor tables are keyed by the original ``user_id`` / ``item_id``.

The fitted ``ALSModel`` itself is kept too (:func:`save_als`): ``<lake.root>/model/als_model``
(``ALSModel.save``, any Hadoop URI) with its id indexes ``model.als_user_ids`` ``[user_id, u]``
and ``model.als_item_ids`` ``[item_id, i]``, so that a Spark user can load it natively (the
registry logs it with ``mlflow.spark``) and map its integer ids back.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Callable

from pyspark.ml.recommendation import ALS, ALSModel
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from fusionrec.config import ModelConfig
from fusionrec.lake import ALS_MODEL, Lake

__all__ = ["AlsFactors", "AlsParams", "ALS_MODEL", "als_blocks", "fit_als", "load_als_model", "save_als", "search_als",
           "SEARCH_AXES"]


@dataclass(frozen=True)
class AlsParams:
    """The ALS hyper-parameters that the validation search varies."""

    rank: int
    reg_param: float
    alpha: float

    @classmethod
    def from_config(cls, mc: ModelConfig) -> "AlsParams":
        return cls(rank=mc.rank, reg_param=mc.reg_param, alpha=mc.alpha)


#: The order in which the coordinate search varies the settings: the penalty first (on
#: Spark's per-row scale it moves validation NDCG most), the costly rank last.
SEARCH_AXES = ("reg_param", "alpha", "rank")
#: The settings whose list the coordinate search extends past an edge that wins: scale
#: settings, where the list's own step ratio says what the next value is. Not rank: its
#: cost grows with it, and on both datasets here 128 scored below 64 and 32 on validation.
EXTENDED_AXES = ("reg_param", "alpha")


def _moved(start: AlsParams, name: str, value: float) -> AlsParams:
    """``start`` with one setting changed; alpha moves with ``reg_param / alpha`` kept.

    Spark solves (Y'Y + alpha sum_i w_ui y_i y_i' + reg_param n_u I) x_u = sum_i (1 + alpha w_ui) y_i:
    the penalty is weighed against alpha times the observed confidence, so at a fixed
    ``reg_param`` a larger alpha also means less shrinkage and the good settings lie along a
    ridge of constant ``reg_param / alpha``. Moving alpha along it changes only how much the
    observed pairs count against the unobserved ones, which a coordinate search can then tune.
    """
    if name == "alpha" and float(value) != start.alpha:
        # 12 digits: 0.1 * 3 is 0.3, not a distinct setting 0.30000000000000004
        return replace(start, alpha=float(value), reg_param=float(f"{start.reg_param * value / start.alpha:.12g}"))
    return replace(start, **{name: int(value) if name == "rank" else float(value)})


def search_als(*, base: AlsParams, values: dict[str, list], method: str, max_fits: int,
               score: Callable[[AlsParams], float]) -> tuple[AlsParams, list[tuple[AlsParams, float]]]:
    """The best ALS parameters by ``score`` (higher is better) and every fit tried, in order.

    Parameters
    ----------
    base : AlsParams
        The starting point; a setting without values keeps its base value.
    values : dict
        ``{"rank": [...], "reg_param": [...], "alpha": [...]}``: the values to try.
    method : str
        ``grid``: every combination; ``coordinate``: each setting of :data:`SEARCH_AXES` in
        turn over its values with the others at the best so far, passes repeated until one
        fits nothing new. Its alpha keeps the best ``reg_param / alpha`` (:func:`_moved`), so
        the ``reg_param`` values of the next pass are tried at that alpha. When the passes
        over the listed values are done and fits remain, a best ``reg_param`` or alpha that
        is the smallest or largest value listed is followed past that edge by the ratio of
        the list's two outer values, one value at a time while each scores higher
        (:func:`_beyond_edge`), and the passes resume from there: a list's edge is where
        someone stopped guessing, not where the data's optimum is.
    max_fits : int
        No more than this many calls of ``score`` (the search stops there).
    score : callable
        Fits and scores one setting (validation NDCG@K); called once per distinct setting.

    Returns
    -------
    tuple
        The best setting (the first tried among equals) and ``[(params, score), ...]``.

    Examples
    --------
    >>> best, tried = search_als(base=AlsParams(rank=8, reg_param=0.1, alpha=1.0),
    ...                          values={"reg_param": [0.1, 1.0, 10.0], "alpha": [1.0, 4.0]},
    ...                          method="coordinate", max_fits=8, score=lambda p: -abs(p.reg_param - 1.0))
    >>> best.reg_param, len(tried)  # alpha 4 was tried at reg_param 4 (same reg_param / alpha)
    (1.0, 5)
    >>> [(p.reg_param, p.alpha) for p, _ in tried]  # alpha 1 won at the list's edge: then 0.25 tried
    [(0.1, 1.0), (1.0, 1.0), (10.0, 1.0), (4.0, 4.0), (0.25, 0.25)]
    """
    axes = {name: list(values.get(name) or [getattr(base, name)]) for name in SEARCH_AXES}
    tried: dict[AlsParams, float] = {}

    def fit(params: AlsParams) -> bool:
        if params in tried:
            return True
        if len(tried) >= max_fits:
            return False
        tried[params] = score(params)
        return True

    if method == "grid":
        for reg in axes["reg_param"]:
            for alpha in axes["alpha"]:
                for rank in axes["rank"]:
                    fit(AlsParams(rank=int(rank), reg_param=float(reg), alpha=float(alpha)))
    elif method == "coordinate":
        best: AlsParams | None = None
        while True:
            before = len(tried)
            for name in SEARCH_AXES:
                start = best or base
                here = [p for p in (_moved(start, name, v) for v in axes[name]) if fit(p)]
                if here:
                    best = max(here if best is None else [best, *here], key=lambda p: tried[p])
            if len(tried) == before or len(tried) >= max_fits:
                # The listed values first; past an edge only with the fits they left.
                moved = best
                for name in EXTENDED_AXES if best is not None else ():
                    best = _beyond_edge(best, name, axes[name], fit, tried)
                if best == moved or len(tried) >= max_fits:
                    break
    else:
        raise ValueError(f"unknown search method {method!r} (coordinate, grid)")
    if not tried:
        raise ValueError("the ALS search fitted nothing (max_fits must be >= 1)")
    order = list(tried.items())
    winner = max(order, key=lambda kv: kv[1])[0]  # max keeps the first of equals
    return winner, order


def _beyond_edge(best: AlsParams, name: str, listed: list, fit: Callable[[AlsParams], bool],
                 tried: dict[AlsParams, float]) -> AlsParams:
    """``best``, or a better setting past the edge of ``listed`` that ``best`` sits on.

    While ``best``'s value of ``name`` is the smallest (largest) of at least two listed
    values, the next value beyond it -- that edge times its ratio to its neighbour in the
    list -- is tried, and appended to ``listed`` when it scores higher; the first one that
    does not score higher (or the budget) stops it.

    >>> tried = {}
    >>> def fit(p):
    ...     tried[p] = -abs(p.reg_param - 20.0)
    ...     return True
    >>> start = AlsParams(rank=8, reg_param=3.0, alpha=1.0)
    >>> tried[start] = -17.0
    >>> listed = [0.3, 1.0, 3.0]
    >>> _beyond_edge(start, "reg_param", listed, fit, tried).reg_param, listed  # 81 scored lower
    (27.0, [0.3, 1.0, 3.0, 9.0, 27.0])
    >>> _beyond_edge(AlsParams(rank=8, reg_param=0.1, alpha=1.0), "reg_param", [0.0, 0.1], fit, tried).reg_param
    0.1
    """
    while True:
        values = sorted({float(v) for v in listed})
        current = float(getattr(best, name))
        if len(values) < 2 or current not in (values[0], values[-1]):
            return best
        edge, inner = (values[-1], values[-2]) if current == values[-1] else (values[0], values[1])
        if edge <= 0 or inner <= 0:  # no ratio step from or to a zero penalty
            return best
        value = float(f"{edge * edge / inner:.12g}")
        candidate = _moved(best, name, value)
        if candidate in tried or not fit(candidate) or tried[candidate] <= tried[best]:
            return best
        listed.append(value)
        best = candidate


@dataclass(frozen=True)
class AlsFactors:
    """``users``: [user_id, factors ARRAY<FLOAT>]; ``items``: [item_id, factors ARRAY<FLOAT>]."""

    users: DataFrame
    items: DataFrame
    params: AlsParams
    #: the fitted Spark model, on the integer ids of ``user_ids`` / ``item_ids``
    model: ALSModel | None = None
    #: [user_id, u INT]: the model's user ids
    user_ids: DataFrame | None = None
    #: [item_id, i INT]: the model's item ids
    item_ids: DataFrame | None = None


def _index_ids(df: DataFrame, col: str, index_col: str) -> DataFrame:
    """``[<col>, <index_col> INT]``: a dense 0-based integer index of the distinct values."""
    distinct = df.select(col).distinct()
    schema = f"{col} STRING, {index_col} INT"
    return distinct.rdd.map(lambda r: r[0]).zipWithIndex() \
        .map(lambda kv: (kv[0], int(kv[1]))).toDF(schema)


#: Interactions per ALS block: below this, one more block only adds tasks.
ALS_ROWS_PER_BLOCK = 50_000


def als_blocks(n_interactions: int, max_blocks: int, rows_per_block: int = ALS_ROWS_PER_BLOCK) -> int:
    """The number of ALS user (and item) blocks: one per ``rows_per_block`` interactions, at
    least 1 and at most ``max_blocks`` (the shuffle partitions).

    Every half-iteration runs one task per block, and on small data a task's fixed cost is
    the fit's cost: 9,675 interactions on 2 cores fit in 7.6 s with 8 blocks and 2.0 s with 2.

    >>> als_blocks(9_675, 8), als_blocks(100_000, 8), als_blocks(1_000_000, 8), als_blocks(10**8, 64)
    (1, 2, 8, 64)
    """
    return max(1, min(max_blocks, -(-n_interactions // rows_per_block)))


def fit_als(interactions: DataFrame, mc: ModelConfig, params: AlsParams | None = None) -> AlsFactors:
    """Fit implicit ALS on ``[user_id, item_id, weight]`` and return the factor tables."""
    params = params or AlsParams.from_config(mc)
    users = _index_ids(interactions, "user_id", "u").cache()
    items = _index_ids(interactions, "item_id", "i").cache()
    data = (interactions.select("user_id", "item_id", F.col("weight").cast("float").alias("w"))
            .join(users, "user_id").join(items, "item_id").select("u", "i", "w"))
    blocks = als_blocks(interactions.count(), int(interactions.sparkSession.conf.get("spark.sql.shuffle.partitions")))
    als = ALS(rank=params.rank, numUserBlocks=blocks, numItemBlocks=blocks, regParam=params.reg_param, alpha=params.alpha, maxIter=mc.max_iter,
              implicitPrefs=True, userCol="u", itemCol="i", ratingCol="w", nonnegative=False,
              checkpointInterval=mc.checkpoint_interval, coldStartStrategy="drop", seed=mc.seed,
              intermediateStorageLevel="MEMORY_AND_DISK", finalStorageLevel="MEMORY_AND_DISK")
    model: ALSModel = als.fit(data)
    user_factors = model.userFactors.join(users, F.col("id") == F.col("u")) \
        .select("user_id", F.col("features").alias("factors"))
    item_factors = model.itemFactors.join(items, F.col("id") == F.col("i")) \
        .select("item_id", F.col("features").alias("factors"))
    return AlsFactors(users=user_factors, items=item_factors, params=params, model=model, user_ids=users,
                      item_ids=items)


def save_als(lake: Lake, als: AlsFactors) -> None:
    """Save the fitted ``ALSModel`` at :data:`ALS_MODEL` and its id indexes as the Delta
    tables ``model.als_user_ids`` / ``model.als_item_ids`` (all overwritten)."""
    if als.model is None or als.user_ids is None or als.item_ids is None:
        raise ValueError("these ALS factors carry no fitted ALSModel (they were not fitted by fit_als)")
    als.model.write().overwrite().save(lake.uri(ALS_MODEL))
    lake.overwrite("model.als_user_ids", als.user_ids)
    lake.overwrite("model.als_item_ids", als.item_ids)


def load_als_model(lake: Lake) -> ALSModel | None:
    """The ``ALSModel`` :func:`save_als` saved, or None when there is none."""
    if lake.stamp(f"{ALS_MODEL}/metadata") is None:
        return None
    return ALSModel.load(lake.uri(ALS_MODEL))
