"""The second-stage ranker's feature contract, shared by Spark training and numpy serving.

A candidate (user u, item i) is described by, in this order:

- ``als_score``: the ALS preference estimate x_u . y_i (factors from ALS, or from the
  text-to-factor map for cold items/users);
- ``content_cosine``: p_u . v_i, the user's profile vector against the item vector
  (both L2-normalised, so this is a cosine);
- ``log_popularity``: log(1 + n_i), n_i the item's number of training interactions;
- ``item_sentiment``: mean predicted review sentiment of the item (0.5 when it has no reviews).

The ranker is a logistic regression over standardised features,
score = sigmoid(sum_k coef_k * (x_k - mean_k) / std_k + intercept), stored as JSON:
``{"features": [...], "mean": [...], "std": [...], "coef": [...], "intercept": b}``.
"""

from __future__ import annotations

RANKER_FEATURES: tuple[str, ...] = ("als_score", "content_cosine", "log_popularity", "item_sentiment")
