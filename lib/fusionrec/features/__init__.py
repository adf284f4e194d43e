"""Side features derived from the text embeddings: item vectors, user profiles, sentiment.

The functions are pure ``DataFrame -> DataFrame`` transformations, so the model stage can
compute every feature from its training split alone; :func:`build_features` is the thin
production layer that reads the full tables and writes ``features.*``.
"""

from fusionrec.features.build import build_features
from fusionrec.features.item_vectors import item_vectors
from fusionrec.features.profiles import user_profiles
from fusionrec.features.sentiment import item_sentiment, score_sentiment, train_sentiment

__all__ = ["build_features", "item_vectors", "user_profiles", "train_sentiment", "score_sentiment", "item_sentiment"]
