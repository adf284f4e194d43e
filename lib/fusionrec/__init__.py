"""fusionrec: a Spark data-fusion recommender.

Stages: ingest (raw logs -> Delta bronze/silver/gold), embed (Spark NLP MiniLM),
features (item/user side features), model (ALS + text fusion + ranker),
evaluate, registry (MLflow).
"""

__all__ = ["cli", "commands", "commits", "config", "embed", "evaluate", "features", "generate", "ingest",
           "lake", "maintain", "model", "registry", "runlog", "session", "stages", "validation"]

__version__ = "0.1.0"
