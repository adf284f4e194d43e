"""MLflow: the tracking/registry store, the fused pyfunc model, aliases and promotion."""

__all__ = ["build", "bundle", "promote", "pyfunc", "register", "store", "tracking"]
