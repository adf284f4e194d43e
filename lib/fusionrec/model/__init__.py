"""The fused model: Spark ALS, text-to-factor maps for cold start, and a second-stage ranker."""

__all__ = ["als", "fusion", "ranker", "recommend", "scoring", "side_features", "text_maps", "topk", "train", "trees",
           "tuned"]
