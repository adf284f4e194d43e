"""The fused recommender as an ``mlflow.pyfunc`` model: requests in, ranked items out, no Spark.

Request: one row per user, with at least one of ``user_id``, ``text``, ``liked_items`` or
``recent_items``; :data:`REQUEST_SCHEMA` lists every field with its type, default and range.

- ``user_id``: the consumer's own (raw) user id. The model knows users only by keyed
  pseudonym; it pseudonymises the id at request time with the key of the serving
  environment (:func:`fusionrec.ingest.privacy.serving_key`: ``$FUSIONREC_PSEUDONYM_KEY``,
  a key file named by ``$FUSIONREC_PSEUDONYM_KEY_FILE``, or the lake's local key file whose
  path the model records). The key is read on the first request that carries a user id and
  is never stored in the model; without it that request fails with one line saying so
  (requests by text or items still work).
- ``text``: the user described in words, embedded with the packaged ONNX sentence model;
  with a known ``user_id`` it is an extra signal: the profile becomes
  normalise(stored profile + text vector).
- ``liked_items``: a new user described by a few catalogue items (folded in with the
  implicit-ALS user step, each with a view's weight); with a known ``user_id`` they are
  folded in like ``recent_items``.
- ``recent_items`` / ``recent_weights``: what the user did since the model was trained,
  oldest first, folded in at request time with the user's training interactions
  (:meth:`ModelBundle.folded_query`).
- ``k``: how many items, an integer in 1..``registry.max_k`` (default: the model's ``k``).

Over REST (``mlflow models serve``) both ``{"dataframe_records": [...]}`` and
``{"inputs": [...]}`` (records, or columns ``{"inputs": {"user_id": [...], ...}}``) work. The
signature names the fields (all optional) with type ``any``, so MLflow passes the values
through as sent and the model checks them itself: every wrong type or range fails the
whole request with one line naming the row and field (``row 3: k must be an integer
1..100, got 2.5``), an :class:`InvalidRequest` (HTTP 400).

Response: one row per recommended item with ``request_id`` (the request's row number),
``rank`` (1-based), ``item_id``, ``title``, ``score``, ``reason``, ``fallback`` (popular items
instead of a personal ranking) and ``note`` (why an answer is degenerate or what was
ignored; null otherwise). A request with nothing left to recommend gets one row with
``rank`` 0, no item and the reason in ``note``: never zero rows without a reason.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any, NamedTuple

import mlflow.pyfunc
import numpy as np
import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.models import ModelSignature
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE, INVALID_STATE
from mlflow.types.schema import AnyType, ColSpec, DataType, Schema

from fusionrec.embed.files import ModelFiles
from fusionrec.embed.reference import OnnxReferenceEmbedder
from fusionrec.ingest.privacy import PrivacyError, pseudonym, serving_key
from fusionrec.registry.bundle import ModelBundle, Query, Ranked

__all__ = ["BUNDLE_ARTIFACT", "MAX_ID_LENGTH", "MAX_LIST_ITEMS", "MAX_REQUEST_ROWS", "MAX_TEXT_LENGTH",
           "REQUEST_FIELDS", "REQUEST_SCHEMA", "RESPONSE_COLUMNS", "SIGNATURE", "TEXT_MODEL_ARTIFACT",
           "FieldSpec", "FusionRecommender", "InvalidRequest", "ServingKeyError", "input_example"]

RESPONSE_COLUMNS = ("request_id", "rank", "item_id", "title", "score", "reason", "fallback", "note")
#: Artifact keys of the logged model.
BUNDLE_ARTIFACT = "bundle"
TEXT_MODEL_ARTIFACT = "text_model"
#: Limits of one request: rows (one per user; larger batches belong in Spark), characters of
#: a text (the encoder reads its first ``embed.max_sentence_length`` tokens anyway), characters
#: of a user id, and ids in one list field.
MAX_REQUEST_ROWS = 1000
MAX_TEXT_LENGTH = 4000
MAX_ID_LENGTH = 256
MAX_LIST_ITEMS = 1000


class FieldSpec(NamedTuple):
    """One request field: JSON type, default and accepted range (the README's table)."""

    name: str
    type: str
    default: str
    range: str


#: The request schema, checked row by row by :meth:`FusionRecommender.predict`.
REQUEST_SCHEMA = (
    FieldSpec("user_id", "string", "none", f"1..{MAX_ID_LENGTH} characters; your own (raw) user id"),
    FieldSpec("text", "string", "none", f"1..{MAX_TEXT_LENGTH} characters, not blank"),
    FieldSpec("liked_items", "list of strings", "none", f"1..{MAX_LIST_ITEMS} item ids"),
    FieldSpec("recent_items", "list of strings", "none", f"0..{MAX_LIST_ITEMS} item ids, oldest first"),
    FieldSpec("recent_weights", "list of numbers", "a view's weight each",
              "finite, >= 0, one per recent item"),
    FieldSpec("k", "integer", "the model's k", "1..registry.max_k (100)"),
)
REQUEST_FIELDS = tuple(f.name for f in REQUEST_SCHEMA)

SIGNATURE = ModelSignature(
    # Type any: MLflow passes values through as sent, and predict checks them with one
    # message per row and field (MLflow's own conversion would coerce 2.5 or "5" into k, or
    # fail with the whole table in its message).
    inputs=Schema([ColSpec(AnyType(), name, required=False) for name in REQUEST_FIELDS]),
    outputs=Schema([
        ColSpec(DataType.long, "request_id"),
        ColSpec(DataType.long, "rank"),
        ColSpec(DataType.string, "item_id", required=False),
        ColSpec(DataType.string, "title", required=False),
        ColSpec(DataType.double, "score", required=False),
        ColSpec(DataType.string, "reason", required=False),
        ColSpec(DataType.boolean, "fallback"),
        ColSpec(DataType.string, "note", required=False),
    ]),
)

NOTE_UNKNOWN_USER = "unknown user_id: popular items"
NOTE_NO_HISTORY = "no history to rank by: popular items"
NOTE_NOTHING_LEFT = "nothing left to recommend: every catalogue item is already seen or liked"


class _OneLineError(MlflowException):
    """An MlflowException whose message stays the one line it was created with.

    MLflow's scoring server rewrites the message of an error raised by ``predict`` into
    ``Failed to predict data '<the whole request table>'. Error: ...`` before answering; the
    client should get the line naming the row and field (and the server's log not the data).
    """

    @property  # type: ignore[override]
    def message(self) -> str:
        return self._line

    @message.setter
    def message(self, value: str) -> None:
        if not hasattr(self, "_line"):  # set once, by MlflowException.__init__
            self._line = value


class InvalidRequest(_OneLineError, ValueError):
    """A prediction request is malformed; the message names the row and the field (HTTP 400)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, error_code=INVALID_PARAMETER_VALUE)


class ServingKeyError(_OneLineError):
    """The serving environment has no pseudonym key for a request by ``user_id`` (HTTP 500)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, error_code=INVALID_STATE)


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _shown(value: Any) -> str:
    """A request value in a message: short, one line."""
    if isinstance(value, (float, np.floating)):
        return repr(float(value))
    if isinstance(value, np.generic):
        value = value.item()
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


@dataclasses.dataclass
class _Request:
    user_id: str | None
    text: str | None
    liked: np.ndarray
    recent: np.ndarray
    recent_weights: np.ndarray
    k: int
    notes: list[str]


class FusionRecommender(mlflow.pyfunc.PythonModel):
    """Loads the numpy bundle and the ONNX text encoder; ``predict`` ranks items per request."""

    # predict validates requests itself against REQUEST_SCHEMA, so MLflow's type-hint wrapper
    # and its warning are skipped.
    _skip_type_hint_validation = True

    def __init__(self, max_k: int = 100, max_text_length: int = 256) -> None:
        self.max_k = max_k
        self.max_text_length = max_text_length

    def load_context(self, context: Any) -> None:
        """Load the bundle and the encoder; ``max_k`` and ``max_text_length`` of the model's
        ``model_config`` (as logged by :func:`fusionrec.registry.packaging.log_serving_model`)
        override the constructor's."""
        config = context.model_config or {}
        self.max_k = int(config.get("max_k", self.max_k))
        self.max_text_length = int(config.get("max_text_length", self.max_text_length))
        self._bundle = ModelBundle.load(context.artifacts[BUNDLE_ARTIFACT])
        self._key: bytes | None = None
        _single_threaded_blas()
        text_model = context.artifacts.get(TEXT_MODEL_ARTIFACT)
        self._encoder = None
        if text_model:
            # The same embedding code the tests check Spark NLP against; onnxruntime only.
            self._encoder = OnnxReferenceEmbedder(ModelFiles(Path(text_model)), max_length=self.max_text_length,
                                                  threads=1)

    @property
    def bundle(self) -> ModelBundle:
        return self._bundle

    # No type hints on predict: MLflow would try to derive a signature from them.
    def predict(self, context, model_input, params=None):  # type: ignore[no-untyped-def]
        requests = self._validate(model_input)
        if any(r.user_id is not None for r in requests):
            key = self._pseudonym_key()
            for r in requests:
                if r.user_id is not None:
                    r.user_id = pseudonym(r.user_id, key=key)
        texts = [r.text for r in requests if r.text is not None]
        vectors = iter(self._encode(texts)) if texts else iter(())
        frames = []
        for request_id, request in enumerate(requests):
            text_vector = next(vectors) if request.text is not None else None
            ranked = self._rank(request, text_vector)
            frames.append(self._frame(request_id, request, ranked))
        return pd.concat(frames, ignore_index=True)

    # -- internals -----------------------------------------------------------------------
    def _pseudonym_key(self) -> bytes:
        """The serving environment's key, read once (see the module docstring)."""
        if self._key is None:
            meta = self._bundle.meta
            try:
                self._key = serving_key(env_name=str(meta.get("pseudonym_key_env", "FUSIONREC_PSEUDONYM_KEY")),
                                        local_key_file=meta.get("pseudonym_key_file"))
            except PrivacyError as exc:
                raise ServingKeyError(f"user_id: {exc}") from None
        return self._key

    def _encode(self, texts: list[str]) -> np.ndarray:
        if self._encoder is None:
            raise InvalidRequest("text: this model was logged without a text encoder; send user_id or liked_items")
        return self._encoder.embed(texts)

    def _rank(self, request: _Request, text_vector: np.ndarray | None) -> Ranked:
        bundle, k = self._bundle, request.k
        user = bundle.user_index(request.user_id) if request.user_id is not None else None
        liked, recent, weights = request.liked, request.recent, request.recent_weights
        if request.user_id is not None and user is None:
            if text_vector is None and liked.size == 0 and recent.size == 0:
                request.notes.append(NOTE_UNKNOWN_USER)
                return bundle.popular(k, np.empty(0, dtype=np.int64))
            request.notes.append("unknown user_id: ranked by the other fields")
        if user is not None:
            events = np.concatenate([liked, recent])
            if events.size:
                all_weights = np.concatenate([np.full(liked.size, bundle.default_event_weight), weights])
                query = bundle.folded_query(user, events, all_weights)
            else:
                query = bundle.known_user_query(user)
            if text_vector is not None:
                query = _with_text(query, text_vector)
        elif recent.size:  # a new user's events: the liked items, then the recent ones
            events = np.concatenate([liked, recent])
            all_weights = np.concatenate([np.full(liked.size, bundle.default_event_weight), weights])
            query = bundle.folded_query(None, events, all_weights, text_vector)
        elif text_vector is None and liked.size == 0:
            request.notes.append(NOTE_NO_HISTORY)
            return bundle.popular(k, np.empty(0, dtype=np.int64))
        else:
            query = bundle.new_user_query(text_vector, liked)
        ranked = bundle.recommend(query, k)
        if ranked.fallback and NOTE_UNKNOWN_USER not in request.notes:
            request.notes.append(NOTE_NO_HISTORY)
        return ranked

    def _frame(self, request_id: int, request: _Request, ranked: Ranked) -> pd.DataFrame:
        n = ranked.items.size
        if n == 0:
            return pd.DataFrame({
                "request_id": np.array([request_id], dtype=np.int64), "rank": np.zeros(1, dtype=np.int64),
                "item_id": [None], "title": [None], "score": [np.nan], "reason": [None],
                "fallback": np.array([ranked.fallback]), "note": ["; ".join(request.notes + [NOTE_NOTHING_LEFT])]})
        notes = list(request.notes)
        if n < request.k:
            notes.append(f"only {n} items left to recommend (k={request.k})")
        return pd.DataFrame({
            "request_id": np.full(n, request_id, dtype=np.int64),
            "rank": np.arange(1, n + 1, dtype=np.int64),
            "item_id": self._bundle.item_ids[ranked.items].astype(object),
            "title": self._bundle.titles[ranked.items].astype(object),
            "score": ranked.scores.astype(np.float64),
            "reason": pd.Series(ranked.reasons, dtype=object),
            "fallback": np.full(n, ranked.fallback, dtype=bool),
            "note": pd.Series(["; ".join(notes) if notes else None] * n, dtype=object),
        })

    def _validate(self, model_input: Any) -> list[_Request]:
        """Check every row before scoring any; return clean requests (``k`` resolved, items as indices)."""
        if isinstance(model_input, dict):  # {"inputs": {...}} columns, when MLflow passes them as a dict
            model_input = pd.DataFrame(model_input)
        elif isinstance(model_input, list) and all(isinstance(r, dict) for r in model_input):
            model_input = pd.DataFrame(model_input)
        if not isinstance(model_input, pd.DataFrame):
            raise InvalidRequest(f"request: expected a table (pandas DataFrame) of requests, "
                                 f"got {type(model_input).__name__}")
        unknown = sorted(set(map(str, model_input.columns)) - set(REQUEST_FIELDS))
        if unknown:
            raise InvalidRequest(f"request: unknown field(s) {unknown}; expected some of {list(REQUEST_FIELDS)}")
        if not {"user_id", "text", "liked_items", "recent_items"} & set(model_input.columns):
            raise InvalidRequest("request: needs a user_id, text, liked_items or recent_items field")
        if len(model_input) == 0:
            raise InvalidRequest("request: no rows")
        if len(model_input) > MAX_REQUEST_ROWS:
            raise InvalidRequest(f"request: {len(model_input)} rows; at most {MAX_REQUEST_ROWS} rows per request")
        return [self._row(f"row {n}", row) for n, row in enumerate(model_input.to_dict("records"))]

    def _row(self, where: str, row: dict[str, Any]) -> _Request:
        notes: list[str] = []
        user_id = row.get("user_id")
        if _missing(user_id):
            user_id = None
        elif not isinstance(user_id, str) or not user_id or len(user_id) > MAX_ID_LENGTH:
            raise InvalidRequest(f"{where}: user_id must be a string of 1..{MAX_ID_LENGTH} characters, "
                                 f"got {_described(user_id)}")
        text = row.get("text")
        if _missing(text):
            text = None
        elif not isinstance(text, str):
            raise InvalidRequest(f"{where}: text must be a string, got {_described(text)}")
        elif len(text) > MAX_TEXT_LENGTH:
            raise InvalidRequest(f"{where}: text must be at most {MAX_TEXT_LENGTH} characters, got {len(text)}")
        elif not text.strip():
            raise InvalidRequest(f"{where}: text is blank")
        liked_ids = self._ids(where, "liked_items", row.get("liked_items"), allow_empty=False)
        recent_ids = self._ids(where, "recent_items", row.get("recent_items"), allow_empty=True)
        weights = self._weights(where, row.get("recent_weights"), recent_ids)
        if user_id is None and text is None and liked_ids is None and not recent_ids:
            raise InvalidRequest(f"{where}: give a user_id, a text, liked_items or recent_items")
        liked = self._indices(liked_ids or [], "liked_items", notes)
        if liked_ids and liked.size == 0 and user_id is None and text is None and not recent_ids:
            raise InvalidRequest(f"{where}: none of liked_items {_shown(liked_ids[:3])} is in the catalogue")
        recent_known = [(self._bundle.item_index(i), w) for i, w in zip(recent_ids or [], weights)]
        if any(i is None for i, _ in recent_known):
            notes.append(f"ignored {sum(i is None for i, _ in recent_known)} recent_items not in the catalogue")
        kept = [(i, w) for i, w in recent_known if i is not None]
        recent = np.asarray([i for i, _ in kept], dtype=np.int64)
        recent_weights = np.asarray([w for _, w in kept], dtype=np.float64)
        return _Request(user_id, text, np.unique(liked), recent, recent_weights, self._k(where, row.get("k")), notes)

    def _k(self, where: str, k: Any) -> int:
        if _missing(k):
            return min(self._bundle.default_k, self.max_k)
        whole = (isinstance(k, (int, np.integer)) and not isinstance(k, (bool, np.bool_))) or (
            isinstance(k, (float, np.floating)) and math.isfinite(k) and float(k).is_integer())
        if not whole or not 1 <= k <= self.max_k:
            raise InvalidRequest(f"{where}: k must be an integer 1..{self.max_k}, got {_shown(k)}")
        return int(k)

    @staticmethod
    def _ids(where: str, field: str, value: Any, *, allow_empty: bool) -> list[str] | None:
        if _missing(value):
            return None
        if isinstance(value, str) or not isinstance(value, (list, tuple, np.ndarray)):
            raise InvalidRequest(f"{where}: {field} must be a list of item id strings, got {_described(value)}")
        items = list(value)
        if not items and not allow_empty:
            raise InvalidRequest(f"{where}: {field} is an empty list")
        if len(items) > MAX_LIST_ITEMS:
            raise InvalidRequest(f"{where}: {field} must hold at most {MAX_LIST_ITEMS} item ids, got {len(items)}")
        bad = [item for item in items if not isinstance(item, str)]
        if bad:
            raise InvalidRequest(f"{where}: {field} must be a list of item id strings, got an element {_shown(bad[0])}")
        return items

    def _weights(self, where: str, value: Any, items: list[str] | None) -> list[float]:
        if _missing(value):
            return [self._bundle.default_event_weight] * len(items or [])
        if not items:
            raise InvalidRequest(f"{where}: recent_weights without recent_items")
        if isinstance(value, str) or not isinstance(value, (list, tuple, np.ndarray)):
            raise InvalidRequest(f"{where}: recent_weights must be a list of numbers, got {_described(value)}")
        values = list(value)
        if len(values) != len(items):
            raise InvalidRequest(f"{where}: recent_weights has {len(values)} numbers for {len(items)} recent_items")
        for v in values:
            if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, float, np.integer, np.floating)) \
                    or not math.isfinite(float(v)) or v < 0:
                raise InvalidRequest(f"{where}: recent_weights must be finite numbers >= 0, got {_shown(v)}")
        return [float(v) for v in values]

    def _indices(self, ids: list[str], field: str, notes: list[str]) -> np.ndarray:
        known = [self._bundle.item_index(item) for item in ids]
        missing = sum(i is None for i in known)
        if missing:
            notes.append(f"ignored {missing} {field} not in the catalogue")
        return np.asarray([i for i in known if i is not None], dtype=np.int64)


def _described(value: Any) -> str:
    return f"{type(value).__name__} {_shown(value)}"


def _with_text(query: Query, text_vector: np.ndarray) -> Query:
    """A known user's query with a request text as an extra signal: profile + text, normalised."""
    profile = text_vector if query.profile is None else query.profile + text_vector
    norm = float(np.linalg.norm(profile))
    return dataclasses.replace(query, profile=(profile / norm).astype(np.float32) if norm else query.profile)


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


def input_example(bundle: ModelBundle) -> pd.DataFrame:
    """A sentence and two liked items (no user id: the model holds no raw ids, and the key
    is not there when MLflow checks the example)."""
    popular = [str(bundle.item_ids[i]) for i in np.argsort(-bundle.log_popularity, kind="stable")[:2]]
    return pd.DataFrame({
        "text": ["a funny adventure story for the whole family", None],
        "liked_items": [None, popular],
        "k": [5, 5],
    })
