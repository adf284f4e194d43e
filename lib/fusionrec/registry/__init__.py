"""MLflow: the tracking/registry store, the fused pyfunc model, aliases and promotion."""
