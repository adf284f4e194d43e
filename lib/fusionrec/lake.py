"""The Delta Lake layout: where every table lives and what its columns are.

``<lake.root>/<layer>/<table>``, layers:

- ``bronze``: raw rows as received + ingest metadata (source, file, batch id, ingest time);
- ``silver``: typed, cleaned, deduplicated rows with conformed (pseudonymised) ids;
- ``quarantine``: every rejected row with its raw record, reason code and batch id;
- ``gold``: model inputs (interactions, item documents, reviews) and outputs (recommendations);
- ``embeddings``: text vectors keyed by content hash;
- ``features``: item vectors, user profiles, sentiment;
- ``model``: ALS factors.

The schemas below are the contract between stages: a stage may add columns, but
never drops or renames these.
"""

from __future__ import annotations

from fusionrec.config import Config

__all__ = ["LAYERS", "SCHEMAS", "table_path"]

LAYERS = ("bronze", "silver", "quarantine", "gold", "embeddings", "features", "model")

#: Contract schemas (Spark DDL) of the tables that cross stage boundaries.
SCHEMAS: dict[str, str] = {
    # One row per accepted behaviour event; weight from ingest.event_weights.
    "silver.events": (
        "event_id STRING NOT NULL, user_id STRING NOT NULL, item_id STRING NOT NULL, "
        "event_type STRING NOT NULL, rating DOUBLE, ts TIMESTAMP NOT NULL, weight DOUBLE NOT NULL, "
        "source STRING NOT NULL, batch_id STRING NOT NULL"
    ),
    # One row per user-item pair: implicit-feedback confidence for ALS.
    "gold.interactions": (
        "user_id STRING NOT NULL, item_id STRING NOT NULL, weight DOUBLE NOT NULL, "
        "n_events INT NOT NULL, first_ts TIMESTAMP NOT NULL, last_ts TIMESTAMP NOT NULL, rating DOUBLE"
    ),
    # One document per item: title, description, categories and brand assembled into `text`.
    "gold.item_documents": (
        "item_id STRING NOT NULL, title STRING, text STRING NOT NULL, categories ARRAY<STRING>, "
        "brand STRING, price DOUBLE, updated_ts TIMESTAMP"
    ),
    "gold.reviews": (
        "review_id STRING NOT NULL, user_id STRING NOT NULL, item_id STRING NOT NULL, rating DOUBLE, "
        "text STRING NOT NULL, ts TIMESTAMP NOT NULL, item_known BOOLEAN NOT NULL"
    ),
    "embeddings.item_embeddings": (
        "item_id STRING NOT NULL, content_hash STRING NOT NULL, embedding ARRAY<FLOAT> NOT NULL, "
        "model_id STRING NOT NULL, created_ts TIMESTAMP NOT NULL"
    ),
    "embeddings.review_embeddings": (
        "review_id STRING NOT NULL, content_hash STRING NOT NULL, embedding ARRAY<FLOAT> NOT NULL, "
        "model_id STRING NOT NULL, created_ts TIMESTAMP NOT NULL"
    ),
    # Texts that got no vector: empty, duplicate id, or a failed/invalid model output.
    "quarantine.embedding_failures": (
        "source STRING NOT NULL, record_id STRING NOT NULL, content_hash STRING, reason STRING NOT NULL, "
        "detail STRING, n_chars INT NOT NULL, text_preview STRING, model_id STRING NOT NULL, "
        "created_ts TIMESTAMP NOT NULL"
    ),
    # Side features (fusionrec.features): unit vectors, one row per item / user / review.
    "features.item_vectors": "item_id STRING, vector ARRAY<FLOAT>",
    "features.user_profiles": "user_id STRING, vector ARRAY<FLOAT>, n_items BIGINT, n_reviews BIGINT",
    "features.review_sentiment": "review_id STRING, item_id STRING, score DOUBLE",
    "features.item_sentiment": "item_id STRING, sentiment_mean DOUBLE, sentiment_count BIGINT",
    "gold.recommendations": (
        "user_id STRING NOT NULL, rank INT NOT NULL, item_id STRING NOT NULL, score DOUBLE NOT NULL, "
        "reason STRING"
    ),
}


def table_path(cfg: Config, layer: str, name: str) -> str:
    """Location of table ``name`` in ``layer`` under ``lake.root``."""
    if layer not in LAYERS:
        raise ValueError(f"lake layer {layer!r} is not one of {', '.join(LAYERS)}")
    return f"{cfg.lake.root.rstrip('/')}/{layer}/{name}"
