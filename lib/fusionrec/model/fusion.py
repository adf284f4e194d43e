"""The fused model: ALS factors completed by text maps, candidates, ranker features, scoring.

Pure DataFrame functions; reading/writing the lake is in :mod:`fusionrec.model.train`.

- Items: ALS factors where ALS saw the item; otherwise y_i = [v_i, 1] W_item (ridge map
  from item text vectors, fitted on warm items), and the log popularity [v_i, 1] w_pop its
  text predicts (the same ridge system, one more target column: the warm items' log(1 + n)).
- Users: ALS factors for users with at least ``min_user_interactions`` training
  interactions; otherwise x_u = [p_u, 1] W_user from the profile vector (fitted on the
  warm users). Users with neither get the popularity fallback.
- Sessions: r_u = mean ALS factor of the user's ``session_items`` latest training
  interactions (by ``last_ts``): what the user is into now, where x_u is everything the
  user ever did. Users interact in bursts (MovieLens raters rate a genre at a sitting), so
  the next items are near the last ones.
- Candidates: ALS top-N union session top-N (r_u . y_i) union content top-N (profile .
  item cosine) union the N most popular items, of all time and of the recent weeks
  (``recent_popularity``), union the new-item top-N (x_u . y_i among the items without
  training interactions, whose y_i comes from the text map), seen items excluded: the
  ranker can only promote what some source proposes. A new item's ridge-mapped factors
  rarely beat a warm item's on x_u . y_i, so without a source of their own new items
  seldom reach the ranker at all.
- Features: :data:`fusionrec.model.ranker.RANKER_FEATURES`.

Week of recommendation: by default the last week of the training data (``now_week``);
the evaluation sets each user's own (:func:`at_weeks`), since a per-user chronological
split recommends to each user at the start of that user's test period. Recent popularity
then counts training interactions of that whole week, including other users' training
interactions later in it (as ALS itself uses other users' later training interactions);
no test-period interaction is ever counted.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace

import numpy as np
from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from fusionrec.validation.feedback import latest_items
from fusionrec.config import ModelConfig
from fusionrec.model.als import AlsFactors, AlsParams, fit_als
from fusionrec.model.ranker import NEUTRAL_SENTIMENT, RankerParams
from fusionrec.model.text_maps import NoFitRows, apply_text_map, fit_text_map
from fusionrec.model.topk import blocked_top_n, top_n
from fusionrec.features.vectors import dot, normalised

log = logging.getLogger(__name__)

__all__ = ["als_top_n", "at_weeks", "candidates", "content_top_n", "fit_fused", "FusedModel", "item_weeks",
           "label", "only_items", "plain_als_top_n", "popularity", "rank_candidates", "recent_popularity",
           "recommendation_weeks", "session_vectors", "with_features", "with_text_log_popularity"]


@dataclass(frozen=True)
class FusedModel:
    """Everything needed to score (user, item) pairs."""

    #: [user_id, factors, source]
    user_factors: DataFrame
    #: [item_id, factors, source, text_log_popularity]: ``text_log_popularity`` is the log
    #: popularity the item's text predicts, for the items without training interactions
    #: (null for ALS items; the ranker's ``log_popularity`` of a new item)
    item_factors: DataFrame
    #: [user_id, factors]: plain ALS factors of every user ALS saw
    als_user_factors: DataFrame
    #: [user_id, factors]: r_u, the mean factor of the user's latest items (:func:`session_vectors`)
    sessions: DataFrame
    #: [item_id, vector] (unit norm)
    item_vectors: DataFrame
    #: [user_id, vector] (unit norm)
    user_profiles: DataFrame
    #: [item_id, n_interactions, log_popularity]
    popularity: DataFrame
    #: [item_id, item_sentiment]
    sentiment: DataFrame
    item_map: np.ndarray
    user_map: np.ndarray | None
    als_params: AlsParams
    counts: dict
    #: [item_id, week, n]: training interactions per item and week (by first_ts)
    item_weeks: DataFrame
    #: the week recommendations are made in, unless ``times`` says otherwise for a user
    now_week: int
    #: ``recent_popularity`` counts the interactions of that week and the weeks before it,
    #: this many weeks in all
    recent_weeks: int
    #: [user_id, week]: per-user week of recommendation (evaluation); None: ``now_week``
    times: DataFrame | None = None
    #: Parts of the fit that fell back to something weaker, one sentence each (empty: none)
    degraded: tuple[str, ...] = ()


def with_text_log_popularity(item_factors: DataFrame) -> DataFrame:
    """``model.item_factors`` as read, with ``text_log_popularity`` (null) when it was written
    before the column existed: its new items then rank as unpopular, as they did then."""
    if "text_log_popularity" in item_factors.columns:
        return item_factors
    return item_factors.withColumn("text_log_popularity", F.lit(None).cast("double"))


def session_vectors(interactions: DataFrame, item_factors: DataFrame, n: int) -> DataFrame:
    """``[user_id, factors]``: r_u = mean of y_j over the user's ``n`` latest interactions j
    that have factors (element-wise mean in the JVM; no Python round trip)."""
    latest = latest_items(interactions, n).join(item_factors.select("item_id", "factors"), "item_id")
    means = (latest.select("user_id", F.posexplode("factors").alias("_pos", "_v"))
             .groupBy("user_id", "_pos").agg(F.avg("_v").alias("_m")))
    return (means.groupBy("user_id").agg(F.sort_array(F.collect_list(F.struct("_pos", "_m"))).alias("_s"))
            .select("user_id", F.transform("_s", lambda e: e["_m"].cast("float")).alias("factors")))


def popularity(interactions: DataFrame) -> DataFrame:
    """``[item_id, n_interactions, log_popularity]`` from training interactions."""
    return (interactions.groupBy("item_id").agg(F.count(F.lit(1)).alias("n_interactions"))
            .withColumn("log_popularity", F.log1p(F.col("n_interactions").cast("double"))))


_SECONDS_PER_WEEK = 7 * 24 * 3600


def _week_of(ts: Column) -> Column:
    """Whole weeks since the Unix epoch (UTC)."""
    return F.floor(F.unix_timestamp(ts) / _SECONDS_PER_WEEK).cast("long")


def item_weeks(interactions: DataFrame) -> DataFrame:
    """``[item_id, week, n]``: interactions per item and week of ``first_ts``."""
    return interactions.groupBy("item_id", _week_of(F.col("first_ts")).alias("week")).agg(
        F.count(F.lit(1)).alias("n"))


def _now_week(interactions: DataFrame) -> int:
    """The week of the latest interaction (the week recommendations are made in, right after training)."""
    latest = interactions.agg(_week_of(F.max("last_ts"))).first()[0]
    return 0 if latest is None else int(latest)


def recent_popularity(weekly: DataFrame, weeks: DataFrame, window: int) -> DataFrame:
    """``[item_id, week, recent_popularity]`` for every ``week`` of ``weeks``:
    r_i(w) = log(1 + sum_{l=0..window-1} n_i(w - l)), the item's interactions in week w
    and the ``window - 1`` weeks before it."""
    lags = F.explode(F.sequence(F.lit(0), F.lit(window - 1))).alias("_lag")
    lagged = weekly.select("item_id", "week", "n", lags).select(
        "item_id", (F.col("week") + F.col("_lag")).alias("week"), "n")
    return (lagged.join(F.broadcast(weeks.select("week").distinct()), "week")
            .groupBy("item_id", "week").agg(F.log1p(F.sum("n").cast("double")).alias("recent_popularity")))


def at_weeks(model: "FusedModel", times: DataFrame, ts_col: str) -> "FusedModel":
    """``model`` recommending to each user of ``times`` ``[user_id, <ts_col>]`` in the week
    of that timestamp (others at ``now_week``)."""
    return replace(model, times=times.select("user_id", _week_of(F.col(ts_col)).alias("week")))


def _with_week(df: DataFrame, model: "FusedModel") -> DataFrame:
    """``df`` (keyed by ``user_id``) plus ``week``, the week each user is recommended in."""
    if model.times is None:
        return df.withColumn("week", F.lit(model.now_week).cast("long"))
    return df.join(model.times, "user_id", "left").fillna({"week": model.now_week})


def recommendation_weeks(model: "FusedModel") -> DataFrame:
    """``[week]``: every week the model recommends in."""
    now = model.item_weeks.sparkSession.createDataFrame([(model.now_week,)], "week LONG")
    return now if model.times is None else model.times.select("week").union(now).distinct()


def fit_fused(interactions: DataFrame, item_vectors: DataFrame, user_profiles: DataFrame,
              item_sentiment: DataFrame | None, mc: ModelConfig, params: AlsParams | None = None,
              als: AlsFactors | None = None) -> FusedModel:
    """Fit ALS on ``interactions`` (unless ``als`` is given, fitted on the same interactions)
    and complete it with the text maps (module docstring).

    Parameters
    ----------
    interactions : DataFrame
        ``[user_id, item_id, weight, first_ts, last_ts]`` (``gold.interactions`` or a training split).
    item_vectors : DataFrame
        ``[item_id, vector ARRAY<FLOAT>]`` (``features.item_vectors``); normalised here.
    user_profiles : DataFrame
        ``[user_id, vector ARRAY<FLOAT>]`` (``features.user_profiles``); normalised here.
    item_sentiment : DataFrame or None
        ``[item_id, sentiment_mean]`` (``features.item_sentiment``); None: no reviews.
    mc : ModelConfig
        ALS iterations and seed, ridge penalty, ``min_user_interactions``, ``session_items``,
        ``recent_weeks``.
    params : AlsParams, optional
        Rank, regularisation and alpha; default those of ``mc``.
    als : AlsFactors, optional
        ALS already fitted on ``interactions`` (by :func:`fusionrec.model.als.fit_als`).

    Returns
    -------
    FusedModel
        ``user_factors`` ``[user_id, factors, source]`` and ``item_factors``
        ``[item_id, factors, source, text_log_popularity]`` (``source`` = ``als`` | ``text_map``;
        ``text_log_popularity``: what a text_map item's text predicts of log(1 + interactions)),
        and the tables and maps the candidates and ranker features are computed from.

    Examples
    --------
    >>> import datetime as dt
    >>> from fusionrec.config import ModelConfig
    >>> from fusionrec.model.als import AlsParams
    >>> ts = dt.datetime(2024, 1, 1)
    >>> interactions = spark.createDataFrame(
    ...     [(f"u{u}", f"i{i}", 1.0, ts, ts) for u in range(4) for i in range(4) if (u + i) % 2 == 0],
    ...     "user_id STRING, item_id STRING, weight DOUBLE, first_ts TIMESTAMP, last_ts TIMESTAMP")
    >>> vectors = spark.createDataFrame([(f"i{i}", [float(i % 2), float(i // 2 % 2), 1.0]) for i in range(5)],
    ...                                 "item_id STRING, vector ARRAY<FLOAT>")
    >>> profiles = spark.createDataFrame([(f"u{u}", [float(u % 2), 0.0, 1.0]) for u in range(5)],
    ...                                  "user_id STRING, vector ARRAY<FLOAT>")
    >>> model = fit_fused(interactions, vectors, profiles, None, ModelConfig(max_iter=2, min_user_interactions=1),
    ...                   AlsParams(rank=2, reg_param=0.1, alpha=1.0))
    >>> sorted((r.item_id, r.source) for r in model.item_factors.collect())  # i4: no interaction, text only
    [('i0', 'als'), ('i1', 'als'), ('i2', 'als'), ('i3', 'als'), ('i4', 'text_map')]
    >>> sorted((r.user_id, r.source) for r in model.user_factors.collect())  # u4: a profile only
    [('u0', 'als'), ('u1', 'als'), ('u2', 'als'), ('u3', 'als'), ('u4', 'text_map')]
    >>> model.item_map.shape  # [vector, 1] -> factor
    (4, 2)
    """
    spark = interactions.sparkSession
    item_vectors = normalised(item_vectors.select("item_id", "vector"), "vector").cache()
    user_profiles = normalised(user_profiles.select("user_id", "vector"), "vector").cache()
    als = als if als is not None else fit_als(interactions, mc, params)
    als_items = als.items.cache()
    als_users = als.users.cache()

    item_popularity = popularity(interactions).cache()
    # One ridge fit, two maps: the text's factors and the text's log popularity (an extra
    # target column of the same system; ridge solves each column on its own).
    targets = als_items.join(item_popularity, "item_id").select(
        "item_id", F.concat("factors", F.array(F.col("log_popularity").cast("float"))).alias("factors"))
    w_item_and_popularity, n_item_fit = fit_text_map(item_vectors, targets, "item_id", mc.ridge_lambda)
    w_item = w_item_and_popularity[:, :-1]
    rank = int(w_item.shape[1])
    cold_items = item_vectors.join(als_items.select("item_id"), "item_id", "left_anti")
    mapped = apply_text_map(cold_items, w_item_and_popularity, "item_id")
    item_factors = (als_items.select("item_id", "factors", F.lit("als").alias("source"),
                                     F.lit(None).cast("double").alias("text_log_popularity"))
                    .unionByName(mapped.select("item_id", F.slice("factors", 1, rank).alias("factors"),
                                               F.lit("text_map").alias("source"),
                                               F.element_at("factors", rank + 1).cast("double")
                                               .alias("text_log_popularity"))))

    n_per_user = interactions.groupBy("user_id").agg(F.count(F.lit(1)).alias("n"))
    warm_users = n_per_user.where(F.col("n") >= mc.min_user_interactions).select("user_id")
    warm_factors = als_users.join(warm_users, "user_id")
    degraded: tuple[str, ...] = ()
    try:
        w_user, n_user_fit = fit_text_map(user_profiles, warm_factors, "user_id", mc.ridge_lambda)
    except NoFitRows:
        # Only this case degrades; a singular system (LinAlgError) is a bug and propagates.
        w_user, n_user_fit = None, 0
        degraded = ("user text map not fitted: no user with at least model.min_user_interactions "
                    "interactions has a profile; users below it get the popularity fallback",)
        log.warning("fit degraded: %s", degraded[0])
    user_factors = warm_factors.withColumn("source", F.lit("als"))
    if w_user is not None:
        cold_users = user_profiles.join(warm_users, "user_id", "left_anti")
        user_factors = user_factors.unionByName(
            apply_text_map(cold_users, w_user, "user_id").withColumn("source", F.lit("text_map")))

    sentiment = (item_sentiment.select("item_id", F.col("sentiment_mean").alias("item_sentiment"))
                 if item_sentiment is not None
                 else spark.createDataFrame([], "item_id STRING, item_sentiment DOUBLE"))
    item_factors = item_factors.cache()
    user_factors = user_factors.cache()
    sessions = session_vectors(interactions, als_items, mc.session_items).cache()
    counts = {"als_users": als_users.count(), "als_items": als_items.count(),
              "text_map_items": item_factors.where(F.col("source") == "text_map").count(),
              "text_map_users": user_factors.where(F.col("source") == "text_map").count(),
              "item_map_fit_rows": n_item_fit, "user_map_fit_rows": n_user_fit}
    return FusedModel(user_factors=user_factors, item_factors=item_factors, als_user_factors=als_users,
                      sessions=sessions, item_vectors=item_vectors,
                      user_profiles=user_profiles, popularity=item_popularity,
                      sentiment=sentiment, item_map=w_item, user_map=w_user, als_params=als.params,
                      counts=counts, item_weeks=item_weeks(interactions).cache(),
                      now_week=_now_week(interactions), recent_weeks=mc.recent_weeks, degraded=degraded)


def only_items(model: FusedModel, items: DataFrame) -> FusedModel:
    """``model`` with its catalogue cut to ``items`` ``[item_id]`` (e.g. to rank the cold items
    among themselves); users, profiles and the maps are unchanged."""
    keep = items.select("item_id").distinct()
    return replace(model, item_factors=model.item_factors.join(keep, "item_id"),
                   item_vectors=model.item_vectors.join(keep, "item_id"),
                   popularity=model.popularity.join(keep, "item_id"),
                   item_weeks=model.item_weeks.join(keep, "item_id"))


def _restrict(df: DataFrame, users: DataFrame | None) -> DataFrame:
    return df if users is None else df.join(users.select("user_id").distinct(), "user_id")


def als_top_n(model: FusedModel, n: int, seen: DataFrame, mc: ModelConfig,
              users: DataFrame | None = None, only_als: bool = False) -> DataFrame:
    """ALS candidates ``[user_id, item_id, score, rank]`` (x_u . y_i), seen items excluded.

    ``only_als``: plain ALS (the baseline): ALS factors only, no text-map users or items.
    """
    if only_als:
        return plain_als_top_n(model.als_user_factors, model.item_factors.where(F.col("source") == "als"), n, seen,
                               mc, users)
    return blocked_top_n(_restrict(model.user_factors, users), model.item_factors, n, seen,
                         mc.user_blocks, mc.item_blocks)


def plain_als_top_n(als_users: DataFrame, als_items: DataFrame, n: int, seen: DataFrame, mc: ModelConfig,
                    users: DataFrame | None = None) -> DataFrame:
    """Plain ALS candidates ``[user_id, item_id, score, rank]`` from ALS factor tables
    ``[user_id|item_id, factors]`` alone (the baseline, and the ALS search's score), seen
    items excluded."""
    return blocked_top_n(_restrict(als_users, users), als_items, n, seen, mc.user_blocks, mc.item_blocks)


def _session_top_n(model: FusedModel, n: int, seen: DataFrame, mc: ModelConfig,
                  users: DataFrame | None = None) -> DataFrame:
    """Session candidates ``[user_id, item_id, score, rank]`` (r_u . y_i), seen items excluded."""
    return blocked_top_n(_restrict(model.sessions, users), model.item_factors, n, seen,
                         mc.user_blocks, mc.item_blocks)


def content_top_n(model: FusedModel, n: int, seen: DataFrame, mc: ModelConfig,
                  users: DataFrame | None = None) -> DataFrame:
    """Content candidates ``[user_id, item_id, score, rank]`` (profile . item cosine)."""
    return blocked_top_n(_restrict(model.user_profiles, users), model.item_vectors, n, seen,
                         mc.user_blocks, mc.item_blocks, normalise=True, user_vec="vector", item_vec="vector")


def _als_and_new_item_top_n(model: FusedModel, n: int, seen: DataFrame, mc: ModelConfig,
                            users: DataFrame | None = None) -> DataFrame:
    """:func:`als_top_n` and the new-item candidates (x_u . y_i among the items without
    training interactions, whose factors come from the text map) from one scoring pass:
    ``[user_id, item_id, score, rank, in_pool]``, ``in_pool`` true for the new-item rows."""
    items = model.item_factors.withColumn("_new", F.col("source") == "text_map")
    return blocked_top_n(_restrict(model.user_factors, users), items, n, seen, mc.user_blocks, mc.item_blocks,
                         pool="_new")


def _popular_top_n(model: FusedModel, n: int, seen: DataFrame, users: DataFrame) -> DataFrame:
    """``[user_id, item_id]``: the ``n`` most popular items, of all time and in each user's
    recent weeks, minus the user's seen items (so up to ``2 n``)."""
    weeks = _with_week(users.select("user_id").distinct(), model)
    recent = recent_popularity(model.item_weeks, weeks, model.recent_weeks)
    by_week = Window.partitionBy("week").orderBy(F.col("recent_popularity").desc(), F.col("item_id"))
    recent_top = (recent.withColumn("_r", F.row_number().over(by_week)).where(F.col("_r") <= n)
                  .select("week", "item_id"))
    all_time = (model.popularity.orderBy(F.col("n_interactions").desc(), F.col("item_id")).limit(n)
                .select("item_id"))
    return (weeks.join(recent_top, "week").select("user_id", "item_id")
            .unionByName(weeks.select("user_id").crossJoin(F.broadcast(all_time)))
            .join(seen.select("user_id", "item_id"), ["user_id", "item_id"], "left_anti"))


def candidates(model: FusedModel, seen: DataFrame, mc: ModelConfig, users: DataFrame | None = None) -> DataFrame:
    """``[user_id, item_id, als_rank, session_rank, content_rank]``: ALS, session and content
    top-N union the popular and new-item top-Ns; a rank is null where that source did not
    propose the item (the popular and new-item sources have no rank feature)."""
    n = mc.candidates_n
    if users is None:
        users = model.user_factors.select("user_id").union(model.user_profiles.select("user_id"))
    ranks = ("als_rank", "session_rank", "content_rank")

    def proposed_by(df: DataFrame, source: str | None, rank: Column = F.col("rank")) -> DataFrame:
        return df.select("user_id", "item_id", *[(rank if r == source else F.lit(None)).cast("int").alias(r)
                                                 for r in ranks])

    # A new-item row has no ALS rank: its rank is among the new items only.
    als_and_new = _als_and_new_item_top_n(model, n, seen, mc, users)
    proposed = (proposed_by(als_and_new, "als_rank", F.when(~F.col("in_pool"), F.col("rank")))
                .unionByName(proposed_by(_session_top_n(model, n, seen, mc, users), "session_rank"))
                .unionByName(proposed_by(content_top_n(model, n, seen, mc, users), "content_rank"))
                .unionByName(proposed_by(_popular_top_n(model, n, seen, users), None)))
    return proposed.groupBy("user_id", "item_id").agg(*[F.min(r).alias(r) for r in ranks])


def _rank_gain(rank: Column) -> Column:
    """1 / log2(1 + rank); 0 for a null rank (the item was not in that source's top-N)."""
    return F.coalesce(1.0 / F.log2(rank.cast("double") + 1.0), F.lit(0.0))


def with_features(pairs: DataFrame, model: FusedModel) -> DataFrame:
    """``pairs`` (from :func:`candidates`) plus the ranker features (missing factors/vectors
    give 0, no reviews 0.5, no training interaction ``cold_item`` = 1 and ``log_popularity``
    the text's prediction, none in the recent weeks 0).

    Vectors never travel through a shuffle with the pairs (hundreds per user, each would
    carry two 384-d vectors): the pairs are grouped per user, the user's factors and
    profile joined once per user, and the catalogue's factors and vectors broadcast (the
    serving bundle holds them in memory too) before the pairs are unfolded again.
    """
    recent = recent_popularity(model.item_weeks, recommendation_weeks(model), model.recent_weeks)
    per_user = pairs.groupBy("user_id").agg(
        F.collect_list(F.struct(*[c for c in pairs.columns if c != "user_id"])).alias("_pairs"))
    items = (model.item_factors.select("item_id", F.col("factors").alias("_if"), "text_log_popularity")
             .join(model.item_vectors.select("item_id", F.col("vector").alias("_iv")), "item_id", "full"))
    df = (per_user
          .join(model.user_factors.select("user_id", F.col("factors").alias("_uf")), "user_id", "left")
          .join(model.sessions.select("user_id", F.col("factors").alias("_us")), "user_id", "left")
          .join(model.user_profiles.select("user_id", F.col("vector").alias("_up")), "user_id", "left")
          .select("user_id", "_uf", "_us", "_up", F.explode("_pairs").alias("_p"))
          .select("user_id", "_uf", "_us", "_up", "_p.*")
          .join(F.broadcast(items), "item_id", "left"))
    # Spark SQL dot products in the JVM: no round trip of four vector columns through Python.
    df = df.select("*", F.coalesce(dot(F.col("_uf"), F.col("_if")), F.lit(0.0)).alias("als_score"),
                   F.coalesce(dot(F.col("_up"), F.col("_iv")), F.lit(0.0)).alias("content_cosine"),
                   _rank_gain(F.col("als_rank")).alias("als_rank_gain"),
                   _rank_gain(F.col("content_rank")).alias("content_rank_gain"),
                   F.coalesce(dot(F.col("_us"), F.col("_if")), F.lit(0.0)).alias("session_score"),
                   _rank_gain(F.col("session_rank")).alias("session_rank_gain"))
    return (df.drop("_uf", "_us", "_if", "_up", "_iv", "als_rank", "session_rank", "content_rank")
            .join(F.broadcast(model.popularity.select("item_id", "log_popularity")), "item_id", "left")
            .join(F.broadcast(model.sentiment), "item_id", "left")
            .withColumn("cold_item", F.col("log_popularity").isNull().cast("double"))
            .withColumn("log_popularity", F.coalesce("log_popularity", "text_log_popularity"))
            .drop("text_log_popularity")
            .transform(lambda d: _with_week(d, model))
            .join(recent, ["item_id", "week"], "left").drop("week")
            .fillna({"log_popularity": 0.0, "item_sentiment": NEUTRAL_SENTIMENT, "recent_popularity": 0.0}))


def rank_candidates(featured: DataFrame, ranker: RankerParams, k: int) -> DataFrame:
    """Top-``k`` ``[user_id, item_id, score, rank, <features>, <contrib_*>]`` by ranker score,
    with the ranker's cold slot when it has one (:mod:`fusionrec.model.ranker`)."""
    contrib = ranker.contributions()
    scored = featured.withColumn("score", ranker.score())
    for name, column in contrib.items():
        scored = scored.withColumn(f"contrib_{name}", column)
    if ranker.cold_floor is None or k < 2:
        return top_n(scored, k)
    return _with_cold_slot(scored, k, ranker.cold_floor)


def _with_cold_slot(scored: DataFrame, k: int, floor: float) -> DataFrame:
    """The top ``k`` by ``score``; where it holds no cold item, its last place goes to the
    best cold item scoring at least ``floor`` (ties by item_id, as :func:`top_n`)."""
    by_score = Window.partitionBy("user_id").orderBy(F.col("score").desc(), F.col("item_id"))
    user = Window.partitionBy("user_id")
    cold = F.col("cold_item") > 0
    ranked = (scored.withColumn("_r", F.row_number().over(by_score))
              .withColumn("_first_cold", F.min(F.when(cold, F.col("_r"))).over(user))
              .withColumn("_pick", F.min(F.when(cold & (F.col("score") >= F.lit(floor)), F.col("_r"))).over(user)))
    slot = (F.col("_first_cold") > k) & F.col("_pick").isNotNull()
    keep = F.when(slot, (F.col("_r") < k) | (F.col("_r") == F.col("_pick"))).otherwise(F.col("_r") <= k)
    rank = F.when(slot & (F.col("_r") == F.col("_pick")), F.lit(k)).otherwise(F.col("_r"))
    return (ranked.where(keep).withColumn("rank", rank.cast("int"))
            .drop("_r", "_first_cold", "_pick"))


def label(pairs: DataFrame, positives: DataFrame) -> DataFrame:
    """``pairs`` plus ``label`` = 1.0 where the pair is in ``positives`` ``[user_id, item_id]``,
    for the users with at least one positive candidate.

    The ranker only ever orders one user's candidates against each other; a user none of
    whose candidates was taken says nothing about that order, and would only teach it that
    popular items are taken more (Joachims 2002 trains on the queries with a click, for
    the same reason)."""
    pos = positives.select("user_id", "item_id").distinct().withColumn("label", F.lit(1.0))
    labelled = pairs.join(pos, ["user_id", "item_id"], "left").fillna({"label": 0.0})
    informative = labelled.where(F.col("label") > 0).select("user_id").distinct()
    return labelled.join(informative, "user_id", "left_semi")
