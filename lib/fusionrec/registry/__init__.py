"""MLflow: the tracking/registry store, the fused pyfunc model, aliases and promotion."""

__all__ = ["build", "bundle", "model_code", "packaging", "promote", "pyfunc", "register", "store", "tracking"]
