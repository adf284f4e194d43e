"""Assemble the serving bundle from the model stage's Delta tables and parameters.

Reads (Delta versions recorded in :attr:`BuiltBundle.inputs`):

- ``model.user_factors``, ``model.item_factors`` and ``<lake.root>/model/fusion_params.json``;
- ``features.item_vectors``, ``features.user_profiles`` and ``features.item_sentiment``;
- ``gold.item_documents`` (titles) and ``gold.interactions`` (seen items, liked items, popularity).

Aggregations (popularity, liked-item lists) run in Spark; what reaches the driver is
bounded by the catalogue and the users, which is what a serving model holds in memory
anyway.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from fusionrec.config import Config
from fusionrec.lake import Lake, LakeMissingError
from fusionrec.model.foldin import item_gram
from fusionrec.model.fusion import item_weeks, recent_popularity, session_vectors
from fusionrec.model.ranker import NEUTRAL_SENTIMENT
from fusionrec.model.train import FUSION_PARAMS
from fusionrec.model.scoring import Ranker
from fusionrec.registry.bundle import ModelBundle, csr_from_lists

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
    params: dict[str, Any]


def read_fusion_params(lake: Lake) -> dict[str, Any]:
    params = lake.read_json(FUSION_PARAMS, written_by="train")
    for key in ("rank", "text_to_user_factor"):
        if key not in params:
            raise ValueError(f"{lake.uri(FUSION_PARAMS)}: missing key '{key}'")
    return params


def read_bundle_inputs(lake: Lake) -> tuple[dict[str, DataFrame], list[TableInput]]:
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


def _matrix(values: Any, n: int, width: int, field_name: str) -> np.ndarray:
    """Stack per-row float arrays into (n, width) float32; a wrong length names the field."""
    out = np.zeros((n, width), dtype=np.float32)
    for row, value in enumerate(values):
        if value is None:
            continue
        array = np.asarray(value, dtype=np.float32)
        if array.shape != (width,):
            raise ValueError(f"{field_name}: row {row} has {array.shape[0]} values, expected {width}")
        out[row] = array
    return out


def assemble_bundle(frames: dict[str, DataFrame], params: dict[str, Any], cfg: Config) -> ModelBundle:
    """The bundle from the input DataFrames (keys ``layer.name``) and the fusion parameters."""
    rank = int(params["rank"])
    dimension = cfg.embed.dimension
    interactions = frames["gold.interactions"]

    popularity = interactions.groupBy("item_id").agg(F.count(F.lit(1)).alias("n_interactions"))
    now = interactions.sparkSession.createDataFrame([(int(params["now_week"]),)], "week LONG")
    recent = recent_popularity(item_weeks(interactions), now, int(params["recent_weeks"])).drop("week")
    catalogue = (
        frames["model.item_factors"].select("item_id", "factors")
        .join(frames["gold.item_documents"].select("item_id", "title"), "item_id", "full")
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

    # Liked = positively rated (or, without a rating, any interaction), most recent first.
    positive = F.col("rating").isNull() | (F.col("rating") >= F.lit(cfg.evaluate.positive_rating))
    per_user = interactions.groupBy("user_id").agg(
        F.collect_list(F.struct("item_id", F.col("weight").cast("double").alias("weight"),
                                F.unix_timestamp("last_ts").cast("double").alias("ts"))).alias("seen_rows"),
        F.slice(
            F.sort_array(F.collect_list(F.when(positive, F.struct(F.col("last_ts"), F.col("item_id")))), asc=False),
            1, cfg.model.reason_max_liked,
        ).alias("liked"),
    )
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
    liked = [[item_index[r["item_id"]] for r in (row if row is not None else ()) if r["item_id"] in item_index]
             for row in users["liked"]]
    seen_indptr, seen_indices = csr_from_lists(seen)
    liked_indptr, liked_indices = csr_from_lists(liked)

    text_to_user = np.asarray(params["text_to_user_factor"], dtype=np.float32)
    ranker = Ranker.from_json(params["ranker"]) if params.get("ranker") else None
    sentiment = catalogue["sentiment_mean"].astype("float64").fillna(NEUTRAL_SENTIMENT).to_numpy(np.float32)
    counts = catalogue["n_interactions"].astype("float64").fillna(0.0).to_numpy()
    return ModelBundle(
        item_ids=item_ids,
        titles=titles,
        item_factors=_matrix(catalogue["factors"], len(item_ids), rank, "model.item_factors.factors"),
        item_vectors=_matrix(catalogue["vector"], len(item_ids), dimension, "features.item_vectors.vector"),
        log_popularity=np.log1p(counts).astype(np.float32),
        item_sentiment=sentiment,
        recent_popularity=catalogue["recent_popularity"].astype("float64").fillna(0.0).to_numpy(np.float32),
        user_ids=users["user_id"].astype(str).to_numpy(),
        user_factors=_matrix(users["factors"], len(users), rank, "model.user_factors.factors"),
        user_sessions=_matrix(users["session"], len(users), rank, "session vectors (model.item_factors)"),
        user_profiles=_matrix(users["profile"], len(users), dimension, "features.user_profiles.vector"),
        seen_indptr=seen_indptr, seen_indices=seen_indices,
        liked_indptr=liked_indptr, liked_indices=liked_indices,
        text_to_user_factor=text_to_user if text_to_user.size else None,
        ranker=ranker,
        candidates_n=int(params.get("candidates_n", cfg.model.candidates_n)),
        default_k=int(params.get("k", cfg.model.k)),
        meta={"train_cutoff": params.get("train_cutoff"), "rank": rank, "als": params.get("als", {}),
              "session_items": cfg.model.session_items, "default_event_weight": cfg.ingest.weight_view,
              "train_cutoff_epoch": float(seen_last_ts.max()) if seen_last_ts.size else 0.0},
        seen_weights=seen_weights, seen_last_ts=seen_last_ts, gram=item_gram(frames["model.item_factors"]),
    )


def build_bundle(lake: Lake, cfg: Config) -> BuiltBundle:
    """Read the model stage's outputs at their current versions and assemble the bundle."""
    params = read_fusion_params(lake)
    frames, inputs = read_bundle_inputs(lake)
    bundle = assemble_bundle(frames, params, cfg)
    bundle.meta["inputs"] = {t.qualified: t.version for t in inputs}
    log.info("model bundle: %d items, %d users, rank %d, ranker=%s", bundle.n_items, len(bundle.user_ids),
             bundle.rank, bundle.ranker is not None)
    return BuiltBundle(bundle, inputs, params)
