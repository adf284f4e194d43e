"""Fitting the whole fused model from lake tables, and the thin Delta/JSON layer around it.

:func:`fit_pipeline` is pure (DataFrames in, fitted objects out) and is used both by
``fusionrec train`` on all interactions and by the evaluation harness on the training
split: the interactions it receives are split chronologically per user into a fit period
and a later validation period (a seeded ``model.ranker_cold_item_fraction`` of the items
loses its fit-period interactions and reviews, so that the ranker's training candidates
hold cold items as serving will: their factors come from the text map, :func:`withhold_items`);
the ALS search (:func:`fusionrec.model.als.search_als`: rank, regParam on Spark's scale and
alpha) is scored on validation NDCG@K, the ranker is trained on validation labels
(candidates from models fitted on the fit period, :func:`ranker_rows`; pointwise, pairwise or
LambdaMART, chosen on held-out validation users by ``model.ranker``) and, with
``model.cold_slot``, the cold slot's floor is calibrated on the same rows; then the chosen
ALS parameters are refitted on everything it received. Every intermediate
table that several later steps read (splits, side features, labelled candidates) is
computed once and kept (:func:`materialised`): on small data the cost of a step is its
number of Spark jobs, and an uncached lineage is replayed by every one of them.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from fusionrec.config import Config, ModelConfig
from fusionrec.errors import InputError, MissingInputError
from fusionrec.features.vectors import normalised
from fusionrec.lake import FUSION_PARAMS, Lake
from fusionrec.model.als import AlsFactors, AlsParams, fit_als, save_als, search_als
from fusionrec.validation.metrics import ranking_metrics
from fusionrec.validation.split import choose_cold_items, cut_interactions, filter_before, relevant, user_boundaries
from fusionrec.model.fusion import (FusedModel, at_weeks, candidates, fit_fused, item_weeks, label, plain_als_top_n,
                                    popularity, session_vectors, with_features, with_text_log_popularity)
from fusionrec.model.params import FusionParams
from fusionrec.model.ranker import (RANKER_FEATURES, RankerParams, TreeSettings, calibrate_cold_floor, choose_ranker,
                                    cold_slot_curve)
from fusionrec.model.side_features import SideFeatures, side_features
from fusionrec.runlog import stage

__all__ = ["FUSION_PARAMS", "fit_pipeline", "Fitted", "load_model", "materialised", "ranker_rows",
           "read_training_tables", "TrainingTables", "withhold_items", "write_model"]

log = logging.getLogger(__name__)


@dataclass
class Fitted:
    """A fitted fused model and what it was fitted on (inspected by the leakage test)."""

    model: FusedModel
    ranker: RankerParams
    params: AlsParams
    trials: list[dict[str, Any]]
    features: SideFeatures
    fit_interactions: DataFrame
    validation_interactions: DataFrame
    fit_features: SideFeatures
    cutoff: datetime | None
    #: the ALS of ``model`` with its fitted ``ALSModel`` (saved by :func:`write_model`)
    als: AlsFactors | None = None
    #: the ranker's labelled fit rows (:func:`ranker_rows`) and the items made cold in them
    ranker_rows: DataFrame | None = None
    made_cold: DataFrame | None = None
    #: the cold slot's validation curve and chosen floor (empty without ``model.cold_slot``)
    cold_slot: dict[str, Any] | None = None
    #: which ranker was fitted and, for ``model.ranker: auto``, each kind's held-out NDCG
    ranker_choice: dict[str, Any] | None = None


def withhold_items(fit: DataFrame, reviews: DataFrame | None, item_embeddings: DataFrame, fraction: float,
                   seed: int) -> tuple[DataFrame, DataFrame | None, DataFrame]:
    """``(fit, reviews, made_cold)``: a seeded ``fraction`` of the items with a text vector
    loses its interactions and reviews, so that models fitted on what is left score those
    items as cold ones (through the text map) and the ranker sees cold items among its
    positives. Items new at serving time have no interactions, and the ranker only learns
    what they are worth if some items of its training candidates are cold too."""
    made_cold = choose_cold_items(fit, fraction, seed, item_embeddings)
    return (fit.join(made_cold, "item_id", "left_anti"),
            reviews.join(made_cold, "item_id", "left_anti") if reviews is not None else None, made_cold)


def ranker_rows(model: FusedModel, seen: DataFrame, positives: DataFrame, users: DataFrame,
                mc: ModelConfig) -> DataFrame:
    """The ranker's training rows: ``model``'s candidates for ``users`` with their features
    (:func:`~fusionrec.model.fusion.with_features`) and ``label`` from ``positives``
    ``[user_id, item_id]`` (:func:`~fusionrec.model.fusion.label`), kept."""
    return materialised(label(with_features(candidates(model, seen, mc, users), model), positives))


def materialised(df: DataFrame) -> DataFrame:
    """``df`` computed once and kept (memory, spilling to disk), so that the many small jobs
    after it (fits, metrics, counts) reuse it instead of replaying its lineage.

    A local checkpoint, not ``persist``: it also cuts the logical plan. A cached table's
    plan is printed inside every plan that reads it, so tables built from cached tables
    built from cached tables give plan strings that grow multiplicatively with the steps;
    adaptive execution renders such a string on every re-plan, which exhausted a 4 GB heap
    in the ranker's candidate stage. The blocks live on the executors and are freed when the
    DataFrame is garbage collected. Unlike a cache, a lost block is not recomputed: losing an
    executor fails the run, which is then started again.
    """
    return df.localCheckpoint(eager=True)


def materialised_features(features: SideFeatures) -> SideFeatures:
    sentiment = materialised(features.item_sentiment) if features.item_sentiment is not None else None
    return SideFeatures(materialised(features.item_vectors), materialised(features.user_profiles), sentiment)


def fit_pipeline(interactions: DataFrame, item_embeddings: DataFrame, reviews: DataFrame | None,
                 review_embeddings: DataFrame | None, cfg: Config, events: DataFrame | None = None) -> Fitted:
    """Tune on the validation period, fit the ranker there, refit on all given data.

    Parameters
    ----------
    interactions : DataFrame
        ``gold.interactions`` (or a training split): ``[user_id, item_id, weight, n_events,
        first_ts, last_ts, rating]``.
    item_embeddings : DataFrame
        ``[item_id, embedding ARRAY<FLOAT>]``.
    reviews, review_embeddings : DataFrame or None
        ``gold.reviews`` and ``[review_id, embedding]``; both or neither.
    cfg : Config
        ``model.*``, ``evaluate.*`` (validation split, relevance, K), ``features.*``.
    events : DataFrame, optional
        The events behind ``interactions`` ``[user_id, item_id, rating, ts, weight]``: the fit
        period is then re-aggregated from the events before each user's validation start, so
        that nothing of the validation period reaches the models scored on it.

    Returns
    -------
    Fitted
        The refitted :class:`~fusionrec.model.fusion.FusedModel`, the ranker, the chosen ALS
        parameters and search trials, and the tables it was fitted on.
    """
    mc, ec = cfg.model, cfg.evaluate
    k = max(ec.k_list)
    interactions = materialised(interactions)
    with stage("fit.validation_split"):
        bounds = materialised(user_boundaries(interactions, ec.validation_fraction))
        fit, validation, _ = cut_interactions(interactions, bounds, events)
        fit_reviews = filter_before(reviews, bounds, "ts") if reviews is not None else None
        fit, fit_reviews, made_cold = withhold_items(fit, fit_reviews, item_embeddings, mc.ranker_cold_item_fraction,
                                                     mc.seed)
        fit, validation, made_cold = materialised(fit), materialised(validation), materialised(made_cold)
    with stage("fit.side_features"):
        fit_features = materialised_features(
            side_features(fit, item_embeddings, fit_reviews, review_embeddings,
                          fit.agg(F.max("last_ts")).first()[0], cfg.features))

    val_relevant = relevant(validation, ec.positive_rating, ec.positive_weight)
    val_users = materialised(tuning_users(val_relevant.select("user_id").distinct(), mc.tuning_max_users, mc.seed))
    val_relevant = materialised(val_relevant.join(val_users, "user_id"))
    seen = fit.select("user_id", "item_id")
    n_items = item_embeddings.select("item_id").union(fit.select("item_id")).distinct().count()
    kept: dict[str, Any] = {}  # the best ALS so far and its score; the others are released

    def score(params: AlsParams) -> float:
        # A trial scores plain ALS: the text maps and tables of the fused model are built once, for the winner.
        with stage("fit.search_trial"):
            als = fit_als(fit, mc, params)
            top = plain_als_top_n(als.users.cache(), als.items.cache(), k, seen, mc, val_users)
            ndcg = ranking_metrics(top, val_relevant, k, n_items)["ndcg"]
        log.info("search rank=%d reg_param=%g alpha=%g validation ndcg@%d=%.4f",
                 params.rank, params.reg_param, params.alpha, k, ndcg)
        if "als" not in kept or ndcg > kept["ndcg"]:
            if "als" in kept:
                release_als(kept["als"])
            kept.update(als=als, ndcg=ndcg)
        else:
            release_als(als)
        return ndcg

    params, tried = search_als(
        base=AlsParams.from_config(mc), method=mc.search_method, max_fits=mc.search_max_fits, score=score,
        values={"rank": mc.search_rank, "reg_param": mc.search_reg_param, "alpha": mc.search_alpha})
    trials: list[dict[str, Any]] = [
        {"fit": n, "method": mc.search_method, "rank": p.rank, "reg_param": p.reg_param, "alpha": p.alpha,
         f"validation_ndcg@{k}": round(v, 5)} for n, (p, v) in enumerate(tried, start=1)]
    # Validation users are recommended to at their validation start, as test users at theirs.
    fit_model = at_weeks(fit_fused(fit, fit_features.item_vectors, fit_features.user_profiles,
                                   fit_features.item_sentiment, mc, params, als=kept["als"]), bounds, "test_start")
    with stage("fit.ranker"):
        rows = ranker_rows(fit_model, seen, val_relevant, val_users, mc)
        release(fit_model)
        counts = materialised(relevant_counts(val_relevant, fit))
        ranker, ranker_choice = choose_ranker(
            rows, counts, kind=mc.ranker, k=mc.k, reg_param=mc.ranker_reg, negatives=mc.ranker_pair_negatives,
            seed=mc.seed, trees=TreeSettings(mc.ranker_trees, mc.ranker_tree_depth, mc.ranker_learning_rate))
    if ranker.trees is None:
        log.info("ranker %s coef %s", ranker_choice, dict(zip(RANKER_FEATURES, [round(c, 4) for c in ranker.coef])))
    else:
        log.info("ranker %s: %d boosted trees", ranker_choice, mc.ranker_trees)
    cold_slot: dict[str, Any] = {}
    if mc.cold_slot and mc.k >= 2:
        with stage("fit.cold_slot"):
            cold_slot = _cold_slot(rows, ranker, mc.k, counts, mc)
        ranker = replace(ranker, cold_floor=cold_slot["floor"])
        log.info("cold slot floor %s (validation %s)", cold_slot["floor"], cold_slot["chosen"])

    with stage("fit.refit"):
        cutoff = interactions.agg(F.max("last_ts")).first()[0]
        features = materialised_features(
            side_features(interactions, item_embeddings, reviews, review_embeddings, cutoff, cfg.features))
        als = fit_als(interactions, mc, params)
        model = fit_fused(interactions, features.item_vectors, features.user_profiles, features.item_sentiment,
                          mc, params, als=als)
    return Fitted(model, ranker, params, trials, features, fit, validation, fit_features, cutoff, als,
                  ranker_rows=rows, made_cold=made_cold, cold_slot=cold_slot, ranker_choice=ranker_choice)


def tuning_users(users: DataFrame, max_users: int, seed: int) -> DataFrame:
    """At most ``max_users`` of ``users`` ``[user_id]``: those with the smallest seeded hash.

    The search scores every validation user against every item and the ranker's rows are
    about 200 candidates per user: both grow with users, while a 10-feature ranker and a
    search's NDCG are as well determined by a few ten thousand users.
    """
    if users.count() <= max_users:
        return users
    return users.orderBy(F.xxhash64("user_id", F.lit(seed)), "user_id").limit(max_users)


def relevant_counts(relevant_rows: DataFrame, fit: DataFrame) -> DataFrame:
    """``[user_id, n_relevant, n_cold_relevant]``: each user's relevant items of a period, and
    those of them without an interaction in ``fit`` (cold)."""
    cold_positive = relevant_rows.join(fit.select("item_id").distinct(), "item_id", "left_anti")
    return (relevant_rows.groupBy("user_id").agg(F.count(F.lit(1)).alias("n_relevant"))
            .join(cold_positive.groupBy("user_id").agg(F.count(F.lit(1)).alias("n_cold_relevant")), "user_id", "left")
            .fillna({"n_cold_relevant": 0}))


def _cold_slot(rows: DataFrame, ranker: RankerParams, k: int, counts: DataFrame, mc: ModelConfig) -> dict[str, Any]:
    """The cold slot's validation curve and floor: ``model.cold_slot_floor`` when set, else
    calibrated (:func:`fusionrec.model.ranker.calibrate_cold_floor`). Cold: no fit-period interaction."""
    fixed = (mc.cold_slot_floor,) if mc.cold_slot_floor is not None else ()
    curve = cold_slot_curve(rows, ranker, k, counts, floors=fixed)
    floor = mc.cold_slot_floor if mc.cold_slot_floor is not None else calibrate_cold_floor(
        curve, mc.cold_slot_max_ndcg_loss)
    chosen = next((p for p in curve if p["floor"] == floor), None) if floor is not None else curve[0]
    return {"floor": floor, "calibrated": mc.cold_slot_floor is None, "max_ndcg_loss": mc.cold_slot_max_ndcg_loss,
            "k": k, "chosen": chosen, "curve": curve}


def release(model: FusedModel) -> None:
    """Drop the cached tables of a model that is no longer needed (memory, not correctness)."""
    for df in (model.user_factors, model.item_factors, model.als_user_factors, model.sessions, model.popularity,
               model.item_weeks):
        df.unpersist()


def release_als(als: AlsFactors) -> None:
    """Drop the cached tables of an ALS fit that is no longer needed (memory, not correctness)."""
    for df in (als.users, als.items, als.user_ids, als.item_ids,
               *((als.model.userFactors, als.model.itemFactors) if als.model is not None else ())):
        if df is not None:
            df.unpersist()


# ---- lake I/O -------------------------------------------------------------------------

@dataclass(frozen=True)
class TrainingTables:
    """The lake tables the model is fitted on, full history (the evaluation cuts them itself)."""

    #: gold.interactions
    interactions: DataFrame
    #: [item_id, embedding ARRAY<FLOAT>] of embeddings.item_embeddings
    item_embeddings: DataFrame
    #: gold.reviews and embeddings.review_embeddings (both or neither)
    reviews: DataFrame | None = None
    review_embeddings: DataFrame | None = None
    #: silver.events [user_id, item_id, rating, ts, weight]: lets a time cut re-aggregate interactions exactly
    events: DataFrame | None = None


def read_training_tables(lake: Lake) -> TrainingTables:
    """gold.interactions and embeddings.item_embeddings (required); reviews and silver.events (optional)."""
    interactions = lake.read("gold.interactions")
    events = lake.read_optional("silver.events")
    item_embeddings = lake.read("embeddings.item_embeddings")
    reviews = lake.read_optional("gold.reviews")
    review_embeddings = lake.read_optional("embeddings.review_embeddings")
    if reviews is None or review_embeddings is None:
        reviews = review_embeddings = None
    return TrainingTables(
        interactions=interactions, item_embeddings=item_embeddings.select("item_id", "embedding"),
        reviews=reviews, review_embeddings=review_embeddings,
        events=events.select("user_id", "item_id", "rating", "ts", "weight") if events is not None else None)


def fusion_params(fitted: Fitted, cfg: Config) -> FusionParams:
    """What the serving bundle and ``fusionrec recommend`` need besides the factor tables."""
    mc = cfg.model
    return FusionParams(
        als=fitted.params, max_iter=mc.max_iter, checkpoint_interval=mc.checkpoint_interval, seed=mc.seed,
        text_to_item_factor=fitted.model.item_map, text_to_user_factor=fitted.model.user_map,
        ranker=fitted.ranker, train_cutoff=fitted.cutoff, candidates_n=mc.candidates_n, k=mc.k,
        min_user_interactions=mc.min_user_interactions, recent_weeks=fitted.model.recent_weeks,
        now_week=fitted.model.now_week, search=fitted.trials, degraded=fitted.model.degraded,
        cold_slot=fitted.cold_slot or {}, ranker_choice=fitted.ranker_choice or {})


def write_model(lake: Lake, fitted: Fitted, cfg: Config) -> FusionParams:
    """model.user_factors, model.item_factors (Delta, overwrite), the fusion parameters, and the
    fitted ``ALSModel`` with its id indexes (:func:`fusionrec.model.als.save_als`)."""
    lake.overwrite("model.user_factors", fitted.model.user_factors.select("user_id", "factors", "source"))
    lake.overwrite("model.item_factors",
                   fitted.model.item_factors.select("item_id", "factors", "source", "text_log_popularity"))
    if fitted.als is not None:
        save_als(lake, fitted.als)
    params = fusion_params(fitted, cfg)
    lake.write_text(FUSION_PARAMS, params.to_json())
    return params


def load_model(lake: Lake, cfg: Config, tables: TrainingTables) -> tuple[FusedModel, FusionParams]:
    """The fused model written by :func:`write_model`, completed with side features and
    popularity recomputed from ``tables`` (the same lake tables training read)."""
    spark = lake.spark
    text = lake.read_text(FUSION_PARAMS)
    if text is None:
        raise MissingInputError(f"{lake.uri(FUSION_PARAMS)}: no fusion parameters; run 'fusionrec train' first")
    try:
        params = FusionParams.from_json(text)
    except InputError as exc:
        raise InputError(f"{lake.uri(FUSION_PARAMS)}: {exc}") from None
    users = lake.read("model.user_factors")
    items = with_text_log_popularity(lake.read("model.item_factors"))
    interactions = tables.interactions
    feats = side_features(interactions, tables.item_embeddings, tables.reviews, tables.review_embeddings,
                          params.train_cutoff, cfg.features)
    sentiment = (feats.item_sentiment.select("item_id", F.col("sentiment_mean").alias("item_sentiment"))
                 if feats.item_sentiment is not None
                 else spark.createDataFrame([], "item_id STRING, item_sentiment DOUBLE"))
    model = FusedModel(
        user_factors=users, item_factors=items,
        als_user_factors=users.where(F.col("source") == "als").select("user_id", "factors"),
        sessions=session_vectors(interactions, items.where(F.col("source") == "als"), cfg.model.session_items).cache(),
        item_vectors=normalised(feats.item_vectors.select("item_id", "vector"), "vector").cache(),
        user_profiles=normalised(feats.user_profiles.select("user_id", "vector"), "vector").cache(),
        popularity=popularity(interactions).cache(), sentiment=sentiment,
        item_map=params.text_to_item_factor, user_map=params.text_to_user_factor, als_params=params.als, counts={},
        item_weeks=item_weeks(interactions).cache(), now_week=params.now_week, recent_weeks=params.recent_weeks,
        degraded=params.degraded)
    return model, params
