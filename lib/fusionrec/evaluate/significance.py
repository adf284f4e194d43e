"""How sure a difference between two models is: per-user standard errors and a paired bootstrap.

Every ranking metric of :mod:`fusionrec.validation.metrics` is a mean over the evaluated
users, so its uncertainty is that of a mean of per-user values. Two models scored on the
same users are compared pairwise (the per-user differences), which removes the variation
between users that both share.
"""

from __future__ import annotations

import numpy as np

__all__ = ["paired_bootstrap", "standard_error"]


def standard_error(values: np.ndarray) -> float:
    """Standard error of the mean of per-user values: s / sqrt(n) (s with n - 1); 0 below 2 users.

    >>> round(standard_error(np.array([0.0, 1.0, 0.0, 1.0])), 6)  # s = 0.57735, n = 4
    0.288675
    """
    x = np.asarray(values, dtype=np.float64)
    if x.size < 2:
        return 0.0
    return float(x.std(ddof=1) / np.sqrt(x.size))


def paired_bootstrap(a: np.ndarray, b: np.ndarray, *, resamples: int = 1000, seed: int = 0,
                     level: float = 0.95) -> dict[str, float]:
    """Percentile bootstrap interval of mean(a) - mean(b) over users resampled with replacement.

    B. Efron and R. Tibshirani, "An Introduction to the Bootstrap", 1993, ch. 13 (percentile
    interval); for paired comparisons of retrieval systems over the same queries, T. Sakai,
    "Evaluating evaluation metrics based on the bootstrap", SIGIR 2006.

    Parameters
    ----------
    a, b : numpy.ndarray
        Per-user values of the two models, aligned (entry j of both is the same user).
    resamples : int
        Bootstrap resamples of the users.
    seed : int
        Seed of the resampling (the interval is reproducible).
    level : float
        Coverage of the interval.

    Returns
    -------
    dict
        ``diff`` (the observed mean difference), ``low`` and ``high`` (the interval),
        ``users``, ``resamples``, ``seed``.

    Examples
    --------
    >>> r = paired_bootstrap(np.array([0.5, 0.7, 0.9]), np.array([0.4, 0.6, 0.8]), resamples=200, seed=1)
    >>> round(r["diff"], 6), round(r["low"], 6), round(r["high"], 6)
    (0.1, 0.1, 0.1)
    """
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"paired values need the same users: shapes {a.shape} and {b.shape}")
    d = a - b
    if d.size == 0:
        return {"diff": 0.0, "low": 0.0, "high": 0.0, "users": 0, "resamples": resamples, "seed": seed}
    rng = np.random.default_rng(seed)
    means = np.empty(resamples)
    for r in range(resamples):
        means[r] = d[rng.integers(0, d.size, d.size)].mean()
    tail = (1.0 - level) / 2.0
    low, high = np.quantile(means, [tail, 1.0 - tail])
    return {"diff": float(d.mean()), "low": float(low), "high": float(high), "users": int(d.size),
            "resamples": resamples, "seed": seed}
