"""How a recommender is validated: the per-user chronological split and the ranking metrics.

Below both the model (which tunes and trains its ranker on a validation period) and the
evaluation harness (which scores every model on the test period), as Spark ML's
``tuning`` sits above its estimators and evaluators: neither imports the other for these.
"""

__all__ = ["beyond_accuracy", "feedback", "item_texts", "metrics", "split"]
