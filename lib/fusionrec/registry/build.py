"""Assemble the serving bundle from the model stage's Delta tables and parameters.

Reads (Delta versions recorded in :attr:`BuiltBundle.inputs`):

- ``model.user_factors``, ``model.item_factors`` and ``<lake.root>/model/fusion_params.json``;
- ``features.item_vectors``, ``features.user_profiles`` and ``features.item_sentiment``;
- ``gold.item_documents`` (titles, categories) and ``gold.interactions`` (seen items, liked
  items, popularity).

Aggregations (popularity, liked-item lists) run in Spark; what reaches the driver is
bounded by the catalogue and the users, which is what a serving model holds in memory
anyway.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from fusionrec.config import Config
from fusionrec.ingest.privacy import key_file
from fusionrec.lake import Lake, LakeMissingError
from fusionrec.model.foldin import item_gram
from fusionrec.model.fusion import item_weeks, recent_popularity, session_vectors, with_text_log_popularity
from fusionrec.model.params import FusionParams
from fusionrec.model.ranker import NEUTRAL_SENTIMENT
from fusionrec.model.scoring import Ranker, stack_rows
from fusionrec.model.train import FUSION_PARAMS
from fusionrec.registry.bundle import ModelBundle, csr_from_lists
from fusionrec.validation.feedback import liked_items

__all__ = ["BUNDLE_INPUTS", "assemble_bundle", "build_bundle", "BuiltBundle", "read_bundle_tables",
           "read_fusion_params", "TableInput"]

log = logging.getLogger(__name__)


#: Tables the bundle is built from, as (layer, name).
BUNDLE_INPUTS: tuple[tuple[str, str], ...] = (
    ("model", "user_factors"),
    ("model", "item_factors"),
    ("features", "item_vectors"),
    ("features", "user_profiles"),
    ("features", "item_sentiment"),
    ("gold", "item_documents"),
    ("gold", "interactions"),
)


@dataclass(frozen=True)
class TableInput:
    """A Delta table read by a stage, at the version that was read."""

    layer: str
    name: str
    path: str
    version: int

    @property
    def qualified(self) -> str:
        return f"{self.layer}.{self.name}"


@dataclass(frozen=True)
class BuiltBundle:
    bundle: ModelBundle
    inputs: list[TableInput]
    params: FusionParams


def read_fusion_params(lake: Lake) -> FusionParams:
    return lake.read_document(FUSION_PARAMS, written_by="train", parse=FusionParams.from_json)


def read_bundle_tables(lake: Lake) -> tuple[dict[str, DataFrame], list[TableInput]]:
    """Every bundle input pinned to its current version (``versionAsOf``), so reads agree."""
    frames, inputs = {}, []
    for layer, name in BUNDLE_INPUTS:
        table = f"{layer}.{name}"
        version = lake.version(table)
        if version is None:
            raise LakeMissingError(f"{lake.path(table)}: Delta table {table} not found; "
                                   "run the stage that writes it first")
        frames[table] = lake.read(table, version)
        inputs.append(TableInput(layer, name, lake.path(table), version))
    return frames, inputs


def assemble_bundle(frames: dict[str, DataFrame], params: FusionParams, cfg: Config) -> ModelBundle:
    """The bundle from the input DataFrames (keys ``layer.name``) and the fusion parameters."""
    rank = params.rank
    dimension = cfg.embed.dimension
    interactions = frames["gold.interactions"]

    popularity = interactions.groupBy("item_id").agg(F.count(F.lit(1)).alias("n_interactions"))
    now = interactions.sparkSession.createDataFrame([(params.now_week,)], "week LONG")
    recent = recent_popularity(item_weeks(interactions), now, params.recent_weeks).drop("week")
    documents = frames["gold.item_documents"].select("item_id", "title", F.col("categories")[0].alias("category"))
    catalogue = (
        with_text_log_popularity(frames["model.item_factors"]).select("item_id", "factors", "text_log_popularity")
        .join(documents, "item_id", "full")
        .join(frames["features.item_vectors"].select("item_id", "vector"), "item_id", "left")
        .join(frames["features.item_sentiment"].select("item_id", "sentiment_mean"), "item_id", "left")
        .join(popularity, "item_id", "left")
        .join(recent, "item_id", "left")
        .orderBy("item_id")
        .toPandas()
    )
    item_ids = catalogue["item_id"].astype(str).to_numpy()
    titles = catalogue["title"].where(catalogue["title"].notna(), catalogue["item_id"]).astype(str).to_numpy()
    item_index = {item: i for i, item in enumerate(item_ids.tolist())}

    liked = liked_items(interactions, n=cfg.model.reason_max_liked, positive_rating=cfg.evaluate.positive_rating,
                        positive_weight=cfg.evaluate.positive_weight)
    # Seen rows carry weight and time: serving folds a user's training interactions in again.
    per_user = (interactions.groupBy("user_id").agg(
        F.collect_list(F.struct("item_id", F.col("weight").cast("double").alias("weight"),
                                F.unix_timestamp("last_ts").cast("double").alias("ts"),
                                F.col("rating").cast("double").alias("rating"))).alias("seen_rows"))
                .join(liked.groupBy("user_id").agg(F.collect_list("item_id").alias("liked")), "user_id", "left"))
    als_items = frames["model.item_factors"].where(F.col("source") == "als")
    sessions = session_vectors(interactions, als_items, cfg.model.session_items)
    users = (
        frames["model.user_factors"].select("user_id", "factors")
        .join(sessions.select("user_id", F.col("factors").alias("session")), "user_id", "full")
        .join(frames["features.user_profiles"].select("user_id", F.col("vector").alias("profile")), "user_id", "full")
        .join(per_user, "user_id", "full")
        .orderBy("user_id")
        .toPandas()
    )
    seen_rows = [[r for r in (row if row is not None else ()) if r["item_id"] in item_index] for row in users["seen_rows"]]
    seen = [[item_index[r["item_id"]] for r in row] for row in seen_rows]
    seen_weights = np.asarray([r["weight"] for row in seen_rows for r in row], dtype=np.float64)
    seen_last_ts = np.asarray([r["ts"] for row in seen_rows for r in row], dtype=np.float64)
    seen_ratings = np.asarray([np.nan if r["rating"] is None else r["rating"] for row in seen_rows for r in row],
                              dtype=np.float64)
    liked = [[item_index[i] for i in (row if row is not None else ()) if i in item_index] for row in users["liked"]]
    seen_indptr, seen_indices = csr_from_lists(seen)
    liked_indptr, liked_indices = csr_from_lists(liked)

    ranker = Ranker.from_json(params.ranker.to_json()) if params.ranker is not None else None
    sentiment = catalogue["sentiment_mean"].astype("float64").fillna(NEUTRAL_SENTIMENT).to_numpy(np.float32)
    counts = catalogue["n_interactions"].astype("float64").fillna(0.0).to_numpy()
    return ModelBundle(
        item_ids=item_ids,
        titles=titles,
        item_categories=catalogue["category"].fillna("").astype(str).to_numpy(),
        item_factors=stack_rows(catalogue["factors"], rank, "model.item_factors.factors")[0],
        item_vectors=stack_rows(catalogue["vector"], dimension, "features.item_vectors.vector")[0],
        log_popularity=np.log1p(counts).astype(np.float32),
        text_log_popularity=catalogue["text_log_popularity"].astype("float64").fillna(0.0).to_numpy(np.float32),
        item_sentiment=sentiment,
        recent_popularity=catalogue["recent_popularity"].astype("float64").fillna(0.0).to_numpy(np.float32),
        user_ids=users["user_id"].astype(str).to_numpy(),
        user_factors=stack_rows(users["factors"], rank, "model.user_factors.factors")[0],
        user_sessions=stack_rows(users["session"], rank, "session vectors (model.item_factors)")[0],
        user_profiles=stack_rows(users["profile"], dimension, "features.user_profiles.vector")[0],
        seen_indptr=seen_indptr, seen_indices=seen_indices,
        liked_indptr=liked_indptr, liked_indices=liked_indices,
        text_to_user_factor=(params.text_to_user_factor.astype(np.float32)
                             if params.text_to_user_factor is not None else None),
        ranker=ranker,
        candidates_n=params.candidates_n,
        default_k=params.k,
        meta={"train_cutoff": params.train_cutoff.isoformat() if params.train_cutoff else None, "rank": rank,
              "als": params.to_dict()["als"], "degraded": list(params.degraded),
              "session_items": cfg.model.session_items, "default_event_weight": cfg.ingest.weight_view,
              "reason_max_liked": cfg.model.reason_max_liked, "profile_half_life_days": cfg.features.profile_half_life_days, "positive_rating": cfg.evaluate.positive_rating,
              "positive_weight": cfg.evaluate.positive_weight,
              # Where serving finds the pseudonym key: the variable's name and the lake's local
              # key file's path, never the key (fusionrec.ingest.privacy.serving_key).
              "pseudonym_key_env": cfg.ingest.pseudonym_key_env, "pseudonym_key_file": str(key_file(cfg)),
              "train_cutoff_epoch": float(seen_last_ts.max()) if seen_last_ts.size else 0.0},
        seen_weights=seen_weights, seen_last_ts=seen_last_ts, seen_ratings=seen_ratings, gram=item_gram(frames["model.item_factors"]),
    )


def build_bundle(lake: Lake, cfg: Config) -> BuiltBundle:
    """Read the model stage's outputs at their current versions and assemble the bundle."""
    params = read_fusion_params(lake)
    frames, inputs = read_bundle_tables(lake)
    bundle = assemble_bundle(frames, params, cfg)
    bundle.meta["inputs"] = {t.qualified: t.version for t in inputs}
    log.info("model bundle: %d items, %d users, rank %d, ranker=%s", bundle.n_items, len(bundle.user_ids),
             bundle.rank, bundle.ranker is not None)
    return BuiltBundle(bundle, inputs, params)
