"""The second-stage ranker's feature contract, shared by Spark training and numpy serving.

A candidate (user u, item i) is described by, in this order:

- ``als_score``: the ALS preference estimate x_u . y_i (factors from ALS, or from the
  text-to-factor map for cold items/users);
- ``content_cosine``: p_u . v_i, the user's profile vector against the item vector
  (both L2-normalised, so this is a cosine);
- ``log_popularity``: log(1 + n_i), n_i the item's number of training interactions;
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
score = sigmoid(sum_k coef_k * (x_k - mean_k) / std_k + intercept), stored as JSON:
``{"features": [...], "mean": [...], "std": [...], "coef": [...], "intercept": b}``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from fusionrec.errors import InputError

if TYPE_CHECKING:  # pyspark only where Spark fits or applies the ranker: serving imports this module without it
    from pyspark.sql import Column, DataFrame

__all__ = ["NEUTRAL_SENTIMENT", "RANKER_FEATURES", "fit_ranker", "RankerParams"]

RANKER_FEATURES: tuple[str, ...] = ("als_score", "content_cosine", "log_popularity", "item_sentiment", "cold_item",
                                  "recent_popularity", "als_rank_gain", "content_rank_gain", "session_score",
                                  "session_rank_gain")

#: Value of ``item_sentiment`` for items without reviews (neutral).
NEUTRAL_SENTIMENT = 0.5


@dataclass(frozen=True)
class RankerParams:
    """A fitted ranker in the JSON format of the module docstring."""

    features: list[str]
    mean: list[float]
    std: list[float]
    coef: list[float]
    intercept: float

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "RankerParams":
        missing = {"features", "mean", "std", "coef", "intercept"} - set(data)
        if missing:
            raise ValueError(f"ranker JSON: missing field(s) {', '.join(sorted(missing))}")
        if list(data["features"]) != list(RANKER_FEATURES):
            raise ValueError(f"ranker JSON: features {data['features']} differ from the contract {list(RANKER_FEATURES)}")
        return cls(list(data["features"]), [float(v) for v in data["mean"]], [float(v) for v in data["std"]],
                   [float(v) for v in data["coef"]], float(data["intercept"]))

    def contributions(self) -> dict[str, Column]:
        """coef_k * (x_k - mean_k) / std_k per feature, as Spark columns."""
        from pyspark.sql import functions as F

        return {name: F.lit(c) * (F.col(name) - F.lit(m)) / F.lit(s)
                for name, m, s, c in zip(self.features, self.mean, self.std, self.coef)}

    def score(self) -> Column:
        """sigmoid(sum of contributions + intercept)."""
        from pyspark.sql import functions as F

        logit = F.lit(self.intercept)
        for column in self.contributions().values():
            logit = logit + column
        return 1.0 / (1.0 + F.exp(-logit))


def fit_ranker(labelled: DataFrame, reg_param: float, label_col: str = "label") -> RankerParams:
    """Logistic regression of ``label`` (0/1) on the standardised ``RANKER_FEATURES``.

    Means and standard deviations are computed by Spark and applied explicitly (rather than
    LogisticRegression's internal standardisation) so that the stored coefficients are the
    ones serving applies to (x - mean) / std.
    """
    from pyspark.ml.classification import LogisticRegression
    from pyspark.ml.feature import VectorAssembler
    from pyspark.sql import functions as F

    features = list(RANKER_FEATURES)
    stats = labelled.agg(*[F.avg(f).alias(f"m_{f}") for f in features],
                         *[F.stddev_pop(f).alias(f"s_{f}") for f in features],
                         F.sum(label_col).alias("positives"), F.count(F.lit(1)).alias("rows")).first()
    if not stats["rows"] or not stats["positives"] or stats["positives"] == stats["rows"]:
        raise InputError(f"ranker: need both positive and negative candidates, got "
                         f"{stats['positives']} positives of {stats['rows']} rows")
    mean = [float(stats[f"m_{f}"]) for f in features]
    std = [float(stats[f"s_{f}"]) if stats[f"s_{f}"] and stats[f"s_{f}"] > 1e-12 else 1.0 for f in features]
    standardised = labelled.select(
        *[((F.col(f) - m) / s).alias(f) for f, m, s in zip(features, mean, std)],
        F.col(label_col).cast("double").alias("label"))
    assembled = VectorAssembler(inputCols=features, outputCol="x").transform(standardised)
    lr = LogisticRegression(featuresCol="x", labelCol="label", regParam=reg_param, elasticNetParam=0.0,
                            standardization=False, maxIter=100)
    model = lr.fit(assembled)
    return RankerParams(features, mean, std, [float(c) for c in model.coefficients], float(model.intercept))
