"""Offline evaluation: one chronological split, a cold-item protocol, ranking metrics, baselines."""

__all__ = ["baselines", "chart", "harness"]
