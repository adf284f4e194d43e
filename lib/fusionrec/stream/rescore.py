"""Top-K of the users a micro-batch touched, from their folded-in factors and moved profiles.

Each touched user's factors and session vector come from
:func:`fusionrec.model.foldin.fold_in_users` (Spark, one pandas group per user); the top-K
and its reasons from the serving bundle's scorer (:meth:`ModelBundle.query_for` +
:meth:`ModelBundle.recommend`), broadcast to the tasks: the same numpy code a prediction
request with ``recent_items`` runs, so the stream and serving agree.
"""

from __future__ import annotations

from typing import Any, Callable, Iterator

import numpy as np
import pandas as pd
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from fusionrec.model.foldin import fold_in_users
from fusionrec.model.recommend import RECOMMENDATIONS_SCHEMA
from fusionrec.registry.bundle import ModelBundle
from fusionrec.validation.feedback import is_positive

__all__ = ["STATE_SCHEMA", "fold_in", "rescore"]

STATE_SCHEMA = "user_id STRING, factors ARRAY<FLOAT>, session ARRAY<FLOAT>, n_items INT"


def fold_in(bundle: ModelBundle, interactions: DataFrame, item_factors: DataFrame) -> DataFrame:
    """``[user_id, factors, session, n_items]``: every user of ``interactions`` (all of each
    user's gold interactions) folded in against ``item_factors`` with the bundle's YᵀY and
    ALS parameters."""
    als = bundle.meta["als"]
    return fold_in_users(interactions, item_factors, gram_matrix=bundle.gram, alpha=float(als["alpha"]),
                         reg_param=float(als["reg_param"]), session_items=bundle.session_items)


def rescore(bundle: ModelBundle, folded: DataFrame, interactions: DataFrame, k: int,
            shared: Any = None) -> DataFrame:
    """``[user_id, rank, item_id, score, reason]``: the top ``k`` of every user of ``folded``
    (:func:`fold_in`), their ``interactions`` excluded (popularity, flagged by its reason,
    for a user with neither factors nor profile); reasons name only positive interactions
    (:func:`fusionrec.validation.feedback.is_positive`).

    ``shared``: ``bundle`` already broadcast (a stream broadcasts it once per query)."""
    shared = shared if shared is not None else folded.sparkSession.sparkContext.broadcast(bundle)
    meta = bundle.meta
    positive = is_positive(float(meta.get("positive_rating", 0.0)), float(meta.get("positive_weight", 0.0)))
    per_user = interactions.groupBy("user_id").agg(F.collect_list(F.struct(
        "item_id", F.col("weight").cast("double").alias("weight"), F.unix_timestamp("last_ts").cast("double").alias("ts"),
        positive.alias("positive"))).alias("items"))
    rows = folded.join(per_user, "user_id", "left")
    return rows.mapInPandas(_score(shared, k), RECOMMENDATIONS_SCHEMA)


def _score(shared, k: int) -> Callable[[Iterator[pd.DataFrame]], Iterator[pd.DataFrame]]:
    def score(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        bundle: ModelBundle = shared.value
        for batch in batches:
            out: dict[str, list] = {"user_id": [], "rank": [], "item_id": [], "score": [], "reason": []}
            for row in batch.itertuples(index=False):
                rows = [(bundle.item_index(r["item_id"]), r["ts"], bool(r["positive"]), r["weight"])
                        for r in (row.items if row.items is not None else ())]
                rows = [r for r in rows if r[0] is not None]
                items = np.asarray([r[0] for r in rows], dtype=np.int64)
                last_ts = np.asarray([r[1] for r in rows], dtype=np.float64)
                positive = np.asarray([r[2] for r in rows], dtype=bool)
                weights = np.asarray([r[3] for r in rows], dtype=np.float64)
                factors = _vector(row.factors)
                query = bundle.query_for(bundle.user_index(row.user_id), factors=factors if factors is not None
                                         and np.any(factors) else None, session=_vector(row.session),
                                         items=items, last_ts=last_ts, positive=positive, weights=weights)
                ranked = bundle.recommend(query, k)
                m = ranked.items.size
                out["user_id"] += [row.user_id] * m
                out["rank"] += list(range(1, m + 1))
                out["item_id"] += bundle.item_ids[ranked.items].tolist()
                out["score"] += ranked.scores.astype(float).tolist()
                out["reason"] += list(ranked.reasons)
            yield pd.DataFrame(out)
    return score


def _vector(value) -> np.ndarray | None:
    return None if value is None else np.asarray(value, dtype=np.float32)
