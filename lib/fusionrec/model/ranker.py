"""The second-stage ranker's feature contract, shared by Spark training and numpy serving.

A candidate (user u, item i) is described by, in this order:

- ``als_score``: the ALS preference estimate x_u . y_i (factors from ALS, or from the
  text-to-factor map for cold items/users);
- ``content_cosine``: p_u . v_i, the user's profile vector against the item vector
  (both L2-normalised, so this is a cosine);
- ``log_popularity``: log(1 + n_i), n_i the item's number of training interactions; for a
  cold item, the value its text predicts (a ridge map from text vectors to the warm items'
  log(1 + n_i), fitted with the text-to-factor map: :func:`fusionrec.model.fusion.fit_fused`).
  Items are not made cold at random in life, but in a cold-start protocol they are, and a
  new item with a blockbuster's description is likelier taken than one with a niche's;
- ``item_sentiment``: mean predicted review sentiment of the item (0.5 when it has no reviews);
- ``cold_item``: 1 when the item has no training interaction (its factors come from the
  text map), else 0. Without it the ranker can only read a cold item's zero popularity as
  "unpopular"; with it, and with cold items simulated in the period the ranker is fitted
  on (:func:`fusionrec.model.train.fit_pipeline`), it learns what a text match of a new
  item is worth;
- ``recent_popularity``: log(1 + r_i), r_i the item's training interactions in the week
  of recommendation and the weeks before it, ``model.recent_weeks`` weeks in all (what
  is popular *now*, where ``log_popularity`` is popular over all time);
- ``als_rank_gain``, ``content_rank_gain``: 1 / log2(1 + r), r the item's rank among the
  user's unseen items by ALS score / by cosine (1 = best), 0 outside that source's top-N.
  Raw scores are on a different scale for every user, and one logistic regression over
  all users' candidates cannot correct that; ranks are on the same scale for everyone;
- ``session_score``: r_u . y_i, r_u the mean ALS factor of the user's
  ``model.session_items`` latest training interactions (what the user is into now;
  :func:`fusionrec.model.fusion.session_vectors`), 0 without one;
- ``session_rank_gain``: 1 / log2(1 + r), r the item's rank by ``session_score``, 0
  outside the session top-N.

The ranker is a logistic regression over standardised features,
score = sigmoid(sum_k coef_k * (x_k - mean_k) / std_k + intercept), stored as JSON. It is fitted
pointwise (each candidate's label) or pairwise (which of two candidates of one user is the
positive; intercept 0), whichever ranks held-out validation users better (:func:`choose_ranker`):
``{"features": [...], "mean": [...], "std": [...], "coef": [...], "intercept": b, "cold_floor": f}``.

The cold slot (``cold_floor`` not null): a pointwise ranker puts an item with no
interactions below the popular items it is less likely to be taken than, so a cold item
rarely makes a top k. When a user's top k (k >= 2) holds no cold item, its last place goes
to the best-scored cold candidate whose score is at least ``cold_floor``
(:func:`fusionrec.model.fusion.rank_candidates`, :func:`fusionrec.model.scoring.score_user`).
:func:`cold_slot_curve` measures what each floor costs and gains on the validation period,
and :func:`calibrate_cold_floor` picks the floor from it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from fusionrec.errors import InputError
from fusionrec.model.trees import TreeEnsemble

if TYPE_CHECKING:  # pyspark only where Spark fits or applies the ranker: serving imports this module without it
    from pyspark import SparkContext
    from pyspark.sql import Column, DataFrame

__all__ = ["calibrate_cold_floor", "choose_ranker", "cold_slot_curve", "NEUTRAL_SENTIMENT", "RANKER_FEATURES",
           "RANKER_KINDS", "fit_lambdamart_ranker", "fit_pairwise_ranker", "fit_ranker", "RankerParams", "task_slots",
           "TreeSettings"]

RANKER_FEATURES: tuple[str, ...] = ("als_score", "content_cosine", "log_popularity", "item_sentiment", "cold_item",
                                  "recent_popularity", "als_rank_gain", "content_rank_gain", "session_score",
                                  "session_rank_gain")

#: Value of ``item_sentiment`` for items without reviews (neutral).
NEUTRAL_SENTIMENT = 0.5

#: The kinds :func:`choose_ranker` fits and compares (``model.ranker: auto``), in the order a tie keeps.
RANKER_KINDS: tuple[str, ...] = ("pointwise", "pairwise", "lambdamart")


@dataclass(frozen=True)
class RankerParams:
    """A fitted ranker in the JSON format of the module docstring."""

    features: list[str]
    mean: list[float]
    std: list[float]
    coef: list[float]
    intercept: float
    #: the cold slot's floor (module docstring); None: no slot
    cold_floor: float | None = None
    #: boosted trees added to the linear score (JSON of :class:`~fusionrec.model.trees.TreeEnsemble`); None: none
    trees: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def summary(self) -> dict[str, Any]:
        """:meth:`to_json` with the trees counted instead of listed (reports and run logs).

        >>> zeros = [0.0] * len(RANKER_FEATURES)
        >>> RankerParams(list(RANKER_FEATURES), zeros, zeros, zeros, 0.0).summary()["trees"] is None
        True
        """
        doc = self.to_json()
        if self.trees is not None:
            doc["trees"] = {"trees": len(self.trees["feature"]),
                            "nodes": sum(len(tree) for tree in self.trees["feature"])}
        return doc

    @cached_property  # parsed once: score() and contributions() both evaluate it
    def tree_ensemble(self) -> TreeEnsemble | None:
        return TreeEnsemble.from_json(self.trees) if self.trees is not None else None

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "RankerParams":
        missing = {"features", "mean", "std", "coef", "intercept"} - set(data)
        if missing:
            raise ValueError(f"ranker JSON: missing field(s) {', '.join(sorted(missing))}")
        if list(data["features"]) != list(RANKER_FEATURES):
            raise ValueError(f"ranker JSON: features {data['features']} differ from the contract {list(RANKER_FEATURES)}")
        floor, trees = data.get("cold_floor"), data.get("trees")
        if trees is not None:
            TreeEnsemble.from_json(trees)  # refuses a malformed ensemble here, naming the field
        return cls(list(data["features"]), [float(v) for v in data["mean"]], [float(v) for v in data["std"]],
                   [float(v) for v in data["coef"]], float(data["intercept"]),
                   float(floor) if floor is not None else None, trees)

    def contributions(self) -> dict[str, Column]:
        """Each feature's share of the logit, as Spark columns: coef_k * (x_k - mean_k) / std_k,
        plus the feature's Saabas contribution to the trees' margin when there are trees."""
        from pyspark.sql import functions as F

        linear = {name: F.lit(c) * (F.col(name) - F.lit(m)) / F.lit(s)
                  for name, m, s, c in zip(self.features, self.mean, self.std, self.coef)}
        ensemble = self.tree_ensemble
        if ensemble is None:
            return linear
        shares = _tree_udf(ensemble, "contributions")(F.struct(*self.features))
        return {name: linear[name] + shares[n] for n, name in enumerate(self.features)}

    def score(self) -> Column:
        """sigmoid(intercept + linear contributions + the trees' margin)."""
        from pyspark.sql import functions as F

        logit = F.lit(self.intercept)
        for name, m, s, c in zip(self.features, self.mean, self.std, self.coef):
            logit = logit + F.lit(c) * (F.col(name) - F.lit(m)) / F.lit(s)
        ensemble = self.tree_ensemble
        if ensemble is not None:
            logit = logit + _tree_udf(ensemble, "margin")(F.struct(*self.features))
        return 1.0 / (1.0 + F.exp(-logit))


def _tree_udf(ensemble: TreeEnsemble, output: str) -> Any:
    """A pandas UDF of a struct of the features: the numpy evaluation serving runs
    (``margin``: a double; ``contributions``: an array, one per feature)."""
    from pyspark.sql import functions as F
    from pyspark.sql.types import ArrayType, DoubleType

    def features(rows: pd.DataFrame) -> np.ndarray:
        return rows[list(RANKER_FEATURES)].to_numpy(dtype=np.float64)

    if output == "margin":
        @F.pandas_udf(DoubleType())  # type: ignore[call-overload]
        def margin(rows: pd.DataFrame) -> pd.Series:
            return pd.Series(ensemble.margin(features(rows)))
        return margin

    @F.pandas_udf(ArrayType(DoubleType()))  # type: ignore[call-overload]
    def contributions(rows: pd.DataFrame) -> pd.Series:
        return pd.Series(list(ensemble.contributions(features(rows))))
    return contributions


def fit_ranker(labelled: DataFrame, reg_param: float, label_col: str = "label") -> RankerParams:
    """Logistic regression of ``label`` (0/1) on the standardised ``RANKER_FEATURES`` (pointwise).

    Means and standard deviations are computed by Spark and applied explicitly (rather than
    LogisticRegression's internal standardisation) so that the stored coefficients are the
    ones serving applies to (x - mean) / std.
    """
    mean, std = _standardisation(labelled, label_col)
    standardised = _standardised(labelled, mean, std).select(
        *RANKER_FEATURES, _label(label_col).alias("label"))
    coef, intercept = _logistic(standardised, reg_param, fit_intercept=True)
    return RankerParams(list(RANKER_FEATURES), mean, std, coef, intercept)


def fit_pairwise_ranker(labelled: DataFrame, reg_param: float, *, negatives: int, seed: int,
                        label_col: str = "label") -> RankerParams:
    """A pairwise ranker (Joachims 2002, "Optimizing search engines using clickthrough data";
    RankNet's loss, Burges et al. 2005, with a linear scorer): logistic regression, without an
    intercept, of which candidate of a pair of one user's candidates is the positive, on the
    difference of their standardised features.

    Each user's positives are paired with up to ``negatives`` of the user's negative
    candidates (a seeded choice); half the pairs, by a seeded hash, are written negative
    minus positive with label 0, so that both classes are present. Only the order within a
    user is learned: the score is the same linear form as :func:`fit_ranker`'s, with
    intercept 0, so serving, reasons and the cold slot apply it unchanged.

    Parameters
    ----------
    labelled : DataFrame
        ``[user_id, item_id, <RANKER_FEATURES>, label]``.
    reg_param : float
        L2 penalty.
    negatives : int
        Negative candidates paired with each positive, per user.
    seed : int
        Seeds the choice of negatives and the sign of each pair.
    """
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    mean, std = _standardisation(labelled, label_col)
    z = _standardised(labelled, mean, std).select(
        "user_id", "item_id", F.array(*RANKER_FEATURES).alias("x"), _label(label_col).alias("label"))
    pick = Window.partitionBy("user_id").orderBy(F.xxhash64("item_id", F.lit(seed)), "item_id")
    positives = z.where("label = 1").select("user_id", F.col("item_id").alias("pos_item"), F.col("x").alias("p"))
    chosen = (z.where("label = 0").withColumn("_n", F.row_number().over(pick)).where(F.col("_n") <= negatives)
              .select("user_id", F.col("item_id").alias("neg_item"), F.col("x").alias("n")))
    flip = (F.xxhash64("user_id", "pos_item", "neg_item", F.lit(seed)) % 2) == 0
    sign = F.when(flip, F.lit(-1.0)).otherwise(F.lit(1.0))
    pairs = positives.join(chosen, "user_id").select(
        *[(sign * (F.col("p")[i] - F.col("n")[i])).alias(f) for i, f in enumerate(RANKER_FEATURES)],
        F.when(flip, F.lit(0.0)).otherwise(F.lit(1.0)).alias("label"))
    coef, _ = _logistic(pairs, reg_param, fit_intercept=False)
    return RankerParams(list(RANKER_FEATURES), mean, std, coef, 0.0)


@dataclass(frozen=True)
class TreeSettings:
    """The boosted trees of the ``lambdamart`` ranker (``model.ranker_trees`` etc.)."""

    trees: int = 100
    depth: int = 2
    learning_rate: float = 0.1



def task_slots(sc: SparkContext) -> int:
    """The tasks the cluster can run at once now: a barrier stage (XGBoost's workers) waits
    for all its tasks to run together, and fails when there are more than this.
    ``spark.default.parallelism`` is no guide: fusionrec sets it to the shuffle partitions.
    """
    jsc = sc._jsc.sc()  # the API XGBoost's own check uses (Spark >= 3.1)
    return max(1, int(jsc.maxNumConcurrentTasks(jsc.resourceProfileManager().resourceProfileFromId(0))))

def fit_lambdamart_ranker(labelled: DataFrame, settings: TreeSettings, *, k: int, seed: int,
                          label_col: str = "label") -> RankerParams:
    """Boosted trees fitted to NDCG@``k`` within each user: LambdaMART (Burges 2010), XGBoost's
    ``rank:ndcg`` objective through ``xgboost.spark.SparkXGBRanker``, one query group per user.

    The fit is distributed over one XGBoost worker per 200,000 rows (a worker per core on
    small data only adds synchronisation), at most :func:`task_slots`: the workers are one
    barrier stage, which cannot start with more tasks than can run at once; each user's
    candidates stay in one worker (the estimator range-partitions by the query id). The
    trees are then read out of the booster into the JSON of
    :class:`~fusionrec.model.trees.TreeEnsemble`, so that Spark and serving score them with
    the same numpy code and serving does not need XGBoost.

    Parameters
    ----------
    labelled : DataFrame
        ``[user_id, item_id, <RANKER_FEATURES>, label]``.
    settings : TreeSettings
        Number of trees, their depth and the learning rate.
    k : int
        The list length NDCG is optimised at (``lambdarank_num_pair_per_sample``).
    seed : int
        Seeds XGBoost's row subsampling.
    """
    import json

    from pyspark.ml.feature import VectorAssembler
    from pyspark.sql import Window
    from pyspark.sql import functions as F
    from xgboost.spark import SparkXGBRanker

    rows = _label_counts(labelled, label_col)["rows"]
    workers = max(1, min(task_slots(labelled.sparkSession.sparkContext), -(-rows // 200_000)))
    # Query ids 0..n-1 in user id order: XGBoost garbles 64-bit ids (a hash), and the users are
    # few (model.tuning_max_users), so one small window over them is cheap.
    query_ids = (labelled.select("user_id").distinct()
                 .select("user_id", (F.row_number().over(Window.orderBy("user_id")) - 1).alias("qid")))
    assembled = VectorAssembler(inputCols=list(RANKER_FEATURES), outputCol="x").transform(
        labelled.join(F.broadcast(query_ids), "user_id").select("qid", *RANKER_FEATURES, _label(label_col).alias("label")))
    estimator = SparkXGBRanker(
        features_col="x", label_col="label", qid_col="qid", num_workers=workers, force_repartition=True,
        objective="rank:ndcg", eval_metric=f"ndcg@{k}", lambdarank_pair_method="topk",
        lambdarank_num_pair_per_sample=k, n_estimators=settings.trees, max_depth=settings.depth,
        learning_rate=settings.learning_rate, subsample=0.8, min_child_weight=1.0, reg_lambda=1.0,
        tree_method="hist", random_state=seed, verbosity=0)
    booster = estimator.fit(assembled).get_booster()
    trees = TreeEnsemble.from_xgboost(json.loads(bytes(booster.save_raw("json"))), len(RANKER_FEATURES))
    zeros, ones = [0.0] * len(RANKER_FEATURES), [1.0] * len(RANKER_FEATURES)
    return RankerParams(list(RANKER_FEATURES), zeros, ones, zeros, 0.0, trees=trees.to_json())


def choose_ranker(rows: DataFrame, relevant: DataFrame, *, kind: str, k: int, reg_param: float, negatives: int,
                  seed: int, trees: TreeSettings = TreeSettings()) -> tuple[RankerParams, dict[str, Any]]:
    """The ranker of ``kind`` (one of :data:`RANKER_KINDS`, or ``auto``) fitted on ``rows``.

    ``auto``: each kind is fitted on the candidates of half the users (a seeded hash of the
    user id) and scored by NDCG@k on the other half; the kind with the higher NDCG (on a
    tie, the earlier of :data:`RANKER_KINDS`) is refitted on every user.

    Parameters
    ----------
    rows : DataFrame
        Labelled candidates ``[user_id, item_id, <RANKER_FEATURES>, label]``.
    relevant : DataFrame
        ``[user_id, n_relevant, n_cold_relevant]`` of the period's users with a positive
        (:func:`cold_slot_curve`).
    trees : TreeSettings
        The ``lambdamart`` kind's trees.

    Returns
    -------
    (RankerParams, dict)
        The ranker, and the choice: ``kind`` and, for ``auto``, ``holdout_ndcg@k`` per kind
        and the number of held-out users.
    """
    from pyspark.sql import functions as F

    def fit(which: str, labelled: DataFrame) -> RankerParams:
        if which == "pairwise":
            return fit_pairwise_ranker(labelled, reg_param, negatives=negatives, seed=seed)
        if which == "lambdamart":
            return fit_lambdamart_ranker(labelled, trees, k=k, seed=seed)
        return fit_ranker(labelled, reg_param)

    if kind != "auto":
        return fit(kind, rows), {"kind": kind}
    held_out = (F.xxhash64("user_id", F.lit(seed)) % 2) == 0
    fit_rows, holdout_rows = rows.where(~held_out), rows.where(held_out)
    holdout_users = relevant.where(held_out)
    scores = {which: cold_slot_curve(holdout_rows, fit(which, fit_rows), k, holdout_users)[0]["ndcg"]
              for which in RANKER_KINDS}
    best = max(RANKER_KINDS, key=lambda which: (scores[which], -RANKER_KINDS.index(which)))
    return fit(best, rows), {"kind": best, f"holdout_ndcg@{k}": scores, "holdout_users": holdout_users.count()}


def _standardisation(labelled: DataFrame, label_col: str) -> tuple[list[float], list[float]]:
    """Means and standard deviations of the features; refuses rows of a single class."""
    from pyspark.sql import functions as F

    features = list(RANKER_FEATURES)
    stats = _label_counts(labelled, label_col, *[F.avg(f).alias(f"m_{f}") for f in features],
                          *[F.stddev_pop(f).alias(f"s_{f}") for f in features])
    mean = [float(stats[f"m_{f}"]) for f in features]
    std = [float(stats[f"s_{f}"]) if stats[f"s_{f}"] and stats[f"s_{f}"] > 1e-12 else 1.0 for f in features]
    return mean, std


def _label_counts(labelled: DataFrame, label_col: str, *more: Column) -> Any:
    """One aggregate row: ``positives``, ``rows`` and the ``more`` aggregates; refuses rows of a
    single class (no ranker can be fitted on them)."""
    from pyspark.sql import functions as F

    stats = labelled.agg(*more, F.sum(label_col).alias("positives"), F.count(F.lit(1)).alias("rows")).first()
    if not stats["rows"] or not stats["positives"] or stats["positives"] == stats["rows"]:
        raise InputError(f"ranker: need both positive and negative candidates, got "
                         f"{stats['positives']} positives of {stats['rows']} rows")
    return stats


def _standardised(labelled: DataFrame, mean: list[float], std: list[float]) -> DataFrame:
    from pyspark.sql import functions as F

    others = [c for c in labelled.columns if c not in RANKER_FEATURES]
    return labelled.select(*others, *[((F.col(f) - m) / s).alias(f) for f, m, s in zip(RANKER_FEATURES, mean, std)])


def _label(label_col: str) -> Column:
    from pyspark.sql import functions as F

    return F.col(label_col).cast("double")


def _logistic(rows: DataFrame, reg_param: float, *, fit_intercept: bool) -> tuple[list[float], float]:
    """Coefficients and intercept of an L2 logistic regression of ``label`` on ``RANKER_FEATURES``."""
    from pyspark.ml.classification import LogisticRegression
    from pyspark.ml.feature import VectorAssembler

    assembled = VectorAssembler(inputCols=list(RANKER_FEATURES), outputCol="x").transform(rows)
    lr = LogisticRegression(featuresCol="x", labelCol="label", regParam=reg_param, elasticNetParam=0.0,
                            standardization=False, fitIntercept=fit_intercept, maxIter=100)
    model = lr.fit(assembled)
    return [float(c) for c in model.coefficients], float(model.intercept)


def cold_slot_curve(rows: DataFrame, ranker: RankerParams, k: int, relevant: DataFrame,
                    floors: tuple[float, ...] = ()) -> list[dict[str, Any]]:
    """What the cold slot gains and costs at each floor, on labelled candidates.

    Parameters
    ----------
    rows : DataFrame
        Labelled candidates ``[user_id, item_id, <RANKER_FEATURES>, label]`` (the ranker's fit rows).
    ranker : RankerParams
        The fitted ranker (its own ``cold_floor`` is ignored).
    k : int
        List length (NDCG@k, recall@k).
    relevant : DataFrame
        ``[user_id, n_relevant, n_cold_relevant]`` for every user of the period with a positive:
        the users averaged over (a user without positive candidates scores 0 either way).
    floors : tuple of float
        Floors to score besides the quantiles (e.g. a configured one).

    Returns
    -------
    list of dict
        One entry without the slot (``floor`` None), then one per floor (21 quantiles of the
        users' best cold candidate score and ``floors``, highest first): ``floor``, ``ndcg``,
        ``cold_recall`` (positives on cold items found in the top k / the user's positives on
        cold items, averaged over users with one), ``slot_users`` (share of users given a slot).
    """
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    by_score = Window.partitionBy("user_id").orderBy(F.col("score").desc(), F.col("item_id"))
    scored = (rows.select("user_id", "item_id", (F.col("cold_item") > 0).alias("cold"), "label",
                          ranker.score().alias("score"))
              .withColumn("_r", F.row_number().over(by_score))
              .withColumn("_first_cold", F.min(F.when(F.col("cold"), F.col("_r"))).over(Window.partitionBy("user_id"))))
    kept = (scored.where((F.col("_r") <= k) | (F.col("_r") == F.col("_first_cold")))
            .select("user_id", "_r", "_first_cold", F.col("cold").cast("int").alias("cold"), "label", "score")
            .toPandas())
    users = relevant.select("user_id", "n_relevant", "n_cold_relevant").toPandas().set_index("user_id")
    return _curve(kept, users, k, floors)


def _curve(kept: pd.DataFrame, users: pd.DataFrame, k: int, extra: tuple[float, ...]) -> list[dict[str, Any]]:
    discount = 1.0 / np.log2(np.arange(2, k + 2))
    top = kept[kept["_r"] <= k]
    gain = top["label"] * discount[top["_r"].to_numpy() - 1]
    per_user = pd.DataFrame({
        "dcg": gain.groupby(top["user_id"]).sum(),
        "cold_hits": (top["label"] * top["cold"]).groupby(top["user_id"]).sum(),
        "last_label": top["label"].where(top["_r"] == k, 0.0).groupby(top["user_id"]).sum()})
    best = kept[(kept["_r"] == kept["_first_cold"]) & (kept["_first_cold"] > k)].set_index("user_id")
    frame = users.join(per_user, how="left").join(best[["score", "label"]], how="left").fillna(
        {"dcg": 0.0, "cold_hits": 0.0, "last_label": 0.0, "label": 0.0})
    ideal = np.cumsum(discount)
    idcg = ideal[np.clip(frame["n_relevant"].to_numpy(), 1, k) - 1]
    has_cold = frame["n_cold_relevant"].to_numpy() > 0
    n_cold = np.maximum(frame["n_cold_relevant"].to_numpy(), 1)
    candidate = frame["score"].to_numpy()  # NaN: no cold candidate outside the top k

    def point(floor: float | None) -> dict[str, Any]:
        slot = np.zeros(len(frame), dtype=bool) if floor is None else np.nan_to_num(candidate, nan=-1.0) >= floor
        dcg = frame["dcg"].to_numpy() + slot * (frame["label"].to_numpy() - frame["last_label"].to_numpy()) * discount[-1]
        hits = frame["cold_hits"].to_numpy() + slot * frame["label"].to_numpy()
        return {"floor": floor, "ndcg": round(float(np.mean(dcg / idcg)) if len(frame) else 0.0, 5),
                "cold_recall": round(float(np.mean((hits / n_cold)[has_cold])) if has_cold.any() else 0.0, 5),
                "slot_users": round(float(slot.mean()) if len(frame) else 0.0, 5)}

    scores = candidate[~np.isnan(candidate)]
    quantiles = np.quantile(scores, np.linspace(0.0, 1.0, 21)) if scores.size else []
    floors = sorted({*(float(q) for q in quantiles), *(float(f) for f in extra)}, reverse=True)
    return [point(None), *[point(f) for f in floors]]


def calibrate_cold_floor(curve: list[dict[str, Any]], max_loss: float) -> float | None:
    """The floor of :func:`cold_slot_curve` with the highest cold recall among those that
    cost at most ``max_loss`` (relative) of the slot-free NDCG; ties: the higher floor.
    None when no floor gains cold recall within that cost.

    >>> curve = [{"floor": None, "ndcg": 0.20, "cold_recall": 0.0},
    ...          {"floor": 0.3, "ndcg": 0.199, "cold_recall": 0.05},
    ...          {"floor": 0.1, "ndcg": 0.195, "cold_recall": 0.09},
    ...          {"floor": 0.0, "ndcg": 0.15, "cold_recall": 0.2}]
    >>> calibrate_cold_floor(curve, 0.05), calibrate_cold_floor(curve, 0.001)
    (0.1, None)
    """
    base = curve[0]
    allowed = [p for p in curve[1:] if p["ndcg"] >= (1.0 - max_loss) * base["ndcg"] - 1e-12
               and p["cold_recall"] > base["cold_recall"]]
    if not allowed:
        return None
    return max(allowed, key=lambda p: (p["cold_recall"], p["floor"]))["floor"]
