"""The fused model's scoring of one user against the whole catalogue, in numpy.

One implementation shared by the batch top-K for all users (:mod:`fusionrec.model.recommend`,
one user block per Spark task) and the MLflow serving bundle
(:mod:`fusionrec.registry.bundle`); it computes exactly what the Spark ranker path
(:func:`fusionrec.model.fusion.candidates` + :func:`~fusionrec.model.fusion.with_features`,
used to fit and evaluate the ranker) computes for a user recommended to in the catalogue's
week:

1. candidates C = top-N_als(x_u . y_i) ∪ top-N_session(r_u . y_i) among items with factors
   ∪ top-N_content(p_u . v_i) among items with a text vector
   ∪ the N most popular items of all time ∪ the N most popular of the recent weeks
   ∪ top-N(x_u . y_i) among the items without training interactions (new items),
   the user's seen items excluded (the popular lists are global, so a user who has seen
   some of them gets fewer);
2. the features of :data:`fusionrec.model.ranker.RANKER_FEATURES` for every i in C;
3. score = sigmoid(sum_k w_k (f_k - mean_k) / std_k + b + trees(f)), the ranker (a logistic
   regression, or boosted trees evaluated in numpy: :mod:`fusionrec.model.trees`);
4. the top k by score (ties: lower catalogue index first; catalogues are sorted by item id);
   with the ranker's cold slot (``cold_floor``, k >= 2) and no cold item in it, the best cold
   candidate scoring at least the floor takes the last place (:mod:`fusionrec.model.ranker`);
5. a reason per item, from the feature with the largest contribution: content signals ->
   "similar to <the liked item nearest in text space> you liked" (without liked items:
   "matches your description", if p_u . v_i reaches a floor), ALS signals -> "popular
   with people who liked <the liked item nearest in factor space>", sentiment -> "well
   reviewed", cold item -> "new arrival", popularity -> "popular now"
   (liked items: :mod:`fusionrec.validation.feedback`).

A user with neither factors nor a profile gets :func:`popular_fallback` instead: the most
popular unseen items, interleaved across categories (:func:`popular_order`).

Every top-N here breaks ties by catalogue index before cutting (:func:`top_columns`), so
which of several equal-scored items is kept never depends on the order a partial sort
leaves them in.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any, Sequence

import numpy as np

from fusionrec.model.ranker import RANKER_FEATURES
from fusionrec.model.trees import TreeEnsemble

__all__ = ["ALS_SIGNALS", "COLD_SIGNAL", "CONTENT_SIGNALS", "REASON_ALS", "REASON_ALS_TEXT",
           "REASON_CONTENT", "REASON_CONTENT_TEXT", "REASON_KINDS", "TEXT_MATCH_FLOOR", "REASON_NEW", "REASON_POPULAR", "REASON_SENTIMENT",
           "SENTIMENT_SIGNAL", "Catalogue", "popular_fallback", "popular_order", "Ranker", "reasons", "score_user",
           "Scored", "stack_rows", "top_columns", "unit_rows"]

#: Signals (indices into RANKER_FEATURES) whose reason names the nearest liked item.
CONTENT_SIGNALS = (RANKER_FEATURES.index("content_cosine"), RANKER_FEATURES.index("content_rank_gain"))
ALS_SIGNALS = tuple(RANKER_FEATURES.index(f) for f in ("als_score", "als_rank_gain", "session_score",
                                                      "session_rank_gain"))
SENTIMENT_SIGNAL = RANKER_FEATURES.index("item_sentiment")
COLD_SIGNAL = RANKER_FEATURES.index("cold_item")

REASON_CONTENT = "similar to {title} you liked"
REASON_CONTENT_TEXT = "matches your description"
REASON_ALS = "popular with people who liked {title}"
REASON_ALS_TEXT = "popular with people like you"
REASON_POPULAR = "popular now"
REASON_SENTIMENT = "well reviewed"
REASON_NEW = "new arrival"
#: The cosine (MiniLM text space) an item needs with a user's profile to be said to match
#: their description: with all-MiniLM-L6-v2 a string of made-up words scores up to about 0.26
#: with short titles, a related sentence 0.4 and more.
TEXT_MATCH_FLOOR = 0.35
#: Every kind of reason: the words of its template before the item title, if it names one.
REASON_KINDS = tuple(template.split("{")[0].strip() for template in (
    REASON_CONTENT, REASON_CONTENT_TEXT, REASON_ALS, REASON_ALS_TEXT, REASON_SENTIMENT, REASON_NEW, REASON_POPULAR))


@dataclass(frozen=True)
class Ranker:
    """The ranker (JSON of :class:`fusionrec.model.ranker.RankerParams`) in numpy."""

    features: tuple[str, ...]
    mean: np.ndarray
    std: np.ndarray
    coef: np.ndarray
    intercept: float
    #: the cold slot's floor; None: no slot
    cold_floor: float | None = None
    #: boosted trees added to the linear score; None: none
    trees: TreeEnsemble | None = None

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "Ranker":
        features = tuple(data["features"])
        if features != RANKER_FEATURES:
            raise ValueError(f"ranker.features: {list(features)} is not the contract {list(RANKER_FEATURES)}")
        arrays = {key: np.asarray(data[key], dtype=np.float64) for key in ("mean", "std", "coef")}
        for key, value in arrays.items():
            if value.shape != (len(features),):
                raise ValueError(f"ranker.{key}: expected {len(features)} numbers, got shape {value.shape}")
        # A constant feature has std 0; it then contributes nothing instead of dividing by zero.
        std = np.where(arrays["std"] > 0, arrays["std"], 1.0)
        floor, trees = data.get("cold_floor"), data.get("trees")
        return cls(features, arrays["mean"], std, arrays["coef"], float(data["intercept"]),
                   float(floor) if floor is not None else None,
                   TreeEnsemble.from_json(trees) if trees is not None else None)

    def to_json(self) -> dict[str, Any]:
        return {"features": list(self.features), "mean": self.mean.tolist(), "std": self.std.tolist(),
                "coef": self.coef.tolist(), "intercept": self.intercept, "cold_floor": self.cold_floor,
                "trees": self.trees.to_json() if self.trees is not None else None}

    def _linear(self, features: np.ndarray) -> np.ndarray:
        return (features - self.mean) / self.std * self.coef

    def contributions(self, features: np.ndarray) -> np.ndarray:
        """Each feature's share of the logit per candidate, shape (n, len(features)):
        w_k (f_k - mean_k) / std_k, plus its Saabas contribution to the trees' margin."""
        linear = self._linear(features)
        return linear if self.trees is None else linear + self.trees.contributions(features)

    def score(self, features: np.ndarray) -> np.ndarray:
        z = self._linear(features).sum(axis=1) + self.intercept
        if self.trees is not None:
            z = z + self.trees.margin(features)
        return 1.0 / (1.0 + np.exp(-z))


@dataclass(frozen=True)
class Catalogue:
    """The item side of scoring; row i of every array is catalogue item i."""

    #: (n, rank) ALS factors (text-map factors for cold items); zero rows where ``has_factors`` is False
    factors: np.ndarray
    #: (n, d) unit text vectors; zero rows where ``has_vector`` is False
    vectors: np.ndarray
    has_factors: np.ndarray
    has_vector: np.ndarray
    #: log(1 + training interactions); 0 = cold item
    log_popularity: np.ndarray
    #: mean review sentiment, NEUTRAL_SENTIMENT without reviews
    item_sentiment: np.ndarray
    #: log(1 + training interactions of the recent weeks)
    recent_popularity: np.ndarray
    #: the popularity fallback's order of the catalogue (:func:`popular_order`)
    popular_order: np.ndarray
    #: the log popularity a cold item's text predicts (the ranker's ``log_popularity`` of a
    #: cold item; never a popularity list's); None: 0 for every item
    text_log_popularity: np.ndarray | None = None

    @property
    def n_items(self) -> int:
        return int(self.factors.shape[0])

    @cached_property
    def is_new(self) -> np.ndarray:
        """The items without training interactions (cold: their factors come from the text map)."""
        return self.log_popularity == 0.0

    def popularity_feature(self, items: np.ndarray) -> np.ndarray:
        """The ranker's ``log_popularity`` of ``items``: observed, or for a cold item the text's prediction."""
        if self.text_log_popularity is None:
            return self.log_popularity[items]
        return np.where(self.is_new[items], self.text_log_popularity[items], self.log_popularity[items])

    def popular_pools(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        """The ``n`` most popular items of all time and of the recent weeks (items with at
        least one such interaction; ties: lower index first)."""
        return _global_top(self.log_popularity, n), _global_top(self.recent_popularity, n)


@dataclass(frozen=True)
class Scored:
    """The top-k of one user: catalogue indices best first, ranker scores and contributions."""

    items: np.ndarray
    scores: np.ndarray
    contributions: np.ndarray


def score_user(catalogue: Catalogue, als: np.ndarray | None, session: np.ndarray | None, cosine: np.ndarray | None,
               allowed: np.ndarray, pools: tuple[np.ndarray, np.ndarray], n: int, k: int,
               ranker: Ranker | None) -> Scored:
    """Steps 1-4 of the module docstring for one user.

    :param als: x_u . y_i for every catalogue item, None when the user has no factors
    :param session: r_u . y_i for every item, None when the user has no session vector
    :param cosine: p_u . v_i for every item, None when the user has no profile
    :param allowed: False for the user's seen items
    :param pools: :meth:`Catalogue.popular_pools` of ``n``
    :param ranker: None: the ALS score orders (the cosine for a user without factors)
    """
    none = np.empty(0, dtype=np.int64)
    als_pool = _top(als, allowed & catalogue.has_factors, n) if als is not None else none
    session_pool = _top(session, allowed & catalogue.has_factors, n) if session is not None else none
    content_pool = _top(cosine, allowed & catalogue.has_vector, n) if cosine is not None else none
    new_pool = (_top(als, allowed & catalogue.has_factors & catalogue.is_new, n)
                if als is not None else none)
    popular = [pool[allowed[pool]] for pool in pools]
    candidates = np.unique(np.concatenate([als_pool, session_pool, content_pool, new_pool, *popular]))
    if candidates.size == 0:
        return Scored(none, np.empty(0), np.empty((0, len(RANKER_FEATURES))))
    zeros = np.zeros(candidates.size)

    def by_factors(scores: np.ndarray | None) -> np.ndarray:
        return np.where(catalogue.has_factors[candidates], scores[candidates], 0.0) if scores is not None else zeros

    by_name = {
        "als_score": by_factors(als),
        "content_cosine": (np.where(catalogue.has_vector[candidates], cosine[candidates], 0.0)
                           if cosine is not None else zeros),
        "log_popularity": catalogue.popularity_feature(candidates),
        "item_sentiment": catalogue.item_sentiment[candidates],
        "cold_item": catalogue.is_new[candidates],
        "recent_popularity": catalogue.recent_popularity[candidates],
        "als_rank_gain": _rank_gain(als, als_pool, candidates),
        "content_rank_gain": _rank_gain(cosine, content_pool, candidates),
        "session_score": by_factors(session),
        "session_rank_gain": _rank_gain(session, session_pool, candidates),
    }
    features = np.column_stack([by_name[name] for name in RANKER_FEATURES]).astype(np.float64)
    if ranker is not None:
        contributions = ranker.contributions(features)
        scores = ranker.score(features)
    else:
        column = RANKER_FEATURES.index("als_score" if als is not None else "content_cosine")
        contributions = np.zeros_like(features)
        contributions[:, column] = 1.0
        scores = features[:, column]
    order = np.lexsort((candidates, -scores))
    top = order[:k]
    if ranker is not None and ranker.cold_floor is not None and k >= 2 and not features[top, COLD_SIGNAL].any():
        rest = order[k:]
        eligible = rest[(features[rest, COLD_SIGNAL] > 0) & (scores[rest] >= ranker.cold_floor)]
        if eligible.size:
            top = np.concatenate([order[:k - 1], eligible[:1]])
    return Scored(candidates[top], scores[top], contributions[top])


def reasons(catalogue: Catalogue, titles: np.ndarray, scored: Scored, liked: np.ndarray,
            cosine: np.ndarray | None = None) -> list[str]:
    """Step 5 of the module docstring for the items of ``scored``; ``liked``: catalogue
    indices of the user's liked items (none: the text forms of the reasons); ``cosine``:
    p_u . v_i for every catalogue item (None: no profile).

    "matches your description" needs the item's cosine to the profile to reach
    :data:`TEXT_MATCH_FLOOR`: below it (a text that matches nothing, say) the next largest
    contribution gives the reason.
    """
    out = []
    for item, row in zip(scored.items.tolist(), scored.contributions):
        for signal in np.argsort(-row, kind="stable").tolist():  # largest first; ties: feature order
            reason = _reason(catalogue, titles, item, signal, liked, cosine)
            if reason is not None:
                out.append(reason)
                break
        else:
            out.append(REASON_POPULAR)
    return out


def _reason(catalogue: Catalogue, titles: np.ndarray, item: int, signal: int, liked: np.ndarray,
            cosine: np.ndarray | None) -> str | None:
    if signal in CONTENT_SIGNALS:
        nearest = nearest_liked(catalogue.vectors, item, liked)
        if nearest is not None:
            return REASON_CONTENT.format(title=titles[nearest])
        return REASON_CONTENT_TEXT if cosine is not None and cosine[item] >= TEXT_MATCH_FLOOR else None
    if signal in ALS_SIGNALS:
        nearest = nearest_liked(catalogue.factors, item, liked)
        return REASON_ALS_TEXT if nearest is None else REASON_ALS.format(title=titles[nearest])
    if signal == SENTIMENT_SIGNAL:
        return REASON_SENTIMENT
    if signal == COLD_SIGNAL or catalogue.is_new[item]:
        return REASON_NEW  # a new item's popularity signal is its text's prediction, not its record
    return REASON_POPULAR


def nearest_liked(space: np.ndarray, item: int, liked: np.ndarray) -> int | None:
    """The liked item with the highest cosine to ``item`` in ``space`` (vectors or factors);
    ties: the lower catalogue index, whatever order ``liked`` comes in."""
    if liked.size == 0:
        return None
    liked = np.sort(liked)
    target = space[item]
    candidates = space[liked]
    norms = np.linalg.norm(candidates, axis=1) * max(float(np.linalg.norm(target)), 1e-12)
    cosines = candidates @ target / np.maximum(norms, 1e-12)
    return int(liked[int(np.argmax(cosines))])


def unit_rows(m: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (zero rows stay zero)."""
    return m / np.maximum(np.linalg.norm(m, axis=1, keepdims=True), 1e-12)


def popular_order(log_popularity: np.ndarray, categories: np.ndarray) -> np.ndarray:
    """Catalogue indices of the items with a training interaction, in the popularity
    fallback's order: each category's most popular item (most popular first), then each
    category's second, and so on, so that the list is not one genre.

    :param categories: one category per item (its first; ``""`` for none, which is one
        category like any other)
    :returns: ties within a category and between categories: lower index first
    """
    items = np.flatnonzero(log_popularity > 0)
    by_popularity = items[np.lexsort((items, -log_popularity[items]))]
    within = np.empty(log_popularity.shape[0], dtype=np.int64)  # rank of the item in its category
    seen: dict[Any, int] = {}
    for item, category in zip(by_popularity.tolist(), categories[by_popularity].tolist()):
        within[item] = seen.get(category, 0)
        seen[category] = within[item] + 1
    return by_popularity[np.lexsort((by_popularity, -log_popularity[by_popularity], within[by_popularity]))]


def popular_fallback(catalogue: Catalogue, allowed: np.ndarray, k: int) -> Scored:
    """The first ``k`` allowed items of :attr:`Catalogue.popular_order`, for a user with
    neither factors nor a profile; score = 1 / position in the list, reason "popular now"."""
    order = catalogue.popular_order
    items = order[allowed[order]][:k]
    contributions = np.zeros((items.size, len(RANKER_FEATURES)))
    contributions[:, RANKER_FEATURES.index("log_popularity")] = 1.0
    return Scored(items, 1.0 / np.arange(1, items.size + 1), contributions)


def top_columns(scores: np.ndarray, n: int) -> np.ndarray:
    """Mask of the ``n`` highest entries in each row of the 2-d ``scores`` (every entry when a
    row has at most ``n``; no NaN); ties at the cut: lower column first, so every row keeps
    exactly ``min(n, columns)``. O(columns) per row, no sort."""
    if scores.shape[1] <= n:
        return np.ones(scores.shape, dtype=bool)
    cut = -np.partition(-scores, n - 1, axis=1)[:, n - 1:n]  # each row's n-th highest value
    better = scores > cut
    keep = better | (scores == cut)
    over = np.flatnonzero(keep.sum(axis=1) > n)  # rows with more ties at the cut than places
    if over.size:
        tied = keep[over] & ~better[over]
        room = n - better[over].sum(axis=1, keepdims=True)
        keep[over] = better[over] | (tied & (np.cumsum(tied, axis=1) <= room))
    return keep


def stack_rows(rows: Sequence[Any], width: int, what: str = "rows") -> tuple[np.ndarray, np.ndarray]:
    """``(len(rows) x width`` float32 matrix, mask of the rows present): a None or empty
    entry is a zero row; an entry of another length is an error naming ``what`` and the row."""
    out = np.zeros((len(rows), width), dtype=np.float32)
    present = np.zeros(len(rows), dtype=bool)
    for row, value in enumerate(rows):
        if value is None or len(value) == 0:
            continue
        array = np.asarray(value, dtype=np.float32)
        if array.shape != (width,):
            raise ValueError(f"{what}: row {row} has {array.shape[0]} values, expected {width}")
        out[row], present[row] = array, True
    return out, present


def _global_top(values: np.ndarray, n: int) -> np.ndarray:
    positive = np.flatnonzero(values > 0)
    return positive[np.lexsort((positive, -values[positive]))][:n]


def _top(scores: np.ndarray, allowed: np.ndarray, n: int) -> np.ndarray:
    """Indices of the ``n`` highest ``scores`` among ``allowed`` items (ascending; ties at
    the cut: lower index first)."""
    index = np.flatnonzero(allowed)
    return index[top_columns(scores[index][np.newaxis, :], n)[0]]


def _rank_gain(scores: np.ndarray | None, pool: np.ndarray, items: np.ndarray) -> np.ndarray:
    """1 / log2(1 + rank) of ``items`` in ``pool`` ordered by ``scores`` (ties: lower index,
    i.e. item id, first); 0 for items outside the pool."""
    if scores is None or pool.size == 0:
        return np.zeros(items.size)
    ordered = pool[np.lexsort((pool, -scores[pool]))]
    gain = np.zeros(scores.shape[0])
    gain[ordered] = 1.0 / np.log2(np.arange(2, ordered.size + 2))
    return gain[items]
