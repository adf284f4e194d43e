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
   seen-item exclusion;
5. the strong peers of :mod:`fusionrec.evaluate.peers` (EASE, item-kNN; each tuned on the
   same validation period, inside training) and ``<model>+fallback`` (ALS, EASE, item-kNN
   with the popularity fallback of batch and serving for the users without a training
   row) are scored on the same test users with the same metrics. Every row also carries
   the per-user standard error of each ranking metric and the beyond-accuracy measures of
   :mod:`fusionrec.validation.beyond_accuracy`; the hybrid's row, and ``comparison``, hold
   the best peer (highest NDCG@K on test among all other rows: the comparison is against
   the strongest, never a setting choice) and the paired bootstrap 95% interval of hybrid
   minus that peer (:func:`fusionrec.evaluate.significance.paired_bootstrap`, users
   resampled ``BOOTSTRAP_RESAMPLES`` times, seeded by ``evaluate.seed``).

Item texts: documents list tags, and where those are written by users (MovieLens tags,
also ingested as reviews), a tag written only in its author's test period is removed from
the document and the item is re-embedded before anything is fitted
(:func:`cut_item_texts`, :mod:`fusionrec.validation.item_texts`); this needs the items'
fields (``silver.items``) and the sentence model, given as :class:`ItemTexts`.

Before scoring, :func:`check_no_leakage` counts every training-side row (interactions of
ALS, the fit and validation periods of tuning and the ranker, reviews) whose *last* event
is at or after its user's test start, and, with the item texts, every document tag only
written in the test period; the run fails unless all counts are 0.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from typing import Any, Callable

import numpy as np
import pandas as pd
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from fusionrec.config import Config, EmbedConfig
from fusionrec.embed.infer import embed_texts, embedding_pipeline
from fusionrec.embed.texts import prepare_texts
from fusionrec.embed.validate import classify_vectors
from fusionrec.evaluate.baselines import model_top_k
from fusionrec.evaluate.peers import (PEERS, CatalogueTooLarge, PeerFit, fallback_top_k, fit_peer, tune_peer,
                                      with_fallback)
from fusionrec.evaluate.results import ColdItemMetrics, EvaluationResults, ModelMetrics
from fusionrec.evaluate.significance import paired_bootstrap, standard_error
from fusionrec.ingest.gold import item_documents
from fusionrec.validation.beyond_accuracy import beyond_accuracy
from fusionrec.validation.item_texts import cut_item_tags, test_period_tags
from fusionrec.validation.metrics import item_slice_recall, per_user_metrics, ranking_metrics, summarise
from fusionrec.validation.split import (Split, chronological_split, cut_interactions, filter_before, relevant,
                                        user_boundaries)
from fusionrec.model.fusion import at_weeks, only_items
from fusionrec.model.train import Fitted, TrainingTables, fit_pipeline, materialised

__all__ = ["BOOTSTRAP_RESAMPLES", "FALLBACK", "ItemTexts", "MODELS", "check_no_leakage", "cut_item_texts",
           "evaluate", "fit_on_training", "make_split", "score_models", "spark_nlp_embedder", "tune_peers"]

log = logging.getLogger(__name__)

#: The fused model and its parts, scored from one fitted model.
MODELS = ("popularity", "als", "content", "hybrid")
#: Suffix of a model completed by the popularity fallback for users without a training row.
FALLBACK = "+fallback"
#: Models that get a ``+fallback`` row.
WITH_FALLBACK = ("als", *PEERS)
#: Users resampled for the paired bootstrap interval of hybrid minus the best peer.
BOOTSTRAP_RESAMPLES = 1000
#: Per-user metrics (``per_user_metrics`` column -> table column) that get a standard error.
_PER_USER = {"precision": "precision", "recall": "recall", "ndcg": "ndcg", "ap": "map", "hit": "hit_rate"}
#: Metrics compared with the best peer.
COMPARED = ("ndcg", "hit_rate")


@dataclass(frozen=True)
class ItemTexts:
    """What the item documents are made of, so that the evaluation can cut them at the test boundary."""

    #: ``silver.items``: ``[item_id, title, description, categories, tags, brand, price, updated_ts]``
    items: DataFrame
    #: ``[item_id, text]`` -> ``[item_id, embedding ARRAY<FLOAT>]`` (e.g. :func:`spark_nlp_embedder`)
    embed: Callable[[DataFrame], DataFrame]


def spark_nlp_embedder(spark: SparkSession, cfg: EmbedConfig) -> Callable[[DataFrame], DataFrame]:
    """The embed stage's sentence model as a function ``[item_id, text] -> [item_id, embedding]``
    (texts normalised as the stage does; empty texts and failed vectors are left out)."""
    def embed(documents: DataFrame) -> DataFrame:
        prepared = prepare_texts(documents, "item_id", "text", cfg).where(F.col("reason").isNull())
        vectors = classify_vectors(embed_texts(cfg, prepared, embedding_pipeline(spark, cfg)), cfg.dimension)
        good = vectors.where(F.col("reason").isNull()).select("content_hash", "embedding")
        return prepared.join(good, "content_hash").select(F.col("record_id").alias("item_id"), "embedding")
    return embed


def cut_item_texts(inputs: TrainingTables, texts: ItemTexts, boundaries: DataFrame
                   ) -> tuple[TrainingTables, DataFrame, int]:
    """``(inputs, document_tags, n_items)``: ``inputs`` with new vectors for the items whose
    documents held a tag written only in the test period (documents rebuilt without it by
    :func:`fusionrec.ingest.gold.item_documents` and embedded with ``texts.embed``), the tags
    ``[item_id, tags]`` of the documents the evaluation uses, and how many items were re-embedded."""
    tags = texts.items.select("item_id", "tags")
    if inputs.reviews is None:
        return inputs, tags, 0
    changed = materialised(cut_item_tags(texts.items, inputs.reviews, boundaries)
                           .join(inputs.item_embeddings.select("item_id"), "item_id", "left_semi"))
    n_changed = changed.count()
    if n_changed == 0:
        return inputs, tags, 0
    vectors = texts.embed(item_documents(changed).select("item_id", "text"))
    item_embeddings = (inputs.item_embeddings.select("item_id", "embedding")
                       .join(changed.select("item_id"), "item_id", "left_anti")
                       .unionByName(vectors.select("item_id", F.col("embedding").cast("array<float>"))))
    used = (tags.join(changed.select("item_id"), "item_id", "left_anti")
            .unionByName(changed.select("item_id", "tags")))
    log.info("item texts: %d documents re-embedded without their test-period tags", n_changed)
    return replace(inputs, item_embeddings=materialised(item_embeddings)), materialised(used), n_changed


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


def check_no_leakage(split: Split, fitted: Fitted, reviews: DataFrame | None = None, *,
                     document_tags: DataFrame | None = None, all_reviews: DataFrame | None = None) -> dict[str, int]:
    """Counts of training-side rows at or after their user's test start (all must be 0).

    Checks the interactions ALS and the maps were fitted on, the fit and validation
    periods used for tuning and the ranker (each by its *last* event, so that a pair first
    seen before the test start but aggregated with later events counts as a leak), the
    reviews (when given) and, with ``document_tags`` ``[item_id, tags]`` (the tags of the item
    documents used) and ``all_reviews`` (every review, of every period), the document tags
    written only in their authors' test periods (:func:`fusionrec.validation.item_texts.test_period_tags`).
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
    if document_tags is not None and all_reviews is not None:
        found["item_texts"] = test_period_tags(document_tags, all_reviews, b).count()
    return found


def evaluate(inputs: TrainingTables, cfg: Config, *, texts: ItemTexts | None = None,
             categories: DataFrame | None = None) -> EvaluationResults:
    """Run the whole protocol of the module docstring.

    Parameters
    ----------
    inputs : TrainingTables
        ``gold.interactions``, ``embeddings.item_embeddings`` ``[item_id, embedding]`` and,
        optionally, ``gold.reviews``, ``embeddings.review_embeddings`` and ``silver.events``.
    cfg : Config
        ``evaluate.*`` (split, relevance, K) and ``model.*`` / ``features.*`` (the models).
    texts : ItemTexts, optional
        The items' fields and the sentence model: item documents are then cut at the test
        boundary (:func:`cut_item_texts`); without, the lake's item vectors are used as they are.
    categories : DataFrame, optional
        ``[item_id, categories]`` (``gold.item_documents``): the popularity fallback's categories.

    Returns
    -------
    EvaluationResults
        ``table``: ``{model, k, precision, recall, ndcg, map, hit_rate, coverage, users,
        <metric>_se, diversity, novelty, catalog_coverage, popularity_percentile}`` per
        model and K (the hybrid's row also ``best_peer_<m>``, ``<m>_diff``, ``<m>_diff_low``,
        ``<m>_diff_high``); ``cold_items``: ``{model, k, recall, hit_rate, users[, ranked_recall,
        ranked_ndcg]}``; ``comparison``, ``peers``, ``search``, ``chosen``, ``ranker``,
        ``counts``, ``leakage_checks`` and ``protocol``.
    """
    inputs = TrainingTables(*(materialised(df) if df is not None else None
                          for df in (inputs.interactions, inputs.item_embeddings, inputs.reviews,
                                     inputs.review_embeddings, inputs.events)))
    split = make_split(inputs, cfg)
    document_tags, n_cut = None, 0
    if texts is not None:
        inputs, document_tags, n_cut = cut_item_texts(inputs, texts, split.boundaries)
    fitted = fit_on_training(inputs, split, cfg)
    results = score_models(inputs, split, fitted, cfg, categories=categories, document_tags=document_tags)
    results.counts["item_texts_cut"] = n_cut
    return results


def tune_peers(split: Split, cfg: Config) -> list[PeerFit | str]:
    """Each peer of :data:`fusionrec.evaluate.peers.PEERS` tuned on the validation period inside
    training (the one :func:`fusionrec.model.train.fit_pipeline` uses); a sentence instead where
    the catalogue is too large for it."""
    ec = cfg.evaluate
    bounds = user_boundaries(split.train, ec.validation_fraction)
    fit, validation, _ = cut_interactions(split.train, bounds, split.train_events)
    fit = materialised(fit)
    validation_relevant = materialised(relevant(validation, ec.positive_rating, ec.positive_weight))
    out: list[PeerFit | str] = []
    for name in PEERS:
        try:
            out.append(tune_peer(name, fit=fit, validation_relevant=validation_relevant, k=max(ec.k_list)))
        except CatalogueTooLarge as exc:
            log.warning("peer %s left out: %s", name, exc)
            out.append(f"{name}: {exc}")
    return out


def _per_user(top: DataFrame, test_relevant: DataFrame, k: int) -> pd.DataFrame:
    return per_user_metrics(top, test_relevant, k).toPandas().set_index("user_id").sort_index()


def score_models(inputs: TrainingTables, split: Split, fitted: Fitted, cfg: Config, *,
                 categories: DataFrame | None = None, document_tags: DataFrame | None = None,
                 peers: list[PeerFit | str] | None = None) -> EvaluationResults:
    """Steps 4 and 5: every model's top-K on the test period, after re-checking for leakage.

    ``peers``: the tuned peers (default: :func:`tune_peers`); ``document_tags``: the tags of
    the item documents used (:func:`cut_item_texts`), checked against every review.
    """
    ec, mc = cfg.evaluate, cfg.model
    leaks = check_no_leakage(split, fitted, _training_reviews(inputs.reviews, split),
                             document_tags=document_tags, all_reviews=inputs.reviews)
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

    tops: dict[str, DataFrame] = {name: materialised(model_top_k(name, model, users, seen, k_max, mc, fitted.ranker))
                                  for name in MODELS}
    peers = tune_peers(split, cfg) if peers is None else peers
    for peer in peers:
        if isinstance(peer, PeerFit):
            tops[peer.name] = materialised(fit_peer(peer, train=split.train, users=users, k=k_max))
    fallback = materialised(fallback_top_k(popularity=fitted.model.popularity, categories=categories,
                                           users=users, k=k_max))
    for name in WITH_FALLBACK:
        if name in tops:
            tops[name + FALLBACK] = materialised(with_fallback(tops[name], fallback=fallback, train=split.train))
    order = [n for n in ("popularity", "als", "als" + FALLBACK, "content", "ease", "ease" + FALLBACK,
                         "item_knn", "item_knn" + FALLBACK, "hybrid") if n in tops]

    counts_pd = fitted.model.popularity.select("item_id", "n_interactions").toPandas()
    train_counts = dict(zip(counts_pd["item_id"], counts_pd["n_interactions"].astype(int)))
    lists = {name: tops[name].select("user_id", "rank", "item_id").toPandas() for name in order}
    recommended = sorted({i for frame in lists.values() for i in frame["item_id"]})
    vectors_pd = (fitted.model.item_vectors
                  .join(users.sparkSession.createDataFrame([(i,) for i in recommended], "item_id STRING"), "item_id")
                  .toPandas())
    vectors = {i: np.asarray(v, dtype=np.float64) for i, v in zip(vectors_pd["item_id"], vectors_pd["vector"])}

    table: list[ModelMetrics] = []
    cold: list[ColdItemMetrics] = []
    per_user: dict[tuple[str, int], pd.DataFrame] = {}
    for name in order:
        top = tops[name]
        among_cold = (materialised(model_top_k(name, cold_model, cold_users, seen, k_max, mc, fitted.ranker))
                      if name in MODELS else None)
        for k in ec.k_list:
            users_k = per_user[(name, k)] = _per_user(top, test_relevant, k)
            listed = lists[name]
            covered = listed.loc[(listed["rank"] <= k) & listed["user_id"].isin(users_k.index), "item_id"].nunique()
            row: dict[str, Any] = {"model": name, "k": k, **summarise(users_k, covered, catalogue)}
            for column, metric in _PER_USER.items():
                row[f"{metric}_se"] = standard_error(users_k[column].to_numpy())
            row.update(beyond_accuracy(lists[name], train_counts=train_counts, vectors=vectors, k=k))
            table.append(row)  # type: ignore[arg-type]
            entry: dict[str, Any] = {"model": name, "k": k,
                                     **item_slice_recall(top, test_relevant, split.cold_items, k)}
            if among_cold is not None:
                ranked = ranking_metrics(among_cold, cold_relevant, k, n_cold)
                entry.update(ranked_recall=ranked["recall"], ranked_ndcg=ranked["ndcg"])
            cold.append(entry)  # type: ignore[arg-type]
        log.info("evaluated %s: %s cold %s", name, table[-1], cold[-1])

    comparison = _compare_with_best_peer(table, per_user, ec.k_list, seed=ec.seed)
    counts = {"interactions": inputs.interactions.count(), "train_interactions": split.train.count(),
              "test_interactions": split.test.count(), "test_users": users.count(),
              "cold_items": split.cold_items.count(), "catalogue": catalogue, **model.counts}
    peer_report = {(p.name if isinstance(p, PeerFit) else p.split(":", 1)[0]):
                   ({"chosen": p.value, "trials": p.trials} if isinstance(p, PeerFit) else {"refused": p})
                   for p in peers}
    return EvaluationResults(
        table=table, cold_items=cold, search=fitted.trials,
        chosen={"rank": fitted.params.rank, "reg_param": fitted.params.reg_param, "alpha": fitted.params.alpha},
        ranker={**fitted.ranker.summary(), "choice": fitted.ranker_choice}, counts=counts, leakage_checks=leaks,
        comparison=comparison, peers=peer_report,
        protocol={"test_fraction": ec.test_fraction, "cold_item_fraction": ec.cold_item_fraction,
                  "validation_fraction": ec.validation_fraction, "seed": ec.seed,
                  "relevance": f"rating >= {ec.positive_rating}; without a rating, weight >= {ec.positive_weight}",
                  "bootstrap": f"paired, {BOOTSTRAP_RESAMPLES} resamples of the test users, seed {ec.seed}, "
                               "percentile 95% interval",
                  "best_peer": "highest NDCG@K on test among every row but the hybrid"})


def _compare_with_best_peer(table: list[ModelMetrics], per_user: dict[tuple[str, int], pd.DataFrame],
                            k_list: list[int], *, seed: int) -> list[dict[str, Any]]:
    """Per K: the best peer by NDCG@K and, for each of :data:`COMPARED`, hybrid minus it with its
    paired bootstrap interval; the figures are also written into the hybrid's table row."""
    out: list[dict[str, Any]] = []
    for k in k_list:
        rows = {r["model"]: r for r in table if r["k"] == k}
        if "hybrid" not in rows or len(rows) < 2:
            continue
        best = max((r for name, r in rows.items() if name != "hybrid"), key=lambda r: r["ndcg"])
        hybrid, peer = per_user[("hybrid", k)], per_user[(best["model"], k)]
        aligned = hybrid.join(peer, how="inner", lsuffix="_h", rsuffix="_p")
        entry: dict[str, Any] = {"k": k, "best_peer": best["model"]}
        for metric in COMPARED:
            column = next(c for c, m in _PER_USER.items() if m == metric)
            interval = paired_bootstrap(aligned[f"{column}_h"].to_numpy(), aligned[f"{column}_p"].to_numpy(),
                                        resamples=BOOTSTRAP_RESAMPLES, seed=seed)
            ratio = rows["hybrid"][metric] / best[metric] if best[metric] else None
            entry[metric] = {"hybrid": rows["hybrid"][metric], "best_peer": best[metric], "ratio": ratio,
                             **interval}
            hybrid_row: dict[str, Any] = rows["hybrid"]  # type: ignore[assignment]
            hybrid_row[f"best_peer_{metric}"] = best[metric]
            hybrid_row[f"{metric}_diff"] = interval["diff"]
            hybrid_row[f"{metric}_diff_low"] = interval["low"]
            hybrid_row[f"{metric}_diff_high"] = interval["high"]
        out.append(entry)
    return out
