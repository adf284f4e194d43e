"""The fused model: Spark ALS, text-to-factor maps for cold start, and a second-stage ranker."""
