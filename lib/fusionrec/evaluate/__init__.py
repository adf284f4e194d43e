"""Offline evaluation: one chronological split, a cold-item protocol, ranking metrics, baselines and
tuned peers, standard errors and paired bootstrap intervals."""

__all__ = ["baselines", "chart", "harness", "peers", "results", "significance"]
