"""The evaluation harness: one split, every model fitted on training data only, one table.

Protocol (see :mod:`fusionrec.validation.split`):

1. per-user chronological split of the interactions into train / test, and the
   cold-item draw (their training interactions and training reviews are removed);
   training rows are re-aggregated from the events before each user's test start, so a
   pair's weight, ``last_ts`` and rating contain no test-period event;
2. reviews are cut at each author's test start; side features (item vectors, profiles,
   the sentiment classifier) are computed from the training split only;
3. :func:`fusionrec.model.train.fit_pipeline` on the training split: it splits training
   again into fit / validation periods, scores the ALS grid on validation NDCG@K and
   trains the ranker on validation labels, then refits on the whole training split — the
   test period is never read for any choice;
4. every model (popularity, als, content, hybrid) is scored on the test period at each K,
   plus the cold-item slice for the users who interacted with cold items in test, in two
   ways: ``recall`` counts the cold items in the model's top-K over the whole catalogue;
   ``ranked_recall`` / ``ranked_ndcg`` rank the cold items among themselves (the usual
   cold-start protocol, e.g. Volkovs, Yu & Poutanen, DropoutNet, NeurIPS 2017): it asks
   whether the text puts the right new items first, without their competing against
   items with a training history. All four use the same fitted factors, profiles and
   seen-item exclusion.

Before scoring, :func:`check_no_leakage` counts every training-side row (interactions of
ALS, the fit and validation periods of tuning and the ranker, reviews) whose *last* event
is at or after its user's test start, and the run fails unless all counts are 0.

Known limit: an item's document text is taken as it is in the lake. Where documents embed
user-generated text (MovieLens tags are also folded into the item document at ingest),
a tag written in the test period reaches that item's vector; the tags themselves, as
reviews, are cut at their author's test start like every other review.
"""

from __future__ import annotations

import logging

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from fusionrec.config import Config
from fusionrec.evaluate.baselines import model_top_k
from fusionrec.evaluate.results import ColdItemMetrics, EvaluationResults, ModelMetrics
from fusionrec.validation.metrics import item_slice_recall, ranking_metrics
from fusionrec.validation.split import Split, chronological_split, filter_before, relevant
from fusionrec.model.fusion import at_weeks, only_items
from fusionrec.model.train import Fitted, TrainingTables, fit_pipeline, materialised

__all__ = ["MODELS", "check_no_leakage", "evaluate", "fit_on_training", "make_split",
           "score_models"]

log = logging.getLogger(__name__)

MODELS = ("popularity", "als", "content", "hybrid")


def _training_reviews(reviews: DataFrame | None, split: Split) -> DataFrame | None:
    """Reviews written before their author's test start, minus reviews of cold items."""
    if reviews is None:
        return None
    return filter_before(reviews, split.boundaries, "ts").join(split.cold_items, "item_id", "left_anti")


def make_split(inputs: TrainingTables, cfg: Config) -> Split:
    """The split, computed once and kept (every model and metric reads it many times)."""
    ec = cfg.evaluate
    split = chronological_split(inputs.interactions, ec.test_fraction, ec.cold_item_fraction, ec.seed,
                                inputs.item_embeddings.select("item_id"), inputs.events)
    return Split(train=materialised(split.train), test=materialised(split.test),
                 boundaries=materialised(split.boundaries), cold_items=materialised(split.cold_items),
                 train_events=materialised(split.train_events) if split.train_events is not None else None)


def fit_on_training(inputs: TrainingTables, split: Split, cfg: Config) -> Fitted:
    """Everything fitted from the training split (and reviews before each author's test start)."""
    reviews = _training_reviews(inputs.reviews, split)
    return fit_pipeline(split.train, inputs.item_embeddings, materialised(reviews) if reviews is not None else None,
                        inputs.review_embeddings, cfg, events=split.train_events)


def check_no_leakage(split: Split, fitted: Fitted, reviews: DataFrame | None = None) -> dict[str, int]:
    """Counts of training-side rows at or after their user's test start (all must be 0).

    Checks the interactions ALS and the maps were fitted on, the fit and validation
    periods used for tuning and the ranker (each by its *last* event, so that a pair first
    seen before the test start but aggregated with later events counts as a leak), and
    the reviews (when given).
    """
    b = split.boundaries
    def late(df: DataFrame, ts: str) -> int:
        return df.join(b, "user_id").where(F.col(ts) >= F.col("test_start")).count()
    found = {
        "train": late(split.train, "last_ts"),
        "fit": late(fitted.fit_interactions, "last_ts"),
        "validation": late(fitted.validation_interactions, "last_ts"),
        "test_pairs_in_train": split.train.join(split.test, ["user_id", "item_id"]).count(),
    }
    if reviews is not None:
        found["reviews"] = late(reviews, "ts")
    return found


def evaluate(inputs: TrainingTables, cfg: Config) -> EvaluationResults:
    """Run the whole protocol of the module docstring.

    Parameters
    ----------
    inputs : TrainingTables
        ``gold.interactions``, ``embeddings.item_embeddings`` ``[item_id, embedding]`` and,
        optionally, ``gold.reviews``, ``embeddings.review_embeddings`` and ``silver.events``.
    cfg : Config
        ``evaluate.*`` (split, relevance, K) and ``model.*`` / ``features.*`` (the models).

    Returns
    -------
    EvaluationResults
        ``table``: ``{model, k, precision, recall, ndcg, map, hit_rate, coverage, users}`` per
        model and K; ``cold_items``: ``{model, k, recall, hit_rate, users, ranked_recall,
        ranked_ndcg}``; ``search``, ``chosen``, ``ranker``, ``counts``, ``leakage_checks``
        and ``protocol``.
    """
    inputs = TrainingTables(*(materialised(df) if df is not None else None
                          for df in (inputs.interactions, inputs.item_embeddings, inputs.reviews,
                                     inputs.review_embeddings, inputs.events)))
    split = make_split(inputs, cfg)
    fitted = fit_on_training(inputs, split, cfg)
    return score_models(inputs, split, fitted, cfg)


def score_models(inputs: TrainingTables, split: Split, fitted: Fitted, cfg: Config) -> EvaluationResults:
    """Step 4: every model's top-K on the test period, after re-checking for leakage."""
    ec, mc = cfg.evaluate, cfg.model
    leaks = check_no_leakage(split, fitted, _training_reviews(inputs.reviews, split))
    if any(leaks.values()):
        raise RuntimeError(f"evaluation: test-period data reached training: {leaks}")
    model = at_weeks(fitted.model, split.boundaries, "test_start")
    test_relevant = materialised(relevant(split.test, ec.positive_rating, ec.positive_weight))
    users = materialised(test_relevant.select("user_id").distinct())
    seen = split.train.select("user_id", "item_id")
    catalogue = (inputs.item_embeddings.select("item_id").union(inputs.interactions.select("item_id"))
                 .distinct().count())
    k_max = max(ec.k_list)
    cold_relevant = materialised(test_relevant.join(split.cold_items, "item_id"))
    cold_users = materialised(cold_relevant.select("user_id").distinct())
    cold_model = only_items(model, split.cold_items)
    n_cold = split.cold_items.count()
    table: list[ModelMetrics] = []
    cold: list[ColdItemMetrics] = []
    for name in MODELS:
        top = materialised(model_top_k(name, model, users, seen, k_max, mc, fitted.ranker))
        among_cold = materialised(model_top_k(name, cold_model, cold_users, seen, k_max, mc, fitted.ranker))
        for k in ec.k_list:
            table.append({"model": name, "k": k, **ranking_metrics(top, test_relevant, k, catalogue)})
            ranked = ranking_metrics(among_cold, cold_relevant, k, n_cold)
            cold.append({"model": name, "k": k, **item_slice_recall(top, test_relevant, split.cold_items, k),
                         "ranked_recall": ranked["recall"], "ranked_ndcg": ranked["ndcg"]})
        log.info("evaluated %s: %s cold %s", name, table[-1], cold[-1])
    counts = {"interactions": inputs.interactions.count(), "train_interactions": split.train.count(),
              "test_interactions": split.test.count(), "test_users": users.count(),
              "cold_items": split.cold_items.count(), "catalogue": catalogue, **model.counts}
    return EvaluationResults(
        table=table, cold_items=cold, search=fitted.trials,
        chosen={"rank": fitted.params.rank, "reg_param": fitted.params.reg_param, "alpha": fitted.params.alpha},
        ranker=fitted.ranker.to_json(), counts=counts, leakage_checks=leaks,
        protocol={"test_fraction": ec.test_fraction, "cold_item_fraction": ec.cold_item_fraction,
                  "validation_fraction": ec.validation_fraction, "seed": ec.seed,
                  "relevance": f"rating >= {ec.positive_rating}; without a rating, weight >= {ec.positive_weight}"})
