"""The fused recommender as an ``mlflow.pyfunc`` model: requests in, ranked items out, no Spark.

Request (one row per user), at least one of ``user_id``, ``text`` or ``liked_items``:

- ``user_id`` (string): a user the model was trained on; an unknown id with no text or
  liked items gets the popularity fallback, flagged in the output;
- ``text`` (string): a new user described in words, embedded with the packaged ONNX
  sentence model (same tokenizer, mean pooling and normalisation as the item vectors);
- ``liked_items`` (list of item ids): a new user described by a few catalogue items
  (folded in with the implicit-ALS user step, each with a view's weight);
- ``recent_items`` (list of item ids, oldest first): what the user did since the model
  was trained; folded in at request time with the user's training interactions (a new
  user's are the liked and recent items), see :meth:`ModelBundle.folded_query`;
- ``recent_weights`` (list of numbers, optional): the weights of ``recent_items`` (as
  ingest weighs events; default a view's weight);
- ``k`` (integer, optional): how many items (default: the model's ``k``).

Over REST (``mlflow models serve``), send ``{"dataframe_records": [...]}``; rows of one
batch should name the same columns, with ``null`` where a field is unused, because MLflow
converts the request column by column against the signature.

Response: one row per recommended item with ``request_id`` (the request's row number),
``rank`` (1-based), ``item_id``, ``title``, ``score``, ``reason`` and ``fallback``.

A malformed request raises :class:`InvalidRequest`, an ``MlflowException`` (HTTP 400 when
served) and a ``ValueError``, whose message names the row and the field.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import mlflow.pyfunc
import numpy as np
import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.models import ModelSignature
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE
from mlflow.types.schema import Array, ColSpec, DataType, Schema

from fusionrec.registry.bundle import ModelBundle, Ranked

__all__ = ["BUNDLE_ARTIFACT", "MAX_REQUEST_ROWS", "REQUEST_FIELDS", "RESPONSE_COLUMNS", "SIGNATURE",
           "TEXT_MODEL_ARTIFACT", "FusionRecommender", "input_example", "InvalidRequest"]

REQUEST_FIELDS = ("user_id", "text", "liked_items", "k", "recent_items", "recent_weights")
RESPONSE_COLUMNS = ("request_id", "rank", "item_id", "title", "score", "reason", "fallback")
#: Artifact keys of the logged model.
BUNDLE_ARTIFACT = "bundle"
TEXT_MODEL_ARTIFACT = "text_model"
#: A request carries at most this many rows (one per user); larger batches belong in Spark.
MAX_REQUEST_ROWS = 1000

SIGNATURE = ModelSignature(
    inputs=Schema([
        ColSpec(DataType.string, "user_id", required=False),
        ColSpec(DataType.string, "text", required=False),
        ColSpec(Array(DataType.string), "liked_items", required=False),
        ColSpec(DataType.long, "k", required=False),
        ColSpec(Array(DataType.string), "recent_items", required=False),
        ColSpec(Array(DataType.double), "recent_weights", required=False),
    ]),
    outputs=Schema([
        ColSpec(DataType.long, "request_id"),
        ColSpec(DataType.long, "rank"),
        ColSpec(DataType.string, "item_id"),
        ColSpec(DataType.string, "title"),
        ColSpec(DataType.double, "score"),
        ColSpec(DataType.string, "reason"),
        ColSpec(DataType.boolean, "fallback"),
    ]),
)


class InvalidRequest(MlflowException, ValueError):
    """A prediction request is malformed; the message names the row and the field."""

    def __init__(self, message: str) -> None:
        super().__init__(message, error_code=INVALID_PARAMETER_VALUE)


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


class FusionRecommender(mlflow.pyfunc.PythonModel):
    """Loads the numpy bundle and the ONNX text encoder; ``predict`` ranks items per request."""

    # predict validates requests itself against the explicit SIGNATURE (optional columns that
    # type hints cannot express), so MLflow's type-hint wrapper and its warning are skipped.
    _skip_type_hint_validation = True

    def __init__(self, max_k: int = 100, max_text_length: int = 256) -> None:
        self.max_k = max_k
        self.max_text_length = max_text_length

    def load_context(self, context: Any) -> None:
        self._bundle = ModelBundle.load(context.artifacts[BUNDLE_ARTIFACT])
        _single_threaded_blas()
        text_model = context.artifacts.get(TEXT_MODEL_ARTIFACT)
        self._encoder = None
        if text_model:
            # The same embedding code the tests check Spark NLP against; onnxruntime only.
            from fusionrec.embed.model import ModelFiles
            from fusionrec.embed.reference import OnnxReferenceEmbedder

            self._encoder = OnnxReferenceEmbedder(ModelFiles(Path(text_model)), max_length=self.max_text_length,
                                                  threads=1)

    @property
    def bundle(self) -> ModelBundle:
        return self._bundle

    # No type hints on predict: MLflow would try to derive a signature from them; the explicit
    # SIGNATURE describes the request table instead.
    def predict(self, context, model_input, params=None):  # type: ignore[no-untyped-def]
        requests = self._validate(model_input)
        texts = [r["text"] for r in requests if r["text"] is not None]
        vectors = iter(self._encode(texts)) if texts else iter(())
        frames = []
        for request_id, request in enumerate(requests):
            text_vector = next(vectors) if request["text"] is not None else None
            ranked = self._rank(request, text_vector)
            frames.append(self._frame(request_id, ranked))
        return pd.concat(frames, ignore_index=True) if frames else _empty_response()

    # -- internals -----------------------------------------------------------------------
    def _encode(self, texts: list[str]) -> np.ndarray:
        if self._encoder is None:
            raise InvalidRequest("text: this model was logged without a text encoder; send user_id or liked_items")
        return self._encoder.embed(texts)

    def _rank(self, request: dict[str, Any], text_vector: np.ndarray | None) -> Ranked:
        bundle, k = self._bundle, request["k"]
        user = bundle.user_index(request["user_id"]) if request["user_id"] is not None else None
        recent, weights = request["recent"], request["recent_weights"]
        if user is not None:
            if recent.size:
                return bundle.recommend(bundle.folded_query(user, recent, weights), k)
            return bundle.recommend(bundle.known_user_query(user), k)
        liked = request["liked"]
        if recent.size:  # a new user's events: the liked items, then the recent ones
            events = np.concatenate([liked, recent])
            all_weights = np.concatenate([np.full(liked.size, bundle.default_event_weight), weights])
            return bundle.recommend(bundle.folded_query(None, events, all_weights, text_vector), k)
        if text_vector is None and liked.size == 0:
            return bundle.popular(k, np.empty(0, dtype=np.int64))
        return bundle.recommend(bundle.new_user_query(text_vector, liked), k)

    def _frame(self, request_id: int, ranked: Ranked) -> pd.DataFrame:
        n = ranked.items.size
        return pd.DataFrame({
            "request_id": np.full(n, request_id, dtype=np.int64),
            "rank": np.arange(1, n + 1, dtype=np.int64),
            "item_id": self._bundle.item_ids[ranked.items].astype(object),
            "title": self._bundle.titles[ranked.items].astype(object),
            "score": ranked.scores.astype(np.float64),
            "reason": pd.Series(ranked.reasons, dtype=object),
            "fallback": np.full(n, ranked.fallback, dtype=bool),
        })

    def _validate(self, model_input: Any) -> list[dict[str, Any]]:
        """Check every row before scoring any; return clean requests (``k`` resolved, liked as indices)."""
        if not isinstance(model_input, pd.DataFrame):
            raise InvalidRequest(f"request: expected a table (pandas DataFrame) of requests, "
                                 f"got {type(model_input).__name__}")
        unknown = sorted(set(map(str, model_input.columns)) - set(REQUEST_FIELDS))
        if unknown:
            raise InvalidRequest(f"request: unknown column(s) {unknown}; expected some of {list(REQUEST_FIELDS)}")
        if not {"user_id", "text", "liked_items", "recent_items"} & set(model_input.columns):
            raise InvalidRequest("request: needs a user_id, text or liked_items column (or recent_items)")
        if len(model_input) == 0:
            raise InvalidRequest("request: no rows")
        if len(model_input) > MAX_REQUEST_ROWS:
            raise InvalidRequest(f"request: {len(model_input)} rows, at most {MAX_REQUEST_ROWS} per request")
        bundle = self._bundle
        k_limit = min(self.max_k, bundle.n_items)
        clean = []
        for row_number, row in enumerate(model_input.to_dict("records")):
            where = f"row {row_number}"
            user_id, text, liked_raw, k, recent_raw, weights_raw = (row.get(f) for f in REQUEST_FIELDS)
            if _missing(user_id):
                user_id = None
            elif not isinstance(user_id, str):
                raise InvalidRequest(f"{where}: user_id must be a string, got {type(user_id).__name__} {user_id!r}")
            if _missing(text):
                text = None
            elif not isinstance(text, str):
                raise InvalidRequest(f"{where}: text must be a string, got {type(text).__name__}")
            elif not text.strip():
                raise InvalidRequest(f"{where}: text is empty")
            liked = self._liked_indices(where, liked_raw)
            recent, recent_weights = self._recent(where, recent_raw, weights_raw)
            if user_id is None and text is None and liked.size == 0 and recent.size == 0:
                raise InvalidRequest(f"{where}: give a user_id, a text or liked_items (or recent_items)")
            if _missing(k):
                k = bundle.default_k
            if isinstance(k, (bool, np.bool_)) or not isinstance(k, (int, np.integer, float, np.floating)) \
                    or not math.isfinite(float(k)) or float(k) != int(k):
                raise InvalidRequest(f"{where}: k must be a whole number, got {k!r}")
            k = int(k)
            if not 1 <= k <= k_limit:
                raise InvalidRequest(f"{where}: k={k} is out of range; 1 <= k <= {k_limit} "
                                     f"(max_k {self.max_k}, catalogue {bundle.n_items} items)")
            clean.append({"user_id": user_id, "text": text, "liked": liked, "k": k, "recent": recent,
                          "recent_weights": recent_weights})
        return clean

    def _recent(self, where: str, items: Any, weights: Any) -> tuple[np.ndarray, np.ndarray]:
        """Catalogue indices of ``recent_items`` (unknown items dropped: no factors to fold in)
        and their weights, in the order given."""
        none = (np.empty(0, dtype=np.int64), np.empty(0))
        if _missing_list(items):
            if not _missing_list(weights):
                raise InvalidRequest(f"{where}: recent_weights without recent_items")
            return none
        if isinstance(items, str) or not isinstance(items, (list, tuple, np.ndarray)):
            raise InvalidRequest(f"{where}: recent_items must be a list of item ids, got {type(items).__name__}")
        items = list(items)
        bad = [item for item in items if not isinstance(item, str)]
        if bad:
            raise InvalidRequest(f"{where}: recent_items must be item id strings, got {bad[0]!r}")
        if _missing_list(weights):
            values = [self._bundle.default_event_weight] * len(items)
        else:
            if isinstance(weights, str) or not isinstance(weights, (list, tuple, np.ndarray)):
                raise InvalidRequest(f"{where}: recent_weights must be a list of numbers")
            values = list(weights)
            if len(values) != len(items):
                raise InvalidRequest(f"{where}: recent_weights has {len(values)} numbers for {len(items)} recent_items")
            if any(isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, float, np.integer, np.floating))
                   or not math.isfinite(float(v)) for v in values):
                raise InvalidRequest(f"{where}: recent_weights must be finite numbers")
        known = [(self._bundle.item_index(item), float(w)) for item, w in zip(items, values)]
        kept = [(i, w) for i, w in known if i is not None]
        if not kept:
            return none
        return np.asarray([i for i, _ in kept], dtype=np.int64), np.asarray([w for _, w in kept], dtype=np.float64)

    def _liked_indices(self, where: str, liked: Any) -> np.ndarray:
        if liked is None or (isinstance(liked, float) and math.isnan(liked)):
            return np.empty(0, dtype=np.int64)
        if isinstance(liked, str) or not isinstance(liked, (list, tuple, np.ndarray)):
            raise InvalidRequest(f"{where}: liked_items must be a list of item ids, got {type(liked).__name__}")
        items = list(liked)
        if not items:
            raise InvalidRequest(f"{where}: liked_items is an empty list")
        bad = [item for item in items if not isinstance(item, str)]
        if bad:
            raise InvalidRequest(f"{where}: liked_items must be item id strings, got {bad[0]!r}")
        known = [self._bundle.item_index(item) for item in items]
        found = [i for i in known if i is not None]
        if not found:
            raise InvalidRequest(f"{where}: none of liked_items {items[:5]} is in the catalogue")
        return np.unique(np.asarray(found, dtype=np.int64))


def _missing_list(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _single_threaded_blas() -> None:
    """One BLAS thread per serving process.

    A request is a handful of matrix-vector products over the catalogue; threading them
    gains little and, on a busy machine, spinning BLAS threads multiply the tail latency
    (measured in bench/serving.py). Throughput comes from server workers instead.
    """
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # optional: without it BLAS keeps its default
        return
    threadpool_limits(limits=1, user_api="blas")


def _empty_response() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype=t) for c, t in zip(
        RESPONSE_COLUMNS, ("int64", "int64", "object", "object", "float64", "object", "bool"))})


def input_example(bundle: ModelBundle) -> pd.DataFrame:
    """A known user, a sentence and two liked items: the three kinds of request."""
    user = str(bundle.user_ids[0]) if len(bundle.user_ids) else None
    popular = [str(bundle.item_ids[i]) for i in np.argsort(-bundle.log_popularity, kind="stable")[:2]]
    return pd.DataFrame({
        "user_id": [user, None, None],
        "text": [None, "a funny adventure story for the whole family", None],
        "liked_items": [None, None, popular],
        "k": [5, 5, 5],
    })
