"""The serving bundle: the fused model as plain numpy arrays, and its scorer.

Everything needed to score one request without Spark: ALS user/item factors (cold
items carry factors from the text-to-factor map), item vectors and user profile
vectors, the text-to-user-factor map for new users, the ranker, the catalogue with
titles, categories, popularity, sentiment, and each user's seen and liked items
(:mod:`fusionrec.validation.feedback`).

Scoring a known user u (factors x_u, unit profile p_u) is
:func:`fusionrec.model.scoring.score_user`, the same code the batch top-K runs in every
Spark task: candidates from ALS, content and the popular lists (seen items excluded),
the ranker's features and score, the top k. Recommendations are made right after
training, so recent popularity is that of the last training weeks. The reason names the
feature with the largest contribution w_k (f_k - mean_k) / std_k and the liked item
closest to the candidate in that space. A user with neither factors nor a profile gets
:func:`fusionrec.model.scoring.popular_fallback`, as in the batch top-K.

A new user is described by a text and/or liked items: profile = normalise(sum of the text
vector and the mean vector of the liked items); factors = the liked items folded in with
the implicit-ALS user step (:mod:`fusionrec.model.foldin`), or [t, 1] . M_user (the ridge
map from a text vector to user factors) for a text alone; session = the mean factor of the
latest liked items.

Events since training (``recent_items``, in time order, with their weights) are folded in
the same way at request time (:meth:`ModelBundle.folded_query`): a known user's training
interactions plus the new ones, against the fixed item factors and the model's YᵀY, as
the stream does for the users it touches.

Their profile moves too. With T(S) = sum_j w_j 2 ** (-(t_ref - t_j) / half_life) v_j, the item
part of :mod:`fusionrec.features.profiles` over the interactions S (a common reference time
only scales T, so directions do not depend on it), the stored unit profile p of a user whose
training interactions are S_0 and whose interactions are now S becomes

    p' = normalise(|T(S_0)| p + T(S) - T(S_0))

which is exactly the batch profile of S for a user without reviews; a user's reviews keep
their direction in p, weighed as if they had the norm of the item part.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from fusionrec.model.foldin import fold_in, latest_first, session_vector
from fusionrec.model.scoring import (
    REASON_POPULAR, Catalogue, Ranker, popular_fallback, popular_order, reasons, score_user)

__all__ = ["ARRAYS_FILE", "META_FILE", "csr_from_lists", "ModelBundle", "Query", "Ranked"]

ARRAYS_FILE = "arrays.npz"
META_FILE = "bundle.json"
_SECONDS_PER_DAY = 86400.0


@dataclass(frozen=True)
class Query:
    """One user to score: factors and/or a profile vector, items to exclude and to explain with."""

    factors: np.ndarray | None
    #: r_u, the mean factor of the user's latest items (see fusionrec.model.fusion.session_vectors)
    session: np.ndarray | None
    profile: np.ndarray | None
    exclude: np.ndarray
    liked: np.ndarray


@dataclass(frozen=True)
class Ranked:
    """Top-k items of one query (catalogue indices), best first."""

    items: np.ndarray
    scores: np.ndarray
    reasons: list[str]
    fallback: bool


@dataclass(frozen=True)
class ModelBundle:
    """The fused model as arrays; rows of the item arrays follow ``item_ids``, user arrays ``user_ids``."""

    item_ids: np.ndarray
    titles: np.ndarray
    #: the item's first category ("" without one): the popularity fallback spreads over them
    item_categories: np.ndarray
    item_factors: np.ndarray
    item_vectors: np.ndarray
    log_popularity: np.ndarray
    item_sentiment: np.ndarray
    #: log(1 + interactions in week ``now_week`` (the last of training) and the weeks before
    #: it, ``recent_weeks`` in all)
    recent_popularity: np.ndarray
    user_ids: np.ndarray
    user_factors: np.ndarray
    #: session vectors r_u (zero rows: none)
    user_sessions: np.ndarray
    user_profiles: np.ndarray
    #: CSR rows per user: every item the user interacted with (excluded from recommendations).
    seen_indptr: np.ndarray
    seen_indices: np.ndarray
    #: CSR rows per user: the liked items (:func:`fusionrec.validation.feedback.liked_items`, named in reasons).
    liked_indptr: np.ndarray
    liked_indices: np.ndarray
    #: (d + 1) x rank, last row the bias; None when the model has no text-to-user map.
    text_to_user_factor: np.ndarray | None
    ranker: Ranker | None
    candidates_n: int
    default_k: int
    meta: dict[str, Any] = field(default_factory=dict)
    #: Fold-in inputs (None in bundles built before fold-in): the weight and last time
    #: (epoch seconds) of every ``seen_indices`` entry, and YᵀY of the ALS item factors.
    seen_weights: np.ndarray | None = None
    seen_last_ts: np.ndarray | None = None
    gram: np.ndarray | None = None
    #: The rating of every ``seen_indices`` entry (NaN: none), for which are positive.
    seen_ratings: np.ndarray | None = None
    #: The log popularity each item's text predicts, used for the items without interactions
    #: (:attr:`fusionrec.model.scoring.Catalogue.text_log_popularity`); None in older bundles.
    text_log_popularity: np.ndarray | None = None

    def __post_init__(self) -> None:
        n_items, n_users = len(self.item_ids), len(self.user_ids)
        for name in ("seen_weights", "seen_last_ts", "seen_ratings"):
            value = getattr(self, name)
            if value is not None and value.shape != self.seen_indices.shape:
                raise ValueError(f"model bundle: {name} has shape {value.shape}, expected {self.seen_indices.shape}")
        if self.text_log_popularity is not None and self.text_log_popularity.shape != (n_items,):
            raise ValueError(f"model bundle: text_log_popularity has shape {self.text_log_popularity.shape}, "
                             f"expected {(n_items,)}")
        if self.gram is not None and self.gram.shape != (self.rank, self.rank):
            raise ValueError(f"model bundle: gram has shape {self.gram.shape}, expected {(self.rank, self.rank)}")
        checks = {
            "titles": (self.titles.shape[0], n_items), "item_categories": (self.item_categories.shape[0], n_items),
            "item_factors": (self.item_factors.shape[0], n_items),
            "item_vectors": (self.item_vectors.shape[0], n_items),
            "log_popularity": (self.log_popularity.shape[0], n_items),
            "item_sentiment": (self.item_sentiment.shape[0], n_items),
            "recent_popularity": (self.recent_popularity.shape[0], n_items),
            "user_factors": (self.user_factors.shape[0], n_users),
            "user_sessions": (self.user_sessions.shape[0], n_users),
            "user_profiles": (self.user_profiles.shape[0], n_users),
            "seen_indptr": (self.seen_indptr.shape[0], n_users + 1),
            "liked_indptr": (self.liked_indptr.shape[0], n_users + 1),
            "user_factors rank": (self.user_factors.shape[1], self.item_factors.shape[1]),
            "user_sessions rank": (self.user_sessions.shape[1], self.item_factors.shape[1]),
            "user_profiles dim": (self.user_profiles.shape[1], self.item_vectors.shape[1]),
        }
        for name, (got, expected) in checks.items():
            if got != expected:
                raise ValueError(f"model bundle: {name} has {got} rows/columns, expected {expected}")
        if self.text_to_user_factor is not None and self.text_to_user_factor.shape != (self.dimension + 1, self.rank):
            raise ValueError(f"model bundle: text_to_user_factor has shape {self.text_to_user_factor.shape}, "
                             f"expected {(self.dimension + 1, self.rank)}")
        # Lookups built once per bundle; the dataclass is frozen, so set through object.
        object.__setattr__(self, "_item_index", {item: i for i, item in enumerate(self.item_ids.tolist())})
        object.__setattr__(self, "_user_index", {user: u for u, user in enumerate(self.user_ids.tolist())})
        object.__setattr__(self, "_catalogue", Catalogue(
            factors=self.item_factors, vectors=self.item_vectors,
            has_factors=np.any(self.item_factors != 0, axis=1), has_vector=np.any(self.item_vectors != 0, axis=1),
            log_popularity=self.log_popularity, item_sentiment=self.item_sentiment,
            recent_popularity=self.recent_popularity,
            popular_order=popular_order(self.log_popularity, self.item_categories),
            text_log_popularity=self.text_log_popularity))

    # -- shape ---------------------------------------------------------------------------
    @property
    def rank(self) -> int:
        return int(self.item_factors.shape[1])

    @property
    def dimension(self) -> int:
        return int(self.item_vectors.shape[1])

    @property
    def n_items(self) -> int:
        return len(self.item_ids)

    def item_index(self, item_id: str) -> int | None:
        return self._item_index.get(item_id)  # type: ignore[attr-defined]

    def user_index(self, user_id: str) -> int | None:
        return self._user_index.get(user_id)  # type: ignore[attr-defined]

    # -- queries -------------------------------------------------------------------------
    def known_user_query(self, u: int) -> Query:
        """The stored factors, session vector, profile, seen and liked items of user row ``u``."""
        factors = self.user_factors[u]
        session = self.user_sessions[u]
        profile = self.user_profiles[u]
        return Query(
            factors=factors if np.any(factors) else None,
            session=session if np.any(session) else None,
            profile=profile if np.any(profile) else None,
            exclude=self.seen_indices[self.seen_indptr[u]:self.seen_indptr[u + 1]],
            liked=self.liked_indices[self.liked_indptr[u]:self.liked_indptr[u + 1]],
        )

    def new_user_query(self, text_vector: np.ndarray | None, liked: np.ndarray) -> Query:
        """A user described by a text vector and/or liked catalogue items (see the module docstring)."""
        if len(liked):
            return self.folded_query(None, liked, np.full(len(liked), self.default_event_weight), text_vector)
        profile, factors = text_vector, None
        if text_vector is not None and self.text_to_user_factor is not None:
            factors = np.append(text_vector, 1.0) @ self.text_to_user_factor
        return Query(factors=factors, session=None, profile=profile, exclude=liked, liked=liked)

    @property
    def can_fold_in(self) -> bool:
        return self.gram is not None and self.seen_weights is not None and self.seen_last_ts is not None

    @property
    def default_event_weight(self) -> float:
        """The weight of an event given without one (a view's, ``ingest.weight_view``)."""
        return float(self.meta.get("default_event_weight", 1.0))

    def folded_query(self, u: int | None, items: np.ndarray, weights: np.ndarray,
                     text_vector: np.ndarray | None = None) -> Query:
        """User row ``u`` (None: a new user) after the events ``items`` (catalogue indices, in
        time order, all after training) with ``weights``: the training interactions plus
        these, aggregated per item (weights summed, as gold.interactions does), folded in
        (:func:`fusionrec.model.foldin.fold_in`); session = the mean factor of the
        ``session_items`` latest of them; the profile moved by them (a new user's: the text
        and the mean vector of the items)."""
        if not self.can_fold_in:
            raise ValueError("model bundle: built without fold-in inputs (gram, seen weights); rebuild it")
        items = np.asarray(items, dtype=np.int64)
        weights = np.asarray(weights, dtype=np.float64)
        cutoff = float(self.meta.get("train_cutoff_epoch", 0.0))
        # Events since training come after every training interaction, in the order given.
        ts = cutoff + 1.0 + np.arange(items.size, dtype=np.float64)
        ratings = np.full(items.size, np.nan)  # requests carry weights, no ratings
        if u is not None:
            lo, hi = self.seen_indptr[u], self.seen_indptr[u + 1]
            items = np.concatenate([self.seen_indices[lo:hi], items])
            weights = np.concatenate([self.seen_weights[lo:hi], weights])  # type: ignore[index]
            ts = np.concatenate([self.seen_last_ts[lo:hi], ts])  # type: ignore[index]
            seen_ratings = self.seen_ratings[lo:hi] if self.seen_ratings is not None else np.full(hi - lo, np.nan)
            ratings = np.concatenate([seen_ratings, ratings])
        unique, inverse = np.unique(items, return_inverse=True)
        total = np.zeros(unique.size)
        np.add.at(total, inverse, weights)
        last = np.full(unique.size, -np.inf)
        np.maximum.at(last, inverse, ts)
        rating = np.full(unique.size, np.nan)
        np.fmax.at(rating, inverse, ratings)
        catalogue = self._catalogue  # type: ignore[attr-defined]
        has = catalogue.has_factors[unique]
        als = self.meta.get("als", {})
        factors = fold_in(gram_matrix=self.gram, factors=self.item_factors[unique[has]], weights=total[has],
                          alpha=float(als["alpha"]), reg_param=float(als["reg_param"])) if has.any() else None
        recent = latest_first(self.item_ids[unique], last)[:self.session_items]
        session = session_vector(self.item_factors[unique[recent[has[recent]]]])
        # Stored as float32, as ALS's factors and the stream's user state are.
        factors = factors.astype(np.float32) if factors is not None else None
        session = session.astype(np.float32) if session is not None else None
        # fusionrec.validation.feedback.is_positive on the aggregated rows, in numpy.
        positive = np.where(np.isnan(rating), total >= float(self.meta.get("positive_weight", 0.0)),
                            rating >= float(self.meta.get("positive_rating", 0.0)))
        return self.query_for(u, factors=factors, session=session, items=unique, last_ts=last, positive=positive,
                              weights=total, text_vector=text_vector)

    @property
    def session_items(self) -> int:
        return int(self.meta.get("session_items", 5))

    def query_for(self, u: int | None, *, factors: np.ndarray | None, session: np.ndarray | None,
                  items: np.ndarray, last_ts: np.ndarray, positive: np.ndarray | None = None,
                  weights: np.ndarray | None = None, text_vector: np.ndarray | None = None) -> Query:
        """The query of a folded-in user (row ``u``, None: new) with ``factors`` and ``session``,
        whose interactions are ``items`` (catalogue indices, each once) with ``weights`` last
        seen at ``last_ts`` (epoch seconds), ``positive`` marking the positive ones (all when
        None): all of them excluded; the liked items reasons may name are the latest positive
        ones (a known user's since training first, then the stored liked items), at most
        ``model.reason_max_liked``; a known user's stored profile moved by the interactions
        (see the module docstring; kept as stored without ``weights``); a new user's profile
        is normalise(text vector + normalised mean vector of the items)."""
        items = np.asarray(items, dtype=np.int64)
        last_ts = np.asarray(last_ts, dtype=np.float64)
        positive = np.ones(items.size, dtype=bool) if positive is None else np.asarray(positive, dtype=bool)
        newest_first = latest_first(self.item_ids[items], last_ts)
        newest_first = newest_first[positive[newest_first]]
        n_liked = int(self.meta.get("reason_max_liked", items.size + 1))
        if u is not None:
            stored = self.known_user_query(u)
            since = newest_first[last_ts[newest_first] > float(self.meta.get("train_cutoff_epoch", 0.0))]
            profile = stored.profile if weights is None else self._moved_profile(u, items, weights, last_ts)
            return Query(factors=factors, session=session, profile=profile, exclude=items,
                         liked=_first_occurrences(np.concatenate([items[since], stored.liked]))[:n_liked])
        parts = [p for p in (text_vector, _normalise(self.item_vectors[items].mean(axis=0)) if items.size else None)
                 if p is not None]
        profile = _normalise(np.sum(parts, axis=0)) if parts else None
        return Query(factors=factors, session=session, profile=profile if profile is not None and np.any(profile) else None,
                     exclude=items, liked=items[newest_first][:n_liked])

    def _moved_profile(self, u: int, items: np.ndarray, weights: np.ndarray, last_ts: np.ndarray) -> np.ndarray | None:
        """User row ``u``'s stored profile moved from its training interactions to ``items``
        (with ``weights``, last seen at ``last_ts``): see the module docstring."""
        stored = self.user_profiles[u].astype(np.float64)
        half_life = self.meta.get("profile_half_life_days")
        lo, hi = self.seen_indptr[u], self.seen_indptr[u + 1]
        if half_life is None or self.seen_weights is None or self.seen_last_ts is None:
            return stored if np.any(stored) else None  # a bundle built before profiles moved
        trained = (self.seen_indices[lo:hi], self.seen_weights[lo:hi], self.seen_last_ts[lo:hi])
        t_ref = max(float(np.max(last_ts, initial=-np.inf)), float(np.max(trained[2], initial=-np.inf)))
        before = self._item_part(*trained, t_ref=t_ref, half_life_days=float(half_life))
        now = self._item_part(items, np.asarray(weights, dtype=np.float64), last_ts, t_ref=t_ref,
                              half_life_days=float(half_life))
        moved = _normalise(np.linalg.norm(before) * stored + now - before)
        return moved if np.any(moved) else None

    def _item_part(self, items: np.ndarray, weights: np.ndarray, last_ts: np.ndarray, *, t_ref: float,
                   half_life_days: float) -> np.ndarray:
        """T = sum_j w_j 2 ** (-(t_ref - t_j) / half_life) v_j (:mod:`fusionrec.features.profiles`)."""
        decay = np.power(2.0, -np.maximum(t_ref - np.asarray(last_ts, dtype=np.float64), 0.0)
                         / (half_life_days * _SECONDS_PER_DAY))
        return (np.asarray(weights, dtype=np.float64) * decay) @ self.item_vectors[np.asarray(items, dtype=np.int64)]

    # -- scoring -------------------------------------------------------------------------
    def recommend(self, query: Query, k: int) -> Ranked:
        """Top-``k`` items for ``query``; popularity (flagged) when it has neither factors nor profile."""
        if query.factors is None and query.profile is None:
            return self.popular(k, query.exclude)
        allowed = np.ones(self.n_items, dtype=bool)
        allowed[query.exclude] = False
        n = max(self.candidates_n, k)
        als = self.item_factors @ query.factors if query.factors is not None else None
        session = self.item_factors @ query.session if query.session is not None else None
        cosine = self.item_vectors @ query.profile if query.profile is not None else None
        catalogue = self._catalogue  # type: ignore[attr-defined]
        scored = score_user(catalogue, als, session, cosine, allowed, catalogue.popular_pools(n), n, k, self.ranker)
        return Ranked(scored.items, scored.scores, reasons(catalogue, self.titles, scored, query.liked, cosine), False)

    def popular(self, k: int, exclude: np.ndarray) -> Ranked:
        """The popularity fallback's first ``k`` items not in ``exclude`` (flagged)."""
        allowed = np.ones(self.n_items, dtype=bool)
        allowed[exclude] = False
        scored = popular_fallback(self._catalogue, allowed, k)  # type: ignore[attr-defined]
        return Ranked(scored.items, scored.scores, [REASON_POPULAR] * scored.items.size, True)

    # -- persistence ---------------------------------------------------------------------
    def save(self, folder: str | Path) -> Path:
        """Write ``arrays.npz`` (no pickled objects) and ``bundle.json`` into ``folder``."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        arrays = {name: getattr(self, name) for name in _ARRAY_FIELDS}
        arrays["item_ids"] = arrays["item_ids"].astype(str)
        arrays["titles"] = arrays["titles"].astype(str)
        arrays["item_categories"] = arrays["item_categories"].astype(str)
        arrays["user_ids"] = arrays["user_ids"].astype(str)
        if self.text_to_user_factor is not None:
            arrays["text_to_user_factor"] = self.text_to_user_factor
        for name in _OPTIONAL_ARRAYS:
            if getattr(self, name) is not None:
                arrays[name] = getattr(self, name)
        np.savez(folder / ARRAYS_FILE, **arrays)
        meta = {"ranker": self.ranker.to_json() if self.ranker else None, "candidates_n": self.candidates_n,
                "default_k": self.default_k, "meta": self.meta}
        (folder / META_FILE).write_text(json.dumps(meta, indent=2, default=str))
        return folder

    @classmethod
    def load(cls, folder: str | Path) -> "ModelBundle":
        folder = Path(folder)
        for name in (ARRAYS_FILE, META_FILE):
            if not (folder / name).is_file():
                raise FileNotFoundError(f"{folder / name}: model bundle file is missing")
        with np.load(folder / ARRAYS_FILE, allow_pickle=False) as npz:
            arrays = {name: npz[name] for name in npz.files}
        meta = json.loads((folder / META_FILE).read_text())
        return cls(
            **{name: arrays[name] for name in _ARRAY_FIELDS},
            text_to_user_factor=arrays.get("text_to_user_factor"),
            ranker=Ranker.from_json(meta["ranker"]) if meta.get("ranker") else None,
            candidates_n=int(meta["candidates_n"]),
            default_k=int(meta["default_k"]),
            meta=meta.get("meta", {}),
            **{name: arrays.get(name) for name in _OPTIONAL_ARRAYS},
        )


_ARRAY_FIELDS = ("item_ids", "titles", "item_categories", "item_factors", "item_vectors", "log_popularity",
                 "item_sentiment", "recent_popularity", "user_ids", "user_factors", "user_sessions", "user_profiles",
                 "seen_indptr", "seen_indices", "liked_indptr", "liked_indices")


#: Arrays a bundle may lack (built before they existed): saved when set, None when absent.
_OPTIONAL_ARRAYS = ("seen_weights", "seen_last_ts", "gram", "seen_ratings", "text_log_popularity")


def _first_occurrences(indices: np.ndarray) -> np.ndarray:
    """``indices`` without repeats, first occurrence kept, order kept."""
    _, first = np.unique(indices, return_index=True)
    return np.asarray(indices, dtype=np.int64)[np.sort(first)]


def _normalise(vector: np.ndarray) -> np.ndarray:
    norm = float(np.linalg.norm(vector))
    return vector / norm if norm > 0 else vector


def csr_from_lists(lists: list[list[int]]) -> tuple[np.ndarray, np.ndarray]:
    """(indptr, indices) of a list of integer lists (one list per row)."""
    indptr = np.zeros(len(lists) + 1, dtype=np.int64)
    indptr[1:] = np.cumsum([len(row) for row in lists])
    indices = np.fromiter((i for row in lists for i in row), dtype=np.int64, count=int(indptr[-1]))
    return indptr, indices
