"""Beyond-accuracy measures of top-K lists: diversity, novelty, coverage, popularity bias.

The definitions follow Microsoft Recommenders' ``SparkDiversityEvaluation``
(``recommenders/evaluation/spark_evaluation.py``), computed here in pandas/numpy on the
driver: the evaluated top-K lists are a few thousand rows. ``recs`` is
``[user_id, rank, item_id]`` (rank 1 first) and only rows with ``rank <= k`` count;
``train_counts`` maps an item id to its number of training interactions.
"""

from __future__ import annotations

from typing import Mapping

import numpy as np
import pandas as pd

__all__ = ["BEYOND_ACCURACY", "beyond_accuracy", "catalog_coverage", "intra_list_diversity", "novelty",
           "popularity_percentile"]

#: The names :func:`beyond_accuracy` returns, in report order.
BEYOND_ACCURACY = ("diversity", "novelty", "catalog_coverage", "popularity_percentile")


def _cut(recs: pd.DataFrame, k: int) -> pd.DataFrame:
    return recs.loc[recs["rank"] <= k, ["user_id", "rank", "item_id"]]


def intra_list_diversity(recs: pd.DataFrame, vectors: Mapping[str, np.ndarray], k: int) -> float:
    """Mean over users of 1 - (mean cosine similarity of the pairs of items in the user's top k).

    Intra-list similarity: C.-N. Ziegler, S. M. McNee, J. A. Konstan and G. Lausen, "Improving
    recommendation lists through topic diversification", WWW 2005; diversity = 1 - ILS per
    user as in Y. C. Zhang, D. Ó Séaghdha, D. Quercia and T. Jambor, "Auralist", WSDM 2012,
    eq. (3); Microsoft Recommenders ``SparkDiversityEvaluation.diversity`` with
    ``item_sim_measure="item_feature_vector"``. Here the feature vector is the item's text
    vector; a pair with an item without one has similarity 0 (as the reference fills a missing
    similarity with 0). Users with fewer than two items have no pair and do not count.

    Parameters
    ----------
    recs : pandas.DataFrame
        ``[user_id, rank, item_id]``.
    vectors : Mapping
        item id -> vector (any length; normalised here).
    k : int
        The cut-off.

    Returns
    -------
    float
        In [0, 2] (cosines can be negative); 0.0 when no user has a pair.

    Examples
    --------
    >>> recs = pd.DataFrame({"user_id": ["u", "u", "u"], "rank": [1, 2, 3], "item_id": ["a", "b", "c"]})
    >>> vectors = {"a": np.array([1.0, 0.0]), "b": np.array([1.0, 0.0]), "c": np.array([0.0, 1.0])}
    >>> round(intra_list_diversity(recs, vectors, 3), 4)  # similarities 1, 0, 0
    0.6667
    """
    per_user = []
    for _, items in _cut(recs, k).sort_values(["user_id", "rank"]).groupby("user_id")["item_id"]:
        ids = items.tolist()
        if len(ids) < 2:
            continue
        width = next((len(vectors[i]) for i in ids if i in vectors), 0)
        m = np.zeros((len(ids), width))
        for row, item in enumerate(ids):
            if item in vectors:
                v = np.asarray(vectors[item], dtype=np.float64)
                m[row] = v / max(float(np.linalg.norm(v)), 1e-12)
        sims = m @ m.T
        upper = np.triu_indices(len(ids), 1)
        per_user.append(1.0 - float(sims[upper].mean()))
    return float(np.mean(per_user)) if per_user else 0.0


def novelty(recs: pd.DataFrame, train_counts: Mapping[str, int], k: int) -> float:
    """Mean self-information -log2(n_i / N) of the recommended items, over all recommendations.

    P. Castells, S. Vargas and J. Wang, "Novelty and diversity metrics for recommender
    systems: choice, discovery and relevance", ECIR 2011 workshop (eqs. 1 and 6);
    Microsoft Recommenders ``SparkDiversityEvaluation.novelty``: n_i = training interactions
    of item i, N = all training interactions. One deviation: an item without a training
    interaction (a cold item) takes n_i = 1, the largest finite value, where the reference
    drops it from the sum (counting it as not novel at all).

    Examples
    --------
    >>> recs = pd.DataFrame({"user_id": ["u", "u"], "rank": [1, 2], "item_id": ["a", "b"]})
    >>> novelty(recs, {"a": 2, "b": 2}, 2)  # N = 4: -log2(1/2) = 1 each
    1.0
    """
    items = _cut(recs, k)["item_id"]
    if items.empty:
        return 0.0
    total = float(sum(train_counts.values()))
    counts = np.array([max(train_counts.get(i, 0), 1) for i in items], dtype=np.float64)
    return float(np.mean(-np.log2(counts / max(total, 1.0))))


def catalog_coverage(recs: pd.DataFrame, train_counts: Mapping[str, int], k: int) -> float:
    """Distinct items recommended / distinct items with a training interaction.

    G. Shani and A. Gunawardana, "Evaluating recommendation systems", Recommender Systems
    Handbook, 2011 (catalog coverage); Microsoft Recommenders
    ``SparkDiversityEvaluation.catalog_coverage`` (the denominator is the items of the
    training data, so recommending cold items can take it above 1).

    Examples
    --------
    >>> recs = pd.DataFrame({"user_id": ["u", "v"], "rank": [1, 1], "item_id": ["a", "a"]})
    >>> catalog_coverage(recs, {"a": 1, "b": 3, "c": 1, "d": 1}, 1)
    0.25
    """
    n_train = sum(1 for n in train_counts.values() if n > 0)
    return _cut(recs, k)["item_id"].nunique() / n_train if n_train else 0.0


def popularity_percentile(recs: pd.DataFrame, train_counts: Mapping[str, int], k: int) -> float:
    """Mean over users of the mean popularity percentile of their recommended items.

    Popularity bias as the average recommendation popularity (ARP) of H. Yin, B. Cui, J. Li,
    J. Yao and C. Chen, "Challenging the long tail recommendation", VLDB 2012, and
    H. Abdollahpouri, R. Burke and B. Mobasher, "Managing popularity bias in recommender
    systems with personalized re-ranking", FLAIRS 2019, with the count replaced by its
    percentile so that datasets compare: percentile(i) = (items with fewer training
    interactions + half the items with as many) / items with a training interaction, in
    [0, 1]; a cold item is 0. (Not part of ``SparkDiversityEvaluation``.)

    Examples
    --------
    >>> recs = pd.DataFrame({"user_id": ["u", "v"], "rank": [1, 1], "item_id": ["a", "d"]})
    >>> popularity_percentile(recs, {"a": 9, "b": 3, "c": 1, "d": 1}, 1)  # a: (3 + .5)/4, d: (0 + 1)/4
    0.5625
    """
    counts = np.sort(np.array([n for n in train_counts.values() if n > 0], dtype=np.float64))
    top = _cut(recs, k)
    if top.empty or counts.size == 0:
        return 0.0
    item_counts = np.array([float(train_counts.get(i, 0)) for i in top["item_id"]])
    below = np.searchsorted(counts, item_counts, side="left")
    equal = np.searchsorted(counts, item_counts, side="right") - below
    pct = np.where(item_counts > 0, (below + 0.5 * equal) / counts.size, 0.0)
    return float(pd.Series(pct, index=top["user_id"].to_numpy()).groupby(level=0).mean().mean())


def beyond_accuracy(recs: pd.DataFrame, *, train_counts: Mapping[str, int], vectors: Mapping[str, np.ndarray],
                    k: int) -> dict[str, float]:
    """The four measures of :data:`BEYOND_ACCURACY` at ``k``.

    Parameters
    ----------
    recs : pandas.DataFrame
        ``[user_id, rank, item_id]`` of the evaluated users.
    train_counts : Mapping
        item id -> training interactions (items without one may be absent).
    vectors : Mapping
        item id -> text vector (for the diversity).
    k : int
        The cut-off.

    Returns
    -------
    dict
        ``diversity``, ``novelty``, ``catalog_coverage``, ``popularity_percentile``.
    """
    return {"diversity": intra_list_diversity(recs, vectors, k), "novelty": novelty(recs, train_counts, k),
            "catalog_coverage": catalog_coverage(recs, train_counts, k),
            "popularity_percentile": popularity_percentile(recs, train_counts, k)}
